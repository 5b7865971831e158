"""Cityscapes labels: the official labelId -> trainId table, finding (image, label) pairs, clear
errors, exact nearest resizing of ids, aligned and step-deterministic augmentation, atomic PNGs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from workflow_scripts.kitti.cityscapes import (
    IGNORE,
    LABEL_IDS,
    MOVABLE_TRAIN_IDS,
    TRAIN_CLASSES,
    CityscapesDataset,
    cityscapes_paths,
    class_frequencies,
    find_pairs,
    label_ids_to_train_ids,
    write_label_png,
)
from workflow_scripts.util import InputDataError

H, W = 16, 32
ROAD, SKY, CAR, BUILDING = 7, 23, 26, 11
# RGB colour of each labelId in the synthetic images: only the car has red, so red <=> car
COLOURS = {ROAD: (0, 0, 255), SKY: (0, 255, 0), CAR: (255, 0, 0), BUILDING: (0, 255, 255)}
CAR_ROWS, CAR_COLS = slice(8, 12), slice(4, 12)  # even bounds: halving keeps rows 4..5, cols 2..5


def make_label() -> np.ndarray:
    """(16, 32) labelIds: sky top rows, building, road bottom half, a car on the left of the road."""
    label = np.full((H, W), BUILDING, np.uint8)
    label[:4] = SKY
    label[8:] = ROAD
    label[CAR_ROWS, CAR_COLS] = CAR
    return label


def colour_of(label: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB image whose colour encodes the labelId."""
    rgb = np.zeros((*label.shape, 3), np.uint8)
    for label_id, colour in COLOURS.items():
        rgb[label == label_id] = colour
    return rgb


def write_pair(root: Path, split: str, city: str, stem: str, label: np.ndarray) -> tuple[Path, Path]:
    image_path, label_path = cityscapes_paths(root, split, city, stem)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(image_path), colour_of(label)[..., ::-1])
    write_label_png(label_path, label)
    return image_path, label_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "cityscapes"
    for city, stems in {"zurich": ["zurich_000001_000019", "zurich_000000_000019"],
                        "aachen": ["aachen_000003_000019"]}.items():
        for stem in stems:
            write_pair(root, "train", city, stem, make_label())
    write_pair(root, "val", "bonn", "bonn_000000_000019", make_label())
    return root


def test_label_table_matches_cityscapes_scripts():
    expected = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    ignored = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30]
    ids = np.array(list(expected) + ignored + [34, 100, 254, 255], np.uint8).reshape(2, -1)
    train = label_ids_to_train_ids(ids)
    assert train.dtype == np.uint8 and train.shape == ids.shape
    assert train.ravel().tolist() == list(expected.values()) + [255] * (len(ignored) + 4)
    assert IGNORE == 255
    assert TRAIN_CLASSES == ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
                             "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
                             "truck", "bus", "train", "motorcycle", "bicycle")
    for name, train_id in zip(TRAIN_CLASSES, range(19), strict=True):
        assert label_ids_to_train_ids(np.array([LABEL_IDS[name]], np.uint8))[0] == train_id
    assert len(LABEL_IDS) == 34 and sorted(LABEL_IDS.values()) == list(range(34))
    assert LABEL_IDS["car"] == 26 and LABEL_IDS["road"] == 7 and LABEL_IDS["sky"] == 23
    assert MOVABLE_TRAIN_IDS == tuple(range(11, 19))
    movable = [TRAIN_CLASSES[t] for t in MOVABLE_TRAIN_IDS]
    assert movable == ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]


def test_find_pairs_sorted(root: Path):
    pairs = find_pairs(root, "train")
    stems = [image.name for image, _ in pairs]
    assert stems == ["aachen_000003_000019_leftImg8bit.png", "zurich_000000_000019_leftImg8bit.png",
                     "zurich_000001_000019_leftImg8bit.png"]
    for image, label in pairs:
        assert label == root / "gtFine" / "train" / image.parent.name / image.name.replace(
            "_leftImg8bit.png", "_gtFine_labelIds.png")
        assert label.is_file()
    assert [p[0].name for p in find_pairs(root, "val")] == ["bonn_000000_000019_leftImg8bit.png"]


