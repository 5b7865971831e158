"""Line-by-line ports of the reference implementations, for tests and bench/ only.

These restate monodepth2's ``kitti_utils.generate_depth_map`` (MD2@b676244), Depth Hints'
``precompute_depth_hints.py`` fusion (DH@aa2ecf7, with monodepth2's ``layers.SSIM``,
``BackprojectDepth`` and ``Project3D``) and SC-Depth's ``generate_valid_frame_index.py``
(SC@bf45d4d) as closely as their current library versions allow (``np.int`` -> ``int``,
explicit ``align_corners=False`` = the torch >= 1.3 default the reference ran with). They are
slow on purpose (Python loops where the reference has them) and are never used by the workflow.
See seed_methods.md §3, §4.1, §5.1.
"""

from __future__ import annotations

import os
from collections import Counter

import cv2
import numpy as np


# ---------------------------------------------------------------- monodepth2 kitti_utils.py
def md2_read_calib_file(path):
    float_chars = set("0123456789.e+- ")
    data = {}
    with open(path) as f:
        for line in f.readlines():
            key, value = line.split(":", 1)
            value = value.strip()
            data[key] = value
            if float_chars.issuperset(value):
                try:
                    data[key] = np.array(list(map(float, value.split(" "))))
                except ValueError:
                    pass
    return data


def md2_load_velodyne_points(filename):
    points = np.fromfile(filename, dtype=np.float32).reshape(-1, 4)
    points[:, 3] = 1.0
    return points


def md2_sub2ind(matrixSize, rowSub, colSub):  # noqa: N803 - the reference's names
    m, n = matrixSize
    return rowSub * (n - 1) + colSub - 1


def md2_generate_depth_map(calib_dir, velo_filename, cam=2, vel_depth=False):
    cam2cam = md2_read_calib_file(os.path.join(calib_dir, "calib_cam_to_cam.txt"))
    velo2cam = md2_read_calib_file(os.path.join(calib_dir, "calib_velo_to_cam.txt"))
    velo2cam = np.hstack((velo2cam["R"].reshape(3, 3), velo2cam["T"][..., np.newaxis]))
    velo2cam = np.vstack((velo2cam, np.array([0, 0, 0, 1.0])))
    im_shape = cam2cam["S_rect_02"][::-1].astype(np.int32)
    R_cam2rect = np.eye(4)
    R_cam2rect[:3, :3] = cam2cam["R_rect_00"].reshape(3, 3)
    P_rect = cam2cam["P_rect_0" + str(cam)].reshape(3, 4)
    P_velo2im = np.dot(np.dot(P_rect, R_cam2rect), velo2cam)
    velo = md2_load_velodyne_points(velo_filename)
    velo = velo[velo[:, 0] >= 0, :]
    velo_pts_im = np.dot(P_velo2im, velo.T).T
    with np.errstate(divide="ignore", invalid="ignore"):
        velo_pts_im[:, :2] = velo_pts_im[:, :2] / velo_pts_im[:, 2][..., np.newaxis]
    if vel_depth:
        velo_pts_im[:, 2] = velo[:, 0]
    velo_pts_im[:, 0] = np.round(velo_pts_im[:, 0]) - 1
    velo_pts_im[:, 1] = np.round(velo_pts_im[:, 1]) - 1
    val_inds = (velo_pts_im[:, 0] >= 0) & (velo_pts_im[:, 1] >= 0)
    val_inds = val_inds & (velo_pts_im[:, 0] < im_shape[1]) & (velo_pts_im[:, 1] < im_shape[0])
    velo_pts_im = velo_pts_im[val_inds, :]
    depth = np.zeros(im_shape[:2])
    depth[velo_pts_im[:, 1].astype(int), velo_pts_im[:, 0].astype(int)] = velo_pts_im[:, 2]
    inds = md2_sub2ind(depth.shape, velo_pts_im[:, 1], velo_pts_im[:, 0])
    dupe_inds = [item for item, count in Counter(inds).items() if count > 1]
    for dd in dupe_inds:
        pts = np.where(inds == dd)[0]
        x_loc = int(velo_pts_im[pts[0], 0])
        y_loc = int(velo_pts_im[pts[0], 1])
        depth[y_loc, x_loc] = velo_pts_im[pts, 2].min()
    depth[depth < 0] = 0
    return depth


