"""Stage configuration shared by both branches, and the saved model format.

A stage is described by :class:`StageConfig` (built from the rule's params: the preset's
resolution / batch / length plus the stage's own section of config.yaml). The trained depth
network is saved as ``model.pt``::

    {"nets": {"depth": state_dict[, "pose": state_dict]},
     "meta": {"branch", "stage", "network": {...}, "height", "width", "min_depth",
              "max_depth", "depth_kind", "steps"}}

and loaded with ``torch.load(weights_only=True)`` by :func:`load_model`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.networks import DepthNet, PoseNet, UNet, fc_densenet57
from models.training.engine import Schedule, save_atomic


@dataclass(frozen=True)
class NetworkSpec:
    """Which depth network: "resnet" (encoder_layers + decoder, see DepthNet), "unet" (the
    endoscopy teacher) or "fc_densenet57" (the endoscopy student).

    ``width`` scales the channels of the endoscopy networks, keeping their layout (1 = the
    reference's; 0.5 = UNet filters 4 ... 256 and FC-DenseNet growth 6, first conv 24; for the
    UNet a power of two). ``init`` of the FC-DenseNet: "kaiming" (the reference's Kaiming-normal
    initialisation) or "default" (PyTorch's, whose smaller outputs a short distillation fits far
    sooner)."""

    kind: str = "resnet"
    encoder_layers: int = 18
    decoder: str = "monodepth2"
    weights: str | None = None  # optional local torchvision-layout ImageNet file
    width: float = 1.0
    init: str = "kaiming"

    def build(self) -> nn.Module:
        if self.kind == "resnet":
            return DepthNet(self.encoder_layers, self.decoder, weights_path=self.weights or None)
        if self.kind == "unet":
            wf = 3 + math.log2(self.width)
            if wf != round(wf) or wf < 0:
                raise ValueError(f"unet width must be a power of two >= 1/8, got {self.width}")
            return UNet(wf=round(wf))
        if self.kind == "fc_densenet57":
            return fc_densenet57(width=self.width, kaiming=self.init == "kaiming")
        raise ValueError(f"unknown network kind {self.kind!r}: resnet, unet or fc_densenet57")


@dataclass(frozen=True)
class StageConfig:
    """Everything a training stage needs, as plain values.

    Attributes:
        branch, stage: e.g. ("kitti", "teacher").
        size: training resolution (height, width), multiples of 32, each at least 64.
        batch_size, workers: loader settings.
        length, unit: training length in "steps" or "epochs" (of the training split).
        lr, lr_step: learning rate; multiplied by 0.1 after ``lr_step`` units (0 = never).
        network: the depth network.
        options: stage-specific loss options (see the branch's objectives).
    """

    branch: str
    stage: str
    size: tuple[int, int]
    batch_size: int
    length: int
    unit: str = "steps"
    lr: float = 1e-4
    lr_step: int = 0
    workers: int = 0
    checkpoint_every: int = 50
    network: NetworkSpec = field(default_factory=NetworkSpec)
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = self.size
        if h % 32 or w % 32 or min(h, w) < 64:
            raise ValueError(f"{self.branch}.{self.stage}: training size {self.size} must be multiples of 32 "
                             "and at least 64 (the encoder's 1/32 bottleneck needs 2 pixels for its padding)")
        if self.unit not in ("steps", "epochs"):
            raise ValueError(f"unit must be 'steps' or 'epochs', got {self.unit!r}")

    @classmethod
    def from_params(cls, branch: str, stage: str, preset: dict, section: dict) -> StageConfig:
        """Build from the rule params: ``preset`` (size, batch_size, workers, unit, length
        per stage, lr_step per stage) and the stage's ``section`` (lr, network, options)."""
        section = dict(section)
        network = NetworkSpec(**section.pop("network", {}))
        lr = section.pop("lr", 1e-4)
        return cls(branch=branch, stage=stage, size=tuple(preset["size"]), batch_size=preset["batch_size"],
                   length=preset["length"][stage], unit=preset["unit"], lr=lr,
                   lr_step=preset.get("lr_step", {}).get(stage, 0), workers=preset.get("workers", 0),
                   checkpoint_every=preset.get("checkpoint_every", 50), network=network, options=section)

    def schedule(self, n_items: int, optimizer: str = "adam", **extra) -> Schedule:
        """Steps and learning-rate milestones, converting epochs of ``n_items`` items."""
        per_unit = math.ceil(n_items / self.batch_size) if self.unit == "epochs" else 1
        steps = self.length * per_unit
        milestones = (self.lr_step * per_unit,) if self.lr_step else ()
        return Schedule(steps=steps, batch_size=self.batch_size, lr=self.lr, optimizer=optimizer,
                        lr_milestones=milestones, checkpoint_every=min(self.checkpoint_every * per_unit, steps),
                        log_every=max(1, min(10, steps // 20)), workers=self.workers, **extra)

    def as_dict(self) -> dict:
        return asdict(self)


def build_pose_net(options: dict) -> PoseNet:
    return PoseNet(options.get("pose_layers", 18), rotation=options.get("pose_rotation", "axis_angle"))


def save_model(nets: nn.ModuleDict, path: str | Path, cfg: StageConfig, steps: int, **meta) -> None:
    """Write ``model.pt`` (atomically) for prediction and for the next stage."""
    h, w = cfg.size
    info = {"branch": cfg.branch, "stage": cfg.stage, "network": asdict(cfg.network), "height": h,
            "width": w, "steps": steps, **meta}
    save_atomic({"nets": {k: v.state_dict() for k, v in nets.items()}, "meta": info}, Path(path))


def load_model(path: str | Path, net: str = "depth") -> tuple[nn.Module, dict]:
    """Rebuild a saved network (eval mode, CPU) and return it with the model's metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found (run the training stage that writes it)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = state["meta"]
    if net == "depth":
        spec = NetworkSpec(**{**meta["network"], "weights": None})
        model = spec.build()
    else:
        model = build_pose_net(meta.get("options", {}))
    model.load_state_dict(state["nets"][net])
    return model.eval(), meta
