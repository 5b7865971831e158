"""Registration to the CT: residual histograms and an orthographic view of the registered
cloud on the CT surface (matplotlib only: open3d's offscreen renderer needs a display).

Inputs (endoscopy branch, per stage and sequence):
    results/endo/registration/<stage>/<seq>.ply            registered cloud, vertices x, y, z in mm
                                                           (CT frame)
    results/endo/registration/<stage>/<seq>_residuals.npy  (N,) float, distance in mm from each
                                                           vertex of that PLY (same order) to the
                                                           CT surface after registration
    the CT surface                                          triangle mesh PLY, mm
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection

from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util import InputDataError

__all__ = ["VIEWS", "cloud_on_ct_figure", "crop_mesh", "read_residuals", "residual_figure", "residual_stats"]

# Orthographic views: (name, horizontal axis, vertical axis, viewing axis) of the CT frame.
VIEWS = (("x-y", 0, 1, 2), ("x-z", 0, 2, 1), ("y-z", 1, 2, 0))


def read_residuals(path: str | Path, n_points: int | None = None) -> np.ndarray:
    """Per-point residuals (mm) as (N,) float64; checks 1-D, finite, >= 0 and, if given, N."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputDataError(path, f"cannot read the residuals ({err})", "re-run the registration") from err
    values = np.asarray(values, np.float64)
    if values.ndim != 1:
        raise InputDataError(path, f"residuals have shape {values.shape}, expected (N,)",
                             "save one distance (mm) per registered point")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InputDataError(path, "residuals must be finite distances >= 0 (mm)", "re-run the registration")
    if n_points is not None and len(values) != n_points:
        raise InputDataError(path, f"{len(values)} residuals for a cloud of {n_points} points",
                             "write the residuals in the order of the registered PLY's vertices")
    return values


def residual_stats(residuals: np.ndarray) -> dict[str, float]:
    """Count, mean, median, RMSE, 90th / 95th percentile and maximum of residuals (mm)."""
    r = np.asarray(residuals, np.float64)
    if r.size == 0:
        return {k: float("nan") for k in ("n", "mean", "median", "rmse", "p90", "p95", "max")} | {"n": 0.0}
    return {"n": float(r.size), "mean": float(r.mean()), "median": float(np.median(r)),
            "rmse": float(np.sqrt(np.mean(r**2))), "p90": float(np.percentile(r, 90)),
            "p95": float(np.percentile(r, 95)), "max": float(r.max())}


