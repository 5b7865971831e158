"""Rule predict_depth: disparities of a test split (workflow_scripts/kitti/predict.py)."""

from pathlib import Path

from workflow_scripts.kitti.predict import predict_depth

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    predict_depth(
        Path(smk.input.model),
        Path(smk.input.split),
        Path(smk.params.image_root),
        Path(smk.params.raw_root),
        smk.params.image_ext,
        Path(smk.output[0]),
        smk.params.post_process,
        smk.params.threads,  # kitti.evaluate.threads: a setting, not the cores Snakemake granted
    )
