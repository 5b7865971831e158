"""Rule predict_endo_depth: depth.npz of one sequence and stage, in SfM world units
(workflow_scripts/endo/predict.py; format in the rule's docstring, rules/endo_eval.smk)."""

from pathlib import Path

from workflow_scripts.endo.predict import predict_endo_depth

if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    predict_endo_depth(Path(smk.input.model), Path(smk.input.sfm_data), Path(smk.input.frames),
                       Path(smk.output[0]), smk.params.threads)  # endoscopy.evaluate.threads: a setting
