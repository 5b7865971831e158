"""Pose evaluation on KITTI odometry sequences: the layout's files, snippets, ATE and RE.

KITTI odometry layout (``data_odometry_color`` + ``data_odometry_poses``)::

    <root>/sequences/<nn>/image_2/<frame:06d>.png   left colour camera, frames 0 .. N-1
    <root>/sequences/<nn>/times.txt                 seconds (optional here)
    <root>/poses/<nn>.txt                           N lines of 12 floats: the top 3x4 rows of
                                                    first_from_cam (camera 2 -> world = frame 0),
                                                    row-major; line 0 is the identity

Relative poses are ``next_from_this`` (4, 4) per consecutive pair (k, k+1): the transform that
takes frame-k camera coordinates into frame k+1, i.e. what the pose network predicts for the
pair fed in temporal order (monodepth2's ``transformation_from_parameters(axisangle[:, 0],
translation[:, 0])``, the training's ``src_from_tgt`` of frame +1).

Two protocols (``kitti.pose_eval.protocol``):

* ``monodepth2`` (``evaluate_pose.py``): a snippet starts at every frame 0 .. N-2 and spans
  ``snippet`` frames (the last ones shorter, as the reference's slicing does); its track is
  monodepth2's ``dump_xyz`` (the ``next_from_this`` matrices multiplied in order, translations
  read off), for ground truth and prediction alike.
* ``sc_depth`` (SC-Depth v1's ``test_pose.py``, from SfMLearner): full snippets only
  (N - snippet + 1), tracks = ``first_from_frame`` poses (proper composition of the inverses).

Both score a snippet with the same ATE (:func:`compute_ate`: first frames aligned, one
least-squares scale, ``sqrt(sum of squared errors) / n_frames`` in metres) and SC-Depth's
rotation error RE (:func:`rotation_error`, radians, on the ``first_from_frame`` rotations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from workflow_scripts.util import InputDataError, write_text_atomic
from workflow_scripts.util.options import option

__all__ = ["PoseEvalOptions", "PoseStage", "read_poses", "write_poses", "sequence_images", "check_pose_count",
           "relative_poses", "first_from_frames", "monodepth2_track", "compute_ate", "rotation_error",
           "snippet_starts", "evaluate_sequence", "demo_sequence_names", "first_from_cams", "IMAGE_EXTS"]

PoseStage = Literal["teacher", "finetune"]
IMAGE_EXTS = (".png", ".jpg")
LAYOUT = ("KITTI odometry layout: <root>/sequences/<nn>/image_2/<frame:06d>.png and <root>/poses/<nn>.txt "
          "(docs/driving.md, Pose evaluation)")


@dataclass(frozen=True, kw_only=True)
class PoseEvalOptions:
    """Pose evaluation of the trained pose network on KITTI odometry sequences (rules export_odometry,
    predict_pose, evaluate_pose -> results/kitti_pose_eval.csv: one row per stage x sequence, plus the
    identity-motion baseline). monodepth2's protocol: 5-frame snippets, ATE after aligning the first
    frames and one least-squares scale per snippet (m); SC-Depth's rotation error RE (rad)."""

    odometry_root: str = option(
        "",
        "KITTI odometry root: the folder holding sequences/<nn>/image_2/ and poses/<nn>.txt "
        '(data_odometry_color with data_odometry_poses). "" = on the demo, the held-out test drives written '
        "as sequences 00, 01, ... (results/kitti/odometry/); on real data, no pose evaluation.",
    )
    sequences: tuple[str, ...] = option(
        ("09", "10"),
        "Sequences evaluated (folder names under sequences/; 09 and 10 are monodepth2's and SC-Depth's "
        "test sequences). On the demo, the exported test drives replace this list.",
        items={"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
        uniqueItems=True,
    )
    stages: tuple[PoseStage, ...] = option(
        ("finetune",),
        "Stages whose pose network is evaluated (a stage needs one: finetune always has it, teacher only "
        "with temporal frame_ids), among those kitti.evaluate.stages trains; a masked stage also "
        "brings its <stage>_unmasked control when that is trained. [] = no pose evaluation.",
        uniqueItems=True,
    )
    snippet: int = option(5, "Frames per snippet (monodepth2's track_length).", minimum=2)
    protocol: Literal["monodepth2", "sc_depth"] = option(
        "monodepth2",
        "monodepth2 = a snippet from every frame (the last ones shorter), tracks as evaluate_pose.py chains "
        "them; sc_depth = full snippets only, tracks composed as SC-Depth's test_pose.py.",
    )
    threads: int = option(1, "PyTorch threads of predict_pose on the CPU.", minimum=1)


# ----------------------------------------------------------------------------- odometry files
def read_poses(path: str | Path) -> np.ndarray:
    """Poses of a KITTI odometry ``poses/<nn>.txt``: (N, 4, 4) float64 ``first_from_cam``.

    Raises:
        InputDataError: missing or empty file, a line without exactly 12 numbers, a number that is
            not finite, or a rotation block that is not a rotation (names the line).
    """
    path = Path(path)
    fix = f"each line must hold the 12 numbers of a 3x4 pose, row-major ({LAYOUT})"
    if not path.is_file():
        raise InputDataError(path, "pose file not found", fix)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            problem = f"line {number} is not a list of numbers: {line[:80]!r}"
            raise InputDataError(path, problem, fix) from None
        if len(values) != 12 or not np.all(np.isfinite(values)):
            raise InputDataError(path, f"line {number} has {len(values)} values (finite: "
                                 f"{bool(np.all(np.isfinite(values)))}), not 12 finite numbers", fix)
        rows.append(values)
    if not rows:
        raise InputDataError(path, "pose file is empty", fix)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :] = np.asarray(rows).reshape(-1, 3, 4)
    R = poses[:, :3, :3]
    bad = np.abs(R @ R.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2)) > 1e-2
    if bad.any():
        line = int(np.argmax(bad)) + 1
        raise InputDataError(path, f"line {line}: the left 3x3 block is not a rotation", fix)
    return poses