def residual_figure(residuals: Mapping[str, np.ndarray], title: str, bins: int = 50,
                    clip_percentile: float = 99.0) -> plt.Figure:
    """Histogram (left) and cumulative fraction (right) of residuals, one curve per label
    (e.g. training stage), on a shared range up to the ``clip_percentile`` of all residuals;
    the legend gives median and RMSE. Points beyond the range fall into the last bin."""
    if not residuals:
        raise ValueError("residual_figure: no residuals")
    pooled = np.concatenate([np.asarray(r, np.float64) for r in residuals.values()])
    top = float(np.percentile(pooled, clip_percentile)) if pooled.size else 1.0
    top = top if top > 0 else 1.0
    edges = np.linspace(0.0, top, bins + 1)
    fig, axes = new_figure(11.0, 3.8, ncols=2)
    for k, (label, r) in enumerate(residuals.items()):
        r = np.asarray(r, np.float64)
        s = residual_stats(r)
        colour = plt.get_cmap("tab10").colors[k % 10]
        name = f"{label}: median {s['median']:.3g}, RMSE {s['rmse']:.3g} mm (n={int(s['n'])})"
        axes[0, 0].hist(np.minimum(r, top), bins=edges, histtype="step", lw=1.5, color=colour, label=name,
                        weights=np.full(r.size, 1.0 / max(r.size, 1)))
        axes[0, 0].axvline(s["median"], color=colour, ls="--", lw=0.8)
        axes[0, 1].plot(np.sort(r), np.arange(1, r.size + 1) / max(r.size, 1), color=colour, label=label)
    axes[0, 0].set_xlabel("residual distance to the CT surface (mm)")
    axes[0, 0].set_ylabel("fraction of points")
    axes[0, 0].legend(fontsize=7)
    axes[0, 1].set_xlim(0, top)
    axes[0, 1].set_xlabel("residual distance to the CT surface (mm)")
    axes[0, 1].set_ylabel("cumulative fraction")
    axes[0, 1].grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def crop_mesh(verts: np.ndarray, tris: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Triangles with at least one vertex inside the box [lo, hi]: (M, 3) -> (M', 3)."""
    inside = np.all((verts >= lo) & (verts <= hi), axis=1)
    return tris[inside[tris].any(axis=1)]


def cloud_on_ct_figure(ct_verts: np.ndarray, ct_tris: np.ndarray, cloud: np.ndarray,
                       residuals: np.ndarray | None, title: str, margin_mm: float = 5.0,
                       max_triangles: int = 60000, max_points: int = 30000, seed: int = 0,
                       runner_up: np.ndarray | None = None, runner_up_label: str = "runner-up") -> plt.Figure:
    """The registered cloud on the CT surface in three orthographic views (x-y, x-z, y-z).

    The CT is cropped to the cloud's bounding box plus ``margin_mm`` and drawn as translucent
    grey triangles shaded by how squarely they face the viewer; points are coloured by their
    residual (mm, shared colour bar) or, without residuals, plain blue. An ambiguous
    registration's runner-up (the same cloud under the best distinct pose) is drawn beside it in
    green, and the CT is cropped around both.

    Args:
        ct_verts: (Nv, 3) CT surface vertices, mm. ct_tris: (Nt, 3) triangles (vertex indexes).
        cloud: (N, 3) registered points in the CT frame, mm.
        residuals: (N,) mm or None.
        runner_up: (M, 3) the cloud under the runner-up pose, mm, or None; runner_up_label: its legend.
        title: figure title.
        margin_mm: CT kept around the cloud's box.
        max_triangles, max_points: drawn at most (seeded random subsets beyond).
        seed: seed of the subsets.
    """
    cloud = np.asarray(cloud, np.float64)
    if cloud.ndim != 2 or cloud.shape[1] != 3 or len(cloud) == 0:
        raise ValueError(f"cloud_on_ct_figure: cloud must be (N>0, 3), got {cloud.shape}")
    rng = np.random.default_rng(seed)
    both = cloud if runner_up is None else np.concatenate([cloud, np.asarray(runner_up, np.float64)])
    lo, hi = both.min(axis=0) - margin_mm, both.max(axis=0) + margin_mm
    tris = crop_mesh(ct_verts, ct_tris, lo, hi)
    if len(tris) > max_triangles:
        tris = tris[np.sort(rng.choice(len(tris), max_triangles, replace=False))]
    if len(cloud) > max_points:
        keep = np.sort(rng.choice(len(cloud), max_points, replace=False))
        cloud, residuals = cloud[keep], (residuals[keep] if residuals is not None else None)
    if runner_up is not None and len(runner_up) > max_points:
        runner_up = np.asarray(runner_up)[np.sort(rng.choice(len(runner_up), max_points, replace=False))]
    corners = ct_verts[tris]  # (M, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    span = (hi - lo)
    widths = [span[h] / max(span[v], 1e-9) for _, h, v, _ in VIEWS]
    fig, axes = new_figure(min(18.0, 4.0 * sum(min(max(w, 0.5), 3.0) for w in widths)), 4.4, ncols=3,
                           gridspec_kw={"width_ratios": [min(max(w, 0.5), 3.0) for w in widths]})
    vmax = float(np.percentile(residuals, 95)) if residuals is not None and residuals.size else 1.0
    for ax, (name, h, v, depth_axis) in zip(axes[0], VIEWS, strict=True):
        facing = np.abs(normals[:, depth_axis])
        order = np.argsort(corners[:, :, depth_axis].mean(axis=1))  # far to near (painter's order)
        shade = np.repeat((0.45 + 0.4 * facing[order])[:, None], 3, axis=1)
        rgba = np.c_[shade, np.full(len(order), 0.35)]
        ax.add_collection(PolyCollection(corners[order][:, :, [h, v]], facecolors=rgba, edgecolors="none"))
        # the vertices too: surfaces seen edge-on (a tube along the viewing axis) stay visible
        ax.scatter(corners[:, :, h].ravel(), corners[:, :, v].ravel(), s=0.3, c="0.5", alpha=0.3, lw=0)
        if residuals is not None:
            sc = ax.scatter(cloud[:, h], cloud[:, v], s=2, c=residuals, cmap="plasma", vmin=0,
                            vmax=max(vmax, 1e-9), zorder=3)
        else:
            sc = ax.scatter(cloud[:, h], cloud[:, v], s=2, c="tab:blue", zorder=3)
        if runner_up is not None:
            ax.scatter(runner_up[:, h], runner_up[:, v], s=1, c="tab:green", alpha=0.5, zorder=2,
                       label=runner_up_label)
            ax.legend(loc="upper right", fontsize=6, markerscale=4)
        ax.set_xlim(lo[h], hi[h])
        ax.set_ylim(lo[v], hi[v])
        ax.set_aspect("equal")
        ax.set_xlabel(f"{'xyz'[h]} (mm)")
        ax.set_ylabel(f"{'xyz'[v]} (mm)")
        ax.set_title(f"{name} ({len(tris)} CT triangles, {len(cloud)} points)", fontsize=8)
    if residuals is not None:
        fig.colorbar(sc, ax=axes[0].tolist(), fraction=0.02, pad=0.01, label="residual (mm)")
    fig.suptitle(title, fontsize=11)
    return fig
