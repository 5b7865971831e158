"""Registration to the CT: the residuals (reader, statistics, histograms); the view of the
registered cloud on the CT is in ``registration_view`` (matplotlib only: open3d's offscreen
renderer needs a display).

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

from workflow_scripts.report.figure import new_figure, plt
from workflow_scripts.util import InputDataError

__all__ = ["read_residuals", "residual_figure", "residual_stats"]


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
                    clip_percentile: float = 99.0, flags: Mapping[str, str] | None = None) -> plt.Figure:
    """Histogram (left) and cumulative fraction (right) of residuals, one curve per label
    (e.g. training stage), on a shared range up to the ``clip_percentile`` of all residuals;
    the legend gives median and RMSE. Points beyond the range fall into the last bin.

    ``flags``: {label: warning} (e.g. "AMBIGUOUS", "171° from the true pose") for the labels whose
    residuals may belong to a wrong pose: added to the legend, and the title says so in red."""
    if not residuals:
        raise ValueError("residual_figure: no residuals")
    pooled = np.concatenate([np.asarray(r, np.float64) for r in residuals.values()])
    top = float(np.percentile(pooled, clip_percentile)) if pooled.size else 1.0
    top = top if top > 0 else 1.0
    edges = np.linspace(0.0, top, bins + 1)
    fig, axes = new_figure(13.0, 3.8, ncols=2)
    for k, (label, r) in enumerate(residuals.items()):
        r = np.asarray(r, np.float64)
        s = residual_stats(r)
        colour = plt.get_cmap("tab10").colors[k % 10]
        name = f"{label}: median {s['median']:.3g}, RMSE {s['rmse']:.3g} mm (n={int(s['n'])})"
        name += f"\n    {flags[label]}" if flags and flags.get(label) else ""
        axes[0, 0].hist(np.minimum(r, top), bins=edges, histtype="step", lw=1.5, color=colour,
                        weights=np.full(r.size, 1.0 / max(r.size, 1)))
        axes[0, 0].axvline(s["median"], color=colour, ls="--", lw=0.8)
        axes[0, 1].plot(np.sort(r), np.arange(1, r.size + 1) / max(r.size, 1), color=colour, label=name)
    axes[0, 0].set_xlabel("residual distance to the CT surface (mm)")
    axes[0, 0].set_ylabel("fraction of points")
    axes[0, 1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    axes[0, 1].set_xlim(0, top)
    axes[0, 1].set_xlabel("residual distance to the CT surface (mm)")
    axes[0, 1].set_ylabel("cumulative fraction")
    axes[0, 1].grid(alpha=0.3)
    flagged = [label for label in residuals if flags and flags.get(label)]
    if flagged:
        title += (f"\n{len(flagged)} of {len(residuals)} registrations flagged (legend): their residuals may "
                  "belong to a wrong pose")
    fig.suptitle(title, fontsize=11, color="tab:red" if flagged else "black")
    fig.tight_layout()
    return fig
