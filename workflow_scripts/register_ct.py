"""Rule register_ct: similarity registration of a stage's fused cloud to the CT surface;
writes the transform, scale, surface residuals, the confidence (best distinct runner-up, the
ratio of its score to the best one's, ``ambiguous``), counts and timing (JSON) and the
registered cloud in CT millimetres (PLY) with each point's residual (npy, mm, in the PLY's
order). On the demo, ``truth`` (and ``runner_up.truth``) compare the pose with the one the true
camera poses give; ``truth.ct_from_sfm`` is that true similarity (the report draws the cloud
under it). See workflow_scripts/endo/register.py and docs/registration.md."""

import json
import logging
from pathlib import Path

import numpy as np
import open3d as o3d

from workflow_scripts.endo.evaluate import registration_truth_check
from workflow_scripts.endo.register import (
    RegisterOptions,
    initial_from_poses,
    load_ct_surface,
    read_initial_poses,
    register_similarity,
    scale_guess,
    scale_of,
)
from workflow_scripts.endo.sparse import load_sfm_data
from workflow_scripts.util import InputDataError, save_npy_atomic, write_text_atomic
from workflow_scripts.util.options import load_options
from workflow_scripts.util.ply import read_ply, write_ply

log = logging.getLogger("register_ct")


def manual_initial(path: Path, points: np.ndarray, ct, sfm: dict, sfm_data: Path,
                   options: RegisterOptions) -> list[np.ndarray]:
    """Initial ``ct_from_sfm`` similarities (4, 4) from a manual initial pose file (the
    reference's format), the scale from the cross-section radii, times options.scale_factors."""
    poses = read_initial_poses(path, options.flip_yz)
    sample = np.asarray(ct.sample(options.coarse_spacing_mm, options.seed).points)
    s0 = scale_guess(points, sample, options.coarse_spacing_mm)
    initial = initial_from_poses(poses, sfm["view_indexes"], sfm["cam_from_world"], s0,
                                 (1.0, *options.scale_factors))
    if not initial:
        raise InputDataError(path, "names no frame that SfM registered",
                             f"use frames of {sfm_data} (view_indexes)")
    return initial


def record(out: dict, cloud: Path, ct_path: Path, manual: bool) -> dict:
    """The JSON document of a registration (register_similarity's result ``out``)."""
    runner = out["runner_up"]
    return {
        "cloud": str(cloud), "ct_surface": str(ct_path),
        "ct_from_sfm": out["ct_from_cloud"].tolist(), "scale_mm_per_sfm_unit": out["scale"],
        "residuals": out["stats"],
        # the confidence: the best pose distinct from this one (docs/registration.md)
        "ambiguous": out["ambiguous"], "runner_up_ratio": out["runner_up_ratio"],
        "score_mm": None if out["score"] is None else out["score"] * out["scale"],
        "runner_up": None if runner is None else {"ct_from_sfm": runner.tolist(),
                                                  "scale_mm_per_sfm_unit": scale_of(runner)},
        "points": out["points"], "points_coarse": out["points_coarse"], "points_fine": out["points_fine"],
        "hypotheses": out["hypotheses"],
        "search": {k: out[k] for k in ("scales", "matches", "screened", "refined", "anchors_used")
                   if k in out},
        "initialisation": "manual" if manual else "automatic",
        "seconds": out["seconds"],
    }


def _scalars(check: dict) -> dict:
    """The numbers of a truth check, without its 4 x 4 matrix (for the log)."""
    return {k: v for k, v in check.items() if k != "ct_from_sfm"}


def main(cloud: Path, ct_path: Path, sfm_data: Path, out_json: Path, out_ply: Path,
         options: RegisterOptions, initial_poses: Path | None = None, truth: Path | None = None,
         out_residuals: Path | None = None) -> dict:
    o3d.utility.set_max_threads(options.threads)  # the ICP sums' order, and so the pose's last bits
    ply = read_ply(cloud, fix="re-run export_point_clouds")
    ct = load_ct_surface(ct_path)
    sfm = load_sfm_data(sfm_data)
    initial = None
    if initial_poses is not None:
        initial = manual_initial(initial_poses, ply.vertices, ct, sfm, sfm_data, options)
    out = register_similarity(ply.vertices, ct, options, initial, source_path=cloud)
    T = out["ct_from_cloud"]
    write_ply(out_ply, ply.vertices @ T[:3, :3].T + T[:3, 3], ply.colors,
              [f"registered to {ct_path}", "CT frame, millimetres"])
    if out_residuals is not None:  # (N,) float32 mm, in the order of the PLY's vertices
        save_npy_atomic(out_residuals, out["residuals"].astype(np.float32))
    result = record(out, cloud, ct_path, initial is not None)
    if truth is not None:
        with np.load(truth, allow_pickle=False) as f:
            cams, frames = f["cam_from_world"], f["frame"]
        result["truth"] = registration_truth_check(T, sfm, cams, frames)
        if out["runner_up"] is not None:
            result["runner_up"]["truth"] = registration_truth_check(out["runner_up"], sfm, cams, frames)
    write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    st = out["stats"]
    log.info("%s: scale %.5g mm/unit, residual mean %.3f median %.3f RMS %.3f p95 %.3f mm, %.1f s%s",
             cloud, out["scale"], st["mean_mm"], st["median_mm"], st["rms_mm"], st["p95_mm"],
             out["seconds"]["total"], f"; truth {_scalars(result['truth'])}" if "truth" in result else "")
    if out["ambiguous"]:
        log.warning("%s: AMBIGUOUS registration: a distinct pose fits nearly as well (score ratio "
                    "%.3f < %g); check the report's view with the runner-up, or give "
                    "endoscopy.register.initial_poses (docs/registration.md)",
                    cloud, out["runner_up_ratio"], options.ambiguous_ratio)
    return result


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    inputs = dict(smk.input.items())
    main(
        Path(smk.input.cloud),
        Path(smk.params.ct),
        Path(smk.input.sfm_data),
        Path(smk.output.json),
        Path(smk.output.ply),
        load_options(RegisterOptions, smk.params.options, "endoscopy.register", seed=smk.params.seed),
        Path(inputs["initial_poses"]) if "initial_poses" in inputs else None,
        Path(smk.params.truth) if smk.params.truth else None,
        Path(smk.output.residuals),
    )
