"""Split lists: the shipped standard lists, the line format, filtered train/val lists, the demo
test split, and errors naming the list, the line and the missing frame."""

from __future__ import annotations

import hashlib

import pytest

from workflow_scripts.kitti.split_files import (
    STANDARD_DIR,
    SplitLine,
    check_frames_exist,
    read_split,
    standard_split,
    write_split,
)
from workflow_scripts.kitti.splits import (
    SplitOptions,
    check_test_split,
    complete_frames,
    demo_test_lines,
    filtered_train_val,
    standard_train_val,
    training_frames,
)
from workflow_scripts.util import InputDataError

D1, D2, D3 = (
    "2011_01_01/2011_01_01_drive_0001_sync",
    "2011_01_01/2011_01_01_drive_0002_sync",
    "2011_01_02/2011_01_02_drive_0003_sync",
)


def test_shipped_standard_lists():
    sizes = {
        ("eigen", "test"): 697,
        ("eigen_benchmark", "test"): 652,
        ("eigen_zhou", "train"): 39810,
        ("eigen_zhou", "val"): 4424,
        ("eigen_full", "train"): 45200,
        ("eigen_full", "val"): 1776,
    }
    lists = {key: standard_split(*key) for key in sizes}
    assert {key: len(v) for key, v in lists.items()} == sizes
    assert lists["eigen", "test"][0] == SplitLine("2011_09_26/2011_09_26_drive_0002_sync", 69, "l")
    assert lists["eigen_benchmark", "test"][0].frame == 69  # unpadded in the shipped file
    # Depth Hints' all_files.txt (46,976 lines) = train + val, byte for byte
    text = "".join((STANDARD_DIR / "eigen_full" / f"{p}_files.txt").read_text() for p in ("train", "val"))
    assert (
        hashlib.sha256(text.encode()).hexdigest()
        == "a840b8c1da2949fa280026f412735c04da98393d21b5a73c8dd305009e087522"
    )
    assert len(standard_split("eigen_full", "all")) == 46976
    test_drives = {ln.folder for ln in lists["eigen", "test"]}
    assert len(test_drives) == 28
    for name in ("eigen_zhou", "eigen_full"):
        assert not test_drives & {ln.folder for p in ("train", "val") for ln in lists[name, p]}
    assert (STANDARD_DIR / "LICENSE.monodepth2").is_file()


def test_line_format_round_trip_and_malformed_lines(tmp_path):
    lines = [SplitLine(D1, 5, "l"), SplitLine(D2, 1234, "r")]
    write_split(tmp_path / "s.txt", lines)
    assert (tmp_path / "s.txt").read_text().splitlines()[1] == f"{D2} 0000001234 r"
    assert read_split(tmp_path / "s.txt") == lines
    (tmp_path / "bad.txt").write_text(f"{D1} 5 l\n{D1} 6 left\n")
    with pytest.raises(InputDataError, match=r"bad.txt: line 2 is not"):
        read_split(tmp_path / "bad.txt")
    (tmp_path / "bad.txt").write_text("2011_01_01/2011_01_02_drive_0001_sync 5 l\n")  # date mismatch
    with pytest.raises(InputDataError, match="line 1"):
        read_split(tmp_path / "bad.txt")


def test_training_frames_need_both_neighbour_conventions():
    frames = list(range(0, 20))
    assert training_frames([0, 3, 6, 9, 19], frames) == [3, 6, 9]  # not first/last kept
    assert training_frames([0, 3, 6, 9, 12], [f for f in frames if f != 7]) == [3, 9]  # 6 lacks frame 7
    assert training_frames([0, 3, 6, 9, 12], [f for f in frames if f != 6]) == [3, 9]  # 6 itself incomplete


