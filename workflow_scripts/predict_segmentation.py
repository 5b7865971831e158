"""Rule predict_segmentation: class ids of the test frames (workflow_scripts/kitti/semantic_eval.py)."""

from pathlib import Path

from workflow_scripts.kitti.semantic_eval import predict_segmentation

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    predict_segmentation(Path(smk.input.model), Path(smk.input.split), Path(smk.params.image_root),
                         Path(smk.params.raw_root), smk.params.image_ext, Path(smk.output[0]),
                         smk.params.threads)