# ---------------------------------------------------------------- Depth Hints fusion (torch)
def dh_fuse(base_image, lookup_image, disps, side, height, width):
    """Depth Hints' fusion of 12 SGBM disparities for one image, as precompute_depth_hints.py
    runs it (torch, CPU): ``base_image``/``lookup_image`` (H, W, 3) uint8 at (height, width),
    ``disps`` (12, H, W) float (already flipped back for the right side), ``side`` 'l' or 'r'.
    Returns the saved array, (1, H, W) float32."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class SSIM(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu_x_pool = nn.AvgPool2d(3, 1)
            self.mu_y_pool = nn.AvgPool2d(3, 1)
            self.sig_x_pool = nn.AvgPool2d(3, 1)
            self.sig_y_pool = nn.AvgPool2d(3, 1)
            self.sig_xy_pool = nn.AvgPool2d(3, 1)
            self.refl = nn.ReflectionPad2d(1)
            self.C1 = 0.01 ** 2
            self.C2 = 0.03 ** 2

        def forward(self, x, y):
            x = self.refl(x)
            y = self.refl(y)
            mu_x = self.mu_x_pool(x)
            mu_y = self.mu_y_pool(y)
            sigma_x = self.sig_x_pool(x ** 2) - mu_x ** 2
            sigma_y = self.sig_y_pool(y ** 2) - mu_y ** 2
            sigma_xy = self.sig_xy_pool(x * y) - mu_x * mu_y
            SSIM_n = (2 * mu_x * mu_y + self.C1) * (2 * sigma_xy + self.C2)
            SSIM_d = (mu_x ** 2 + mu_y ** 2 + self.C1) * (sigma_x + sigma_y + self.C2)
            return torch.clamp((1 - SSIM_n / SSIM_d) / 2, 0, 1)

    class BackprojectDepth(nn.Module):
        def __init__(self, batch_size, height, width):
            super().__init__()
            self.batch_size, self.height, self.width = batch_size, height, width
            meshgrid = np.meshgrid(range(self.width), range(self.height), indexing="xy")
            self.id_coords = np.stack(meshgrid, axis=0).astype(np.float32)
            self.id_coords = nn.Parameter(torch.from_numpy(self.id_coords), requires_grad=False)
            self.ones = nn.Parameter(torch.ones(self.batch_size, 1, self.height * self.width), requires_grad=False)
            self.pix_coords = torch.unsqueeze(torch.stack(
                [self.id_coords[0].view(-1), self.id_coords[1].view(-1)], 0), 0)
            self.pix_coords = self.pix_coords.repeat(batch_size, 1, 1)
            self.pix_coords = nn.Parameter(torch.cat([self.pix_coords, self.ones], 1), requires_grad=False)

        def forward(self, depth, inv_K):
            cam_points = torch.matmul(inv_K[:, :3, :3], self.pix_coords)
            cam_points = depth.view(self.batch_size, 1, -1) * cam_points
            return torch.cat([cam_points, self.ones], 1)

    class Project3D(nn.Module):
        def __init__(self, batch_size, height, width, eps=1e-7):
            super().__init__()
            self.batch_size, self.height, self.width, self.eps = batch_size, height, width, eps

        def forward(self, points, K, T):
            P = torch.matmul(K, T)[:, :3, :]
            cam_points = torch.matmul(P, points)
            pix_coords = cam_points[:, :2, :] / (cam_points[:, 2, :].unsqueeze(1) + self.eps)
            pix_coords = pix_coords.view(self.batch_size, 2, self.height, self.width)
            pix_coords = pix_coords.permute(0, 2, 3, 1)
            pix_coords[..., 0] /= self.width - 1
            pix_coords[..., 1] /= self.height - 1
            return (pix_coords - 0.5) * 2

    base_image, lookup_image = np.array(base_image), np.array(lookup_image)  # writable for torch
    n = len(disps)
    K = np.array([[0.58, 0, 0.5, 0], [0, 1.92, 0.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    K[0] *= width
    K[1] *= height
    invK = np.linalg.pinv(K)
    K = torch.from_numpy(K).unsqueeze(0).expand(n, -1, -1).float()
    invK = torch.from_numpy(invK).unsqueeze(0).expand(n, -1, -1).float()
    baseline = 0.1
    T = torch.eye(4).unsqueeze(0).float()
    T[0, 0, 3] = (-1 if side == "l" else 1) * baseline
    disps = torch.from_numpy(np.asarray(disps)).float()
    depths = K[0, 0, 0] * baseline / (disps + 1e-7) * (disps > 0).float()
    base = torch.from_numpy(base_image).permute(2, 0, 1).float().unsqueeze(0).expand(n, -1, -1, -1) / 255
    lookup = torch.from_numpy(lookup_image).permute(2, 0, 1).float().unsqueeze(0).expand(n, -1, -1, -1) / 255
    cam_to_world = BackprojectDepth(n, height, width)
    world_to_cam = Project3D(n, height, width)
    world_points = cam_to_world(depths, invK)
    cam_pix = world_to_cam(world_points, K, T)
    sample = F.grid_sample(lookup, cam_pix, padding_mode="border", align_corners=False)
    ssim = SSIM()
    l1_loss = torch.abs(base - sample).mean(1, True)
    losses = 0.85 * ssim(sample, base).mean(1, True) + 0.15 * l1_loss
    best_index = torch.argmin(losses, dim=0)
    return torch.gather(depths, dim=0, index=best_index).numpy()


# ---------------------------------------------------------------- SC-Depth frame selection
def sc_compute_movement_ratio(frame1, frame2):
    frame1_gray = cv2.cvtColor(frame1, cv2.COLOR_BGR2GRAY)
    frame2_gray = cv2.cvtColor(frame2, cv2.COLOR_BGR2GRAY)
    h, w = frame1_gray.shape
    diff = np.abs(frame1_gray - frame2_gray)
    ratio = (diff > 10).sum() / (h * w)
    return ratio


def sc_generate_index(images):
    """``images``: sorted image paths of one scene."""
    index = [0]
    for idx in range(1, len(images)):
        frame1 = cv2.imread(str(images[index[-1]]))
        frame2 = cv2.imread(str(images[idx]))
        move_ratio = sc_compute_movement_ratio(frame1, frame2)
        if move_ratio < 0.5:
            continue
        index.append(idx)
    return index
