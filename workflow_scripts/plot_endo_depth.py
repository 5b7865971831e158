"""Rule plot_endo_depth: a stage's depth maps of one sequence below the frames as the network
sees them (downsampled and cropped as in sfm_data.npz), with the SfM sparse points of each view
on the map (coloured by their depth on the map's scale), one colour scale for all frames."""

import logging
from pathlib import Path

import cv2
import numpy as np

from workflow_scripts.endo.sfm_data import load_network_image
from workflow_scripts.report.depth import read_rgb, select_frames
from workflow_scripts.report.endo_depth import SPARSE_KEYS, endo_depth_figure, sparse_points_of
from workflow_scripts.report.figure import save_png
from workflow_scripts.util import InputDataError

log = logging.getLogger("plot_endo_depth")

DEPTH_KEYS = ("depth", "frame_indexes", "mask")


def read_depth_npz(path: Path) -> dict:
    """depth (N, H, W) float32, frame_indexes (N,), mask (H, W) of a prediction file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in DEPTH_KEYS if k not in npz.files]
            if missing:
                raise InputDataError(path, f"keys {missing} missing (has {npz.files})",
                                     "re-run the prediction")
            data = {k: npz[k] for k in DEPTH_KEYS}
    except (OSError, ValueError) as err:
        raise InputDataError(path, f"cannot read ({err})", "re-run the prediction") from err
    depth, idx, mask = data["depth"], data["frame_indexes"], data["mask"]
    if depth.ndim != 3 or len(idx) != len(depth) or mask.shape != depth.shape[1:]:
        raise InputDataError(path, f"depth {depth.shape}, frame_indexes {idx.shape}, mask {mask.shape} "
                             "do not agree (expected (N, H, W), (N,), (H, W))", "re-run the prediction")
    return data


def network_frame(path: Path, shape: tuple[int, int], downsampling: float, crop: np.ndarray) -> np.ndarray:
    """The frame at the depth map's resolution: downsampled + cropped as in training when that
    matches ``shape`` (H, W), else the frame itself when it has that size, else resized."""
    rgb = read_rgb(path)  # also checks that it exists
    net = load_network_image(path, downsampling, tuple(int(c) for c in crop))[..., ::-1]
    if net.shape[:2] == tuple(shape):
        return np.ascontiguousarray(net)
    if rgb.shape[:2] == tuple(shape):
        return rgb
    log.warning("%s: no crop gives %s; showing the frame resized", path, shape)
    return cv2.resize(rgb, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def read_sfm_arrays(path: Path) -> dict:
    """downsampling, crop and the sparse points (``SPARSE_KEYS``) of sfm_data.npz."""
    keys = ("downsampling", "crop", *SPARSE_KEYS)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise InputDataError(path, f"keys {missing} missing", "re-run prepare_sfm_data")
            return {k: npz[k] for k in keys}
    except (OSError, ValueError) as err:
        raise InputDataError(path, f"cannot read ({err})", "re-run prepare_sfm_data") from err


def main(depth_path: Path, frames_dir: Path, sfm_data: Path, stage: str, seq: str, out: Path,
         n_frames: int, unit: str, max_points: int = 300, seed: int = 0) -> list[int]:
    """Draw the figure; returns the rows of depth.npz shown. ``max_points``: sparse points drawn
    per frame at most (a seeded subset; the map stays visible)."""
    data = read_depth_npz(depth_path)
    sfm = read_sfm_arrays(sfm_data)
    rows = select_frames(len(data["depth"]), n_frames).tolist()
    mask = data["mask"].astype(np.float64)
    valid = mask > 0.5 * mask.max() if mask.max() > 0 else np.ones(mask.shape, bool)
    shape = data["depth"].shape[1:]
    indexes = [int(data["frame_indexes"][r]) for r in rows]
    images = [network_frame(frames_dir / f"{i:08d}.jpg", shape, float(sfm["downsampling"]), sfm["crop"])
              for i in indexes]
    sparse = [sparse_points_of(sfm, i, max_points, seed) for i in indexes]
    fig = endo_depth_figure(images, [data["depth"][r] for r in rows], valid, sparse,
                            [f"frame {i}" for i in indexes],
                            f"{seq}, {stage} stage: predicted depth with the SfM sparse points "
                            "(circles, same colour scale)", unit)
    save_png(fig, out)
    log.info("%s: rows %s of %s, %s sparse points", out, rows, depth_path, [p.total for p in sparse])
    return rows


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.depth), Path(smk.input.frames), Path(smk.input.sfm_data), smk.wildcards.stage,
         smk.wildcards.seq, Path(smk.output[0]), smk.params.frames, smk.params.unit)
