"""The strongest convention check: warping one demo frame into another with the generator's exact
depth and pose reproduces the target image (KITTI temporal and 0.54 m stereo pairs, endoscopy).

Errors are mean absolute RGB differences over co-visible pixels (target depth valid, the point in
front of and inside the source camera, and the source's own depth agreeing within 1 %). The KITTI
demo adds Gaussian noise of ``image_noise`` 8-bit levels to every image, so two perfectly aligned
views differ by ``2 sigma / sqrt(pi)`` on average: the noise floor. Run ``pytest -s`` to see the
numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import geometry as G
from models.losses import depth_consistency_loss, photometric_error, sc_pairwise_terms, sparse_flow_loss

DEG = math.pi / 180


def _perturb(T: torch.Tensor, yaw_deg: float = 0.0, dz: float = 0.0) -> torch.Tensor:
    out = T.clone()
    rot = G.axis_angle_to_matrix(torch.tensor([[0.0, yaw_deg * DEG, 0.0]], dtype=T.dtype))
    out[:, :3, :3] = rot @ T[:, :3, :3]
    out[:, 2, 3] += dz
    return out


def _covisible(w: G.Warp, depth_tgt: torch.Tensor, depth_src: torch.Tensor) -> torch.Tensor:
    z_src = G.sample(depth_src, w.pixels, padding_mode="zeros")
    return w.valid & (depth_tgt > 0) & (z_src > 0) & ((w.depth - z_src).abs() < 0.01 * w.depth)


def _l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(mean, median) over ``mask`` of the per-pixel mean absolute RGB difference."""
    e = (a - b).abs().mean(1, keepdim=True)[mask]
    return float(e.mean()), float(e.median())


@pytest.fixture(scope="module")
def noise_floor(kitti_demo_small) -> float:
    return 2 * kitti_demo_small["config"].image_noise / 255 / math.sqrt(math.pi)


@pytest.mark.parametrize("pair", ["temporal", "stereo"])
def test_kitti_warp_reproduces_the_target(kitti_drive, noise_floor, pair):
    tgt = (2, 1)
    src = (2, 2) if pair == "temporal" else (3, 1)
    It, Is = kitti_drive.image(*tgt), kitti_drive.image(*src)
    Dt, Ds = kitti_drive.depth(*tgt), kitti_drive.depth(*src)
    K = torch.from_numpy(kitti_drive.rig.K(2, zero_based=True)).float()[None]
    T = kitti_drive.src_from_tgt(tgt, src)
    w = G.warp(Is, Dt, K, T)
    covis = _covisible(w, Dt, Ds)
    mean, median = _l1(w.image, It, covis)
    if pair == "temporal":
        wrong = {"yaw 0.5 deg": _perturb(T, yaw_deg=0.5), "20 cm forward": _perturb(T, dz=0.20)}
    else:
        baseline = kitti_drive.rig.baseline()
        assert baseline == pytest.approx(0.54, abs=1e-6)
        rig_T = torch.eye(4)[None]
        rig_T[0, 0, 3] = -baseline  # camera 3 is 0.54 m to the right of camera 2
        torch.testing.assert_close(T, rig_T, atol=1e-5, rtol=0)
        nominal = rig_T.clone()
        nominal[0, 0, 3] = -0.1  # monodepth2's nominal baseline, wrong for metric depth
        wrong = {"baseline 0.1 m": nominal, "yaw 0.5 deg": _perturb(T, yaw_deg=0.5)}
    errors = {k: _l1(G.warp(Is, Dt, K, v).image, It, covis)[0] for k, v in wrong.items()}
    pe = float(photometric_error(w.image, It)[covis].mean())
    print(f"\nKITTI {pair}: co-visible {float(covis.float().mean()):.1%}, "
          f"L1 mean {mean:.4f} median {median:.4f} "
          f"(noise floor {noise_floor:.4f}), 0.85 SSIM + 0.15 L1 {pe:.4f}; "
          + ", ".join(f"{k}: {v:.4f}" for k, v in errors.items()))
    assert covis.float().mean() > 0.6
    assert median < 1.5 * noise_floor and mean < 2.5 * noise_floor
    assert all(v > 3 * mean for v in errors.values())