def test_find_pairs_errors(root: Path, tmp_path: Path):
    with pytest.raises(InputDataError, match="not a Cityscapes-format folder") as err:
        find_pairs(tmp_path / "nowhere", "train")
    assert str(tmp_path / "nowhere") in str(err.value) and "gtFine/<split>/<city>" in str(err.value)
    with pytest.raises(InputDataError, match="not a Cityscapes-format folder") as err:
        find_pairs(root, "test")
    assert str(root / "leftImg8bit" / "test") in str(err.value)
    (root / "leftImg8bit" / "empty" / "bonn").mkdir(parents=True)
    with pytest.raises(InputDataError, match="no <city>/\\*_leftImg8bit.png images"):
        find_pairs(root, "empty")
    _, missing = cityscapes_paths(root, "train", "zurich", "zurich_000000_000019")
    missing.unlink()
    with pytest.raises(InputDataError, match="has no label file") as err:
        find_pairs(root, "train")
    assert str(missing) in str(err.value)


def test_colour_label_rejected(root: Path):
    image, label = find_pairs(root, "val")[0]
    cv2.imwrite(str(label), colour_of(make_label()))
    with pytest.raises(InputDataError, match="colour images are not labelIds") as err:
        CityscapesDataset([(image, label)], (H, W), augment=False, seed=0)[0]
    assert str(label) in str(err.value) and "_gtFine_labelIds.png" in str(err.value)


def test_unreadable_image_named(root: Path):
    image, label = find_pairs(root, "val")[0]
    image.write_bytes(b"not an image")
    with pytest.raises(InputDataError) as err:
        CityscapesDataset([(image, label)], (H, W), augment=False, seed=0)[0]
    assert str(image) in str(err.value)


def test_no_augment_exact_nearest_resize(root: Path):
    pairs = find_pairs(root, "val")
    item = CityscapesDataset(pairs, (8, 16), augment=False, seed=0)[0]
    image, label = item["image"], item["label"]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 16)
    assert label.dtype == torch.int64 and label.shape == (8, 16)
    expected = np.full((8, 16), 2)
    expected[:2], expected[4:] = 10, 0
    expected[4:6, 2:6] = 13
    assert np.array_equal(label.numpy(), expected)
    # the image halves by area averaging: uniform blocks keep their exact colour
    assert torch.equal(image[:, 4:6, 2:6], torch.tensor([1.0, 0.0, 0.0])[:, None, None].expand(3, 2, 4))
    # same size: no resize at all; the RGB order is kept (red car, blue road)
    item = CityscapesDataset(pairs, (H, W), augment=False, seed=0)[0]
    assert np.array_equal(item["label"].numpy(), label_ids_to_train_ids(make_label()))
    rgb = (item["image"] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(rgb, colour_of(make_label()))
    # a non-integer scale never invents ids
    item = CityscapesDataset(pairs, (11, 23), augment=False, seed=0)[0]
    assert set(np.unique(item["label"].numpy())) == {0, 2, 10, 13}


@pytest.mark.parametrize("size", [(5, 10), (11, 23), (24, 48), (20, 37)])
def test_label_resize_samples_the_pixel_under_each_centre(tmp_path: Path, size: tuple[int, int]):
    """Output pixel (y, x) takes the id of source pixel floor((y + 0.5) * 16 / h), floor((x + 0.5) * 32 / w),
    as the area/bilinear image resize is centre-aligned (cv2.INTER_NEAREST is shifted)."""
    valid = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    label = np.array([[valid[(c + 5 * r) % 19] for c in range(W)] for r in range(H)], np.uint8)
    pair = write_pair(tmp_path, "train", "bonn", "bonn_000000_000019", label)
    item = CityscapesDataset([pair], size, augment=False, seed=0)[0]
    rows = [int(Fraction(2 * y + 1, 2) * H / size[0]) for y in range(size[0])]
    cols = [int(Fraction(2 * x + 1, 2) * W / size[1]) for x in range(size[1])]
    assert np.array_equal(item["label"].numpy(), label_ids_to_train_ids(label)[np.ix_(rows, cols)])


def check_aligned(image: torch.Tensor, label: torch.Tensor) -> None:
    """Every pixel of a pure label colour carries that label's trainId."""
    rgb = (image * 255).round().byte().permute(1, 2, 0).numpy()
    label = label.numpy()
    assert set(np.unique(label)) <= {0, 2, 10, 13}
    for label_id, colour in COLOURS.items():
        pure = np.all(rgb == colour, axis=-1)
        assert np.all(label[pure] == label_ids_to_train_ids(np.array([label_id], np.uint8))[0])
    assert np.all(np.isin(label[rgb[..., 0] == 0], [0, 2, 10]))  # no red at all: never the car


@pytest.mark.parametrize("size", [(H, W), (8, 16), (12, 20)])
def test_augment_keeps_image_and_label_aligned(root: Path, size: tuple[int, int]):
    dataset = CityscapesDataset(find_pairs(root, "val"), size, augment=True, seed=3)
    car_left, car_right = 0, 0
    for draw in range(24):
        item = dataset[(draw, 0)]
        assert item["image"].shape == (3, *size) and item["label"].shape == size
        check_aligned(item["image"], item["label"])
        car_cols = np.nonzero((item["label"] == 13).any(0).numpy())[0]
        assert len(car_cols)  # the crop never loses the whole car here
        car_left += car_cols.mean() < size[1] / 2
        car_right += car_cols.mean() > size[1] / 2
    assert car_left and car_right  # some draws flip, some do not


def test_augment_is_step_deterministic(root: Path):
    pairs = find_pairs(root, "train")
    dataset = CityscapesDataset(pairs, (H, W), augment=True, seed=0)
    again = CityscapesDataset(pairs, (H, W), augment=True, seed=0)
    for key in [(5, 1), (6, 1), (5, 2)]:
        a, b = dataset[key], again[key]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    labels = {dataset[(draw, 1)]["label"].numpy().tobytes() for draw in range(10)}
    assert len(labels) > 3  # different draws: different flips, scales and crops
    other_seed = CityscapesDataset(pairs, (H, W), augment=True, seed=1)
    assert any(not torch.equal(dataset[(d, 1)]["label"], other_seed[(d, 1)]["label"]) for d in range(5))
    plain = CityscapesDataset(pairs, (H, W), augment=False, seed=0)
    assert torch.equal(plain[1]["label"], plain[(7, 1)]["label"])  # no augment: the draw is irrelevant


def test_write_label_png_round_trip(tmp_path: Path):
    label = np.arange(H * W, dtype=np.uint8).reshape(H, W) % 34
    path = tmp_path / "new" / "city" / "x_gtFine_labelIds.png"
    write_label_png(path, label)
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint8 and np.array_equal(back, label)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    write_label_png(path, label[::-1].copy())  # overwrite in place
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), label[::-1])
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    with pytest.raises(ValueError):
        write_label_png(path, label.astype(np.int32))


