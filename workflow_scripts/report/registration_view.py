"""The registered cloud on the whole CT surface, beside the same cloud under the other poses
that matter: on the demo the true pose, and an ambiguous registration's runner-up.

The CT is not cropped to the cloud: a cloud registered to the wrong part of the anatomy, or
turned over, shows as such. It is drawn as an X-ray-like projection (surface area per pixel, grey;
walls seen edge-on are dark), so that the whole surface costs one image per view. The views are
orthographic along the CT's axes, the longest extent horizontal.

Inputs (per stage and sequence, from register_ct):
    results/endo/registration/<stage>/<seq>.ply            registered cloud (N, 3), CT frame, mm
    results/endo/registration/<stage>/<seq>_residuals.npy  (N,) mm, distance of each point to the CT
    results/endo/registration/<stage>/<seq>.json           ct_from_sfm (4 x 4, SfM units -> mm),
        ambiguous, runner_up_ratio, runner_up.ct_from_sfm; on the demo truth.ct_from_sfm (the
        similarity the true camera poses give), truth.rotation_deg, scale_ratio, camera_rms_mm
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workflow_scripts.report.figure import DPI, plt
from workflow_scripts.util import InputDataError

__all__ = [
    "OFF_DEG",
    "PoseCloud",
    "cloud_on_ct_figure",
    "cloud_under",
    "other_poses",
    "projection_image",
    "read_registration",
    "registration_verdict",
    "runner_up_cloud",
    "sample_surface",
    "short_flag",
    "view_axes",
]

OFF_DEG = 10.0  # a pose this far (degrees) from the true one is called wrong (as distinct_deg)
FONT = 9  # points; the report shows these figures about 1300 px wide, at 100 dpi


@dataclass(frozen=True)
class PoseCloud:
    """The registered cloud under another pose: (N, 3) mm in the CT frame, a colour, and the
    row's title (what the pose is, how it compares)."""

    points: np.ndarray
    colour: str
    title: str


def read_registration(path: str | Path | None) -> dict:
    """register_ct's JSON ({} without one); names the file when it cannot be read."""
    if path is None:
        return {}
    try:
        registration = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputDataError(path, f"cannot read the registration ({err})", "re-run register_ct") from err
    if "ct_from_sfm" not in registration:
        raise InputDataError(path, "has no ct_from_sfm", "re-run register_ct")
    return registration


def view_axes(extent: np.ndarray) -> list[tuple[int, int, int]]:
    """Three orthographic views of a box with side lengths ``extent`` (3,) as (horizontal,
    vertical, viewing) CT axes: longest x second, longest x shortest, second x shortest."""
    a0, a1, a2 = (int(a) for a in np.argsort(-np.asarray(extent, np.float64), kind="stable"))
    return [(a0, a1, a2), (a0, a2, a1), (a1, a2, a0)]


