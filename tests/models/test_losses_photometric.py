"""models.losses.photometric and smoothness: exact values against numpy transcriptions of the
formulas (seed_methods §6.4.3, §6.6), masks of the min reprojection, gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from models.losses import edge_aware_smoothness, min_reprojection_loss, photometric_error, ssim_loss_map


def ssim_numpy(x: np.ndarray, y: np.ndarray, win: int) -> np.ndarray:
    """Per-pixel SSIM loss of (C, H, W) arrays, loops over windows of the reflect-padded images."""
    p = win // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), mode="reflect")
    yp = np.pad(y, ((0, 0), (p, p), (p, p)), mode="reflect")
    out = np.zeros_like(x)
    c1, c2 = 0.01**2, 0.03**2
    for c in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(x.shape[2]):
                a, b = xp[c, i:i + win, j:j + win], yp[c, i:i + win, j:j + win]
                mx, my = a.mean(), b.mean()
                vx, vy, cxy = (a * a).mean() - mx**2, (b * b).mean() - my**2, (a * b).mean() - mx * my
                s = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
                out[c, i, j] = np.clip((1 - s) / 2, 0, 1)
    return out


@pytest.mark.parametrize("window", [3, 7])
def test_ssim_exact_values(window):
    rng = np.random.default_rng(window)
    x, y = rng.random((2, 2, 8, 9)), rng.random((2, 2, 8, 9))
    got = ssim_loss_map(torch.from_numpy(x), torch.from_numpy(y), window).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], ssim_numpy(x[b], y[b], window), rtol=1e-10, atol=1e-12)


def test_ssim_of_identical_images_is_zero_and_window_checked():
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    assert ssim_loss_map(x, x).abs().max() < 1e-12
    with pytest.raises(ValueError, match="odd"):
        ssim_loss_map(x, x, 4)


def test_photometric_error_formula():
    rng = np.random.default_rng(3)
    pred, target = rng.random((1, 3, 7, 8)), rng.random((1, 3, 7, 8)) * 1.6 - 0.3
    got = photometric_error(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    expected = 0.85 * ssim_numpy(pred[0], target[0], 3).mean(0) + 0.15 * np.abs(pred[0] - target[0]).mean(0)
    np.testing.assert_allclose(got[0, 0], expected, rtol=1e-10)
    sc = photometric_error(torch.from_numpy(pred), torch.from_numpy(target), ssim_window=7, clamp_l1=True)
    clamped = np.clip(np.abs(pred[0] - target[0]), 0, 1)
    expected = 0.85 * ssim_numpy(pred[0], target[0], 7).mean(0) + 0.15 * clamped.mean(0)
    sc = sc.numpy()
    np.testing.assert_allclose(sc[0, 0], expected, rtol=1e-10)
    l1 = photometric_error(torch.from_numpy(pred), torch.from_numpy(target), alpha=0.0).numpy()
    np.testing.assert_allclose(l1[0, 0], np.abs(pred[0] - target[0]).mean(0))


def test_min_reprojection_with_automask():
    # 1 x 4 pixels, 2 source frames
    reproj = torch.tensor([[0.5, 0.2, 0.9, 0.3], [0.4, 0.6, 0.8, 0.1]]).view(1, 2, 1, 4)
    ident = torch.tensor([[0.1, 0.7, 0.85, 0.5], [0.6, 0.7, 0.95, 0.5]]).view(1, 2, 1, 4)
    out = min_reprojection_loss(reproj, ident, noise_std=0.0)
    assert out.per_pixel.flatten().tolist() == pytest.approx([0.1, 0.2, 0.8, 0.1])
    assert out.automask.flatten().tolist() == [False, True, True, True]
    assert float(out.loss) == pytest.approx(np.mean([0.1, 0.2, 0.8, 0.1]))
    plain = min_reprojection_loss(reproj, None)
    assert plain.per_pixel.flatten().tolist() == pytest.approx([0.4, 0.2, 0.8, 0.1]) and plain.automask.all()
    avg = min_reprojection_loss(reproj, ident, average=True, noise_std=0.0)
    assert avg.per_pixel.flatten().tolist() == pytest.approx([0.35, 0.4, 0.85, 0.2])


def test_tie_noise_is_tiny_and_reproducible():
    reproj = torch.full((1, 1, 8, 8), 0.3)
    a = min_reprojection_loss(reproj, reproj.clone(), generator=torch.Generator().manual_seed(1))
    b = min_reprojection_loss(reproj, reproj.clone(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.automask, b.automask) and 0 < a.automask.float().mean() < 1
    assert (a.per_pixel - 0.3).abs().max() < 1e-4


def test_edge_aware_smoothness_formula():
    rng = np.random.default_rng(5)
    disp, img = rng.random((1, 1, 5, 6)) + 0.1, rng.random((1, 3, 5, 6))
    d = disp / (disp.mean() + 1e-7)
    gx = np.abs(np.diff(d, axis=3)) * np.exp(-np.abs(np.diff(img, axis=3)).mean(1, keepdims=True))
    gy = np.abs(np.diff(d, axis=2)) * np.exp(-np.abs(np.diff(img, axis=2)).mean(1, keepdims=True))
    got = edge_aware_smoothness(torch.from_numpy(disp), torch.from_numpy(img))
    assert float(got) == pytest.approx(gx.mean() + gy.mean(), rel=1e-12)
    # a constant disparity is perfectly smooth, and scaling it changes nothing when normalised
    assert float(edge_aware_smoothness(torch.ones(1, 1, 4, 4), torch.rand(1, 3, 4, 4))) == 0
    t = torch.from_numpy(disp)
    assert float(edge_aware_smoothness(5 * t, torch.from_numpy(img))) == pytest.approx(float(got))


def test_gradcheck():
    x = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b: ssim_loss_map(a, b, 3), (x, y))
    assert gradcheck(lambda a, b: photometric_error(a, b, ssim_window=7), (x, y))
    d = (torch.rand(1, 1, 5, 6, dtype=torch.float64) + 0.5).requires_grad_()
    assert gradcheck(lambda a: edge_aware_smoothness(a, x.detach()), (d,))