def test_frames_without_partner_or_scan_are_dropped_or_stop(kitti_demo_small, tmp_path, caplog):
    import shutil

    root = tmp_path / "kitti_raw"
    shutil.copytree(kitti_demo_small["root"], root)
    drive = root / D1
    (drive / "image_03" / "data" / "0000000002.png").unlink()  # frame 2 lost its stereo partner
    (drive / "velodyne_points" / "data" / "0000000003.bin").unlink()  # frame 3 lost its scan
    have = complete_frames(drive, drive, "png")
    assert have == {0, 1, 4}
    kept = {D1: [0, 1, 2, 3, 4]}
    with caplog.at_level("WARNING"), pytest.raises(InputDataError, match="no training frames"):
        filtered_train_val(kept, {D1: have}, [], SplitOptions(), tmp_path)
    assert "left out 3 training frame(s)" in caplog.text and f"{D1} 1, {D1} 2, {D1} 3" in caplog.text
    with pytest.raises(InputDataError, match=r"3 training frame\(s\) lack .* set kitti.splits.missing: drop"):
        filtered_train_val(kept, {D1: have}, [], SplitOptions(missing="error"), tmp_path)
    full = {D1: set(range(5))}
    train, val = filtered_train_val(kept, full, [], SplitOptions(val_fraction=0.0))
    assert [ln.frame for ln in train] == [1, 1, 2, 2, 3, 3] and val == []
    with pytest.raises(InputDataError, match=r"validation list would be empty .*splits.val_fraction: 0"):
        filtered_train_val(kept, full, [], SplitOptions(val_fraction=0.1))


def test_filtered_train_val_is_disjoint_from_test_drives_and_seeded():
    kept = {D1: list(range(0, 40, 3)), D2: list(range(0, 40, 2)), D3: list(range(0, 40, 4))}
    frames = {d: list(range(40)) for d in kept}
    test = [SplitLine(D3, 8, "l")]
    options = SplitOptions(sides=("l", "r"), val_fraction=0.25, seed=3)
    train, val = filtered_train_val(kept, frames, test, options)
    assert {ln.folder for ln in train + val} == {D1, D2}
    n_frames = len(training_frames(kept[D1], frames[D1])) + len(training_frames(kept[D2], frames[D2]))
    assert len(train) + len(val) == 2 * n_frames
    assert len({(ln.folder, ln.frame) for ln in val}) == round(0.25 * n_frames)
    assert not {(ln.folder, ln.frame) for ln in train} & {(ln.folder, ln.frame) for ln in val}
    assert {ln.side for ln in val} == {"l", "r"}
    again = filtered_train_val(kept, frames, test, options)
    assert again == (train, val)
    assert filtered_train_val(kept, frames, test, SplitOptions(val_fraction=0.25, seed=4))[1] != val


def test_demo_test_split_and_missing_frames(kitti_demo_small, tmp_path):
    root = kitti_demo_small["root"]
    lines = demo_test_lines(root, [D3], 2, "png")
    assert lines == [SplitLine(D3, f, "l") for f in (0, 2, 4)]
    for split in ("eigen", "eigen_benchmark"):
        check_test_split(lines, split, root, root, "png", tmp_path / "test_files.txt")
    missing = SplitLine(D3, 7, "l")
    with pytest.raises(InputDataError) as err:
        check_test_split(lines + [missing], "eigen", root, root, "png", tmp_path / "test_files.txt")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'test_files.txt'}: line 4 ({missing.text()}) needs ")
    assert "image_02/data/0000000007.png, which does not exist" in message


def test_split_line_naming_a_missing_frame_is_an_error(kitti_demo_small, tmp_path):
    root = kitti_demo_small["root"]
    lines = [SplitLine(D1, 2, "r"), SplitLine(D1, 4, "l")]
    check_frames_exist(lines, root, "png", tmp_path / "train_files.txt")
    with pytest.raises(InputDataError, match=r"line 2 .* needs .*image_02/data/0000000005.png"):
        check_frames_exist(lines, root, "png", tmp_path / "train_files.txt", offsets=(-1, 0, 1))
    # the shipped lists are checked against the tree: a demo tree has none of KITTI's frames
    with pytest.raises(
        InputDataError, match=r"eigen_zhou: 4\d{4} training frame\(s\) lack .* \(first: 2011_09_26"
    ):
        standard_train_val("eigen_zhou", root, root, "png", [], missing="error")
    with pytest.raises(
        InputDataError, match=r"eigen_zhou/train_files.txt: no line names a frame that kitti.root"
    ):
        standard_train_val("eigen_zhou", root, root, "png", [])