def test_class_frequencies_count_train_ids(root: Path, tmp_path: Path):
    """Exact pixel fractions over the labels (ignored pixels not counted), and ENet's weights of
    them, the formula behind SGDepth's Cityscapes weights."""
    from models.losses.semantic import SEG_CLASS_WEIGHTS, class_weights_from_frequencies

    pairs = find_pairs(root, "train")
    label = make_label()
    label[0, :8] = 0  # "unlabeled": ignored, not counted
    pairs.append(write_pair(tmp_path / "more", "train", "x", "x_000000_000019", label))
    freq = class_frequencies(pairs)
    n = 4 * H * W - 8  # 4 labels, 8 pixels ignored
    car, sky = 4 * (4 * 8), 4 * (4 * W) - 8  # per label: a 4x8 car, 4 rows of sky
    road = 4 * (8 * W) - car  # the bottom half less the car
    expected = {"car": car / n, "sky": sky / n, "road": road / n, "building": 1 - (car + sky + road) / n}
    assert freq.shape == (19,) and freq.sum() == pytest.approx(1.0)
    for name, value in expected.items():
        assert freq[TRAIN_CLASSES.index(name)] == pytest.approx(value, abs=1e-12)
    weights = class_weights_from_frequencies(freq)
    assert weights[TRAIN_CLASSES.index("car")] == pytest.approx(1 / np.log(1.10 + car / n))
    assert weights[TRAIN_CLASSES.index("person")] == pytest.approx(1 / np.log(1.10))  # absent
    # SGDepth's weights back to Cityscapes' frequencies (void included, so < 1) and forth
    cityscapes = np.exp(1 / np.array(SEG_CLASS_WEIGHTS)) - 1.10
    assert cityscapes.sum() < 1 and cityscapes[0] == pytest.approx(0.3265, abs=1e-4)  # road
    assert np.allclose(class_weights_from_frequencies(cityscapes), SEG_CLASS_WEIGHTS)
    with pytest.raises(ValueError):
        class_weights_from_frequencies(np.array([0.7, 0.7]))
    with pytest.raises(ValueError):
        class_frequencies([])
