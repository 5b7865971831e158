"""Loaders for the golden fixtures in tests/fixtures/reference/: inputs we made and the outputs
that the reference projects' own code produced from them (see PROVENANCE.md there). No
reference code lives in this project; tests and bench/ compare the workflow against these files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"
GT_DIR, HINTS_DIR, FRAMES_DIR = REFERENCE / "gt_depth", REFERENCE / "depth_hints", REFERENCE / "frame_index"

# Depth Hints pairs: name -> (height, width) at which the reference fused them (the PNG size)
HINT_PAIRS = {"pair0": (64, 224), "pair1": (64, 224), "pair2": (57, 203)}


def gt_scan_names() -> list[str]:
    """Names of the Velodyne scans, ``<rig>_<what>`` (e.g. ``toy_even_edges``)."""
    with np.load(GT_DIR / "scans.npz") as f:
        return sorted(f.files)


def gt_scan(name: str) -> np.ndarray:
    """(N, 4) float32 scan (x, y, z, reflectance) as the reference read it from a ``.bin``."""
    with np.load(GT_DIR / "scans.npz") as f:
        return f[name]


def gt_rig_dir(scan_name: str) -> Path:
    """Folder with the KITTI calibration files the scan was projected with."""
    return GT_DIR / scan_name.rsplit("_", 1)[0]


def gt_reference(scan_name: str, vel_depth: bool) -> np.ndarray:
    """monodepth2's ``generate_depth_map(calib_dir, velo, cam=2, vel_depth)``: the (H, W)
    float64 map it returned (stored sparsely: its non-zero pixels)."""
    key = f"{scan_name}__vel_depth_{vel_depth}"
    with np.load(GT_DIR / "generate_depth_map.npz") as f:
        depth = np.zeros(tuple(f[key + "__shape"]), np.float64)
        depth.flat[f[key + "__index"]] = f[key + "__depth"]
    return depth


def hint_images(pair: str) -> tuple[Path, Path]:
    """PNG paths of the left (image_02) and right (image_03) image of a stereo pair."""
    return HINTS_DIR / f"{pair}_image_02.png", HINTS_DIR / f"{pair}_image_03.png"


def hint_reference(pair: str, cam: int) -> np.ndarray:
    """Depth Hints' saved hint of camera ``cam`` (2 = left, 3 = right): (1, H, W) float32."""
    with np.load(HINTS_DIR / "hints.npz") as f:
        return f[f"{pair}_image_0{cam}"]


def frame_scenes() -> list[Path]:
    """SC-Depth scene folders (``training/<scene>``), each with its JPEGs and frame_index.txt."""
    return sorted(p for p in (FRAMES_DIR / "training").iterdir() if p.is_dir())
