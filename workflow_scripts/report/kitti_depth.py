"""KITTI test-split depth as the evaluation scores it (rules plot_kitti_depth, plot_kitti_per_frame).

Inputs: the sparse LiDAR ground truth ``results/kitti/gt/<split>.npz`` (metres, 0 = none;
:func:`workflow_scripts.kitti.gt_export.load_gt`) and each stage's disparities
``results/kitti/pred/<stage>/<split>_disps.npy`` ((N, h, w) float32 at the network's size).
Each prediction is converted exactly as ``results/kitti_eval.csv``'s rows of one scaling are
(:func:`workflow_scripts.kitti.evaluate.evaluate_image`): resized bilinearly to the ground
truth's size, inverted, scaled (per-frame median ratio or a fixed factor) and clamped to
[min_depth, max_depth]; the mean of :func:`per_frame_abs_rel` is the table's abs_rel.

Figures: :func:`frames_figure` (input, dilated ground truth, every stage's depth on one colour
scale in metres, an abs_rel error map) and :func:`per_frame_figure` (box plots of the per-frame
abs_rel per stage).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib.colors import FuncNorm, ListedColormap, Normalize
from matplotlib.gridspec import SubplotSpec
from scipy import ndimage

from workflow_scripts.kitti.evaluate import (
    EvalOptions,
    evaluate_image,
    load_disparities,
    prediction_depth,
    valid_mask,
)
from workflow_scripts.kitti.gt_export import GtSet, load_gt
from workflow_scripts.kitti.split_files import SplitLine, read_split
from workflow_scripts.report.figure import plt
from workflow_scripts.util import InputDataError

__all__ = ["DEPTH_CMAP", "ERROR_CMAP", "ERROR_MAX", "ScaledFrame", "depth_norm", "depth_range", "depth_ticks",
           "error_stage", "frames_figure", "load_split_gt", "load_stage_disparities", "per_frame_abs_rel",
           "per_frame_figure", "pipeline_order", "scale_frame", "spread_sparse"]

# the order of the stages in results/kitti_eval.csv (kitti_eval_stages in rules/common.smk)
PIPELINE_ORDER = ("teacher", "teacher_unmasked", "student", "finetune", "finetune_unmasked", "constant",
                  "external")
TRAINED = ("teacher", "student", "finetune")
# magma from bright (near) to dark purple (far), stopping short of black so that far points
# stand out from the dimmed frame behind the sparse maps
DEPTH_CMAP = ListedColormap(plt.get_cmap("magma")(np.linspace(1.0, 0.15, 256)), name="magma_near_bright")
ERROR_CMAP = "viridis"
ERROR_MAX = 0.5  # abs_rel colour range 0 .. ERROR_MAX (larger errors saturate)
NICE_DEPTHS = (1, 2, 3, 5, 10, 20, 40, 80)  # metres: candidate colour bar ticks


def pipeline_order(stages: Sequence[str]) -> list[str]:
    """``stages`` in the pipeline's order (teacher, teacher_unmasked, student, finetune,
    finetune_unmasked, constant, external), as in results/kitti_eval.csv; unknown names keep
    their order at the end."""
    known = [s for s in PIPELINE_ORDER if s in stages]
    return known + [s for s in stages if s not in PIPELINE_ORDER]


def error_stage(stages: Sequence[str]) -> str:
    """The stage whose error map is shown: the pipeline's last trained stage (not the
    <stage>_unmasked controls), else the first of ``stages``."""
    trained = [s for s in TRAINED if s in stages]
    return trained[-1] if trained else pipeline_order(stages)[0]


def load_split_gt(gt_path: Path, split_path: Path) -> tuple[list[SplitLine], GtSet]:
    """The test split's lines and their ground truth, checked to be of the same frames."""
    lines = read_split(split_path)
    gt = load_gt(gt_path)
    if gt.files != [ln.text() for ln in lines]:
        raise InputDataError(gt_path, f"ground truth of {len(gt)} frames that are not the {len(lines)} "
                             f"frames of {split_path}", "re-run export_gt_depth")
    return lines, gt


def load_stage_disparities(path: Path, stage: str, n_frames: int) -> np.ndarray:
    """A stage's disparities (N, h, w) float for the ``n_frames`` frames of the test split;
    InputDataError naming the file when the shape or count is wrong."""
    if stage == "external":  # another method's file: the error names kitti.evaluate.external_disparities
        return load_disparities(path, n_frames)
    return load_disparities(path, n_frames, fix=f"re-run predict_depth for stage {stage}")


