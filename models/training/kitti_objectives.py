"""Objectives of the driving branch: teacher (stereo + depth hints), student (distillation),
fine-tune (video with a pose network, SC-Depth consistency). seed_methods §6.4-6.7.

Batches are those of the workflow's ``KittiRawDataset`` (workflow_scripts/kitti/dataset.py):
``color`` / ``color_aug`` (B, F, 3, H, W) with the frames in ``frame_ids`` order and the stereo
frame last.
Depths are in training units (stereo baseline 0.1, so x5.4 is metric on KITTI).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import geometry as G
from models import losses as L
from models.networks import full_resolution
from models.training.semantic import MovingMasker


@dataclass(frozen=True)
class PhotoOptions:
    """Shared photometric settings.

    Attributes:
        frame_ids: temporal frames of the item, 0 first (monodepth2 ``--frame_ids``).
        stereo: the item's last frame is the other camera (``--use_stereo``).
        automask: monodepth2 auto-masking with identity losses.
        smoothness: weight of the edge-aware smoothness (divided by 2^scale).
        min_depth, max_depth: range of ``disp_to_depth``.
        convention: sampling convention of the warps (models.geometry).
    """

    frame_ids: tuple[int, ...] = (0,)
    stereo: bool = True
    automask: bool = True
    smoothness: float = 1e-3
    min_depth: float = 0.1
    max_depth: float = 100.0
    convention: str = "exact"


def depths_full(disps: list[Tensor], hw: tuple[int, int], opts: PhotoOptions) -> list[Tensor]:
    """Depths (B, 1, H, W) of every scale, upsampled to full resolution first (monodepth2)."""
    return [G.disp_to_depth(d, opts.min_depth, opts.max_depth)[1] for d in full_resolution(disps, hw)]


def source_poses(batch: dict[str, Tensor], nets: nn.ModuleDict, opts: PhotoOptions) -> list[Tensor]:
    """``src_from_tgt`` (B, 4, 4) of every source frame: the pose network for temporal frames
    (pairs in temporal order, inverted for past frames, as monodepth2), ``stereo_T`` for the
    stereo frame."""
    poses = []
    color = batch["color_aug"]
    for i, fid in enumerate(opts.frame_ids[1:], 1):
        if fid < 0:
            vec = nets["pose"](color[:, i], color[:, 0])
            poses.append(nets["pose"].to_matrix(vec, invert=True))
        else:
            vec = nets["pose"](color[:, 0], color[:, i])
            poses.append(nets["pose"].to_matrix(vec))
    if opts.stereo:
        poses.append(batch["stereo_T"])
    return poses


def pose_logs(poses: list[Tensor]) -> dict[str, float]:
    """Diagnostics of the temporal ``src_from_tgt`` poses (each (B, 4, 4)): ``translation``, the
    mean length of their translations (training units), and ``translation_forward``, the mean
    ``|t_z| / |t|``, the cosine between a translation and the optical axis. A car drives along its
    optical axis, so the latter stays near 1 when the pose network learns the motion; a pose
    network that explains forward motion as a sideways one (a monocular run that does not
    train: docs/driving.md, SGDepth) shows values far below."""
    t = torch.stack([q[:, :3, 3] for q in poses]).detach().float()  # (S, B, 3)
    norm = t.norm(dim=-1)
    forward = t[..., 2].abs() / norm.clamp(min=1e-12)
    return {"translation": _f(norm.mean()), "translation_forward": _f(forward.mean())}


def _warp_errors(
    target: Tensor, sources: list[Tensor], depth: Tensor, K: Tensor, poses: list[Tensor], opts: PhotoOptions
) -> tuple[Tensor, list[G.Warp]]:
    warps = [G.warp(s, depth, K, T, convention=opts.convention) for s, T in zip(sources, poses, strict=True)]
    return torch.cat([L.photometric_error(w.image, target) for w in warps], 1), warps


def _f(x: Tensor | float) -> float:
    """A loss term as a float for the logs (detached)."""
    return float(x.detach()) if isinstance(x, Tensor) else float(x)


def _smooth(disp: Tensor, target: Tensor) -> Tensor:
    image = F.interpolate(target, size=disp.shape[-2:], mode="area")
    return L.edge_aware_smoothness(disp, image)


@dataclass(frozen=True)
class TeacherOptions:
    """Teacher (Depth Hints / EPCDepth): stereo (+ optional monocular neighbours) with hints.

    Attributes:
        hints: use the precomputed SGM depth hints (the batch has ``hint``).
        hint_variant: "depth_hints" or "epcdepth" (see models.losses.hints).
        data_graft: EPCDepth's data grafting of the batch.
        self_distillation: EPCDepth's self-distillation (weight 1) over the scales.
    """

    photo: PhotoOptions = PhotoOptions()
    hints: bool = True
    hint_variant: str = "depth_hints"
    data_graft: bool = False
    self_distillation: bool = False


class _MaskedVideo:
    """The masking state of a video objective (SGDepth): ``masker`` (None = no masking) follows
    the training loop's steps and is saved in its checkpoints."""

    masker: MovingMasker | None = None

    def start_step(self, step: int) -> None:
        """The training loop's call before optimiser step ``step`` (the masking's periods)."""
        if self.masker is not None:
            self.masker.start_step(step)

    def state_dict(self) -> dict:
        return self.masker.state_dict() if self.masker is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.masker is not None and state:
            self.masker.load_state_dict(state)

    def _keep(self, nets: nn.ModuleDict, frames: Tensor, warps: list[G.Warp], convention: str,
              logs: dict[str, float]) -> Tensor | None:
        """The semantic keep-mask (B, 1, H, W) of the target pixels while masking is active, else
        None; ``frames`` (B, 1 + S, 3, H, W) the target and its S temporal sources, ``warps`` the
        scale-0 warps of those sources. Logs the masked share and the IoU threshold (the same
        columns at every step, for history.csv)."""
        if self.masker is None:
            return None
        logs["masked_pixels"], logs["iou_threshold"] = 0.0, self.masker.masking.threshold
        if not self.masker.active:
            return None
        keep = self.masker.mask(nets["depth"], frames, [w.pixels for w in warps], convention)
        logs["masked_pixels"] = _f(1.0 - keep.mean())
        logs["iou_threshold"] = self.masker.masking.threshold
        return keep


