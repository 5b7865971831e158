"""Endoscopy training stages on the demo: do the depths beat a constant depth on the SfM points?

Scores ``results/endo/pred/<stage>/<seq>/depth.npz`` (or depths trained here) against the SfM
sparse depths of sfm_data.npz: abs_rel and delta < 1.25 after per-frame median scaling, with the
constant-depth baseline (every frame at its median sparse depth) beside them.

usage: python -m bench.endo_train [STAGE ...]       (after the predict_endo_depth jobs ran)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from workflow_scripts.endo.sparse import load_sfm_data


def sparse_scores(depth: np.ndarray, data: dict) -> dict[str, float]:
    """abs_rel and delta < 1.25 of depth (V, H, W) at every sparse sample of sfm_data (SfM units),
    each frame median-scaled to its samples; also for the constant depth."""
    rel, rel_c, d1, d1_c = [], [], [], []
    for v in range(len(data["view_indexes"])):
        sel = data["sparse_view"] == v
        if not sel.any():
            continue
        xy, z = data["sparse_xy"][sel], data["sparse_z"][sel].astype(np.float64)
        pred = depth[v][xy[:, 1], xy[:, 0]].astype(np.float64)
        ok = pred > 0
        pred, z = pred[ok], z[ok]
        pred = pred * np.median(z) / np.median(pred)
        const = np.full_like(z, np.median(z))
        for p, r, d in ((pred, rel, d1), (const, rel_c, d1_c)):
            r.append(np.abs(p - z) / z)
            d.append(np.maximum(p / z, z / p) < 1.25)
    cat = np.concatenate
    return {"abs_rel": float(cat(rel).mean()), "a1": float(cat(d1).mean()),
            "const_abs_rel": float(cat(rel_c).mean()), "const_a1": float(cat(d1_c).mean())}


def main(stages: list[str]) -> None:
    for stage in stages:
        for npz in sorted(Path(f"results/endo/pred/{stage}").glob("*/depth.npz")):
            seq = npz.parent.name
            with np.load(npz) as f:
                depth = f["depth"]
            s = sparse_scores(depth, load_sfm_data(f"results/endo/{seq}/sfm_data.npz"))
            print(f"{stage:9s} {seq}: abs_rel {s['abs_rel']:.4f} a1 {s['a1']:.3f}   "
                  f"constant: abs_rel {s['const_abs_rel']:.4f} a1 {s['const_a1']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["teacher", "student", "finetune"])
