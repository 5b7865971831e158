"""Sharded depth-hint precompute and the cluster resources of the heavy CPU rules
(workflow_scripts/kitti/hint_shards.py, workflow_scripts/util/resources.py, docs/cluster.md)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT
from tests.dry_runs import drive_frames, dry_run, snakemake_in
from workflow_scripts.kitti.hint_shards import count_drive_frames, merge_shards, shard_count, shard_frames_of
from workflow_scripts.util import InputDataError
from workflow_scripts.util.resources import hint_shard_resources, register_resources, sfm_resources


def test_shards_cover_each_frame_number_once():
    assert [shard_count(n, 100) for n in (0, 1, 100, 101, 4544)] == [1, 1, 1, 2, 46]
    frames = [5, 99, 100, 101, 250, 250, 399]
    parts = [shard_frames_of(frames, k, 100) for k in range(shard_count(400, 100))]
    assert parts == [[5, 99], [100, 101], [250], [399]]
    assert sorted(f for p in parts for f in p) == sorted(set(frames))


def test_merge_links_every_shard_file_and_refuses_overlaps(tmp_path):
    shards = []
    for k, frames in enumerate(([0, 1], [2], [])):
        shard = tmp_path / "shards" / str(k)
        for cam in ("image_02", "image_03"):
            (shard / cam).mkdir(parents=True)
            for f in frames:
                np.save(shard / cam / f"{f:010d}.npy", np.full((1, 2, 3), f + cam.endswith("3"), np.float32))
        shards.append(shard)
    out = tmp_path / "drive"
    assert merge_shards(shards, out) == 6
    assert sorted(p.name for p in (out / "image_03").iterdir()) == [f"{f:010d}.npy" for f in range(3)]
    assert np.load(out / "image_03" / "0000000002.npy")[0, 0, 0] == 3
    linked = (out / "image_02" / "0000000001.npy").stat().st_ino
    assert linked == (shards[0] / "image_02" / "0000000001.npy").stat().st_ino
    np.save(shards[2] / "image_02" / "0000000001.npy", np.zeros((1, 2, 3), np.float32))
    with pytest.raises(InputDataError, match="also in another shard"):
        merge_shards(shards, tmp_path / "again")
    assert not (tmp_path / "again").exists() and not list(tmp_path.glob(".*tmp*"))


def test_resources_grow_with_the_work_and_double_per_attempt():
    small, big = hint_shard_resources(100, (320, 1024), 8), hint_shard_resources(1000, (320, 1024), 8)
    assert big["runtime"] > small["runtime"] and big["mem_mb"] == small["mem_mb"]
    # 1000 frames x 2 sides x 1.3 s on 8 workers = 325 s, x2 margin + 10 min
    assert big["runtime"] == 21  # ceil(10 min + 2 x 325 s)
    assert hint_shard_resources(1000, (320, 1024), 8, attempt=2) == {k: 2 * v for k, v in big.items()}
    assert sfm_resources(2000)["runtime"] > sfm_resources(100)["runtime"] > 60 // 4
    assert sfm_resources(2000)["mem_mb"] > 4000 and sfm_resources(2000)["runtime"] > 60  # beyond the defaults
    assert register_resources(50)["mem_mb"] > register_resources(1)["mem_mb"]


def test_the_full_size_tree_dry_runs_with_one_job_per_shard_and_resources(kitti_full_tree, tmp_path):
    """Depth Hints' recipe on 61 drives: every training drive is cut into shards of 500 frame
    numbers; each shard job asks SLURM for the resources of its own frames."""
    cfg = tmp_path / "shards.yaml"
    kitti = {"root": str(kitti_full_tree), "depth_hints": {"shard_frames": 500}}
    cfg.write_text(yaml.safe_dump({"kitti": kitti}))
    recipe = ROOT / "config" / "recipes" / "depth_hints.yaml"
    counts = dry_run("results/kitti/splits/train_files.txt", tmp_path, recipe, cfg)
    assert counts["make_splits"] == 1
    run = snakemake_in(tmp_path, "all", recipe, cfg)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lists = ROOT / "workflow_scripts" / "kitti" / "splits" / "eigen_full"
    lines = [ln for part in ("train", "val") for ln in (lists / f"{part}_files.txt").read_text().splitlines()]
    train = {line.split()[0] for line in lines}
    frames = drive_frames()
    assert all(count_drive_frames(kitti_full_tree / d) == frames[d] + 2 for d in train)
    shards = sum(shard_count(frames[d] + 2, 500) for d in train)
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", run.stdout, re.M)}
    assert counts["precompute_depth_hints"] == shards and counts["merge_depth_hints"] == len(train) == 33
    longest = max(train, key=lambda d: frames[d])
    last = shard_count(frames[longest] + 2, 500) - 1
    # the last shard of the longest drive has only its remaining frames (threads: --cores 2)
    job = run.stdout[run.stdout.index(f"output: results/kitti/depth_hints/shards/{longest}/{last}\n"):]
    job = job[: job.index("\n[")]
    rest = hint_shard_resources(frames[longest] + 2 - 500 * last, (320, 1024), 2)
    assert f"runtime={rest['runtime']}, mem_mb={rest['mem_mb']}" in job
    full = hint_shard_resources(500, (320, 1024), 2)
    assert f"runtime={full['runtime']}, mem_mb={full['mem_mb']}" in run.stdout