class TeacherObjective(_MaskedVideo):
    """Per scale: min reprojection over sources + identity auto-mask + hint selection;
    ``loss = mean_s (reprojection_s + hint_s + smoothness / 2^s)`` (+ self-distillation).

    With hints, ``reprojection_s`` is Depth Hints' mean over the pixels the identity does not win
    (§6.5); without, monodepth2's mean of the per-pixel minimum over all pixels (§6.4.3). Without
    ``photo.stereo`` the sources are the temporal neighbours only (monodepth2 M).

    With a ``masker`` (SGDepth's own setting: monocular video from scratch) the temporal
    sources' errors of the movable pixels of images under the IoU threshold are excluded, as in
    :class:`FinetuneObjective`."""

    def __init__(self, opts: TeacherOptions, masker: MovingMasker | None = None) -> None:
        if masker is not None and len(opts.photo.frame_ids) < 2:
            raise ValueError("masking needs temporal source frames (frame_ids [0, -1, 1])")
        self.opts, self.masker = opts, masker

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        o, p = self.opts, self.opts.photo
        if o.data_graft:
            batch = dict(batch)
            grafted = L.data_graft(
                {
                    "color": batch["color"].flatten(1, 2),
                    "color_aug": batch["color_aug"].flatten(1, 2),
                    **({"hint": batch["hint"]} if o.hints else {}),
                },
                batch["side"],
            )
            for key in ("color", "color_aug"):
                batch[key] = grafted[key].view_as(batch[key])
            if o.hints:
                batch["hint"] = grafted["hint"]
        color, K = batch["color"], batch["K"]
        target, sources = color[:, 0], list(color[:, 1:].unbind(1))
        hw = target.shape[-2:]
        disps = nets["depth"](batch["color_aug"][:, 0])
        poses = source_poses(batch, nets, p)
        identity = torch.cat([L.photometric_error(s, target) for s in sources], 1) if p.automask else None
        hint_error = hint = None
        if o.hints:
            hint = batch["hint"]
            w = G.warp(sources[-1], hint.clamp(min=1e-3), K, batch["stereo_T"], convention=p.convention)
            hint_error = L.hint_reprojection_error(L.photometric_error(w.image, target), hint)
        total, logs, errors = 0.0, {"reprojection": 0.0, "hint": 0.0, "smooth": 0.0}, []
        depths = depths_full(disps, hw, p)
        n_src, keep = len(p.frame_ids) - 1, None
        for s, (disp, depth) in enumerate(zip(disps, depths, strict=True)):
            reproj, warps = _warp_errors(target, sources, depth, K, poses, p)
            errors.append(reproj[:, -1:])  # the stereo warp, for self-distillation
            if s == 0:
                keep = self._keep(nets, batch["color_aug"][:, : n_src + 1], warps[:n_src], p.convention, logs)
            if keep is not None:
                reproj = _masked(reproj, keep, n_src)
            if o.hints:
                terms = L.depth_hint_loss(reproj, identity, hint_error, depth, hint, variant=o.hint_variant)
                reprojection, hint_term = terms.reprojection, terms.hint
            else:  # monodepth2's (also Depth Hints' without hints): the mean of the per-pixel minimum
                reprojection, hint_term = L.min_reprojection_loss(reproj, identity).loss, 0.0
            smooth = _smooth(disp, target)
            total = total + reprojection + hint_term + p.smoothness * smooth / 2 ** min(s, 3)
            logs["reprojection"] += _f(reprojection) / len(disps)
            logs["hint"] += _f(hint_term) / len(disps)
            logs["smooth"] += _f(smooth) / len(disps)
        loss = total / len(disps)
        if o.self_distillation:
            sd = L.self_distillation_loss(full_resolution(disps, hw), errors, split=min(5, len(disps)))
            loss = loss + sd
            logs["self_distillation"] = _f(sd)
        if n_src:
            logs.update(pose_logs(poses[:n_src]))
        return loss, logs


