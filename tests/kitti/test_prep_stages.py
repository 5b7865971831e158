"""The preparation stages chained through their rule scripts' main() on the small demo, as the
DAG runs them: test split -> ground truth; frame filter -> train/val lists -> depth hints."""

from __future__ import annotations

import numpy as np

from workflow_scripts import (
    export_gt_depth,
    filter_frames,
    make_splits,
    make_test_split,
    precompute_depth_hints,
)
from workflow_scripts.kitti.depth_hints import HintOptions
from workflow_scripts.kitti.frame_filter import FilterMethod, FilterOptions
from workflow_scripts.kitti.gt_depth import GtOptions
from workflow_scripts.kitti.gt_export import load_gt
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.kitti.splits import SplitOptions, SplitSource

TRAIN, TEST = "2011_01_01/2011_01_01_drive_0001_sync", "2011_01_02/2011_01_02_drive_0003_sync"


def test_stages_chain_on_the_demo(kitti_demo_small, tmp_path):
    root, res = kitti_demo_small["root"], tmp_path / "results" / "kitti"
    test_file = res / "splits" / "eigen" / "test_files.txt"
    tests = make_test_split.main(test_file, "eigen", root, root, "png", [TEST], 1)
    assert [ln.frame for ln in tests] == list(range(5)) and {ln.folder for ln in tests} == {TEST}
    gt = export_gt_depth.main(test_file, res / "gt" / "eigen.npz", "eigen", root, GtOptions())
    size = list(kitti_demo_small["config"].dates["2011_01_02"])  # the test drive's date
    assert len(load_gt(res / "gt" / "eigen.npz")) == 5 and gt.shapes.tolist() == [size] * 5

    index = res / "frame_index" / f"{TRAIN}.txt"
    kept = filter_frames.main(root, TRAIN, "png", index, FilterOptions(method=FilterMethod.STRIDE, stride=1))
    assert kept == list(range(5)) and index.read_text() == "0\n1\n2\n3\n4\n"
    train_file, val_file = res / "splits" / "train_files.txt", res / "splits" / "val_files.txt"
    train, val = make_splits.main(train_file, val_file, SplitSource.FILTERED, [index], [test_file],
                                  root, root, "png", SplitOptions(val_fraction=0.34, seed=1))
    assert read_split(train_file) == train and read_split(val_file) == val
    assert sorted({ln.frame for ln in train + val}) == [1, 2, 3] and len(val) == 2  # one frame, l + r

    out = res / "depth_hints" / TRAIN
    n = precompute_depth_hints.main([train_file, val_file], TRAIN, root, root, "png", out,
                                    HintOptions(size=(48, 208)), threads=1)
    assert n == 3
    hints = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy"))
    assert hints == [f"image_0{c}/{f:010d}.npy" for c in (2, 3) for f in (1, 2, 3)]
    assert np.load(out / hints[0]).shape == (1, 48, 208)
