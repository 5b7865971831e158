"""The whole configuration as one dataclass: every section, where it is defined, and the keys
that only the rules read (data roots, which stages to evaluate, the report).

The schema and the reference page are generated from :class:`WorkflowConfig`
(``python -m workflow_scripts.config generate``). Defaults are the references' settings for real data;
the embedded demo's small settings are the overlay ``config/demo.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workflow_scripts.demo.endo_demo import EndoDemoConfig
from workflow_scripts.demo.kitti_demo import KittiDemoConfig
from workflow_scripts.endo.extract import ExtractOptions
from workflow_scripts.endo.pointcloud import PointCloudOptions
from workflow_scripts.endo.register import RegisterOptions
from workflow_scripts.endo.sfm import SfMOptions
from workflow_scripts.endo.sfm_data import SfMDataOptions
from workflow_scripts.kitti.depth_hints import HintOptions
from workflow_scripts.kitti.evaluate import KittiEvalOptions
from workflow_scripts.kitti.frame_filter import FilterOptions
from workflow_scripts.kitti.gt_export import GtConfig
from workflow_scripts.kitti.infer import KittiPredictOptions
from workflow_scripts.kitti.jpeg import JpegOptions
from workflow_scripts.kitti.pose_eval import PoseEvalOptions
from workflow_scripts.kitti.splits import SplitOptions
from workflow_scripts.training.endo_options import EndoTrain
from workflow_scripts.training.options import KittiTrain
from workflow_scripts.util.options import option

__all__ = ["WorkflowConfig", "KittiConfig", "EndoConfig", "EndoSplit", "DemoConfig", "ReportOptions",
           "EndoEvalOptions"]

EvalStage = Literal["teacher", "student", "finetune", "constant"]


@dataclass(frozen=True, kw_only=True)
class KittiConfig:
    """Driving branch: KITTI raw data (stereo + LiDAR)."""

    root: str = option(
        "",
        "KITTI raw root: the folder holding <date>/calib_*.txt and <date>/<date>_drive_<id>_sync/"
        '{image_02,image_03,velodyne_points}/. "" = the demo drives that make_demo_kitti generates.',
    )
    image_ext: Literal["png", "jpg"] = option(
        "png",
        "File type of the colour images in the raw tree: png (as KITTI "
        "ships them) or jpg (converted in place, as monodepth2's README does).",
    )
    jpeg: JpegOptions = option(factory=JpegOptions, doc=JpegOptions.__doc__)
    gt: GtConfig = option(factory=GtConfig, doc=GtConfig.__doc__)
    depth_hints: HintOptions = option(factory=HintOptions, doc=HintOptions.__doc__)
    filter: FilterOptions = option(factory=FilterOptions, doc=FilterOptions.__doc__)
    splits: SplitOptions = option(factory=SplitOptions, doc=SplitOptions.__doc__)
    train: KittiTrain = option(factory=KittiTrain, doc=KittiTrain.__doc__)
    evaluate: KittiEvalOptions = option(factory=KittiEvalOptions, doc=KittiEvalOptions.__doc__)
    pose_eval: PoseEvalOptions = option(factory=PoseEvalOptions, doc=PoseEvalOptions.__doc__)
    predict: KittiPredictOptions = option(factory=KittiPredictOptions, doc=KittiPredictOptions.__doc__)


@dataclass(frozen=True, kw_only=True)
class EndoEvalOptions:
    """results/endo_eval.csv: one row per stage x sequence (residuals to the CT, counts, depth
    metrics against the SfM sparse points after per-frame median scaling)."""

    stages: tuple[EvalStage, ...] = option(
        ("teacher", "student", "finetune", "constant"),
        "Stages evaluated: the trained ones and constant = the "
        "median SfM depth of each frame everywhere (the baseline).",
        minItems=1,
        uniqueItems=True,
    )
    threads: int = option(
        1,
        "PyTorch threads of predict_endo_depth on the CPU: a setting, as the last bits of the depth depend "
        "on it (1 lets a prediction start as soon as one core is free).",
        minimum=1,
    )


@dataclass(frozen=True, kw_only=True)
class EndoSplit:
    """Which sequences train and which are held out for testing (the reference reports depth on
    patients it never trained on). Entries are sequence or patient names (a patient stands for all
    its sequences, which stay on one side). Every sequence is evaluated; results/endo_eval.csv
    marks its side in the split column."""

    train: tuple[str, ...] = option(
        (), "Training sequences or patients; [] = every sequence not in test.", items={"type": "string"}
    )
    test: tuple[str, ...] = option(
        (),
        "Test sequences or patients, in no training stage; [] = every sequence not in train (both [] = "
        "everything trains, no test side).",
        items={"type": "string"},
    )


@dataclass(frozen=True, kw_only=True)
class EndoPredictOptions:
    """Depth for new videos with a trained stage, without SfM or retraining (rule
    predict_endo_video): results/endo/new/<name>/ holds depth/<index:08d>.npz and 16-bit .png,
    depth.mp4 (colour-mapped) and clouds/<index:08d>.ply (masked, camera frame), and summary.json
    (units, the model's training sequences)."""

    videos: tuple[str, ...] = option(
        (),
        "Videos or frame folders (paths); each is written to results/endo/new/<name>/, <name> = its file "
        "or folder name without extension (unique).",
        items={"type": "string"},
    )
    stage: Literal["teacher", "student", "finetune"] = option("finetune", "The trained stage to run.")
    camera: str = option("", 'camera.yaml of the videos; "" = endoscopy.root\'s (the demo\'s on the demo).')
    stride: int = option(1, "Keep every stride-th frame.", minimum=1)
    max_frames: int = option(0, "At most this many frames (0 = all).", minimum=0)
    fps: float = option(0.0, "Keep about this many frames per second (0 = stride decides).", minimum=0)
    scale: float = option(
        0.0,
        "Depth units per network unit (a known scale); 0 = relative depth, each frame's median 1 (the "
        "network's depth has no scale of its own without SfM).",
        minimum=0,
    )


@dataclass(frozen=True, kw_only=True)
class EndoConfig:
    """Endoscopy branch: monocular video + a CT surface."""

    root: str = option(
        "",
        "Folder with the endoscopy inputs: <seq>.mp4 (or <seq>/ folders of frames), camera.yaml "
        "(K + distortion) and ct_surface.ply (mm); or patient folders <patient>/<seq>.mp4 with "
        '<patient>/ct_surface.ply (docs/endoscopy.md). "" = the demo sequences that make_demo_endoscopy '
        "generates.",
    )
    format: Literal["video", "liu"] = option(
        "video",
        "video = <seq>.<video> files (or <seq>/ frame folders) and camera.yaml, which go through "
        "extract_frames and run_sfm; liu = <seq>/ folders already in the endoscopy reference's format "
        "(undistorted <index:08d>.jpg frames, motion.yaml, structure.ply, view_indexes_per_point, "
        "visible_view_indexes, selected_indexes, camera_intrinsics_per_view, undistorted_mask.bmp), which "
        "enter at prepare_sfm_data.",
    )
    sequences: tuple[str, ...] = option(
        (),
        "Sequences to process (names without extension); [] = every <seq>.<video> and <seq>/ folder found in "
        "root when the workflow starts.",
        items={"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
    )
    frames: ExtractOptions = option(factory=ExtractOptions, doc=ExtractOptions.__doc__)
    sfm: SfMOptions = option(factory=SfMOptions, doc=SfMOptions.__doc__)
    sfm_data: SfMDataOptions = option(factory=SfMDataOptions, doc=SfMDataOptions.__doc__)
    train: EndoTrain = option(factory=EndoTrain, doc=EndoTrain.__doc__)
    split: EndoSplit = option(factory=EndoSplit, doc=EndoSplit.__doc__)
    ct_surface: str = option(
        "",
        "CT surface of the cavity of the sequences directly in root: a triangle-mesh PLY in millimetres "
        '(vertex + face elements); "" = <root>/ct_surface.ply.',
    )
    ct_surfaces: dict[str, str] = option(
        factory=dict,
        doc="CT surface per patient, {patient: PLY path}; a patient not named here uses "
        "<root>/<patient>/ct_surface.ply. A sequence whose patient has no CT gets depth metrics and no "
        "registration (a warning).",
    )
    point_clouds: PointCloudOptions = option(factory=PointCloudOptions, doc=PointCloudOptions.__doc__)
    register: RegisterOptions = option(factory=RegisterOptions, doc=RegisterOptions.__doc__)
    evaluate: EndoEvalOptions = option(factory=EndoEvalOptions, doc=EndoEvalOptions.__doc__)
    predict: EndoPredictOptions = option(factory=EndoPredictOptions, doc=EndoPredictOptions.__doc__)


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """The embedded demo data, generated by the workflow when a branch's root is empty."""

    kitti: KittiDemoConfig = option(factory=KittiDemoConfig, doc=KittiDemoConfig.__doc__)
    endoscopy: EndoDemoConfig = option(factory=EndoDemoConfig, doc=EndoDemoConfig.__doc__)


@dataclass(frozen=True, kw_only=True)
class ReportOptions:
    """Figures of the Snakemake report (rules/report.smk; built by `all`, seconds each). Afterwards
    `snakemake --report report.html` collects them with the evaluation tables into one page."""

    endoscopy: bool = option(
        True,
        "Add the endoscopy figures: SfM summary, training curves, depth maps and (when "
        "results/endo_eval.csv is a target) residual histograms, clouds on the CT and the "
        "evaluation bars.",
    )
    frames: int = option(
        4,
        "Frames per depth figure (evenly spread over the test split / the sequence).",
        minimum=1,
        maximum=16,
    )
    curves_smooth: int = option(
        1, "Training curves: trailing mean over this many logged steps (1 = raw).", minimum=1
    )
    residual_bins: int = option(50, "Bins of the registration residual histograms.", minimum=5, maximum=500)
    residual_max_mm: float = option(
        5.0,
        "Top of the residual colour scale of the clouds on the CT (mm), the same in every stage's "
        "and sequence's figure so that they compare; points farther from the CT surface take its colour.",
        exclusiveMinimum=0,
    )


@dataclass(frozen=True, kw_only=True)
class WorkflowConfig:
    """The self-supervised depth workflow's configuration (config.yaml and --configfile files)."""

    seed: int = option(
        2026,
        "Seed of everything random (demo scenes, noise, splits, training unless train_seed). The same config "
        "gives the same numbers on the same machine type.",
        minimum=0,
    )
    train_seed: int | None = option(
        None,
        "Seed of the training stages only (network initialisation, batches, augmentation, the "
        "masked stage's control); null = seed. Train again on the same data and splits (the demo "
        "is rendered from seed) to see how much a result depends on the initialisation.",
        minimum=0,
    )
    kitti: KittiConfig = option(factory=KittiConfig, doc=KittiConfig.__doc__)
    endoscopy: EndoConfig = option(factory=EndoConfig, doc=EndoConfig.__doc__)
    demo: DemoConfig = option(factory=DemoConfig, doc=DemoConfig.__doc__)
    report: ReportOptions = option(factory=ReportOptions, doc=ReportOptions.__doc__)
