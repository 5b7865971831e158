"""Rules predict_endo_depth and predict_endo_constant: a sequence's depth in SfM world units.

Output ``results/endo/pred/<stage>/<seq>/depth.npz`` (format in rule predict_endo_depth's
docstring, rules/endo_eval.smk): the input of the point clouds, the CT registration and
results/endo_eval.csv. The constant baseline writes the same keys (depth, frame_indexes, K, mask).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.inference import endo_depth_in_sfm_units, predict_endo_raw
from models.model_file import load_model
from models.training.engine import pick_device
from workflow_scripts.endo.dataset import EndoSequence
from workflow_scripts.endo.evaluate import constant_prediction
from workflow_scripts.endo.pointcloud import save_predicted_depth
from workflow_scripts.endo.sparse import load_sfm_data, sparse_depth
from workflow_scripts.util import atomic_file

__all__ = ["predict_sequence", "predict_endo_depth", "predict_endo_constant"]
log = logging.getLogger(__name__)


def predict_sequence(model_path: Path, sfm_data: Path, frames: Path, *, threads: int = 1,
                     batch_size: int = 8) -> dict:
    """Depth of every registered view of a sequence, in the sequence's SfM world units.

    The network runs at its training size; its raw depth is resized (bilinear) to the network
    size of sfm_data, rescaled per frame to the frame's SfM sparse depths (the reference's
    depth-scaling layer) and multiplied by global_scale, so that with ``cam_from_world`` the
    per-frame clouds fuse. Returns the arrays of ``depth.npz``.
    """
    torch.set_num_threads(max(1, threads))
    net, meta = load_model(model_path)
    seq = EndoSequence(Path(sfm_data).parent.name, sfm_data, frames, (meta["height"], meta["width"]))
    d = seq.data
    colors = torch.stack([seq.color(v) for v in range(seq.n_views)])
    raw = predict_endo_raw(net, colors, torch.from_numpy(seq.mask[None] / 255.0).float(), pick_device(),
                           batch_size)
    hw = tuple(int(s) for s in d["input_size"])
    raw = F.interpolate(raw[:, None], size=hw, mode="bilinear", align_corners=False)[:, 0].clamp(min=1e-6)
    sparse = [sparse_depth(d, v) for v in range(seq.n_views)]
    valid = (d["mask"] > 0.9 * 255).astype(np.uint8)
    depth, scales = endo_depth_in_sfm_units(raw, torch.from_numpy(np.stack([s[0] for s in sparse])),
                                            torch.from_numpy(np.stack([s[1] for s in sparse])),
                                            torch.from_numpy(valid), seq.global_scale)
    return {"depth": depth.numpy().astype(np.float32),
            "frame_indexes": d["view_indexes"].astype(np.int64), "K": d["K"].astype(np.float64),
            "mask": valid, "cam_from_world": d["cam_from_world"],
            "frame_scales": scales.numpy(), "global_scale": d["global_scale"],
            "units": "sfm", "stage": str(meta["stage"]), "sequence": seq.name}


def predict_endo_depth(model: Path, sfm_data: Path, frames: Path, out: Path, threads: int = 1) -> dict:
    """:func:`predict_sequence` on a GPU of its own when there is one; writes ``out`` atomically."""
    from workflow_scripts.util.gpu import assign_gpu

    with assign_gpu(1):
        arrays = predict_sequence(model, sfm_data, frames, threads=threads)
    with atomic_file(out) as tmp:
        np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in arrays.items()})
    d = arrays["depth"][:, arrays["mask"] > 0]
    log.info("%s: %d frames %s, depth %.4g .. %.4g (median %.4g) SfM units", out, len(arrays["depth"]),
             arrays["depth"].shape[1:], d.min(), d.max(), np.median(d))
    return arrays


def predict_endo_constant(sfm_data: Path, out: Path) -> None:
    """The constant-depth baseline (each frame's median SfM sparse depth everywhere)."""
    pred = constant_prediction(load_sfm_data(sfm_data))
    save_predicted_depth(out, pred)
    log.info("%s: %d frames %s, depth %.4g..%.4g SfM units", out, *pred.depth.shape[:1],
             list(pred.depth.shape[1:]), float(pred.depth.min()), float(pred.depth.max()))
