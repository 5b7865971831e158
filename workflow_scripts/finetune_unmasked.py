"""Rule finetune_unmasked: the masked fine-tune's control, the same stage without masking
(assembly in workflow_scripts/training/; the rule's params turn the masking off)."""

from workflow_scripts.training import main_from_snakemake

if __name__ == "__main__":
    main_from_snakemake(snakemake, "finetune")  # type: ignore[name-defined]  # noqa: F821