@dataclass(frozen=True)
class ScaledFrame:
    """One prediction scaled as the evaluation scales it.

    Attributes:
        depth: (H, W) float64 depth in metres at the ground truth's size, scaled and clamped to
            [min_depth, max_depth] (every pixel, not only the evaluated ones).
        mask: (H, W) bool, the evaluated pixels (ground truth in range, Garg crop on LiDAR splits).
        ratio: the scale factor applied (per-frame median ratio or the fixed factor).
        abs_rel: the frame's abs_rel (mean of |depth - gt| / gt over ``mask``).
    """

    depth: np.ndarray
    mask: np.ndarray
    ratio: float
    abs_rel: float

    def error_map(self, gt: np.ndarray) -> np.ndarray:
        """(H, W) float64 |depth - gt| / gt on the evaluated pixels, NaN elsewhere."""
        error = np.full(gt.shape, np.nan)
        error[self.mask] = np.abs(gt[self.mask] - self.depth[self.mask]) / gt[self.mask]
        return error


def scale_frame(gt: np.ndarray, disp: np.ndarray, opts: EvalOptions) -> ScaledFrame:
    """Scale one prediction as :func:`evaluate_image` does.

    Args:
        gt: (H, W) ground-truth depth in metres, 0 = no measurement.
        disp: (h, w) predicted disparity (inverse depth up to scale, any resolution).
        opts: the evaluation's options (scaling "median" for the table's median rows).
    """
    errors, ratio = evaluate_image(gt, disp, opts)
    depth = np.clip(prediction_depth(disp, gt.shape) * ratio, opts.min_depth, opts.max_depth)
    return ScaledFrame(depth, valid_mask(gt, opts), ratio, errors["abs_rel"])


def per_frame_abs_rel(gts: Sequence[np.ndarray], disps: Sequence[np.ndarray] | np.ndarray,
                      opts: EvalOptions) -> tuple[np.ndarray, np.ndarray]:
    """abs_rel (N,) and scale ratio (N,) of every frame; their means are the table's abs_rel and
    the evaluation's per-frame ratios (N ground-truth maps (H_i, W_i) m, N disparities)."""
    if len(gts) != len(disps):
        raise ValueError(f"{len(disps)} predictions for {len(gts)} ground-truth maps")
    scores = [evaluate_image(gt, disp, opts) for gt, disp in zip(gts, disps, strict=True)]
    return np.array([e["abs_rel"] for e, _ in scores]), np.array([r for _, r in scores])


