"""The driving branch's semantic evaluation: mIoU table, abs_rel on movable classes, test labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workflow_scripts.kitti import cityscapes as cs
from workflow_scripts.kitti.evaluate import EvalOptions, abs_rel_movable, evaluate_split
from workflow_scripts.kitti.semantic_eval import (
    confusion,
    export_test_labels,
    load_test_labels,
    seg_eval_table,
)
from workflow_scripts.util import InputDataError

ROAD, SKY, CAR = 0, 10, 13


def test_miou_pixel_accuracy_and_majority_baseline_on_hand_made_maps():
    label = np.full((4, 4), ROAD, np.uint8)
    label[0] = SKY
    label[2:, 2:] = CAR
    label[3, 0] = 255  # ignored: never counted
    pred = label.copy()
    pred[3, 0] = CAR  # on an ignored pixel: no effect
    pred[2, 2] = ROAD  # one car pixel called road
    conf = confusion([label], [pred])
    assert conf.sum() == 15 and conf[CAR, ROAD] == 1 and conf[CAR, CAR] == 3
    table = seg_eval_table([label], {"finetune": pred[None]}).set_index("stage")
    # road: TP 7, FP 1 -> 7/8; sky 4/4; car: TP 3, FN 1 -> 3/4
    assert table.loc["finetune", "iou_road"] == pytest.approx(7 / 8)
    assert table.loc["finetune", "iou_car"] == pytest.approx(3 / 4)
    assert table.loc["finetune", "miou"] == pytest.approx((7 / 8 + 1 + 3 / 4) / 3)
    assert table.loc["finetune", "pixel_accuracy"] == pytest.approx(14 / 15)
    assert table.loc["finetune", "n_classes"] == 3 and math.isnan(table.loc["finetune", "iou_person"])
    # the majority baseline calls everything road: IoU road 7/15, others 0
    assert table.loc["majority", "miou"] == pytest.approx((7 / 15) / 3)


def test_predictions_are_resized_to_the_labels_by_nearest_neighbour():
    label = np.zeros((4, 8), np.uint8)
    label[:, 4:] = CAR
    pred = np.array([[ROAD, CAR]], np.uint8)  # 1 x 2, upsampled x4
    assert np.trace(confusion([label], [pred])) == 32


def test_abs_rel_on_movable_pixels_uses_the_whole_image_scale():
    gt = np.full((20, 30), 10.0)
    labels = np.zeros((20, 30), np.uint8)
    labels[5:10, 5:10] = CAR
    disp = np.full((20, 30), 1.0, np.float32)
    disp[5:10, 5:10] = 1 / 1.2  # the car 20 % too far after the median scaling
    opts = EvalOptions(crop="none")
    _, ratios = evaluate_split([gt], [disp], opts)
    assert ratios[0] == pytest.approx(10.0)
    assert abs_rel_movable([gt], [disp], [labels], ratios, opts) == pytest.approx(0.2)
    assert math.isnan(abs_rel_movable([gt], [disp], [np.zeros_like(labels)], ratios, opts))


def _tiny_labels(root, drive, frames):
    for f in frames:
        ids = np.full((6, 10), cs.LABEL_IDS["road"], np.uint8)
        ids[0, :] = cs.LABEL_IDS["car"]
        cs.write_label_png(cs.cityscapes_paths(root, "train", drive, f"{drive}_{f:010d}")[1], ids)


def test_export_test_labels_reads_trainids_per_split_line(tmp_path):
    drive = "2011_01_02_drive_0003_sync"
    split = tmp_path / "test_files.txt"
    split.write_text(f"2011_01_02/{drive} 1 l\n2011_01_02/{drive} 2 l\n")
    _tiny_labels(tmp_path / "cs", drive, (1, 2))
    assert export_test_labels(split, tmp_path / "cs", tmp_path / "labels.npz") == 2
    labels = load_test_labels(tmp_path / "labels.npz")
    assert len(labels) == 2 and labels[0].dtype == np.uint8
    assert (labels[1][0] == CAR).all() and (labels[1][1:] == ROAD).all()
    split.write_text(f"2011_01_02/{drive} 3 l\n")
    with pytest.raises(InputDataError, match=f"{drive}_0000000003_gtFine_labelIds.png"):
        export_test_labels(split, tmp_path / "cs", tmp_path / "labels2.npz")
    assert not (tmp_path / "labels2.npz").exists()


def test_training_pairs_keep_the_test_drives_out(tmp_path):
    _tiny_labels(tmp_path, "2011_01_01_drive_0001_sync", (0,))
    _tiny_labels(tmp_path, "2011_01_02_drive_0003_sync", (0,))
    _tiny_labels(tmp_path, "aachen", (0,))
    for drive in ("2011_01_01_drive_0001_sync", "2011_01_02_drive_0003_sync", "aachen"):
        image = cs.cityscapes_paths(tmp_path, "train", drive, f"{drive}_{0:010d}")[0]
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"")
    cities = {i.parent.name for i, _ in cs.training_pairs(tmp_path, "train", {"2011_01_01_drive_0001_sync"})}
    assert cities == {"2011_01_01_drive_0001_sync", "aachen"}
    only_test = tmp_path / "only_test"
    _tiny_labels(only_test, "2011_01_02_drive_0003_sync", (0,))
    image = cs.cityscapes_paths(only_test, "train", "2011_01_02_drive_0003_sync",
                                "2011_01_02_drive_0003_sync_0000000000")[0]
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"")
    with pytest.raises(InputDataError, match="outside the test drives"):
        cs.training_pairs(only_test, "train", {"2011_01_01_drive_0001_sync"})
