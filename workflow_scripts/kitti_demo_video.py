"""Rule kitti_demo_video: a held-out demo drive's left images (image_02/data/*.png, in frame
order) as an mp4v video, the demo's input of rule predict_images (workflow_scripts/util/video.py).

Rule fields: output the video; params images (the drive's image_02/data folder), fps.
"""

from pathlib import Path

from workflow_scripts.util.video import images_to_video

if __name__ == "__main__":
    import logging

    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    files = sorted(Path(smk.params.images).glob("*.png"))
    frames = images_to_video(files, Path(smk.output[0]), float(smk.params.fps))
    log = logging.getLogger("kitti_demo_video")
    log.info("%s: %d frames of %s", smk.output[0], frames, smk.params.images)
