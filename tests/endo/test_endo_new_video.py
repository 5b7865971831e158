"""Depth of a new endoscopy video without retraining (workflow_scripts/endo/new_video.py): the network
input equals the one training builds (extract_frames -> prepare_sfm_data -> EndoSequence), the
outputs' formats, the depth units, bad inputs, and the command line."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from endo_synthetic import synthetic_scene
from torch import nn

import workflow_scripts.endo.new_video as nv
from models.model_file import read_model_meta, save_model
from models.networks.spec import NetworkSpec
from models.training.endo_objectives import network_input
from workflow_scripts import predict_endo_video
from workflow_scripts.endo.camera import EndoCamera
from workflow_scripts.endo.dataset import EndoSequence
from workflow_scripts.endo.extract import ExtractOptions, extract_frames, read_frames_camera
from workflow_scripts.endo.predict import predict_sequence
from workflow_scripts.endo.sfm_data import SfMDataOptions
from workflow_scripts.endo.sparse import load_sfm_data, write_sfm_data
from workflow_scripts.util import InputDataError
from workflow_scripts.util.images import read_image
from workflow_scripts.util.ply import read_ply

N_FRAMES, HW = 8, (128, 160)
EXTRACT = ExtractOptions(stride=1)
SFM_OPTS = SfMDataOptions(downsampling=2.0, network_downsampling=32, inlier_percentage=0.0,
                          visibility_overlap=4)
TRAINED_ON = ["seqA", "seqB"]


def _model(path, size, branch="endo"):
    torch.manual_seed(0)
    spec = NetworkSpec(kind="unet", width=0.125)
    net = spec.build()
    with torch.no_grad():  # an untrained UNet's depth is nearly its bias: let the image show through
        net.last.bias.fill_(-0.2)
    save_model(nn.ModuleDict({"depth": net}), path, branch=branch, stage="teacher", network=spec,
               size=size, steps=0, depth_kind="depth", sequences=TRAINED_ON)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A distorted 8-frame mp4 with its camera.yaml, two tiny models (64x128: resized from the 64x64
    crop; 64x64: the crop size) and the normal path's extract_frames folder and sfm_data.npz."""
    tmp = tmp_path_factory.mktemp("new_video")
    h, w = HW
    camera = EndoCamera(K=np.array([[120.0, 0, 79.5], [0, 120.0, 63.5], [0, 0, 1]]),
                        dist=np.array([-0.15, 0.02, 0, 0, 0]), size=HW, fps=10.0, aperture=(79.5, 63.5, 78.0))
    camera.save(tmp / "camera.yaml")
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w + 4 * N_FRAMES, 3)), (0, 0), 2.5)
    base = np.clip(128 + 60 * noise / noise.std(), 0, 255).astype(np.uint8)  # smooth, high contrast
    video = tmp / "newseq.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), camera.fps, (w, h))
    for i in range(N_FRAMES):
        writer.write(np.ascontiguousarray(base[:, 4 * i:4 * i + w]))
    writer.release()
    frames = tmp / "results" / "frames"
    extract_frames(video, camera, frames, EXTRACT)
    K, _ = read_frames_camera(frames)
    scene = synthetic_scene(tmp / "geometry", n_views=N_FRAMES, n_points=300, seed=1, size=HW)
    scene = dataclasses.replace(scene, K=K, frame_indexes=np.arange(N_FRAMES),
                                view_indexes=np.arange(N_FRAMES), frames_dir=frames,
                                mask=read_image(frames / "mask.png", cv2.IMREAD_GRAYSCALE))
    npz = tmp / "results" / "sfm_data.npz"
    write_sfm_data(scene, SFM_OPTS, npz, tmp / "results" / "sfm_data.json")
    return {"tmp": tmp, "camera": tmp / "camera.yaml", "video": video, "frames": frames, "sfm_data": npz,
            "model": _model(tmp / "model.pt", (64, 128)),
            "model_crop": _model(tmp / "model_crop.pt", (64, 64))}


def _predict(data, out, source=None, model=None, **kwargs):
    return nv.predict_new_video(model or data["model"], source or data["video"], data["camera"], out,
                                extract=EXTRACT, sfm_options=kwargs.pop("sfm_options", SFM_OPTS), **kwargs)


def _depths(out, indexes):
    return np.stack([np.load(out / "depth" / f"{i:08d}.npz")["depth"] for i in indexes])


@pytest.fixture(scope="module")
def relative(data):
    out = data["tmp"] / "out_relative"
    return out, _predict(data, out)


