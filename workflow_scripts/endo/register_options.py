"""Options of the CT registration (config ``endoscopy.register``), in one dataclass.

Lengths are CT millimetres unless a name says otherwise. The search is described in
workflow_scripts/endo/register.py; docs/registration.md says what the confidence means.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from workflow_scripts.util.options import option

__all__ = ["LEGACY_OPTIONS", "RegisterOptions"]


@dataclass(frozen=True, kw_only=True)
class RegisterOptions:
    """register_ct -> results/endo/registration/<stage>/<seq>.json (ct_from_sfm 4x4, scale in mm per
    SfM unit, residual mean/median/RMS/p95 in mm, the confidence: runner_up_ratio and ambiguous,
    counts, timing) and <seq>.ply (the registered cloud, CT frame, mm). 7-DoF similarity, fully
    automatic for any anatomy: FPFH + RANSAC hypotheses at a sweep of scales (Open3D), a short fit
    that ranks them, a robust point-to-plane fit with a scale term (it does not shrink a partial
    view), and the best distinct runner-up as the confidence (docs/registration.md). Residual =
    distance to the mesh triangles. Lengths in CT millimetres."""

    # manual initialisation (the reference's)
    initial_poses: str = option(
        "",
        "Manual initial poses, one file per sequence ({seq} is replaced), in the endoscopy reference's "
        "format: lines 'frame, tx, ty, tz, qw, qx, qy, qz' = that frame's camera pose in the CT (camera -> "
        'CT, mm). "" = fully automatic. The fix for an ambiguous registration (docs/registration.md).',
    )
    flip_yz: bool = option(
        True,
        "Negate the y and z axes of the manual rotations (the reference does: viewer cameras look "
        "along -z with y up); false = the poses are already in the OpenCV camera convention.",
    )
    scale_factors: tuple[float, ...] = option(
        (1.0,), "Multiples of the scale guess tried per anchor hypothesis and per manual pose.", minItems=1
    )
    # feature hypotheses (any anatomy)
    scale_search: Literal["before", "inside", "after"] = option(
        "before",
        "Where the scale is searched: 'before' the correspondences (a sweep of scales, rigid "
        "RANSAC at each), 'inside' RANSAC (a similarity from 3 correspondences, a sweep twice as coarse) "
        "or 'after' (one guess from the robust radii; only the fine fit moves it). bench/endo_register.py "
        "--scale-search measures the three.",
    )
    view_fraction: tuple[float, float] = option(
        (0.3, 1.0),
        "The scales tried put the cloud's robust radius (median distance to its median point) "
        "between these fractions of the CT's; widen it for a cloud that sees a small part of the CT (time "
        "grows with log(max / min)).",
        exclusiveMinimum=0,
    )
    scale_step: float = option(1.12, "Ratio between consecutive scales of the sweep.", exclusiveMinimum=1)
    feature_points_per_radius: float = option(
        10.0,
        "At each scale the cloud and the CT are described at a voxel of the cloud's robust radius "
        "(mm) / this (snapped to a power of sqrt(2) mm, at least 1/200 of the CT's largest side).",
        exclusiveMinimum=0,
    )
    normal_radius: float = option(2.0, "Normal estimation radius, in voxels.", exclusiveMinimum=0)
    feature_radius: float = option(5.0, "FPFH neighbourhood radius, in voxels.", exclusiveMinimum=0)
    feature_max_nn: int = option(200, "At most this many neighbours per FPFH feature.", minimum=1)
    feature_keypoints: int = option(
        1500,
        "At most this many cloud points (a seeded subset) get a feature at each scale (0 = all).",
        minimum=0,
    )
    ransac_runs: int = option(
        5,
        "RANSAC runs per scale; each drops the correspondences the poses so far explain, so each "
        "proposes another pose (sequential RANSAC).",
        minimum=1,
    )
    ransac_iterations: int = option(5000, "Iterations per RANSAC run.", minimum=1)
    ransac_distance: float = option(1.5, "RANSAC inlier distance, in voxels.", exclusiveMinimum=0)
    # anchor hypotheses (the first version's search for tube-like cavities)
    max_hypotheses: int = option(
        1200,
        "At most this many anchor ICPs (anchors are thinned); they run only when the feature "
        "hypotheses leave the registration ambiguous, or for manual poses. 0 = no anchors.",
        minimum=0,
    )
    coarse_spacing_mm: float = option(1.0, "CT sample spacing of the anchor search.", exclusiveMinimum=0)
    rolls: int = option(
        8,
        "Anchor hypotheses per anchor and direction, evenly spaced about the cloud's principal axis.",
        minimum=1,
    )
    min_elongation: float = option(
        1.25,
        "A cloud whose first principal spread is below this multiple of the second has no stable "
        "axis: the 60 icosahedral rotations are tried per anchor instead.",
        minimum=1,
    )
    coarse_points: int = option(400, "Cloud points (seeded subset) of the anchor ICPs.", minimum=10)
    coarse_iterations: int = option(30, "ICP iterations per anchor hypothesis.", minimum=1)
    top_k: int = option(4, "Best anchor hypotheses that join the common pool.", minimum=1)
    # common pool, fine fit, confidence
    search_points: int = option(
        20000,
        "The search uses at most this many cloud points (a seeded subset); the residuals are of every point.",
        minimum=10,
    )
    screen_points: int = option(300, "Cloud points of the short fit that ranks every hypothesis.", minimum=10)
    screen_iterations: int = option(10, "Gauss-Newton iterations of that short fit.", minimum=1)
    probe_k: int = option(
        6, "The probe_k best distinct hypotheses after that fit are fitted again from other scales "
        "(probe_factors): a short fit may settle at a wrong scale with the right rotation.", minimum=0)
    probe_factors: tuple[float, ...] = option(
        (0.8, 0.9, 1.12, 1.25),
        "Scale factors (about the cloud's centroid) of those probes.",
        exclusiveMinimum=0,
    )
    refine_k: int = option(3, "The refine_k best DISTINCT hypotheses get the full fine fit.", minimum=1)
    fine_points: int = option(2000, "Cloud points (seeded subset) of the fine fit.", minimum=10)
    fine_iterations: int = option(30, "Gauss-Newton iterations of the fine fit.", minimum=1)
    fit_gate: float = option(
        0.25,
        "Points farther from the surface than this fraction of the cloud's robust radius get no "
        "weight in the fits (robust Tukey weights do the rest).",
        exclusiveMinimum=0,
    )
    score_keep: float = option(
        0.9,
        "Fraction of the closest points whose RMS distance ranks the hypotheses (the rest may be the "
        "cloud's outliers).",
        exclusiveMinimum=0,
        maximum=1,
    )
    distinct_deg: float = option(
        10.0,
        "Two poses are distinct when their rotations differ by more than this (degrees) ...",
        exclusiveMinimum=0,
    )
    distinct_scale: float = option(
        0.05, "... or their scales by more than this fraction.", exclusiveMinimum=0
    )
    ambiguous_ratio: float = option(
        1.5,
        "The registration is ambiguous when the best distinct runner-up's score (trimmed RMS distance "
        "to the CT) is less than this multiple of the best one's.",
        minimum=1,
    )
    min_points: int = option(200, "A cloud with fewer points is an error.", minimum=3)
    threads: int = option(
        1,
        "Open3D threads of the registration: a setting, as the ICP sums (and so the last bits of the "
        "pose) depend on it. The rule reserves this many cores.",
        minimum=1,
    )
    # internal: the seed (config `seed`), and the first version's pipeline (bench only)
    seed: int = field(default=0)
    legacy: bool = field(default=False)
    fine_spacing_mm: float = field(default=0.3)
    fine_max_distance_mm: tuple[float, ...] = field(default=(3.0,))


# The first version's search (anchor hypotheses on tubes, scaled point-to-point ICP), kept to
# measure the new one against (bench/endo_register.py) with its own defaults.
LEGACY_OPTIONS = replace(
    RegisterOptions(),
    refine_k=2,
    fine_iterations=60,
    fine_max_distance_mm=(3.0, 1.0, 0.5),
    fine_points=6000,
    max_hypotheses=1200,
    legacy=True,
)