def spread_sparse(values: np.ndarray, valid: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Dilate sparse measurements for display: every pixel within ``radius`` pixels of a valid
    one takes the value of the nearest valid pixel (values are copied, never mixed).

    Returns the filled (H, W) values and the (H, W) bool mask of filled pixels.
    """
    valid = valid.astype(bool)
    if not valid.any():
        return np.zeros_like(values), np.zeros(values.shape, bool)
    dist, (iy, ix) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return values[iy, ix], dist <= radius


def depth_range(gts: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                max_depth: float) -> tuple[float, float]:
    """(near, far) in metres of the shared depth colour scale: the 2nd percentile of the shown
    ground truth rounded down to one significant digit (at least 1 m), and ``max_depth``."""
    values = np.concatenate([g[m] for g, m in zip(gts, masks, strict=True)] or [np.zeros(0)])
    values = values[values > 0]
    if not values.size:
        return 1.0, max_depth
    low = float(np.percentile(values, 2))
    magnitude = 10.0 ** math.floor(math.log10(max(low, 1.0)))
    near = max(1.0, math.floor(low / magnitude) * magnitude)
    return near, max(max_depth, near * 2)


def depth_norm(near: float, far: float) -> Normalize:
    """Colour position of a depth (m) on an inverse-depth (disparity-like) scale: ``near`` -> 0,
    ``far`` -> 1; near structure gets most of the colours, as in a disparity map."""
    return FuncNorm((lambda d: -1.0 / np.maximum(d, 1e-6), lambda v: -1.0 / np.minimum(v, -1e-12)),
                    vmin=near, vmax=far)


def depth_ticks(near: float, far: float) -> list[float]:
    """Colour bar ticks in metres: ``near``, ``far`` and the round depths between them that
    are not too close to each other on the inverse-depth scale."""
    norm = depth_norm(near, far)
    ticks: list[float] = []
    for d in sorted({near, *[x for x in NICE_DEPTHS if near < x < far], far}):
        if not ticks or float(norm(d)) - float(norm(ticks[-1])) >= 0.07 or d == far:
            ticks.append(float(d))
    if len(ticks) > 2 and float(norm(ticks[-1])) - float(norm(ticks[-2])) < 0.07:
        del ticks[-2]
    return ticks


def _colour(values: np.ndarray, mask: np.ndarray, cmap: str | ListedColormap, norm: Normalize,
            background: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB: ``values`` coloured where ``mask``, ``background`` elsewhere."""
    cmap = plt.get_cmap(cmap) if isinstance(cmap, str) else cmap
    rgb = cmap(np.clip(np.ma.filled(norm(np.where(mask, values, norm.vmax)), 1.0), 0.0, 1.0))[..., :3]
    return np.where(mask[..., None], rgb, background)


def _dim_gray(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The frame as a dim grey (H, W, 3) float background at ``shape`` (context for sparse maps)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gray = cv2.resize(gray, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    return np.repeat((0.25 * gray)[..., None], 3, axis=2)


def _label(ax, text: str, size: float) -> None:
    ax.text(0.01, 0.95, text, transform=ax.transAxes, fontsize=size, va="top", ha="left", color="white",
            bbox={"facecolor": "black", "alpha": 0.65, "pad": 1.5, "lw": 0})


def _inset(fig: plt.Figure, cell: SubplotSpec, top: float, bottom: float) -> plt.Axes:
    """Axes in a grid cell, shortened by ``top`` and ``bottom`` (figure fractions)."""
    box = cell.get_position(fig)
    return fig.add_axes((box.x0, box.y0 + bottom, box.width, box.height - top - bottom))


def frames_figure(images: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                  stages: Mapping[str, Sequence[ScaledFrame]], shown_error: str, frame_titles: Sequence[str],
                  title: str, opts: EvalOptions, width_in: float = 13.0, max_cols: int = 4) -> plt.Figure:
    """A grid per group of up to ``max_cols`` frames (one column each): rows input, ground truth,
    each stage's scaled depth (in the mapping's order, with the frame's abs_rel and scale), and
    the abs_rel error map of ``shown_error``.

    Args:
        images: K frames (H_i, W_i, 3) uint8 RGB.
        gts: K ground-truth maps (H, W) in metres (0 = none).
        stages: stage -> K scaled frames of those ground truths (:func:`scale_frame`).
        shown_error: the stage (a key of ``stages``) whose error map is drawn.
        frame_titles: K column headers.
        title: figure title.
        opts: the evaluation's options (for the depth range).
        width_in: figure width in inches (100 px each).
        max_cols: frames per row group.
    """
    k = len(images)
    if not k or not (len(gts) == len(frame_titles) == k) or any(len(f) != k for f in stages.values()):
        raise ValueError(f"frames_figure: {k} images, {len(gts)} ground truths, {len(frame_titles)} titles, "
                         f"stages with {[len(f) for f in stages.values()]} frames")
    masks = [valid_mask(g, opts) for g in gts]
    near, far = depth_range(gts, masks, opts.max_depth)
    norm, enorm = depth_norm(near, far), Normalize(0.0, ERROR_MAX)
    rows = ["input", "ground truth\n(LiDAR)", *stages, f"abs_rel error\n({shown_error})"]
    ncols, nblocks = min(k, max_cols), math.ceil(k / max_cols)
    aspect = max(g.shape[0] / g.shape[1] for g in gts)
    left_in, right_in, cbar_in, gap_in = 1.55, 0.75, 0.16, 0.5
    panel_w = (width_in - left_in - right_in - cbar_in - 0.15) / ncols
    panel_h = panel_w * aspect
    height_in = nblocks * (gap_in + len(rows) * panel_h) + 0.3
    fig = plt.figure(figsize=(width_in, height_in), dpi=100)
    grid = fig.add_gridspec(nblocks * (len(rows) + 1), ncols + 2, left=left_in / width_in,
                            right=1 - right_in / width_in, top=1 - 0.3 / height_in, bottom=0.0,
                            width_ratios=[panel_w] * ncols + [0.15, cbar_in],
                            height_ratios=([gap_in] + [panel_h] * len(rows)) * nblocks,
                            wspace=0.03, hspace=0.05)
    radius = max(1.0, max(g.shape[1] for g in gts) / 250.0)  # about 2 px at the figure's panel size
    for b in range(nblocks):
        top = b * (len(rows) + 1) + 1
        for c, f in enumerate(range(b * max_cols, min(k, (b + 1) * max_cols))):
            gt, mask = gts[f], masks[f]
            background = _dim_gray(images[f], gt.shape)
            axes = [fig.add_subplot(grid[top + r, c]) for r in range(len(rows))]
            axes[0].imshow(images[f], aspect="auto")
            axes[0].set_title(frame_titles[f], fontsize=10)
            filled, shown = spread_sparse(np.where(mask, gt, 0.0), mask, radius)
            axes[1].imshow(_colour(filled, shown, DEPTH_CMAP, norm, background), aspect="auto",
                           interpolation="nearest")
            for ax, frames in zip(axes[2:], stages.values(), strict=False):
                ax.imshow(_colour(frames[f].depth, np.ones(gt.shape, bool), DEPTH_CMAP, norm, background),
                          aspect="auto", interpolation="bilinear")
                _label(ax, f"abs_rel {frames[f].abs_rel:.3f}  scale ×{frames[f].ratio:.2f}", 9)
            error = stages[shown_error][f].error_map(gt)
            filled, shown = spread_sparse(np.nan_to_num(error), mask, radius)
            axes[-1].imshow(_colour(filled, shown, ERROR_CMAP, enorm, background), aspect="auto",
                            interpolation="nearest")
            for ax, name in zip(axes, rows, strict=True):
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=10, labelpad=6)
        cax = _inset(fig, grid[top + 1:top + len(rows) - 1, ncols + 1], 0.0, 0.12 * panel_h / height_in)
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=DEPTH_CMAP), cax=cax)
        bar.set_ticks(depth_ticks(near, far), labels=[f"{t:g}" for t in depth_ticks(near, far)])
        bar.ax.tick_params(labelsize=9)
        bar.set_label("depth (m)", fontsize=10)
        cax = _inset(fig, grid[top + len(rows) - 1, ncols + 1], 0.22 * panel_h / height_in, 0.0)
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=enorm, cmap=ERROR_CMAP), cax=cax, extend="max")
        bar.set_ticks([0.0, ERROR_MAX / 2, ERROR_MAX])
        bar.ax.tick_params(labelsize=9)
        bar.set_label("abs_rel", fontsize=10)
    fig.suptitle(title, fontsize=11, y=1 - 0.05 / height_in, va="top")
    return fig


