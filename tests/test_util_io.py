"""Atomic outputs: nothing half-written is left behind, finished outputs are replaced whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.util import InputDataError, atomic_dir, atomic_file, write_text_atomic


def test_atomic_file_keeps_suffix_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "out.npy"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            assert tmp.suffix == ".npy" and tmp.parent == target.parent
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and len(list(target.parent.iterdir())) == 1


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "tree"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_write_text_atomic_and_error_message(tmp_path):
    write_text_atomic(tmp_path / "x.txt", "hello")
    assert (tmp_path / "x.txt").read_text() == "hello"
    err = InputDataError(tmp_path / "x.txt", "is empty", "regenerate it")
    assert str(err) == f"{tmp_path / 'x.txt'}: is empty. regenerate it"


def test_atomic_outputs_get_umask_modes(tmp_path):
    """mkstemp/mkdtemp make 0600/0700 entries; finished outputs get the umask's usual modes."""
    import os

    from workflow_scripts.util.io import DIR_MODE, FILE_MODE, atomic_dir, save_npy_atomic

    save_npy_atomic(tmp_path / "a.npy", np.arange(3))
    with atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("x")
    assert os.stat(tmp_path / "a.npy").st_mode & 0o777 == FILE_MODE
    assert os.stat(tmp_path / "d").st_mode & 0o777 == DIR_MODE
    mask = os.umask(0o022)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask and np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]


def test_truncated_png_and_jpeg_are_errors_naming_the_file(tmp_path):
    import cv2

    from workflow_scripts.util.images import read_image

    img = (np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    for ext in ("png", "jpg"):
        path = tmp_path / f"frame.{ext}"
        cv2.imwrite(str(path), img)
        assert read_image(path).shape == (48, 64, 3)
        data = path.read_bytes()
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(data[: len(data) * 2 // 3])
        # OpenCV alone decodes the cut JPEG (grey rows): read_image must not
        with pytest.raises(InputDataError, match=rf"cut.{ext}: {'PNG' if ext == 'png' else 'JPEG'} file is "
                                                 r"truncated .* replace the file"):
            read_image(cut)
        (tmp_path / "padded.jpg").write_bytes(data + b"\0" * 7)  # zero padding after EOI is fine
    assert read_image(tmp_path / "padded.jpg").shape == (48, 64, 3)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputDataError, match="empty.png: image file is empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputDataError, match="text.png: cannot be decoded as an image"):
        read_image(tmp_path / "text.png")


def test_input_data_error_survives_pickling_and_process_pools():
    import pickle

    from tests.pool_tasks import failing_task, sleeping_task
    from workflow_scripts.util.pool import WorkerDied, map_in_processes

    err = pickle.loads(pickle.dumps(InputDataError("a/b.png", "is truncated", "re-extract it")))
    assert isinstance(err, InputDataError) and str(err) == "a/b.png: is truncated. re-extract it"
    assert (err.path, err.problem, err.fix) == (Path("a/b.png"), "is truncated", "re-extract it")
    assert list(map_in_processes(sleeping_task, range(6), 2)) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(InputDataError, match="frame3.png: is truncated"):
        list(map_in_processes(failing_task, range(30), 2))
    with pytest.raises(WorkerDied, match="a worker process died"):
        list(map_in_processes(failing_task, [-1, *range(30)], 2, ordered=False))