def test_kitti_alignment_is_exact_to_a_fraction_of_a_pixel(kitti_drive):
    """Shifting the sampling positions by a quarter pixel in x or y only increases the error: no
    half-pixel offset hides in K, the pixel grid or grid_sample. The monodepth2 sampling quirk
    (normalising by W - 1 with align_corners=False) costs a measurable amount."""
    It, Is = kitti_drive.image(2, 1), kitti_drive.image(3, 1)
    Dt, Ds = kitti_drive.depth(2, 1), kitti_drive.depth(3, 1)
    K = torch.from_numpy(kitti_drive.rig.K(2, zero_based=True)).float()[None]
    w = G.warp(Is, Dt, K, kitti_drive.src_from_tgt((2, 1), (3, 1)))
    covis = _covisible(w, Dt, Ds)
    base = _l1(w.image, It, covis)[0]
    shifted = {}
    for axis, delta in [(0, -0.25), (0, 0.25), (1, -0.25), (1, 0.25)]:
        pix = w.pixels.clone()
        pix[:, axis] += delta
        shifted[f"{'uv'[axis]}{delta:+}"] = _l1(G.sample(Is, pix), It, covis)[0]
    quirk = _l1(G.sample(Is, w.pixels, "monodepth2"), It, covis)[0]
    print(f"\nKITTI stereo L1 {base:.4f}; quarter-pixel shifts: "
          + ", ".join(f"{k} {v:.4f}" for k, v in shifted.items()) + f"; monodepth2 sampling {quirk:.4f}")
    assert all(v > 1.1 * base for v in shifted.values())
    assert quirk > 1.1 * base


def test_kitti_downscaled_to_192x640(kitti_drive, noise_floor):
    """Area-downscaled frames with ``scale_intrinsics`` (0-based half-pixel rule) stay aligned."""
    hw = (192, 640)
    h0, w0 = kitti_drive.rig.image_size[2]
    K0 = torch.from_numpy(kitti_drive.rig.K(2, zero_based=True)).float()
    K = G.scale_intrinsics(K0, hw[1] / w0, hw[0] / h0)[None]
    for src in [(3, 1), (2, 2)]:
        It, Is = kitti_drive.image(2, 1, hw), kitti_drive.image(*src, hw)
        Dt, Ds = kitti_drive.depth(2, 1, hw), kitti_drive.depth(*src, hw)
        w = G.warp(Is, Dt, K, kitti_drive.src_from_tgt((2, 1), src))
        covis = _covisible(w, Dt, Ds)
        mean, median = _l1(w.image, It, covis)
        shifted = []
        for axis in (0, 1):
            pix = w.pixels.clone()
            pix[:, axis] += 0.25
            shifted.append(_l1(G.sample(Is, pix), It, covis)[0])
        print(f"\nKITTI 192x640 cam{src[0]} frame {src[1]}: L1 mean {mean:.4f} median {median:.4f}, "
              f"+0.25 px u {shifted[0]:.4f} v {shifted[1]:.4f}")
        assert covis.float().mean() > 0.6 and mean < 2.5 * noise_floor
        assert min(shifted) > 1.05 * mean


def test_sc_depth_geometry_consistency_of_exact_depth(kitti_drive):
    It, Is = kitti_drive.image(2, 1), kitti_drive.image(2, 2)
    Dt, Ds = kitti_drive.depth(2, 1), kitti_drive.depth(2, 2)
    K = torch.from_numpy(kitti_drive.rig.K(2, zero_based=True)).float()[None]
    T = kitti_drive.src_from_tgt((2, 1), (2, 2))
    sky = Dt <= 0
    Dt, Ds = Dt.masked_fill(sky, 1000.0), Ds.masked_fill(Ds <= 0, 1000.0)
    covis = _covisible(G.warp(Is, Dt, K, T), Dt, Ds) & ~sky
    good = sc_pairwise_terms(It, Is, Dt, Ds, K, T)
    bad = sc_pairwise_terms(It, Is, Dt, Ds, K, _perturb(T, dz=0.3))
    mask = covis & (good.valid > 0)
    g, b = float(good.depth_diff[mask].mean()), float(bad.depth_diff[mask].mean())
    print(f"\nSC-Depth D_diff on co-visible pixels: exact pose {g:.5f}, 30 cm off {b:.5f}")
    assert g < 2e-3 and b > 5 * g


# ------------------------------------------------------------------ endoscopy

def _local_contrast(x: torch.Tensor, k: int = 7) -> torch.Tensor:
    """Image divided by its k x k local mean: removes the smooth shading change of the light
    that travels with the endoscope (brightness ~ 1 / distance^2), keeps the texture."""
    mean = F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    return x / mean.clamp(min=1e-3)


