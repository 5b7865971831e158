"""Rule predict_images: depth for any images or video with a trained driving-branch stage
(workflow_scripts/kitti/infer.py): per-frame depth (.npy, 16-bit .png), colour-mapped PNGs and
depth.mp4, disps.npy in monodepth2's --ext_disp_to_eval format, summary.json.

Rule fields: input model (and the source when it is a file of the DAG or the user's); output dir;
params source (a video, an image folder), predict (the kitti.predict section), teacher_stereo
(kitti.train.teacher.stereo: a student's scale), threads.

Without Snakemake, for one image, an image folder or a video::

    python -m workflow_scripts.predict_images --model results/kitti/train/finetune/model.pt \\
        --input some.png --out outdir [--scaling auto|stereo|relative] [--stride 2] [--max-frames 100]
"""


import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import get_args, get_type_hints

from workflow_scripts.kitti.infer import KittiPredictOptions, predict_images
from workflow_scripts.util.options import field_default, load_options


def _default(name: str):
    return field_default(KittiPredictOptions.__dataclass_fields__[name])


def _choices(name: str) -> tuple[str, ...]:
    return get_args(get_type_hints(KittiPredictOptions)[name])


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line: parse ``argv`` and run :func:`predict_images`; returns its summary."""
    parser = argparse.ArgumentParser(
        prog="python -m workflow_scripts.predict_images",
        description="Depth for one image, a folder of images or a video with a trained driving-branch "
        "model.pt: depth/<frame>.npy (float32) and .png (uint16, depth x 256), color/<frame>.png, "
        "depth.mp4, disps.npy ((N, H, W) at the training size, monodepth2's --ext_disp_to_eval format) "
        "and summary.json (units: metres or relative) in --out.",
    )
    parser.add_argument("--model", type=Path, required=True,
                        help="a driving-branch model.pt (results/kitti/train/<stage>/model.pt)")
    parser.add_argument("--input", type=Path, required=True,
                        help="one image (.png/.jpg/.jpeg), a folder of images (sorted by name) or a video")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    parser.add_argument("--stride", type=int, default=_default("stride"), help="keep every stride-th frame")
    parser.add_argument("--max-frames", type=int, default=_default("max_frames"),
                        help="at most this many frames (0 = all)")
    parser.add_argument("--scaling", choices=_choices("scaling"), default=_default("scaling"),
                        help="depth units: stereo = metres (x 0.54 / the model's stereo_baseline), "
                        "relative = the network's, auto = metres when the model's stage trained on stereo "
                        "pairs (a student does not record its teacher's: give stereo for it)")
    parser.add_argument("--post-process", action="store_true", help="monodepth2's flip post-processing")
    parser.add_argument("--colormap", choices=_choices("colormap"), default=_default("colormap"),
                        help="colour map of color/*.png and depth.mp4")
    parser.add_argument("--fps", type=float, default=_default("fps"),
                        help="frame rate of depth.mp4 (0 = the video's / stride; images: 10)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads")
    args = parser.parse_args(argv)
    from workflow_scripts.util.smk import setup_logging

    setup_logging(None)
    opts = load_options(KittiPredictOptions, {"stride": args.stride, "max_frames": args.max_frames,
                                              "scaling": args.scaling, "post_process": args.post_process,
                                              "colormap": args.colormap, "fps": args.fps}, "kitti.predict")
    summary = predict_images(args.model, args.input, args.out, opts, threads=args.threads)
    print(f"{summary['frames']} frames -> {args.out} (depth in {summary['units']}, x{summary['scale']:.3g})")
    return summary


if __name__ == "__main__":
    if "snakemake" not in globals():  # python -m workflow_scripts.predict_images ...
        from workflow_scripts.util.smk import run_cli

        run_cli(main)
    else:
        from workflow_scripts.util.smk import setup_logging

        smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
        setup_logging(smk.log[0])
        predict_images(Path(smk.input.model), Path(smk.params.source), Path(smk.output.dir),
                       load_options(KittiPredictOptions, smk.params.predict, "kitti.predict"),
                       teacher_stereo=bool(smk.params.teacher_stereo), threads=smk.threads)