class StudentObjective:
    """The frozen teacher's depth on the clean image supervises the student's on the augmented
    one, at every scale of the student (upsampled to full resolution): the scale-invariant loss
    (the endoscopy reference's "+" form, §6.2, or Eigen's with ``eigen_lambda``), or with
    ``loss="log_l1"`` the mean ``|log d - log d_teacher|`` (L1 of the relative error, which
    keeps refining where the L2 of the log has already flattened)."""

    def __init__(self, teacher: nn.Module, photo: PhotoOptions, eigen_lambda: float | None = None,
                 loss: str = "scale_invariant") -> None:
        if loss not in L.DISTILL_LOSSES:
            raise ValueError(f"unknown distillation loss {loss!r}")
        self.teacher = teacher.eval().requires_grad_(False)
        self.photo, self.eigen_lambda, self.loss = photo, eigen_lambda, loss

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        target = batch["color"][:, 0]
        hw = target.shape[-2:]
        self.teacher.to(target.device)
        with torch.no_grad():
            goal = depths_full(self.teacher(target)[:1], hw, self.photo)[0]
        preds = depths_full(nets["depth"](batch["color_aug"][:, 0]), hw, self.photo)
        mask = torch.ones_like(goal)
        losses = [L.distillation_loss(d, goal, mask, self.loss, self.eigen_lambda) for d in preds]
        loss = sum(losses) / len(losses)
        return loss, {"distill": _f(loss)}


@dataclass(frozen=True)
class FinetuneOptions:
    """Fine-tune on video (monodepth2 min reprojection + SC-Depth consistency).

    Attributes:
        geometry_weight: weight of SC-Depth's geometry-consistency loss (0.1 in SC-Depth).
        dynamic_mask: weight each photometric error by SC-Depth's self-discovered mask.
    """

    photo: PhotoOptions = PhotoOptions(frame_ids=(0, -1, 1), stereo=False)
    geometry_weight: float = 0.1
    dynamic_mask: bool = True


