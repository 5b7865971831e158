# Cluster resources (mem_mb, runtime) of the heavy CPU rules, from the size of their work; the
# formulas and their measured constants: workflow_scripts/util/resources.py, docs/cluster.md.
from workflow_scripts.util import resources as job_resources


def hint_resources(wildcards, threads, attempt):
    """One hint shard: its frames (the drive's, capped at shard_frames) at kitti.depth_hints.size."""
    per_shard = KITTI["depth_hints"]["shard_frames"]
    frames = kitti_drive_frames(f"{wildcards.date}/{wildcards.drive}") - int(wildcards.shard) * per_shard
    return job_resources.hint_shard_resources(
        min(max(frames, 0), per_shard), KITTI["depth_hints"]["size"], threads, attempt
    )


def sfm_resources(wildcards, input, attempt):
    """run_sfm: the number of extracted frames in its input folder."""
    frames = len(os.listdir(input.frames)) if os.path.isdir(input.frames) else 0
    return job_resources.sfm_resources(frames, attempt)


def register_resources(wildcards, input, attempt):
    """register_ct: the size of the fused cloud and the CT surface (MB)."""
    sizes = [os.path.getsize(f) for f in (input.cloud, endo_ct_surface(wildcards)) if os.path.isfile(f)]
    return job_resources.register_resources(sum(sizes) / 1e6, attempt)
