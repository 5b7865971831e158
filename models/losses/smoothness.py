"""Edge-aware smoothness (monodepth2 §6.4.3; SC-Depth applies it to depth, §6.6)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["edge_aware_smoothness"]


def edge_aware_smoothness(disp: Tensor, image: Tensor, normalise: bool = True) -> Tensor:
    """``mean(|dx d| exp(-mean_c |dx I|)) + mean(|dy d| exp(-mean_c |dy I|))`` (scalar).

    Args:
        disp: (B, 1, H, W) disparity (or SC-Depth's depth), at the resolution of ``image``.
        image: (B, C, H, W) colour image of the same size.
        normalise: divide ``disp`` by its per-image mean + 1e-7 first (monodepth2, SC-Depth).
    """
    if disp.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"disp {tuple(disp.shape)} and image {tuple(image.shape)} must share H, W")
    if normalise:
        disp = disp / (disp.mean(2, True).mean(3, True) + 1e-7)
    gdx = (disp[:, :, :, :-1] - disp[:, :, :, 1:]).abs()
    gdy = (disp[:, :, :-1, :] - disp[:, :, 1:, :]).abs()
    gix = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    giy = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (gdx * (-gix).exp()).mean() + (gdy * (-giy).exp()).mean()
