"""Rule predict_endo_constant: the constant-depth baseline of the endoscopy branch, in the
prediction format of the trained stages (workflow_scripts/endo/predict.py)."""

from pathlib import Path

from workflow_scripts.endo.predict import predict_endo_constant

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    predict_endo_constant(Path(smk.input.sfm_data), Path(smk.output[0]))