def per_frame_figure(values: Mapping[str, np.ndarray], title: str,
                     width_in: float | None = None) -> plt.Figure:
    """Box plots of per-frame abs_rel, one per stage in the mapping's order: box = quartiles,
    whiskers = 1.5 IQR, dots = frames, diamond and label = mean (the table's abs_rel).

    Args:
        values: stage -> (N,) per-frame abs_rel.
        title: figure title.
        width_in: figure width in inches (default from the number of stages).
    """
    names = list(values)
    width_in = width_in or max(6.5, 1.25 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(width_in, 4.6), dpi=100)
    data = [np.asarray(values[s], np.float64) for s in names]
    ax.boxplot(data, widths=0.55, showfliers=False, medianprops={"color": "black"},
               boxprops={"color": "0.3"}, whiskerprops={"color": "0.3"}, capprops={"color": "0.3"})
    rng = np.random.default_rng(0)  # jitter of the dots only
    top = max((float(np.max(d)) for d in data if d.size), default=1.0)
    for i, (name, d) in enumerate(zip(names, data, strict=True), start=1):
        colour = "0.55" if name == "constant" else f"C{i - 1}"
        ax.scatter(i + rng.uniform(-0.18, 0.18, d.size), d, s=12, color=colour, alpha=0.7, lw=0, zorder=3)
        mean = float(np.mean(d)) if d.size else float("nan")
        ax.scatter([i], [mean], marker="D", s=40, color="white", edgecolor="black", zorder=4)
        ax.text(i, top * 1.04, f"mean {mean:.3f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=10)
    ax.set_ylim(0, top * 1.15)
    ax.set_ylabel("abs_rel per frame (median scaling)", fontsize=10)
    ax.tick_params(axis="y", labelsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig
