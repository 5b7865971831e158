"""Dry runs of the workflow in a scratch folder, and a full-size KITTI raw tree of EMPTY files
(the 61 drives of the shipped lists, about 42 k frames) to dry-run on: shared by the recipe,
custom-split and scale-out tests (the fixture is ``kitti_full_tree`` in tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from workflow_scripts.demo.kitti_demo import demo_calibration
from workflow_scripts.kitti import calib as kc

SPLITS = ROOT / "workflow_scripts" / "kitti" / "splits"

# image size of each recording date of KITTI raw (calib_cam_to_cam.txt S_rect_02)
DATE_SIZES = {"2011_09_26": (375, 1242), "2011_09_28": (370, 1224), "2011_09_29": (374, 1238),
              "2011_09_30": (370, 1226), "2011_10_03": (376, 1241)}


def drive_frames() -> dict[str, int]:
    """Drive folder -> the largest frame index any shipped list names (train, val, test)."""
    last: dict[str, int] = {}
    for path in SPLITS.glob("*/*_files.txt"):
        for line in path.read_text().splitlines():
            if line.strip():
                folder, frame = line.split()[:2]
                last[folder] = max(last.get(folder, 0), int(frame))
    return last


def drives_of(*lists: str) -> set[str]:
    """Drive folders named in shipped lists (paths relative to the splits folder)."""
    lines = [line for rel in lists for line in (SPLITS / rel).read_text().splitlines()]
    return {line.split()[0] for line in lines if line.strip()}


def build_full_tree(root: Path) -> Path:
    """The 61 drives of the Eigen / Zhou / Depth Hints lists with every frame as EMPTY files
    (both cameras, LiDAR; the last listed frame + 2, so that every neighbour f +- 1 exists),
    timestamps, and each date's calibration (the demo rig at the date's image size)."""
    frames = drive_frames()
    for date, hw in DATE_SIZES.items():
        for name, entries in demo_calibration(hw, 721.5377, 0.54).items():
            kc.write_calib_file(root / date / name, entries)
    for folder, last in frames.items():
        drive = root / folder
        for sub, ext in (("image_02", "png"), ("image_03", "png"), ("velodyne_points", "bin")):
            data = drive / sub / "data"
            data.mkdir(parents=True)
            for i in range(last + 2):
                open(data / f"{i:010d}.{ext}", "wb").close()
            (drive / sub / "timestamps.txt").write_text("2011-09-26 13:02:25.964389445\n" * (last + 2))
    return root


def job_counts(stdout: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    counts = {}
    for line in stdout[stdout.index("Job stats") :].splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def snakemake_in(workdir: Path, target: str, *configfiles: Path, dry: bool = True,
                 timeout: int = 300) -> subprocess.CompletedProcess:
    """``snakemake <target> [-n]`` of this workflow in ``workdir`` (nothing is written into the
    project); stdout and stderr captured (Snakemake 9 prints errors to stdout)."""
    cmd = [sys.executable, "-m", "snakemake", target, "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--cores", "2", "--resources", "gpu=1"]
    cmd += ["-n"] if dry else []
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def dry_run(target: str, workdir: Path, *configfiles: Path) -> dict[str, int]:
    """Job counts of ``snakemake <target> -n`` of this workflow in ``workdir``."""
    run = snakemake_in(workdir, target, *configfiles)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return job_counts(run.stdout)