@pytest.mark.parametrize("model", ["model", "model_crop"])
def test_network_input_is_the_training_input(data, tmp_path, monkeypatch, model):
    """The key property: what the network gets for a frame of the new video is exactly what training
    feeds it for that frame (extract_frames -> prepare_sfm_data's crop -> EndoSequence)."""
    fed = []

    def spy(net, colors, mask, device, batch_size=8):
        fed.append((colors.clone(), mask.clone()))
        return real(net, colors, mask, device, batch_size)

    real = nv.predict_endo_raw
    monkeypatch.setattr(nv, "predict_endo_raw", spy)
    summary = _predict(data, tmp_path / "out", model=data[model], batch_size=3)
    meta = read_model_meta(data[model])
    seq = EndoSequence("newseq", data["sfm_data"], data["frames"], (meta["height"], meta["width"]))
    colors, mask = torch.cat([c for c, _ in fed]), fed[0][1]
    assert summary["indexes"] == list(range(N_FRAMES)) and len(colors) == N_FRAMES
    assert colors.shape[-2:] == (meta["height"], meta["width"])
    ref_mask = torch.from_numpy(seq.mask[None] / 255.0).float()
    assert torch.equal(mask, ref_mask) and 0 < mask.mean() < 1
    for v in range(N_FRAMES):
        ours = network_input(colors[v:v + 1], mask[None])
        theirs = network_input(seq.color(v)[None], ref_mask[None])
        assert torch.allclose(ours, theirs, atol=1e-7), v
    sfm = load_sfm_data(data["sfm_data"])
    assert summary["crop"] == sfm["crop"].tolist() and summary["depth_size_hw"] == sfm["input_size"].tolist()
    assert np.allclose(summary["K"], sfm["K"])


def test_outputs_have_the_documented_formats(relative):
    out, summary = relative
    n, (h, w) = summary["frames"], summary["depth_size_hw"]
    assert n == N_FRAMES and summary["units"] == "relative" and summary["model_stage"] == "teacher"
    assert summary["training_size_hw"] == [64, 128] and not list(out.glob(".*"))
    for i in summary["indexes"]:
        with np.load(out / "depth" / f"{i:08d}.npz", allow_pickle=False) as f:
            depth, mask, K = f["depth"], f["mask"], f["K"]
            assert str(f["units"]) == "relative"
        assert depth.shape == mask.shape == (h, w) and depth.dtype == np.float32 and mask.dtype == np.uint8
        assert K.shape == (3, 3) and K.dtype == np.float64 and set(np.unique(mask)) == {0, 1}
        assert np.all(depth[mask == 0] == 0) and np.all(depth[mask == 1] > 0)
        png = cv2.imread(str(out / "depth" / f"{i:08d}.png"), cv2.IMREAD_UNCHANGED)
        factor = summary["png"]["png_factor"][f"{i:08d}"]
        assert png.dtype == np.uint16 and png.shape == (h, w)
        assert np.array_equal(png, np.clip(np.round(depth.astype(np.float64) * factor), 0, 65535))
        assert abs(np.percentile(png[mask == 1], 99) - nv.PNG_P99) <= 1
        ply = read_ply(out / "clouds" / f"{i:08d}.ply")
        v, u = np.nonzero((mask == 1) & (depth > 0))
        assert len(ply.vertices) == len(v) and ply.colors is not None
        assert np.allclose(ply.vertices[:, 2], depth[v, u], rtol=1e-6)
        assert np.allclose(ply.vertices[:, 0], (u - K[0, 2]) / K[0, 0] * depth[v, u], rtol=1e-5, atol=1e-6)
    cap = cv2.VideoCapture(str(out / "depth.mp4"))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert len(frames) == n and frames[0].shape == (h, w, 3)
    assert summary["video"]["fps"] == 10.0 and summary["video"]["depth_range"][0] < 1.0


def test_scale_multiplies_depth_exactly_and_relative_has_median_one(data, relative, tmp_path):
    out, summary = relative
    indexes = summary["indexes"]
    rel = _depths(out, indexes)
    one = _predict(data, tmp_path / "one", scale=1.0)
    two = _predict(data, tmp_path / "two", scale=2.5)
    d1, d25 = _depths(tmp_path / "one", indexes), _depths(tmp_path / "two", indexes)
    assert one["units"] == two["units"] == "scaled" and two["scale_source"] == "given"
    assert np.array_equal(d25, (d1.astype(np.float64) * 2.5).astype(np.float32))
    mask = np.load(out / "depth" / f"{indexes[0]:08d}.npz")["mask"] == 1
    for r, d in zip(rel, d1, strict=True):
        assert np.median(r[mask]) == pytest.approx(1.0, abs=1e-6)
        assert np.allclose(r, d / np.median(d[mask]), rtol=1e-6)
    assert np.allclose(summary["frame_factors"][f"{indexes[0]:08d}"] * d1[0], rel[0], rtol=1e-6)


