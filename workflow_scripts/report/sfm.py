"""SfM summary of an endoscopy sequence: trajectory and sparse points seen from two sides,
sparse supervision per view, and the counts of run_sfm / prepare_sfm_data as one table row.

Inputs: ``results/endo/<seq>/sfm_data.npz`` (keys in ``workflow_scripts.endo.sparse.SFM_DATA_KEYS``),
``sfm_data.json`` (its summary) and, when the model came from run_sfm, ``sfm/summary.json``
(registered frames, reprojection error, track length).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workflow_scripts.endo.trajectory import camera_centres
from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util import InputDataError

__all__ = ["principal_axes", "read_sfm_inputs", "sfm_figure", "summary_row"]

NEEDED_KEYS = ("cam_from_world", "points", "clean", "view_indexes", "sparse_view")


def principal_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and axes of a point set: mean (3,) and (3, 3) rows = unit axes sorted by falling
    spread (a right-handed frame), so that ``(p - mean) @ axes.T`` gives the coordinates."""
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    axes = vt.copy()
    if np.linalg.det(axes) < 0:
        axes[2] *= -1
    return mean, axes


def read_sfm_inputs(npz_path: str | Path, json_path: str | Path,
                    sfm_summary_path: str | Path | None = None) -> tuple[dict, dict, dict]:
    """The arrays of sfm_data.npz that the figure needs, its JSON summary and run_sfm's
    summary.json ({} when there is none, e.g. for the reference's data format)."""
    npz_path = Path(npz_path)
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            missing = [k for k in NEEDED_KEYS if k not in npz.files]
            if missing:
                raise InputDataError(npz_path, f"keys {missing} missing", "re-run prepare_sfm_data")
            arrays = {k: npz[k] for k in NEEDED_KEYS}
            if "frame_indexes" in npz.files:  # the sampled frames (registered or not)
                arrays["frame_indexes"] = npz["frame_indexes"]
    except (OSError, ValueError) as err:
        raise InputDataError(npz_path, f"cannot read ({err})", "re-run prepare_sfm_data") from err
    info = _read_json(json_path, "re-run prepare_sfm_data")
    sfm = _read_json(sfm_summary_path, "re-run run_sfm") if sfm_summary_path else {}
    return arrays, info, sfm


def _read_json(path: str | Path, fix: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputDataError(path, f"cannot read the JSON summary ({err})", fix) from err


def summary_row(seq: str, info: dict, sfm: dict) -> dict:
    """One row of the SfM summary table (NaN where the source has no such number)."""
    nan = float("nan")
    return {
        "sequence": seq,
        "frames": sfm.get("frames", info.get("frames", nan)),
        "registered": sfm.get("registered", info.get("views", nan)),
        "registered_fraction": sfm.get("registered_fraction", nan),
        "points3D": sfm.get("points3D", info.get("points", nan)),
        "clean_points": info.get("clean_points", nan),
        "mean_reprojection_error_px": sfm.get("mean_reprojection_error_px", nan),
        "mean_track_length": sfm.get("mean_track_length", nan),
        "sparse_points_per_view": info.get("sparse_points_per_view", nan),
        "global_scale": info.get("global_scale", nan),
    }


def sfm_figure(seq: str, arrays: dict, row: dict, max_points: int = 20000, seed: int = 0) -> plt.Figure:
    """Top and side view (principal axes of trajectory + points) and sparse samples per view.

    Frames are counted and placed by one convention throughout: the video frame index
    (``frames/<index:08d>.jpg``, as in the depth figures). The title gives registered / sampled
    frames and the sampled range; the bar chart marks sampled frames SfM did not register.

    Args:
        seq: sequence name (title).
        arrays: cam_from_world (V, 4, 4), points (P, 3), clean (P,) bool, view_indexes (V,)
            video frame index of each registered view, sparse_view (M,) view row of each sparse
            sample; optionally frame_indexes (F,) the sampled frames.
        row: ``summary_row`` of the sequence (numbers in the title).
        max_points: points drawn at most (a seeded random subset beyond).
        seed: seed of that subset.
    """
    centres = camera_centres(np.asarray(arrays["cam_from_world"], np.float64))
    points = np.asarray(arrays["points"], np.float64)
    clean = np.asarray(arrays["clean"], bool)
    finite = np.isfinite(points).all(axis=1)
    points, clean = points[finite], clean[finite]
    if len(points) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
        points, clean = points[keep], clean[keep]
    mean, axes3 = principal_axes(np.concatenate([centres, points]) if len(points) else centres)
    cam_uv, pts_uv = (centres - mean) @ axes3.T, (points - mean) @ axes3.T
    views = np.asarray(arrays["view_indexes"])
    fig, axes = new_figure(13.5, 4.0, ncols=3, gridspec_kw={"width_ratios": [1.3, 1.3, 1.0]})
    for ax, (i, j), name in zip(axes[0, :2], [(0, 1), (0, 2)], ["top", "side"], strict=True):
        ax.scatter(pts_uv[clean, i], pts_uv[clean, j], s=1, c="0.6", label=f"points ({clean.sum()} clean)")
        if (~clean).any():
            ax.scatter(pts_uv[~clean, i], pts_uv[~clean, j], s=3, c="tab:red",
                       label=f"outliers ({(~clean).sum()})")
        sc = ax.scatter(cam_uv[:, i], cam_uv[:, j], s=8, c=views, cmap="viridis", zorder=3)
        ax.plot(cam_uv[:, i], cam_uv[:, j], lw=0.8, c="k", alpha=0.5, zorder=2)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{name} view (principal axes {i + 1}-{j + 1}, SfM units)", fontsize=9)
        ax.legend(fontsize=8, loc="best", markerscale=4)
    fig.colorbar(sc, ax=axes[0, 1], fraction=0.04, label="video frame index")
    counts = np.bincount(np.asarray(arrays["sparse_view"], np.int64), minlength=len(views))
    spacing = float(np.median(np.diff(views))) if len(views) > 1 else 1.0
    axes[0, 2].bar(views, counts[: len(views)], width=max(1.0, spacing), color="tab:blue",
                   label=f"registered ({len(views)})")
    sampled = np.asarray(arrays.get("frame_indexes", views))
    missed = np.setdiff1d(sampled, views)
    if len(missed):
        axes[0, 2].plot(missed, np.zeros(len(missed)), "x", color="tab:red", ms=5, clip_on=False,
                        label=f"not registered ({len(missed)})")
    axes[0, 2].legend(fontsize=8, loc="upper right")
    axes[0, 2].set_xlabel("video frame index")
    axes[0, 2].set_ylabel("sparse depth samples")
    axes[0, 2].set_title("sparse supervision per registered frame", fontsize=9)
    step = np.unique(np.diff(np.sort(sampled))) if len(sampled) > 1 else np.array([])
    span = f"{sampled.min()}-{sampled.max()}" if len(sampled) else "none"
    span += f" in steps of {int(step[0])}" if len(step) == 1 and step[0] > 1 else ""

    def fmt(v: object, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) and np.isfinite(v) else "n/a"

    fig.suptitle(
        f"{seq}: {fmt(row['registered'], 'g')}/{fmt(row['frames'], 'g')} sampled frames registered "
        f"(video frames {span}), "
        f"{fmt(row['points3D'], 'g')} points ({fmt(row['clean_points'], 'g')} clean), "
        f"reprojection {fmt(row['mean_reprojection_error_px'], '.3f')} px, "
        f"track length {fmt(row['mean_track_length'], '.2f')}", fontsize=10)
    fig.tight_layout()
    return fig
