"""Rule predict_endo_video: depth maps, a depth video and point clouds of a new endoscopy video (or
frame folder) with a trained model, no SfM, no retraining (workflow_scripts/endo/new_video.py).

Rule fields: input model and the source's files (optional: sfm_data, an sfm_data.npz of the same
video for SfM units); output dir (a directory); params source, camera, stride, max_frames, scale
(null = relative depth), fps, and frames / sfm_data (the endoscopy.frames and endoscopy.sfm_data sections the
model's training data was prepared with; absent = the options' defaults); threads.

Without Snakemake (the config files give those two sections, as a workflow run reads them;
none = config.yaml alone, i.e. the demo's settings when endoscopy.root is empty)::

    python -m workflow_scripts.predict_endo_video --model results/endo/train/finetune/model.pt \\
        --source new.mp4 --camera camera.yaml --out results/endo/new_video [--configfile my.yaml]
"""


import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from workflow_scripts.endo.extract import ExtractOptions
from workflow_scripts.endo.new_video import predict_new_video
from workflow_scripts.endo.sfm_data import SfMDataOptions
from workflow_scripts.util.options import load_options

log = logging.getLogger("predict_endo_video")


def load_sections(frames: dict | None, sfm_data: dict | None) -> tuple[ExtractOptions, SfMDataOptions]:
    """The endoscopy.frames and endoscopy.sfm_data sections as options (None = defaults)."""
    return (load_options(ExtractOptions, frames, "endoscopy.frames"),
            load_options(SfMDataOptions, sfm_data, "endoscopy.sfm_data"))


def options_from_config(configfiles: Sequence[str | Path]) -> tuple[ExtractOptions, SfMDataOptions]:
    """The preprocessing options of a workflow run with these --configfile files."""
    from workflow_scripts.config.resolve import load_user_config, resolve

    endo = resolve(load_user_config(*configfiles))["endoscopy"]
    return load_sections(endo["frames"], endo["sfm_data"])


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line: parse ``argv`` and run :func:`predict_new_video`; returns its summary."""
    parser = argparse.ArgumentParser(prog="python -m workflow_scripts.predict_endo_video",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="an endoscopy model.pt")
    parser.add_argument("--source", type=Path, required=True, help="a video file or a folder of frames")
    parser.add_argument("--camera", type=Path, required=True, help="the video's camera.yaml")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--stride", type=int, default=1, help="keep every stride-th frame")
    parser.add_argument("--max-frames", type=int, default=0, help="at most this many frames (0 = all)")
    parser.add_argument("--fps", type=float, default=0.0, help="keep about fps frames/s (replaces stride)")
    units = parser.add_mutually_exclusive_group()
    units.add_argument("--scale", type=float, default=None, help="depth units per network unit")
    units.add_argument("--sfm-data", type=Path, default=None, help="sfm_data.npz of this video (SfM units)")
    parser.add_argument("--configfile", type=Path, nargs="*", default=[],
                        help="workflow config files the model was trained with (merged over config.yaml)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    from workflow_scripts.util.smk import setup_logging

    setup_logging(None)
    extract, sfm_options = options_from_config(args.configfile)
    summary = predict_new_video(args.model, args.source, args.camera, args.out, stride=args.stride,
                                max_frames=args.max_frames, scale=args.scale, sfm_data=args.sfm_data,
                                fps=args.fps, threads=args.threads, extract=extract,
                                sfm_options=sfm_options)
    print(f"{summary['frames']} frames -> {args.out} (units {summary['units']})")
    return summary


if __name__ == "__main__":
    if "snakemake" not in globals():  # python -m workflow_scripts.predict_endo_video ...
        from workflow_scripts.util.smk import run_cli

        run_cli(main)
    else:
        from workflow_scripts.util.smk import setup_logging

        smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
        setup_logging(smk.log[0])
        inputs = dict(smk.input.items())
        extract, sfm_options = load_sections(getattr(smk.params, "frames", None),
                                             getattr(smk.params, "sfm_data", None))
        # source and camera as params: on the demo they lie inside the demo folder (the input)
        predict_new_video(Path(smk.input.model), Path(smk.params.source), Path(smk.params.camera),
                          Path(smk.output.dir), stride=int(smk.params.stride),
                          max_frames=int(smk.params.max_frames), scale=smk.params.scale,
                          sfm_data=Path(inputs["sfm_data"]) if "sfm_data" in inputs else None,
                          fps=float(smk.params.fps), threads=smk.threads, extract=extract,
                          sfm_options=sfm_options)
