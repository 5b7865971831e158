"""Fault injection (issue 14), driving branch and configuration: each case damages a copy of the
small KITTI demo (tests/conftest.py) and runs the real rules up to the one that reads the damage
(as narrow a target as possible). Checks: tests/fault_injection.py. The endoscopy branch and an
interrupted training: tests/test_bad_inputs_endo.py."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.fault_injection import (
    FAIL_TIMES,
    KITTI_DEMO,
    assert_failed,
    assert_startup_error,
    case_folder,
    snakemake,
    write_config,
)

TRAIN_DRIVE = "2011_01_01/2011_01_01_drive_0001_sync"  # the demo's training drive (5 frames)
TEST_DRIVE = "2011_01_02/2011_01_02_drive_0003_sync"  # its held-out test drive
HINTS = f"results/kitti/depth_hints/{TRAIN_DRIVE}"
GT = "results/kitti/gt/eigen.npz"
TEST_SPLIT = "results/kitti/splits/eigen/test_files.txt"
SPLITS = ["results/kitti/splits/train_files.txt", "results/kitti/splits/val_files.txt"]


@pytest.fixture
def kitti_case(tmp_path, kitti_demo_small):
    """A run folder with a fresh copy of the small KITTI demo tree."""
    return case_folder(tmp_path, kitti=kitti_demo_small["root"])


def cut(path, keep: int) -> None:
    """Keep the first ``keep`` bytes of ``path`` (a download or copy that stopped early)."""
    os.truncate(path, keep)


@pytest.mark.timeout(180)
def test_a_truncated_png_fails_the_hint_workers_in_seconds(kitti_case):
    """Was a 10-minute spin: the worker's error did not unpickle and the pool waited for ever."""
    png = KITTI_DEMO / TRAIN_DRIVE / "image_02" / "data" / "0000000002.png"
    cut(kitti_case / png, (kitti_case / png).stat().st_size // 2)
    run = snakemake(kitti_case, HINTS)
    job = run.output[run.output.index("rule precompute_depth_hints:") :]
    assert re.search(r"^\s+threads: 2$", job, re.M)  # the rule's pool runs 2 workers
    assert_failed(
        run,
        "a. truncated PNG, 2 workers",
        "precompute_depth_hints",
        f"logs/precompute_depth_hints/{TRAIN_DRIVE}/0.log",
        [HINTS],
        png,
        "PNG file is truncated",
        "no IEND chunk",
        "check that image_02 and image_03",
    )
    assert run.seconds < 60  # upstream jobs included; the job itself fails at the first bad frame


@pytest.mark.timeout(120)
@pytest.mark.parametrize("change", [+3, -5], ids=["3 extra bytes", "5 bytes short"])
def test_c_velodyne_file_that_is_not_whole_points(kitti_case, change):
    """A .bin of 16-byte points with bytes too many (passed before) or too few: the size is
    checked before reading, and the message gives the file's real byte count."""
    scan = KITTI_DEMO / TEST_DRIVE / "velodyne_points" / "data" / "0000000002.bin"
    size = (kitti_case / scan).stat().st_size + change
    if change > 0:
        with open(kitti_case / scan, "ab") as fh:
            fh.write(b"\x00" * change)
    else:
        cut(kitti_case / scan, size)
    run = snakemake(kitti_case, GT)
    case = "c. Velodyne .bin +3 bytes" if change > 0 else "short Velodyne .bin"
    assert_failed(
        run,
        case,
        "export_gt_depth",
        "logs/export_gt_depth/eigen.log",
        [GT],
        scan,
        f"size {size} bytes is not a multiple of 16",
        "re-extract it from the KITTI archive",
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["missing", "malformed"])
def test_calibration_file_missing_or_malformed(kitti_case, damage):
    date = KITTI_DEMO / TEST_DRIVE.split("/")[0]
    if damage == "missing":
        calib = date / "calib_cam_to_cam.txt"
        (kitti_case / calib).unlink()
        phrases = ("calibration file not found", "point kitti.root at a KITTI raw root")
    else:  # a translation with a word in it
        calib = date / "calib_velo_to_cam.txt"
        text = (kitti_case / calib).read_text()
        (kitti_case / calib).write_text(re.sub(r"^T: .*$", "T: 0.1 oops", text, flags=re.M))
        phrases = ("missing or malformed key T (expected 3 numbers)", "use the calibration files")
    run = snakemake(kitti_case, GT)
    assert_failed(
        run,
        f"{damage} calibration file",
        "export_gt_depth",
        "logs/export_gt_depth/eigen.log",
        [GT],
        calib,
        *phrases,
    )


@pytest.mark.timeout(120)
def test_d_image_ext_jpg_on_a_png_tree(kitti_case):
    """Wrote an empty test split (and 0-frame ground truth) with exit 0 before."""
    cfg = write_config(kitti_case, "jpg.yaml", {"kitti": {"image_ext": "jpg"}})
    run = snakemake(kitti_case, TEST_SPLIT, cfg)
    assert_failed(
        run,
        "d. image_ext jpg on PNGs",
        "make_test_split",
        "logs/make_test_split/eigen.log",
        [TEST_SPLIT],
        KITTI_DEMO / TEST_DRIVE / "image_02" / "data",
        "holds no .jpg frames but .png ones",
        "set kitti.image_ext: png",
    )


class Unpickled:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.timeout(180)
def test_f_external_disparities_that_need_unpickling(kitti_case):
    """An object array and a pickle as kitti.evaluate.external_disparities: refused unread
    (nothing is unpickled), naming the file and the key; was a bare numpy traceback."""
    marker = kitti_case / "UNPICKLED"
    objects = np.empty(5, dtype=object)
    objects[:] = [np.ones((8, 16), np.float32)] * 4 + [Unpickled(str(marker))]
    np.save(kitti_case / "disps_objects.npy", objects, allow_pickle=True)
    with open(kitti_case / "disps.pkl", "wb") as fh:
        pickle.dump([np.ones((8, 16), np.float32), Unpickled(str(marker))], fh)
    out = "results/kitti/eval/external.csv"
    for name, case, holds in (
        ("disps_objects.npy", "f. object array", "an array of Python objects"),
        ("disps.pkl", "f. pickle file", "pickled or other data"),
    ):
        cfg = write_config(kitti_case, "ext.yaml", {"kitti": {"evaluate": {"external_disparities": name}}})
        run = snakemake(kitti_case, out, cfg)
        assert_failed(
            run,
            f"{case} as external_disparities",
            "evaluate_depth",
            "logs/evaluate_depth/external.log",
            [out],
            name,
            f"not a plain numeric .npy array: it holds {holds}",
            "never unpickled",
            "np.save(path, np.stack(disps).astype(np.float32))",
            "point kitti.evaluate.external_disparities to it",
        )
    assert not marker.exists()
    assert (kitti_case / GT).is_file()  # the ground truth (built by the first run) is fine


@pytest.mark.timeout(180)
def test_h_frame_without_its_right_image_is_dropped_or_stops_the_run(kitti_case):
    """Frame 3 of the training drive lost its right image: frames 2 and 3 (whose neighbour it is)
    cannot be trained on. missing: drop (default) leaves them out and says so in the log;
    missing: error stops, naming the option. Before, frame 3 went into train_files.txt."""
    (kitti_case / KITTI_DEMO / TRAIN_DRIVE / "image_03" / "data" / "0000000003.png").unlink()
    run = snakemake(kitti_case, SPLITS[0])
    assert run.returncode == 0, run.output[-3000:]
    log = (kitti_case / "logs" / "make_splits" / "make_splits.log").read_text()
    assert (
        "left out 2 training frame(s) whose stereo partner, temporal neighbour or LiDAR scan is "
        f"missing (kitti.splits.missing: drop): {TRAIN_DRIVE} 2, {TRAIN_DRIVE} 3"
    ) in log
    train = (kitti_case / SPLITS[0]).read_text().splitlines()
    assert train == [f"{TRAIN_DRIVE} 0000000001 l", f"{TRAIN_DRIVE} 0000000001 r"]

    cfg = write_config(kitti_case, "strict.yaml", {"kitti": {"splits": {"missing": "error"}}})
    run = snakemake(kitti_case, SPLITS[0], cfg)
    assert_failed(
        run,
        "h. missing right image, error",
        "make_splits",
        "logs/make_splits/make_splits.log",
        SPLITS,
        "results/kitti/frame_index",
        "2 training frame(s) lack their stereo partner",
        f"first: {TRAIN_DRIVE} 2, {TRAIN_DRIVE} 3",
        "set kitti.splits.missing: drop",
    )


# ------------------------------------------------------------------ configuration (stops at startup)
@pytest.mark.timeout(60)
def test_e_misspelt_endoscopy_root_stops_at_startup(tmp_path):
    """Planned a run without endoscopy data before and failed much later ("no sequences")."""
    cfg = write_config(tmp_path, "typo.yaml", {"endoscopy": {"root": str(tmp_path / "endoscopy_dta")}})
    run = snakemake(tmp_path, "results/endo/seq01/frames", cfg)
    assert_startup_error(
        run,
        "e. misspelt endoscopy.root",
        "config endoscopy.root",
        f"{tmp_path / 'endoscopy_dta'}': no such folder",
        "Set endoscopy.root to your data folder",
    )


@pytest.mark.timeout(60)
def test_misspelt_config_key_stops_at_startup(tmp_path):
    cfg = write_config(tmp_path, "typo.yaml", {"kitti": {"image_extt": "png"}})
    run = snakemake(tmp_path, GT, cfg)
    assert_startup_error(
        run,
        "misspelt key kitti.image_extt",
        "'image_extt' was unexpected",
        "config key kitti: Additional properties are not allowed ('image_extt' was unexpected)",
    )
    assert "schema['properties']" not in run.output  # one line, not the schema
    check = config_check(cfg)  # names the file as well
    assert check.returncode == 1
    assert check.stderr.strip() == (
        f"{cfg}: config key kitti: Additional properties are not allowed ('image_extt' was unexpected). "
        "See docs/configuration.md for the allowed values"
    )


def config_check(*files) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workflow_scripts.config", "check", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(60)
def test_g_invalid_yaml_in_a_configfile_is_named_by_config_check(tmp_path):
    """Snakemake reads --configfile before the workflow runs, and its message names neither the
    file nor the line; `python -m workflow_scripts.config check` does, and the README says so."""
    bad = tmp_path / "broken.yaml"
    bad.write_text("kitti:\n  image_ext: png\n  filter: {method: stride\nendoscopy:\n  root: ''\n")
    run = snakemake(tmp_path, GT, bad)
    assert run.returncode != 0 and "Config file is not valid JSON or YAML" in run.output
    check = config_check(bad)
    assert check.returncode == 1
    message = check.stderr.strip()
    assert message.startswith(f"{bad}: cannot be read as YAML (")
    assert message.endswith("). Fix the file's syntax")
    assert f'"{bad}", line 3, column 11' in message  # where the flow mapping that is never closed starts
    FAIL_TIMES["g. invalid YAML (config check)"] = ("(config check)", run.seconds, message.splitlines()[0])
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert (
        "`python -m workflow_scripts.config check my.yaml` also names the file (and the line of a YAML "
        "syntax error, which Snakemake's own message does not)"
    ) in readme