class FinetuneObjective(_MaskedVideo):
    """Per scale: photometric errors of the warped neighbours (times the self-discovered mask
    ``1 - D_diff`` of scale 0), monodepth2's per-pixel minimum with auto-masking, smoothness;
    plus ``geometry_weight`` x the mean ``D_diff`` on the pixels the minimum selected.

    With a ``masker`` (SGDepth, :mod:`models.training.semantic`), the photometric errors of the
    movable pixels of images whose segmentation IoU is under the threshold are excluded too.

    With ``photo.stereo`` (monodepth2's mono+stereo), the other camera is one more source,
    warped with the known ``stereo_T``: it keeps the depth in the stereo scale the student
    learned from the teacher, and it sees moving objects where they are (both cameras expose
    at once), so the geometry term, SC-Depth's mask and the semantic masking apply to the
    temporal sources only.
    """

    def __init__(self, opts: FinetuneOptions, masker: MovingMasker | None = None) -> None:
        self.opts, self.masker = opts, masker

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        o, p = self.opts, self.opts.photo
        color, K = batch["color"], batch["K"]
        target, sources = color[:, 0], list(color[:, 1:].unbind(1))
        hw = target.shape[-2:]
        n_src = len(p.frame_ids) - 1  # temporal sources; the stereo frame, if any, is last
        aug = batch["color_aug"][:, : n_src + 1]
        all_disps = nets["depth"](aug.flatten(0, 1))  # target + temporal sources
        b = target.shape[0]
        disps = [d.view(b, -1, *d.shape[1:])[:, 0] for d in all_disps]
        src_depth = G.disp_to_depth(full_resolution([all_disps[0]], hw)[0], p.min_depth, p.max_depth)[1]
        src_depth = src_depth.view(b, -1, 1, *hw)[:, 1:]
        poses = source_poses(batch, nets, p)
        identity = torch.cat([L.photometric_error(s, target) for s in sources], 1) if p.automask else None
        total, logs, geo = 0.0, {"reprojection": 0.0, "geometry": 0.0, "smooth": 0.0}, None
        keep = None
        for s, (disp, depth) in enumerate(zip(disps, depths_full(disps, hw, p), strict=True)):
            reproj, warps = _warp_errors(target, sources, depth, K, poses, p)
            if s == 0:
                keep = self._keep(nets, aug, warps[:n_src], p.convention, logs)
                projected = [
                    G.sample(src_depth[:, j], warps[j].pixels, p.convention, padding_mode="zeros")
                    for j in range(n_src)
                ]
                geo = torch.cat(
                    [L.geometry_consistency(w.depth, q)
                     for w, q in zip(warps[:n_src], projected, strict=True)],
                    1,
                )
                geo = torch.where(torch.cat([w.valid for w in warps[:n_src]], 1), geo, torch.ones_like(geo))
                # the stereo source: no geometry term (its depth is not predicted), mask weight 1
                geo = F.pad(geo, (0, 0, 0, 0, 0, reproj.shape[1] - n_src))
            if o.dynamic_mask:
                reproj = reproj * L.self_discovered_mask(geo)
            if keep is not None:
                reproj = _masked(reproj, keep, n_src)
            mr = L.min_reprojection_loss(reproj, identity)
            smooth = _smooth(disp, target)
            total = total + mr.loss + p.smoothness * smooth / 2 ** min(s, 3)
            logs["reprojection"] += _f(mr.loss) / len(disps)
            logs["smooth"] += _f(smooth) / len(disps)
            if s == 0:
                best = torch.argmin(reproj, dim=1, keepdim=True)
                geo_sel = torch.gather(geo, 1, best)
                on = mr.automask.to(geo_sel.dtype)  # a masked pixel has no geometry term either
                geo_loss = L.mean_on_mask(geo_sel, on if keep is None else on * keep)
        loss = total / len(disps) + o.geometry_weight * geo_loss
        logs["geometry"] = _f(geo_loss)
        logs.update(pose_logs(poses[:n_src]))
        return loss, logs


