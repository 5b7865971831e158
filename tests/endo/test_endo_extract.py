"""extract_frames: frame selection, naming, manifest, undistortion, folder input, bad input."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from workflow_scripts.endo.camera import load_camera
from workflow_scripts.endo.extract import ExtractOptions, extract_frames, read_frames_camera
from workflow_scripts.endo.undistort import make_undistorter
from workflow_scripts.endo.video import FrameSelection, iter_video_frames
from workflow_scripts.util import InputDataError


def options(**selection) -> ExtractOptions:
    return ExtractOptions(**selection)


def manifest(folder) -> list[dict]:
    with open(folder / "frames.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def demo(endo_demo_small):
    root = endo_demo_small["root"]
    return {"video": root / "p1" / "seq01.mp4", "camera": load_camera(root / "camera.yaml"), "root": root}


def test_video_frames_are_undistorted_and_named_by_index(demo, tmp_path):
    out = tmp_path / "frames"
    summary = extract_frames(demo["video"], demo["camera"], out, options(stride=2))
    assert sorted(p.name for p in out.glob("*.jpg")) == [f"{i:08d}.jpg" for i in range(0, 12, 2)]
    rows = manifest(out)
    assert [int(r["index"]) for r in rows] == [0, 2, 4, 6, 8, 10]
    assert float(rows[2]["time_s"]) == pytest.approx(4 / 30.0, abs=1e-6)
    K, size = read_frames_camera(out)
    assert size == (480, 640) and np.allclose(K, demo["camera"].K)
    assert summary["frames"] == 6 and summary["step"] == 2
    # frame 4 equals the decoded frame 4, undistorted (up to JPEG loss)
    frame4 = dict(iter_video_frames(demo["video"], FrameSelection(start=4, end=5)))[4]
    und = make_undistorter(demo["camera"], erode_px=3)
    written = cv2.imread(str(out / "00000004.jpg")).astype(float)
    inside = und.mask == 255
    assert np.abs(written - und.undistort(frame4))[inside].mean() < 2.0
    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(mask, und.mask)
    assert written[mask == 0].mean() < written[inside].mean() / 3  # the black border is outside


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"start": 3, "end": 9, "stride": 2}, [3, 5, 7]),
        ({"fps": 10.0}, [0, 3, 6, 9]),  # 30 fps video -> every 3rd frame
        ({"start": 10}, [10, 11]),
        ({"end": 12, "stride": 5}, [0, 5, 10]),
    ],
)
def test_frame_selection(demo, tmp_path, selection, expected):
    out = tmp_path / "frames"
    extract_frames(demo["video"], demo["camera"], out, options(**selection))
    assert [int(r["index"]) for r in manifest(out)] == expected


@pytest.mark.parametrize("selection", [{"start": 12}, {"start": 5, "end": 13}, {"start": 40, "end": 50}])
def test_frame_range_past_the_end_fails_and_writes_nothing(demo, tmp_path, selection):
    out = tmp_path / "frames"
    with pytest.raises(InputDataError, match="past the source's frames 0..11") as err:
        extract_frames(demo["video"], demo["camera"], out, options(**selection))
    assert err.value.path == demo["video"]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"this is not a video at all" * 100])
def test_undecodable_or_empty_video_fails_naming_the_file(demo, tmp_path, content):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(content)
    out = tmp_path / "frames"
    with pytest.raises(InputDataError) as err:
        extract_frames(bad, demo["camera"], out, options())
    assert err.value.path == bad and "broken.mp4" in str(err.value)
    assert not out.exists()


def test_too_few_selected_frames_fail(demo, tmp_path):
    with pytest.raises(InputDataError, match="keeps 1 frame"):
        extract_frames(demo["video"], demo["camera"], tmp_path / "f", options(start=11))
    assert not (tmp_path / "f").exists()


def test_frame_size_must_match_camera_yaml(demo, tmp_path):
    cam = load_camera(demo["root"] / "camera.yaml")
    wrong = type(cam)(K=cam.K, dist=cam.dist, size=(240, 320), fps=cam.fps, aperture=None)
    with pytest.raises(InputDataError, match="camera.yaml"):
        extract_frames(demo["video"], wrong, tmp_path / "f", options())
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("key", ["camera_matrix", "dist_coeffs", "image_width", "fps"])
def test_camera_yaml_missing_key_names_file_and_key(demo, tmp_path, key):
    import yaml

    doc = yaml.safe_load((demo["root"] / "camera.yaml").read_text())
    del doc[key]
    path = tmp_path / "camera.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputDataError, match=f"missing key '{key}'") as err:
        load_camera(path)
    assert err.value.path == path


def test_frame_folder_input_keeps_file_numbers_and_uses_its_mask(demo, tmp_path):
    """A folder of already undistorted frames 00004584.png... with a mask beside them."""
    src = tmp_path / "seqA"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4584, 4590):
        cv2.imwrite(
            str(src / f"{i:08d}.png"),
            cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (0, 0), 2),
        )
    mask = np.zeros((48, 64), np.uint8)
    mask[8:40, 10:50] = 255
    cv2.imwrite(str(src / "mask.png"), mask)
    cv2.imwrite(str(src / "undistorted_mask.jpg"), mask)  # a preview beside numbered frames: not a frame
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    cam = type(demo["camera"])(K=K, dist=np.zeros(5), size=(48, 64), fps=25.0, aperture=None)
    out = tmp_path / "frames"
    summary = extract_frames(
        src,
        cam,
        out,
        ExtractOptions(start=4585, stride=2, mask_erode_px=2, jpeg_quality=100),
    )
    assert [int(r["index"]) for r in manifest(out)] == [4585, 4587, 4589]
    assert json.loads((out / "camera.json").read_text())["frames"] == summary["frames"] == 3
    written = cv2.imread(str(out / "mask.png"), cv2.IMREAD_GRAYSCALE)
    expected = np.zeros_like(mask)
    expected[10:38, 12:48] = 255  # the folder's mask, eroded by 2 px (no distortion)
    assert np.array_equal(written, expected)
    original = cv2.imread(str(src / "00004587.png")).astype(float)
    assert np.abs(cv2.imread(str(out / "00004587.jpg")).astype(float) - original)[2:-2, 2:-2].mean() < 6
    with pytest.raises(InputDataError, match="past the source's frames 4584..4589"):
        extract_frames(src, cam, tmp_path / "g", ExtractOptions(start=4590))