def test_endoscopy_warp_reproduces_the_target(endo_pair):
    (It, Is), (Dt, Ds), K = endo_pair.images, endo_pair.depths, endo_pair.K
    T = endo_pair.cam2_from_cam1()
    w = G.warp(Is, Dt, K, T)
    covis = _covisible(w, Dt, Ds)
    raw = _l1(w.image, It, covis)[0]
    nrm = _l1(_local_contrast(w.image), _local_contrast(It), covis)[0]
    wrong = {"yaw 1 deg": _perturb(T, yaw_deg=1.0), "no translation": G.pose_vec_to_mat(
        G.matrix_to_axis_angle(T[:, :3, :3]), torch.zeros(1, 3, dtype=T.dtype)), "unwarped": None}
    target = _local_contrast(It)
    errors = {k: _l1(_local_contrast(Is if v is None else G.warp(Is, Dt, K, v).image), target, covis)[0]
              for k, v in wrong.items()}
    shifted = []
    for axis in (0, 1):
        pix = w.pixels.clone()
        pix[:, axis] += 0.25
        shifted.append(_l1(_local_contrast(G.sample(Is, pix)), _local_contrast(It), covis)[0])
    print(f"\nendoscopy (0.92 mm apart): co-visible {float(covis.double().mean()):.1%}, raw L1 {raw:.4f} "
          f"(lighting moves with the scope), local-contrast L1 {nrm:.4f}; "
          + ", ".join(f"{k}: {v:.4f}" for k, v in errors.items())
          + f"; +0.25 px u {shifted[0]:.4f} v {shifted[1]:.4f}")
    assert covis.double().mean() > 0.6 and nrm < 0.012
    assert all(v > 5 * nrm for v in errors.values())
    assert min(shifted) > 1.2 * nrm


def test_endoscopy_losses_vanish_for_exact_depth_and_pose(endo_pair):
    (Dt, Ds), K = endo_pair.depths, endo_pair.K
    T = endo_pair.cam2_from_cam1()
    h, w = Dt.shape[-2:]
    # sparse "SfM" points: every 7th co-visible pixel of frame 1, projected with numpy through the world
    covis = _covisible(G.warp(endo_pair.images[1], Dt, K, T), Dt, Ds)[0, 0].numpy()
    v, u = np.nonzero(covis)
    v, u = v[::7], u[::7]
    Kn = K[0].numpy()
    rays = np.linalg.inv(Kn) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
    X1 = rays * Dt[0, 0].numpy()[v, u]
    world = np.linalg.inv(endo_pair.cam_from_world[0]) @ np.vstack([X1, np.ones_like(u)])
    X2 = (endo_pair.cam_from_world[1] @ world)[:3]
    uv2 = (Kn @ X2)[:2] / X2[2]
    flow = torch.zeros(1, 2, h, w, dtype=torch.float64)
    mask = torch.zeros(1, 1, h, w, dtype=torch.float64)
    flow[0, 0, v, u] = torch.from_numpy((uv2[0] - u) / w)
    flow[0, 1, v, u] = torch.from_numpy((uv2[1] - v) / h)
    mask[0, 0, v, u] = 1
    sparse_depth = Dt * mask
    good = float(sparse_flow_loss(flow, G.flow_from_depth(Dt, K, T), mask))
    bad = float(sparse_flow_loss(flow, G.flow_from_depth(Dt, K, _perturb(T, yaw_deg=1.0)), mask))
    scaled, spread = G.scale_to_sparse_depth(Dt / 3.7, sparse_depth, mask)
    boundary = torch.ones_like(Dt)
    d21, inter = G.warp_depth_endoscopy(Dt, Ds, boundary, K, T)
    cv = inter * torch.from_numpy(covis)[None, None].double()
    dc_good = float(depth_consistency_loss(Dt, d21, cv, K))
    d21_bad, _ = G.warp_depth_endoscopy(Dt, Ds, boundary, K, _perturb(T, dz=0.3))
    dc_bad = float(depth_consistency_loss(Dt, d21_bad, cv, K))
    print(f"\nendoscopy sparse-flow loss: exact {good:.2e}, yaw 1 deg {bad:.2e}; depth consistency: exact "
          f"{dc_good:.2e}, 0.3 mm off {dc_bad:.2e}; scale layer spread {float(spread):.1e}")
    assert int(mask.sum()) > 500 and good < 1e-9 and bad > 1e-3
    torch.testing.assert_close(scaled, Dt)
    assert dc_good < 2e-3 and dc_bad > 5 * dc_good