def test_sfm_units_match_predict_endo_depth(data, tmp_path):
    """With the video's sfm_data, the depth is the workflow's predict_endo_depth output."""
    summary = _predict(data, tmp_path / "sfm", sfm_data=data["sfm_data"], sfm_options=None)
    ref = predict_sequence(data["model"], data["sfm_data"], data["frames"])
    assert summary["units"] == "sfm" and summary["scale_source"] == "sfm_data"
    depth = _depths(tmp_path / "sfm", ref["frame_indexes"])
    assert np.allclose(depth, ref["depth"], rtol=1e-5, atol=1e-7)
    assert np.allclose(list(summary["frame_factors"].values()), ref["frame_scales"], rtol=1e-5)


def test_sfm_data_of_another_crop_is_refused(data, tmp_path):
    with pytest.raises(InputDataError) as err:
        _predict(data, tmp_path / "out", sfm_data=data["sfm_data"],
                 sfm_options=dataclasses.replace(SFM_OPTS, downsampling=1.0))
    assert err.value.path == data["sfm_data"] and "crop" in err.value.problem
    assert not list(tmp_path.iterdir())


def test_summary_records_what_the_model_trained_on(relative):
    assert relative[1]["trained_on"] == TRAINED_ON == read_model_meta(relative[1]["model"])["sequences"]
    assert relative[1]["source_name_in_training"] is False
    assert json.loads((relative[0] / "summary.json").read_text()) == relative[1]


def test_frame_folder_with_stride_and_max_frames(data, relative, tmp_path):
    """A folder of the video's frames gives the video's depth for the selected frames."""
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(data["video"]))
    for i in range(N_FRAMES):
        cv2.imwrite(str(folder / f"{i:08d}.png"), cap.read()[1])
    cap.release()
    summary = _predict(data, tmp_path / "out", source=folder, stride=2, max_frames=3)
    assert summary["indexes"] == [0, 2, 4] and summary["video"]["fps"] == 5.0
    assert np.allclose(_depths(tmp_path / "out", [0, 2, 4]), _depths(relative[0], [0, 2, 4]), rtol=1e-5)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "depth.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    cap.release()


@pytest.mark.parametrize("case", ["missing video", "corrupt video", "empty folder", "missing camera",
                                  "kitti model", "missing model"])
def test_bad_inputs_name_the_file_and_leave_nothing(data, tmp_path, case):
    bad = tmp_path / "bad"
    bad.mkdir()
    kwargs, path = {}, None
    if case == "missing video":
        kwargs["source"] = path = bad / "nothere.mp4"
    elif case == "corrupt video":
        kwargs["source"] = path = bad / "broken.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    elif case == "empty folder":
        kwargs["source"] = path = bad / "frames"
        path.mkdir()
    elif case == "kitti model":
        kwargs["model"] = path = _model(bad / "kitti.pt", (64, 128), branch="kitti")
    elif case == "missing model":
        kwargs["model"] = path = bad / "model.pt"
    out = tmp_path / "results" / "out"
    with pytest.raises(InputDataError) as err:
        if case == "missing camera":
            path = bad / "camera.yaml"
            nv.predict_new_video(data["model"], data["video"], path, out)
        else:
            _predict(data, out, **kwargs)
    assert err.value.path == path and str(path) in str(err.value)
    assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


def test_command_line(data, relative, tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("endoscopy:\n"
                      "  frames: {stride: 1, focal_scale: 1.0, mask_erode_px: 3, jpeg_quality: 95}\n"
                      "  sfm_data: {downsampling: 2.0, network_downsampling: 32, crop_size: []}\n")
    out = tmp_path / "cli"
    summary = predict_endo_video.main([
        "--model", str(data["model"]), "--source", str(data["video"]), "--camera", str(data["camera"]),
        "--out", str(out), "--max-frames", "2", "--configfile", str(config)])
    assert summary["indexes"] == [0, 1] and (out / "summary.json").is_file()
    assert np.allclose(_depths(out, [0, 1]), _depths(relative[0], [0, 1]), rtol=1e-5)
