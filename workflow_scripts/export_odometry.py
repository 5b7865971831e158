"""Rule export_odometry: the demo's held-out test drives as KITTI odometry sequences, the input of
the pose evaluation (workflow_scripts/kitti/pose_eval.py describes the layout).

Sorted test drives become sequences 00, 01, ... under ``results/kitti/odometry/``:
``sequences/<nn>/image_2/<frame:06d>.png`` (hard links, else copies, of ``image_02/data``),
``sequences/<nn>/times.txt`` (s since the first frame), ``poses/<nn>.txt`` (camera 2 in the first
frame's camera 2: ``cam2_from_world[0] @ inv(cam2_from_world[i])`` from ``demo_gt/poses.npz``), and
``drives.txt`` (``<nn> <date>/<drive>`` per line).
"""

import logging
import os
import shutil
from pathlib import Path

import numpy as np

from workflow_scripts.kitti.pose_eval import (
    check_pose_count,
    demo_sequence_names,
    first_from_cams,
    write_poses,
)
from workflow_scripts.util import InputDataError, atomic_dir, write_text_atomic

log = logging.getLogger("export_odometry")


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export_drive(drive_dir: Path, out_root: Path, sequence: str, image_ext: str = "png") -> int:
    """Write one demo drive as odometry sequence ``sequence`` under ``out_root``; returns its frames."""
    gt_path = drive_dir / "demo_gt" / "poses.npz"
    if not gt_path.is_file():
        raise InputDataError(gt_path, "demo ground-truth poses not found", "re-run make_demo_kitti")
    with np.load(gt_path, allow_pickle=False) as gt:
        cam2_from_world, times = gt["cam2_from_world"], gt["times"]
    folder = drive_dir / "image_02" / "data"
    images = sorted(folder.glob(f"*.{image_ext}"))
    if not images:
        raise InputDataError(folder, f"holds no .{image_ext} frame", "re-run make_demo_kitti")
    check_pose_count(gt_path, len(cam2_from_world), len(images), folder)
    seq_dir = out_root / "sequences" / sequence
    (seq_dir / "image_2").mkdir(parents=True)
    for i, src in enumerate(images):
        link_or_copy(src, seq_dir / "image_2" / f"{i:06d}.{image_ext}")
    write_text_atomic(seq_dir / "times.txt", "".join(f"{t:.6e}\n" for t in times - times[0]))
    write_poses(out_root / "poses" / f"{sequence}.txt", first_from_cams(cam2_from_world))
    return len(images)


def main(raw_root: Path, drives: list[str], out: Path, image_ext: str = "png") -> dict[str, str]:
    """Export ``drives`` (``<date>/<drive>`` under ``raw_root``) to the folder ``out`` atomically;
    returns drive -> sequence name."""
    names = demo_sequence_names(drives)
    with atomic_dir(out) as tmp:
        for drive, seq in names.items():
            n = export_drive(raw_root / drive, tmp, seq, image_ext)
            log.info("%s -> sequence %s (%d frames)", drive, seq, n)
        write_text_atomic(tmp / "drives.txt", "".join(f"{s} {d}\n" for d, s in names.items()))
    return names


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.params.raw_root), list(smk.params.drives), Path(smk.output[0]))
