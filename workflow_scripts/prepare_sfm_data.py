"""Rule prepare_sfm_data: SfM -> sfm_data.npz + .json, the sparse supervision of the endoscopy
reference (see workflow_scripts/endo/sfm_data.py and sparse.py)."""

import logging
from pathlib import Path

from workflow_scripts.endo.liu_format import read_liu_folder
from workflow_scripts.endo.scene import scene_from_colmap
from workflow_scripts.endo.sfm_data import SfMDataOptions
from workflow_scripts.endo.sparse import write_sfm_data
from workflow_scripts.util.options import load_options

log = logging.getLogger("prepare_sfm_data")


def main(
    npz_path: Path,
    json_path: Path,
    options: SfMDataOptions,
    frames_dir: Path | None = None,
    sfm_dir: Path | None = None,
    liu_dir: Path | None = None,
) -> dict:
    """From a run_sfm model (``frames_dir`` + ``sfm_dir``) or a reference-format folder (``liu_dir``)."""
    if liu_dir is not None:
        scene, source = read_liu_folder(liu_dir), {"source": "liu", "liu_dir": str(liu_dir)}
    else:
        scene = scene_from_colmap(sfm_dir / "model", frames_dir)
        source = {"source": "colmap", "sfm_dir": str(sfm_dir)}
    summary = write_sfm_data(scene, options, npz_path, json_path, source)
    log.info(
        "%s: %d views, %d/%d clean points, input %s, scale %.5g",
        npz_path,
        summary["views"],
        summary["clean_points"],
        summary["points"],
        summary["input_size"],
        summary["global_scale"],
    )
    return summary


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    inputs = dict(smk.input.items())
    main(
        Path(smk.output.npz),
        Path(smk.output.json),
        load_options(SfMDataOptions, smk.params.sfm_data, "endoscopy.sfm_data"),
        frames_dir=Path(inputs["frames"]) if "frames" in inputs else None,
        sfm_dir=Path(inputs["sfm"]) if "sfm" in inputs else None,
        liu_dir=Path(inputs["liu"]) if "liu" in inputs else None,
    )