def _masked(reproj: Tensor, keep: Tensor, n_temporal: int) -> Tensor:
    """Photometric errors (B, S, H, W) with the semantic keep-mask (B, 1, H, W) applied to the
    temporal sources (the first ``n_temporal``). Without a stereo source a masked pixel's errors
    become 0 (excluded: its minimum is 0). With one (the last), they become ``MASKED_ERROR``,
    above any photometric error, so the minimum takes the stereo warp (or the identity), in which
    a moving object is where it is."""
    temporal = reproj[:, :n_temporal]
    if reproj.shape[1] == n_temporal:
        return temporal * keep
    masked = torch.where(keep > 0, temporal, torch.full_like(temporal, MASKED_ERROR))
    return torch.cat([masked, reproj[:, n_temporal:]], 1)


MASKED_ERROR = 2.0  # photometric errors (SSIM / L1 mix of images in [0, 1]) are at most 1


@dataclass(frozen=True)
class ScDepthOptions:
    """SC-Depth v1 on monocular video (§6.6).

    Attributes:
        photo: frames (target first, then its neighbours; no stereo frame), auto-masking,
            ``smoothness`` (SC-Depth: 0.1), depth range, sampling convention.
        geometry_weight: weight of the geometry-consistency loss (SC-Depth: 0.1).
        dynamic_mask: weight the photometric errors by the self-discovered mask.
    """

    photo: PhotoOptions = PhotoOptions(frame_ids=(0, -1, 1), stereo=False, smoothness=0.1)
    geometry_weight: float = 0.1
    dynamic_mask: bool = True


class ScDepthObjective:
    """SC-Depth v1's loss: for each neighbour, the pairwise terms in both directions (the pose
    network on (target, neighbour) for ``neighbour_from_target`` and on (neighbour, target) for
    the inverse, as SC-Depth), min-optimised over the 2 x neighbours by the colour difference;
    ``loss = photo + geometry_weight geometry + smoothness smooth(depth)``, at scale 0 only
    (SC-Depth's decoder has no other) with the smoothness on the mean-normalised depth."""

    def __init__(self, opts: ScDepthOptions) -> None:
        if opts.photo.stereo or len(opts.photo.frame_ids) < 2:
            raise ValueError("SC-Depth trains on monocular video: frame_ids with neighbours, no stereo frame")
        self.opts = opts

    def __call__(self, batch: dict[str, Tensor], nets: nn.ModuleDict) -> tuple[Tensor, dict[str, float]]:
        o, p = self.opts, self.opts.photo
        color, aug, K = batch["color"], batch["color_aug"], batch["K"]
        b, n, hw = color.shape[0], color.shape[1], color.shape[-2:]
        finest = nets["depth"](aug.flatten(0, 1))[0]  # every frame: target + neighbours
        depth = depths_full([finest], hw, p)[0].view(b, n, 1, *hw)
        pose, terms, poses = nets["pose"], [], []
        for i in range(1, n):
            pairs = ((0, i), (i, 0))  # (target of the warp, reference)
            for t, r in pairs:
                ref_from_tgt = pose.to_matrix(pose(aug[:, t], aug[:, r]))
                poses.append(ref_from_tgt)
                terms.append(L.sc_pairwise_terms(
                    color[:, t], color[:, r], depth[:, t], depth[:, r], K, ref_from_tgt,
                    auto_mask=p.automask, dynamic_mask=o.dynamic_mask, convention=p.convention))
        photo, geometry = L.sc_depth_losses(terms)
        smooth = L.edge_aware_smoothness(depth[:, 0], color[:, 0])
        loss = photo + o.geometry_weight * geometry + p.smoothness * smooth
        logs = {"photometric": _f(photo), "geometry": _f(geometry), "smooth": _f(smooth)}
        return loss, {**logs, **pose_logs(poses)}
