"""Rule train_unmasked: a masked stage's control (teacher or fine-tune), the same stage without
masking (assembly in workflow_scripts/training/; the rule's params turn the masking off)."""

from workflow_scripts.training import main_from_snakemake

if __name__ == "__main__":
    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    main_from_snakemake(smk, smk.wildcards.stage)
