"""A folder in the endoscopy reference's own format through the whole branch, as documented: the
real sinus sequence (../shared/realdata/endoscopy_sinus_liu) as <root>/sinus01/ with
`endoscopy.format: liu`, no camera.yaml, no CT. Intrinsics come from camera_intrinsics_per_view
and the frames are used as the folder holds them (no extract_frames, never strided against its
own SfM). A tiny preset trains the three stages; prediction, point clouds and the table follow
(depth metrics only: no CT). Skipped when ../shared is absent."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from test_endo_workflow import job_counts, snakemake

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

TINY = {  # a few steps of each stage at the smallest size the UNet takes
    "common": {"size": [64, 128], "batch_size": 2, "workers": 0, "unit": "steps", "checkpoint_every": 2,
               "items_per_epoch": 0, "adjacent_range": [1, 3], "val_every": 2},
    "teacher": {"length": 4, "lr_step": 0, "network": {"kind": "unet", "width": 0.25}, "optimizer": "adam"},
    "student": {"length": 2, "lr_step": 0, "network": {"kind": "fc_densenet57", "width": 0.25},
                "optimizer": "adam", "loss": "abs_rel"},
    "finetune": {"length": 2, "lr_step": 0, "optimizer": "adam"},
}


def test_reference_format_folder_runs_to_the_table(shared_dir, tmp_path):
    sinus = shared_dir / "realdata" / "endoscopy_sinus_liu"
    if not sinus.is_dir():
        pytest.skip("realdata/endoscopy_sinus_liu is not present")
    root = tmp_path / "data"
    root.mkdir()
    (root / "sinus01").symlink_to(sinus, target_is_directory=True)
    cfg = tmp_path / "liu.yaml"
    cfg.write_text(yaml.safe_dump({"endoscopy": {
        "root": str(root), "format": "liu", "train": TINY,
        "sfm_data": {"downsampling": 4.0, "network_downsampling": 64},
    }}))
    common = ["--configfile", str(cfg), "--directory", str(tmp_path)]
    dry = snakemake("results/endo_eval.csv", "-n", *common)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    assert "extract_frames" not in counts and "run_sfm" not in counts and "register_ct" not in counts
    assert "camera.yaml" not in dry.stdout
    run = snakemake("results/endo_eval.csv", "--cores", "2", "--resources", "gpu=1", *common)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_csv(tmp_path / "results" / "endo_eval.csv")
    assert list(table["stage"]) == ["teacher", "student", "finetune", "constant"]
    assert (table["sequence"] == "sinus01").all() and (table["split"] == "train").all()
    assert table["patient"].isna().all()  # the root's own sequence
    assert table["residual_rms_mm"].isna().all()  # no CT: no registration
    assert (table["sparse_frames"] > 20).all() and table["abs_rel"].between(0, 1).all()
    hist = pd.read_csv(tmp_path / "results" / "endo" / "train" / "teacher" / "history.csv")
    assert hist["val_abs_rel"].notna().any()  # the held-out views of the real sequence
