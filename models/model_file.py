"""The saved model format ``model.pt`` of a training stage, shared by both branches::

    {"nets": {"depth": state_dict[, "pose": state_dict]},
     "meta": {"branch", "stage", "network": {NetworkSpec fields}, "height", "width", "steps",
              "pose": {"layers", "rotation"} (with a pose network), ...}}

written atomically by :func:`save_model` and read with ``torch.load(weights_only=True)`` by
:func:`load_model`, which rebuilds the network from ``meta["network"]``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from models.networks.spec import NetworkSpec, build_pose_net
from models.training.engine import save_atomic

__all__ = ["save_model", "load_model", "read_model_meta"]


def save_model(nets: nn.ModuleDict, path: str | Path, *, branch: str, stage: str, network: NetworkSpec,
               size: tuple[int, int], steps: int, **meta) -> None:
    """Write ``model.pt`` (atomically) for prediction and for the next stage.

    Args:
        nets: the trained networks ("depth", optionally "pose"), on the CPU.
        size: (height, width) the depth network was trained at (pixels).
        meta: further JSON-able facts (depth range, depth kind, pose network, training inputs).
    """
    h, w = size
    info = {"branch": branch, "stage": stage, "network": asdict(network), "height": h, "width": w,
            "steps": steps, **meta}
    save_atomic({"nets": {k: v.state_dict() for k, v in nets.items()}, "meta": info}, Path(path))


def read_model_meta(path: str | Path) -> dict:
    """The metadata of a saved model, without building its networks (no random draws)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found (run the training stage that writes it)")
    return torch.load(path, map_location="cpu", weights_only=True)["meta"]


def load_model(path: str | Path, net: str = "depth") -> tuple[nn.Module, dict]:
    """Rebuild a saved network ("depth" or "pose"; eval mode, CPU) and return it with the
    model's metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found (run the training stage that writes it)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    meta = state["meta"]
    if net == "depth":
        model = NetworkSpec(**{**meta["network"], "weights": None}).build()
    else:
        pose = meta.get("pose") or {}
        model = build_pose_net(pose.get("layers", 18), pose.get("rotation", "axis_angle"))
    model.load_state_dict(state["nets"][net])
    return model.eval(), meta