def sample_surface(verts: np.ndarray, tris: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniformly on a triangle mesh (area-weighted triangles, uniform barycentric
    coordinates): verts (Nv, 3), tris (Nt, 3) int -> (n, 3), seeded."""
    corners = np.asarray(verts, np.float64)[np.asarray(tris)]
    edges = corners[:, 1:] - corners[:, :1]  # (Nt, 2, 3)
    area = 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)
    if len(corners) == 0 or not area.sum() > 0:
        raise ValueError("sample_surface: the mesh has no triangle of positive area")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(corners), n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    c = corners[pick]
    return c[:, 0] + u[:, None] * (c[:, 1] - c[:, 0]) + v[:, None] * (c[:, 2] - c[:, 0])


def projection_image(points: np.ndarray, h: int, v: int, lo: np.ndarray, hi: np.ndarray,
                     pixel_mm: float) -> np.ndarray:
    """Points per pixel of the orthographic view (horizontal axis ``h``, vertical ``v``) of the
    box [lo, hi] (mm): (rows, cols) float, row 0 at ``lo[v]`` (draw with origin="lower")."""
    cols = max(1, int(np.ceil((hi[h] - lo[h]) / pixel_mm)))
    rows = max(1, int(np.ceil((hi[v] - lo[v]) / pixel_mm)))
    image, _, _ = np.histogram2d(points[:, v], points[:, h], bins=(rows, cols),
                                 range=((lo[v], lo[v] + rows * pixel_mm), (lo[h], lo[h] + cols * pixel_mm)))
    return image


def cloud_under(cloud: np.ndarray, ct_from_sfm: np.ndarray, other_ct_from_sfm: np.ndarray) -> np.ndarray:
    """The registered cloud (N, 3) mm, placed by ``ct_from_sfm`` (4, 4), moved to where the
    similarity ``other_ct_from_sfm`` puts the same SfM cloud: other @ inverse(ct_from_sfm)."""
    M = np.asarray(other_ct_from_sfm, np.float64) @ np.linalg.inv(np.asarray(ct_from_sfm, np.float64))
    return np.asarray(cloud, np.float64) @ M[:3, :3].T + M[:3, 3]


def runner_up_cloud(cloud: np.ndarray, registration: dict) -> np.ndarray | None:
    """The registered cloud (N, 3) mm moved to the runner-up pose of an AMBIGUOUS
    registration (register_ct's JSON), else None."""
    runner = registration.get("runner_up") or {}
    if not registration.get("ambiguous") or "ct_from_sfm" not in runner or "ct_from_sfm" not in registration:
        return None
    return cloud_under(cloud, registration["ct_from_sfm"], runner["ct_from_sfm"])


def _versus_truth(check: dict | None) -> str:
    if not check:
        return ""
    return (f"{check['rotation_deg']:.0f}° from the true pose, scale {check['scale_ratio']:.2f}x the true, "
            f"camera centres {check['camera_rms_mm']:.1f} mm RMS off")


def other_poses(cloud: np.ndarray, registration: dict) -> list[PoseCloud]:
    """The cloud (N, 3) mm under the true pose (when the JSON has truth.ct_from_sfm) and under
    the runner-up pose (when the registration is ambiguous), with their rows' titles."""
    out = []
    best = registration.get("ct_from_sfm")
    truth = registration.get("truth") or {}
    if best is not None and "ct_from_sfm" in truth:
        out.append(PoseCloud(cloud_under(cloud, best, truth["ct_from_sfm"]), "tab:blue",
                             "true pose (the demo's camera poses), blue; registered pose orange"))
    runner = runner_up_cloud(cloud, registration)
    if runner is not None:
        detail = _versus_truth(registration["runner_up"].get("truth"))
        out.append(PoseCloud(runner, "tab:green",
                             f"runner-up pose (score {registration['runner_up_ratio']:.2f}x the best"
                             f"{'; ' + detail if detail else ''}), green; registered pose orange"))
    return out


def registration_verdict(registration: dict, off_deg: float = OFF_DEG) -> tuple[str, bool]:
    """(text, alarming) about a registration: its confidence (``ambiguous``, ``runner_up_ratio``)
    and, on the demo, how far it is from the true pose; alarming when ambiguous or more than
    ``off_deg`` degrees off."""
    ratio = registration.get("runner_up_ratio")
    if registration.get("ambiguous"):
        parts = [f"AMBIGUOUS (runner-up {ratio:.2f}x the best score)"]
    elif ratio is not None:
        parts = [f"confident (runner-up {ratio:.2f}x the best score)"]
    else:
        parts = ["confident (no distinct runner-up)"]
    alarming = bool(registration.get("ambiguous"))
    truth = registration.get("truth")
    if truth:
        off = truth["rotation_deg"] > off_deg
        alarming |= off
        parts.append(("WRONG: registered " if off else "registered ") + _versus_truth(truth))
    return "; ".join(parts), alarming


def short_flag(registration: dict, off_deg: float = OFF_DEG) -> str:
    """A registration's warning in a few words ("AMBIGUOUS (runner-up 1.01x); 171° from the true
    pose"), "" when it is confident and (where known) within ``off_deg`` of the true pose."""
    parts = []
    if registration.get("ambiguous"):
        parts.append(f"AMBIGUOUS (runner-up {registration['runner_up_ratio']:.2f}x)")
    truth = registration.get("truth") or {}
    if "rotation_deg" in truth and truth["rotation_deg"] > off_deg:
        parts.append(f"{truth['rotation_deg']:.0f}° from the true pose")
    return "; ".join(parts)


def _layout(extent: np.ndarray, views: list[tuple[int, int, int]],
            width_in: float) -> tuple[list[float], float]:
    """Width ratios of the views' columns (horizontal / vertical extent) and the row height
    (inches) that fills ``width_in``."""
    ratios = [float(np.clip(extent[h] / max(extent[v], 1e-9), 0.4, 5.0)) for h, v, _ in views]
    # the panels' height: the width less the colour bar and three y labels (about 0.5 in each)
    panel_in = float(np.clip((width_in - 1.0 - 3 * 0.5) / (sum(ratios) * 1.035), 1.2, 3.4))
    return ratios, panel_in + 0.8  # + the row's title, x labels and the space between rows


def cloud_on_ct_figure(ct_verts: np.ndarray, ct_tris: np.ndarray, cloud: np.ndarray,
                       residuals: np.ndarray | None, title: str, residual_max_mm: float,
                       others: list[PoseCloud] = (), verdict: tuple[str, bool] = ("", False),
                       width_in: float = 13.0, max_points: int = 30000, surface_samples: int = 300000,
                       seed: int = 0) -> plt.Figure:
    """The registered cloud on the whole CT in three orthographic views (one row), then one row
    per other pose (``others``: the same cloud under the true / runner-up pose, the registered
    one in orange with it), all rows on the same axes.

    Args:
        ct_verts: (Nv, 3) CT surface vertices, mm. ct_tris: (Nt, 3) triangles (vertex indexes).
        cloud: (N, 3) registered points in the CT frame, mm.
        residuals: (N,) mm, or None (points plain orange).
        title: first line of the title.
        residual_max_mm: top of the residual colour scale (fixed, so that figures compare);
            farther points take its colour.
        others: rows below the registered one.
        verdict: ``registration_verdict``: second title line, red when alarming.
        width_in: figure width, inches (x 100 px). max_points: points drawn per cloud at most
            (a seeded subset). surface_samples: points sampled on the CT for its projection.
    """
    cloud = np.asarray(cloud, np.float64)
    if cloud.ndim != 2 or cloud.shape[1] != 3 or not len(cloud):
        raise ValueError(f"cloud_on_ct_figure: cloud must be (N>0, 3), got {cloud.shape}")
    if not residual_max_mm > 0:
        raise ValueError(f"cloud_on_ct_figure: residual_max_mm must be > 0, got {residual_max_mm}")
    rng = np.random.default_rng(seed)
    keep = slice(None)
    if len(cloud) > max_points:
        keep = np.sort(rng.choice(len(cloud), max_points, replace=False))
    shown, shown_res = cloud[keep], None if residuals is None else np.asarray(residuals, np.float64)[keep]
    others = [PoseCloud(o.points[keep], o.colour, o.title) for o in others]
    surface = sample_surface(ct_verts, ct_tris, surface_samples, seed)
    every = np.concatenate([surface, shown, *[o.points for o in others]])
    lo, hi = every.min(0), every.max(0)
    pad = 0.03 * (hi - lo).max()
    lo, hi = lo - pad, hi + pad
    extent = hi - lo
    views = view_axes(surface.max(0) - surface.min(0))
    ratios, row_in = _layout(extent, views, width_in)
    n_rows = 1 + len(others)
    fig = plt.figure(figsize=(width_in, row_in * n_rows + 0.9), dpi=DPI, layout="constrained")
    # a thin row above each row of views holds its title: an axes' own title wider than the axes
    # would make constrained layout shrink the whole column
    grid = fig.add_gridspec(2 * n_rows, 4, width_ratios=[*ratios, 0.035 * sum(ratios)],
                            height_ratios=[0.01, 1.0] * n_rows)
    pixel_mm = extent.max() / 500.0
    images = []
    for h, v, _ in views:
        image = np.log1p(projection_image(surface, h, v, lo, hi, pixel_mm))
        images.append((image, np.percentile(image[image > 0], 99) if (image > 0).any() else 1.0))
    scatter = None
    for row in range(n_rows):
        other = others[row - 1] if row else None
        axes = [fig.add_subplot(grid[2 * row + 1, c]) for c in range(3)]
        for ax, (h, v, _), (image, top) in zip(axes, views, images, strict=True):
            ax.imshow(image, cmap="Greys", vmin=0, vmax=top, origin="lower", alpha=0.55,
                      extent=(lo[h], lo[h] + image.shape[1] * pixel_mm,
                              lo[v], lo[v] + image.shape[0] * pixel_mm),
                      interpolation="bilinear")
            if other is None and shown_res is not None:
                scatter = ax.scatter(shown[:, h], shown[:, v], s=1.2, c=shown_res, cmap="plasma", vmin=0,
                                     vmax=residual_max_mm, lw=0, rasterized=True)
            elif other is None:
                ax.scatter(shown[:, h], shown[:, v], s=1.0, c="tab:orange", lw=0, rasterized=True)
            else:  # both clouds (a third of a large one), translucent, so that neither hides the other
                step, alpha = (3, 0.25) if len(shown) > 15000 else (1, 0.5)
                ax.scatter(shown[::step, h], shown[::step, v], s=1.0, c="tab:orange", alpha=alpha, lw=0,
                           rasterized=True)
                ax.scatter(other.points[::step, h], other.points[::step, v], s=1.0, c=other.colour,
                           alpha=alpha, lw=0, rasterized=True)
            ax.set_xlim(lo[h], hi[h])
            ax.set_ylim(lo[v], hi[v])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=8)
            ax.set_ylabel(f"{'xyz'[v]} (mm)", fontsize=FONT)
            ax.set_xlabel(f"{'xyz'[h]} (mm)", fontsize=FONT)
        row_title = other.title if other else (
            f"registered pose: {len(shown)} of {len(cloud)} points, coloured by their distance to the "
            "CT surface"
            if shown_res is not None else f"registered pose: {len(shown)} of {len(cloud)} points")
        title_ax = fig.add_subplot(grid[2 * row, :3])
        title_ax.axis("off")
        title_ax.set_title(row_title, fontsize=FONT, loc="left", pad=0)
        legend_ax = fig.add_subplot(grid[2 * row + 1, 3])
        if row == 0 and scatter is not None:
            over = shown_res is not None and (shown_res > residual_max_mm).any()
            bar = fig.colorbar(scatter, cax=legend_ax, extend="max" if over else "neither")
            bar.set_label("residual (mm)", fontsize=FONT)
            bar.ax.tick_params(labelsize=8)
        else:
            legend_ax.axis("off")
    text, alarming = verdict
    fig.suptitle(f"{title}\n{text}" if text else title, fontsize=11, color="tab:red" if alarming else "black")
    return fig