def write_poses(path: str | Path, poses: np.ndarray) -> None:
    """Write (N, 4, 4) poses as a KITTI odometry pose file (top 3x4 rows, row-major), atomically."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must be (N, 4, 4), got {poses.shape}")
    lines = [" ".join(f"{v:.9e}" for v in p[:3].reshape(-1)) for p in poses]
    write_text_atomic(path, "\n".join(lines) + "\n")


def sequence_images(root: str | Path, sequence: str) -> list[Path]:
    """The left frames ``<root>/sequences/<sequence>/image_2/<frame>.<png|jpg>``, numbered 0 .. N-1.

    Raises:
        InputDataError: the folder is missing, holds no image, or its frame numbers have a gap.
    """
    folder = Path(root) / "sequences" / sequence / "image_2"
    fix = f"set kitti.pose_eval.odometry_root and kitti.pose_eval.sequences to data in the {LAYOUT}"
    if not folder.is_dir():
        raise InputDataError(folder, "image folder not found", fix)
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.stem.isdigit()),
                    key=lambda p: int(p.stem))
    if not images:
        raise InputDataError(folder, "holds no <frame>.png or <frame>.jpg image", fix)
    numbers = [int(p.stem) for p in images]
    if numbers != list(range(len(images))):
        gap = next(i for i, n in enumerate(numbers) if n != i)
        problem = f"frames are not numbered 0 .. {len(images) - 1}: frame {gap} is missing"
        raise InputDataError(folder, problem, fix)
    return images


def check_pose_count(poses_path: str | Path, n_poses: int, n_images: int, images: str | Path) -> None:
    """Raise unless a sequence has one pose per image."""
    if n_poses < n_images:
        raise InputDataError(
            poses_path, f"has {n_poses} poses for {n_images} images in {images}: fewer poses than images",
            "use the pose file of this sequence (one line per frame) or remove the extra images")
    if n_poses > n_images:
        raise InputDataError(
            poses_path, f"has {n_poses} poses for {n_images} images in {images}: images are missing",
            "restore the sequence's images (one per pose line) or use its own pose file")


# ----------------------------------------------------------------------------- trajectories
def relative_poses(poses: np.ndarray) -> np.ndarray:
    """``next_from_this`` (N-1, 4, 4) of absolute poses ``first_from_cam`` (N, 4, 4):
    ``inv(P[k+1]) @ P[k]`` (monodepth2's ``inv(inv(P[k]) @ P[k+1])``)."""
    return np.linalg.inv(poses[1:]) @ poses[:-1]


def first_from_frames(rel: np.ndarray) -> np.ndarray:
    """Poses (n+1, 4, 4) of a snippet's frames in its first camera, from its ``next_from_this``
    (n, 4, 4): ``P[0] = I``, ``P[k+1] = P[k] @ inv(rel[k])`` (SC-Depth's ``test_pose.py``)."""
    out = [np.eye(4)]
    for T in rel:
        out.append(out[-1] @ np.linalg.inv(T))
    return np.stack(out)


def monodepth2_track(rel: np.ndarray) -> np.ndarray:
    """monodepth2's ``dump_xyz``: positions (n+1, 3) read off ``I, rel[0], rel[0] @ rel[1], ...``."""
    out, T = [np.zeros(3)], np.eye(4)
    for R in rel:
        T = T @ R
        out.append(T[:3, 3].copy())
    return np.stack(out)


def compute_ate(gt_xyz: np.ndarray, pred_xyz: np.ndarray) -> tuple[float, float]:
    """ATE of one snippet and its scale (monodepth2's and SC-Depth's ``compute_ate``).

    Args:
        gt_xyz, pred_xyz: (n, 3) positions of the snippet's frames (m; prediction in any unit).
    Returns:
        ``sqrt(sum_k |s p_k - g_k|^2) / n`` (m) after shifting the prediction onto the first ground
        truth position, with ``s = sum(g p) / sum(p p)``; and ``s``. A prediction without motion
        (all positions equal: the identity baseline) takes ``s = 0`` (every scale fits it equally).
    """
    gt_xyz, pred_xyz = np.asarray(gt_xyz, np.float64), np.asarray(pred_xyz, np.float64)
    if gt_xyz.shape != pred_xyz.shape or gt_xyz.ndim != 2 or gt_xyz.shape[1] != 3:
        raise ValueError(f"positions must be matching (n, 3) arrays, got {gt_xyz.shape} and {pred_xyz.shape}")
    pred = pred_xyz + (gt_xyz[0] - pred_xyz[0])[None, :]
    norm = float(np.sum(pred**2))
    scale = float(np.sum(gt_xyz * pred)) / norm if norm > 0 else 0.0
    return float(np.sqrt(np.sum((scale * pred - gt_xyz) ** 2)) / gt_xyz.shape[0]), scale


def rotation_error(gt_R: np.ndarray, pred_R: np.ndarray) -> float:
    """SC-Depth's RE of one snippet (rad): the mean over its frames of the angle of
    ``gt_R[k] @ inv(pred_R[k])``, rotations (n, 3, 3) of the frames in the first camera."""
    R = np.asarray(gt_R) @ np.linalg.inv(np.asarray(pred_R))
    skew = np.stack([R[:, 0, 1] - R[:, 1, 0], R[:, 1, 2] - R[:, 2, 1], R[:, 0, 2] - R[:, 2, 0]], 1)
    s = np.linalg.norm(skew, axis=1)
    c = np.trace(R, axis1=1, axis2=2) - 1.0
    return float(np.mean(np.arctan2(s, c)))


def snippet_starts(n_frames: int, snippet: int, protocol: str) -> list[tuple[int, int]]:
    """``(first, last + 1)`` frame ranges of the snippets of a sequence of ``n_frames`` frames."""
    if protocol == "monodepth2":
        return [(i, min(i + snippet, n_frames)) for i in range(n_frames - 1)]
    if protocol == "sc_depth":
        return [(i, i + snippet) for i in range(n_frames - snippet + 1)]
    raise ValueError(f"protocol must be 'monodepth2' or 'sc_depth', got {protocol!r}")


def evaluate_sequence(gt_rel: np.ndarray, pred_rel: np.ndarray, snippet: int = 5,
                      protocol: str = "monodepth2") -> dict[str, np.ndarray]:
    """Per-snippet errors of predicted relative poses.

    Args:
        gt_rel, pred_rel: ``next_from_this`` (N-1, 4, 4) of the same N frames (ground truth in m;
            prediction up to scale).
    Returns:
        ``ate`` (S,) m, ``re`` (S,) rad and ``scale`` (S,) ground-truth units per predicted unit.
    Raises:
        ValueError: shapes differ, or the sequence is shorter than one snippet.
    """
    if gt_rel.shape != pred_rel.shape or gt_rel.shape[1:] != (4, 4):
        raise ValueError(f"relative poses must match as (N-1, 4, 4) arrays: {gt_rel.shape}, {pred_rel.shape}")
    ranges = snippet_starts(len(gt_rel) + 1, snippet, protocol)
    if not ranges:
        n = len(gt_rel) + 1
        raise ValueError(f"{n} frames: fewer than one {snippet}-frame snippet ({protocol} protocol)")
    ate, re_, scale = [], [], []
    for a, b in ranges:
        g, p = first_from_frames(gt_rel[a:b - 1]), first_from_frames(pred_rel[a:b - 1])
        if protocol == "monodepth2":
            err, s = compute_ate(monodepth2_track(gt_rel[a:b - 1]), monodepth2_track(pred_rel[a:b - 1]))
        else:
            err, s = compute_ate(g[:, :3, 3], p[:, :3, 3])
        ate.append(err)
        scale.append(s)
        re_.append(rotation_error(g[:, :3, :3], p[:, :3, :3]))
    return {"ate": np.array(ate), "re": np.array(re_), "scale": np.array(scale)}


def demo_sequence_names(drives: list[str]) -> dict[str, str]:
    """Sequence name per demo test drive (sorted): ``00``, ``01``, ..."""
    return {d: f"{i:02d}" for i, d in enumerate(sorted(drives))}


def first_from_cams(cam_from_world: np.ndarray) -> np.ndarray:
    """Odometry poses (N, 4, 4) of ``cam_from_world`` (N, 4, 4): the cameras in the first one,
    ``cam_from_world[0] @ inv(cam_from_world[i])``."""
    return cam_from_world[0][None] @ np.linalg.inv(cam_from_world)

