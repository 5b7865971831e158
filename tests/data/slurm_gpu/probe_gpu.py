"""Rule gpu_probe (test only): what a GPU job sees inside SLURM, as JSON."""

import json
import os
import subprocess

from workflow_scripts.util.gpu import assign_gpu


def main(out_path: str) -> None:
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    job = subprocess.run(["scontrol", "show", "job", os.environ["SLURM_JOB_ID"]],
                         capture_output=True, text=True, check=True).stdout
    with assign_gpu(1) as gpus:
        record = {
            "env": {k: v for k, v in os.environ.items()
                    if k.startswith(("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS"))},
            "cuda_visible_devices_before": before,
            "cuda_visible_devices_inside": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "assigned": list(gpus.devices),
            "source": gpus.source,
            "scontrol_show_job": job,
        }
    with open(out_path, "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main(snakemake.output[0])  # type: ignore[name-defined]  # noqa: F821
