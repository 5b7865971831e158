"""Frame-index selection: golden sequences for both arithmetic variants, SC-Depth's own output
(tests/fixtures/reference), a demo drive that stops, the stride alternative and the file format."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.kitti import reference_fixtures as ref
from workflow_scripts.demo import kitti_demo
from workflow_scripts.kitti import raw
from workflow_scripts.kitti.frame_filter import (
    Arithmetic,
    FilterMethod,
    FilterOptions,
    changed_fraction,
    filter_images,
    read_frame_index,
    read_gray,
    select_frames,
    write_frame_index,
)

SIGNED, UINT8 = FilterOptions(), FilterOptions(arithmetic=Arithmetic.UINT8)


def _frame(base: int, changes: dict[int, int] | None = None, h: int = 4, w: int = 10) -> np.ndarray:
    """(h, w) uint8 frame of value ``base`` whose first ``n`` pixels are ``base + delta``
    for each item ``n: delta`` (applied in order)."""
    f = np.full(h * w, base, np.int16)
    for n, delta in (changes or {}).items():
        f[:n] = base + delta
    return f.reshape(h, w).astype(np.uint8)


def test_changed_fraction_both_arithmetics():
    a, b = _frame(100), _frame(100, {20: +5})  # half the pixels brighter by 5
    assert changed_fraction(a, b, 10, Arithmetic.SIGNED) == 0.0
    assert changed_fraction(a, b, 10, Arithmetic.UINT8) == 0.5  # 100 - 105 wraps to 251 > 10
    c = _frame(100, {30: -5})  # darker by 5: no wrap, not counted by either
    assert (
        changed_fraction(a, c, 10, Arithmetic.UINT8) == changed_fraction(a, c, 10, Arithmetic.SIGNED) == 0.0
    )
    d = _frame(100, {25: -40})
    assert (
        changed_fraction(a, d, 10, Arithmetic.SIGNED) == changed_fraction(a, d, 10, Arithmetic.UINT8) == 0.625
    )


# Golden sequence (hand-computed, 40 pixels): 0 is kept; each frame compares with the last kept.
GOLDEN = [
    _frame(100),  # 0: kept
    _frame(100, {40: +3}),  # 1: all pixels 103
    _frame(100, {16: +20}),  # 2: 16 px 120, 24 px 100
    _frame(100, {24: +20}),  # 3: 24 px 120, 16 px 100
    _frame(100, {24: +20, 16: +40}),  # 4: 16 px 140, 8 px 120, 16 px 100
    _frame(60),  # 5
    _frame(61),  # 6: brighter by 1
]


def test_golden_sequence_signed():
    # 1 vs 0: 3 <= 10 -> drop. 2 vs 0: 16/40 -> drop. 3 vs 0: 24/40 = 60 % -> keep.
    # 4 vs 3: 16 px differ by 20 -> 40 % -> drop. 5 vs 3: all -> keep. 6 vs 5: 1 -> drop.
    assert select_frames(GOLDEN, SIGNED) == [0, 3, 5]


def test_golden_sequence_uint8_wraparound():
    # 1 vs 0: 100 - 103 wraps to 253 on all 40 px -> keep. 2 vs 1: 103 - 120 wraps (16 px),
    # 103 - 100 = 3 (24 px) -> 40 % -> drop. 3 vs 1: wraps on 24 px -> 60 % -> keep. 4 vs 3:
    # 120 - 140 wraps (16 px), the rest equal -> 40 % -> drop. 5 vs 3: 60 and 40 -> keep.
    # 6 vs 5: 60 - 61 wraps to 255 -> keep.
    assert select_frames(GOLDEN, UINT8) == [0, 1, 3, 5, 6]


def _signed_by_definition(paths: list) -> list[int]:
    """SIGNED by its definition: keep a frame when >= 50 % of its grey pixels differ by more than
    10 (true absolute difference) from the last kept frame."""
    grays = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2GRAY).astype(np.int16) for p in paths]
    kept = [0]
    for i in range(1, len(grays)):
        if np.mean(np.abs(grays[kept[-1]] - grays[i]) > 10) >= 0.5:
            kept.append(i)
    return kept


@pytest.mark.parametrize("scene", ref.frame_scenes(), ids=lambda p: p.name)
def test_uint8_arithmetic_gives_sc_depths_own_frame_index(scene, tmp_path):
    """UINT8 reproduces the frame_index.txt that SC-Depth's generate_valid_frame_index.py wrote
    for these JPEG sequences (PROVENANCE.md), list and file alike; SIGNED follows its definition."""
    paths = sorted(scene.glob("*.jpg"))
    expected = [int(t) for t in (scene / "frame_index.txt").read_text().split()]
    ours = filter_images(paths, UINT8)
    assert ours == expected
    write_frame_index(tmp_path / "frame_index.txt", ours)
    assert (tmp_path / "frame_index.txt").read_bytes() == (scene / "frame_index.txt").read_bytes()
    assert filter_images(paths, SIGNED) == _signed_by_definition(paths)


def test_the_reference_sequences_tell_the_variants_apart():
    """No sequence is matched by keeping every frame; all but pan_and_stop need the uint8 wrap
    (the signed difference fails them); pan_stop_exposure also needs the comparison with the last
    KEPT frame (comparing with the previous frame gives 0-4, 10-13 there)."""
    for scene in ref.frame_scenes():
        paths = sorted(scene.glob("*.jpg"))
        expected = [int(t) for t in (scene / "frame_index.txt").read_text().split()]
        assert expected != list(range(len(paths))), scene.name
        if scene.name != "pan_and_stop":  # there the two arithmetics agree (noise < 50 % wrapped)
            assert filter_images(paths, SIGNED) != expected, scene.name
    steps = ref.FRAMES_DIR / "training" / "pan_stop_exposure"
    grays = [read_gray(p) for p in sorted(steps.glob("*.jpg"))]
    kept = [int(t) for t in (steps / "frame_index.txt").read_text().split()]
    # standing frames 4..9 with creeping exposure: frame 6 is kept against frame 4 although it
    # differs from frame 5 by less than the ratio (comparing with the previous frame drops it)
    assert 6 in kept and 5 not in kept
    assert (
        changed_fraction(grays[5], grays[6], 10, Arithmetic.UINT8)
        < 0.5
        <= changed_fraction(grays[4], grays[6], 10, Arithmetic.UINT8)
    )


@pytest.fixture(scope="module")
def stopping_drive(tmp_path_factory, default_config):
    """A small demo drive (94x310, 16 frames) that brakes to a standstill for frames 3..12."""
    cfg = kitti_demo.KittiDemoConfig(
        dates={"2011_01_01": (94, 310)},
        drives=(kitti_demo.DemoDrive(date="2011_01_01", drive="0002", frames=16, speed=7.0, stop=True),),
        traffic=False,  # the filter sees image change: oncoming cars passing a standing camera change frames
        lidar_beams=4,
        lidar_azimuth_steps=64,
    )
    root = tmp_path_factory.mktemp("stop") / "kitti_raw"
    kitti_demo.generate(root, cfg, seed=default_config["seed"], workers=2)
    return sorted((raw.drive_dir(root, "2011_01_01", "0002") / "image_02" / "data").glob("*.png"))


def test_standing_frames_are_dropped(stopping_drive):
    from workflow_scripts.demo.kitti_scene import trajectory

    poses, _ = trajectory(np.random.default_rng([2026, 0]), 16, 7.0, True)  # the drive's rng
    standing = np.flatnonzero(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1) < 1e-9) + 1
    assert list(standing) == list(range(4, 13))
    # at 310 px the moving frames change 11-19 % of their pixels, so the ratio is lowered;
    # standing, the camera still yaws slowly (0.4 deg wobble), which one frame may pick up
    kept = filter_images(stopping_drive, FilterOptions(min_changed=0.15))
    assert {0, 1, 13, 14, 15} <= set(kept) and len(set(kept) & set(standing)) <= 1
    # the reference's uint8 arithmetic counts sensor noise as change: every standing frame survives
    kept_uint8 = filter_images(stopping_drive, FilterOptions(min_changed=0.15, arithmetic=Arithmetic.UINT8))
    assert set(standing) <= set(kept_uint8)


def test_stride_and_file_format(tmp_path):
    opts = FilterOptions(method=FilterMethod.STRIDE, stride=3)
    assert select_frames([_frame(0)] * 8, opts) == [0, 3, 6]
    assert filter_images([tmp_path / "never_read.png"] * 7, opts) == [0, 3, 6]
    write_frame_index(tmp_path / "d.txt", [0, 3, 6])
    assert (tmp_path / "d.txt").read_text() == "0\n3\n6\n"  # as np.savetxt(fmt='%d', delimiter='\n')
    assert read_frame_index(tmp_path / "d.txt") == [0, 3, 6]
