"""Rule train_teacher: the teacher stage of a branch (assembly in workflow_scripts/training/)."""

from workflow_scripts.training import main_from_snakemake

if __name__ == "__main__":
    main_from_snakemake(snakemake, "teacher")  # type: ignore[name-defined]  # noqa: F821
