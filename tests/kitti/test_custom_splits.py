"""Your own split files (docs/beyond_eigen.md): a test split or a train/val folder in monodepth2's
format, named by its stem, checked against the tree before any job runs; its ground truth and
table on the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.dry_runs import SPLITS, dry_run, snakemake_in
from workflow_scripts.kitti.gt_export import load_gt
from workflow_scripts.kitti.split_config import (
    check_split_frames,
    keyed_test_splits,
    split_key,
    train_split_folder,
)
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.util import InputDataError

EIGEN = (SPLITS / "eigen" / "test_files.txt").read_text().splitlines()


def _config(tmp_path: Path, **kitti) -> Path:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump({"kitti": kitti}))
    return path


def keyed_test_splits_name_outputs_by_the_files_stem(tmp_path):
    assert split_key("eigen") == "eigen" and split_key("eigen_benchmark") == "eigen_benchmark"
    assert split_key(str(tmp_path / "night.txt")) == "night"
    assert keyed_test_splits(["eigen", str(tmp_path / "a" / "night.txt"), "eigen"]) == {
        "eigen": "eigen", "night": str(tmp_path / "a" / "night.txt")}
    for bad, words in ((tmp_path / "eigen.txt", "standard split's name"), (tmp_path / "a b.txt", "unfit")):
        with pytest.raises(InputDataError, match=words) as err:
            split_key(str(bad))
        assert str(bad) in str(err.value)
    with pytest.raises(InputDataError, match="neither a standard test split"):
        split_key("eigen_zhou")  # a training list is no test split
    with pytest.raises(InputDataError, match="same name 'night'"):
        keyed_test_splits([str(tmp_path / "a" / "night.txt"), str(tmp_path / "b" / "night.txt")])
    assert train_split_folder("eigen_zhou") == SPLITS / "eigen_zhou"
    with pytest.raises(InputDataError, match="val_files.txt") as err:
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "train_files.txt").write_text("")
        train_split_folder(str(tmp_path / "mine"))
    assert str(tmp_path / "mine" / "val_files.txt") in str(err.value)


def test_missing_frames_are_counted_and_the_first_is_named(kitti_full_tree, tmp_path):
    split = tmp_path / "mine.txt"
    folder = EIGEN[0].split()[0]
    lines = EIGEN[:7] + [f"{folder} 0000099990 l", f"{folder} 0000099991 l",
                         "2011_09_26/2011_09_26_drive_0999_sync 3 l"]
    split.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputDataError) as err:
        check_split_frames(split, kitti_full_tree, kitti_full_tree, "png", scans=True)
    text = str(err.value)
    assert str(split) in text and "3 of its 10 lines" in text and "line 8" in text
    assert "0000099990.png" in text
    scans = kitti_full_tree / folder / "velodyne_points" / "data"
    (scans / "0000000001.bin").rename(tmp_path / "scan.bin")
    try:  # an image without its scan: no ground truth
        split.write_text(f"{folder} 1 l\n")
        with pytest.raises(InputDataError, match="1 of its 1 lines.*0000000001.bin"):
            check_split_frames(split, kitti_full_tree, kitti_full_tree, "png", scans=True)
        kept = check_split_frames(split, kitti_full_tree, kitti_full_tree, "png", scans=False)
        assert kept == read_split(split)
    finally:
        (tmp_path / "scan.bin").rename(scans / "0000000001.bin")


def test_a_custom_test_split_is_planned_under_its_stem_and_kept_out_of_training(kitti_full_tree, tmp_path):
    split = tmp_path / "splits" / "my_ten.txt"
    split.parent.mkdir()
    split.write_text("\n".join(EIGEN[:10]) + "\n")
    cfg = _config(tmp_path, root=str(kitti_full_tree), evaluate={"split": str(split), "stages": ["constant"]})
    counts = dry_run("results/kitti_eval.csv", tmp_path, cfg)
    assert counts["make_test_split"] == counts["export_gt_depth"] == counts["evaluate_depth"] == 1
    run = snakemake_in(tmp_path, "results/kitti/gt/my_ten.npz", cfg)
    assert run.returncode == 0 and "results/kitti/splits/my_ten/test_files.txt" in run.stdout
    # its drives are test drives: the train lists skip them (make_splits reads its list)
    run = snakemake_in(tmp_path, "results/kitti/splits/train_files.txt", cfg)
    assert run.returncode == 0 and "results/kitti/splits/my_ten/test_files.txt" in run.stdout


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2011_09_26/2011_09_26_drive_0002_sync 0000099999 l", "1 of its 10 lines name a frame"),
        ("2011_09_26/2011_09_26_drive_0002_sync frame l", "line 10 is not"),
    ],
)
def test_bad_split_files_stop_before_any_job(kitti_full_tree, tmp_path, line, message):
    """A missing frame, or a malformed line, in a test split file or a train/val folder stops
    the dry run itself: the message names the file."""
    split = tmp_path / "bad.txt"
    split.write_text("\n".join([*EIGEN[:9], line]) + "\n")
    run = snakemake_in(tmp_path, "results/kitti_eval.csv", _config(tmp_path, root=str(kitti_full_tree),
                                                                  evaluate={"split": str(split)}))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and message in out and str(split) in out, out[-2000:]
    assert "Job stats" not in out
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "train_files.txt").write_text("\n".join([*EIGEN[:9], line]) + "\n")
    (folder / "val_files.txt").write_text("")
    run = snakemake_in(tmp_path, "results/kitti/splits/train_files.txt",
                       _config(tmp_path, root=str(kitti_full_tree), splits={"standard": str(folder)}))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and message in out and str(folder / "train_files.txt") in out, out[-2000:]


def test_a_custom_train_folder_trains_on_its_drives(kitti_full_tree, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    zhou = (SPLITS / "eigen_zhou" / "train_files.txt").read_text().splitlines()
    drives = sorted({line.split()[0] for line in zhou})[:2]
    (folder / "train_files.txt").write_text("".join(f"{d} {f} l\n" for d in drives for f in (5, 6, 7)))
    (folder / "val_files.txt").write_text(f"{drives[0]} 9 l\n")
    cfg = _config(tmp_path, root=str(kitti_full_tree), splits={"standard": str(folder)},
                  train={"teacher": {"hints": True}})
    counts = dry_run("results/kitti/splits/train_files.txt", tmp_path, cfg)
    assert counts["make_splits"] == 1
    assert dry_run("all", tmp_path, cfg)["precompute_depth_hints"] == 2  # one per drive of the folder


@pytest.mark.slow
def test_a_custom_split_of_demo_frames_gets_its_own_ground_truth_and_table(tmp_path):
    """10 frames of two demo drives as a split file: make_test_split checks them against the
    generated tree, the ground truth is their LiDAR, the table (constant baseline) has 10 frames."""
    split = tmp_path / "ten.txt"
    split.write_text("".join(f"2011_01_02/2011_01_02_drive_0003_sync {f} l\n" for f in range(5))
                     + "".join(f"2011_01_01/2011_01_01_drive_0001_sync {f} l\n" for f in range(5)))
    demo = {"kitti": {"drives": [
        {"date": "2011_01_01", "drive": "0001", "frames": 5, "speed": 8.0, "stop": False},
        {"date": "2011_01_02", "drive": "0003", "frames": 5, "speed": 9.0, "stop": False}]}}
    cfg = tmp_path / "ten.yaml"
    evaluate = {"split": str(split), "stages": ["constant"]}
    cfg.write_text(yaml.safe_dump({"demo": demo, "kitti": {"evaluate": evaluate}}))
    run = snakemake_in(tmp_path, "results/kitti_eval.csv", cfg, dry=False, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert read_split(tmp_path / "results/kitti/splits/ten/test_files.txt") == read_split(split)
    gt = load_gt(tmp_path / "results/kitti/gt/ten.npz")
    assert len(gt) == 10 and all((m > 0).sum() > 500 for m in gt.maps())
    table = pd.read_csv(tmp_path / "results" / "kitti_eval.csv")
    assert (table.stage == "constant").all() and (table.n_frames == 10).all()
    assert np.isfinite(table.abs_rel).all()
