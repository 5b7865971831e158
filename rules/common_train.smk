# Resources of the training rules (rules/train.smk): GPUs and cores for data-parallel stages
# (<branch>.train.common.processes, docs/cluster.md "Data-parallel training"), and memory and
# wall-time estimates that scale with a stage's work, for SLURM's --mem and -t.

# Memory of one training process (MB): Python, torch, networks, optimiser state and the loader.
TRAIN_MEM_BASE_MB = 3000
# Memory of each DataLoader worker process (MB): its copy of torch and of the decoded images.
TRAIN_MEM_WORKER_MB = 500
# Host memory per megapixel of a process's batch share (MB): the activations of the forward and
# backward pass on the CPU (on a GPU they are in GPU memory, so this over-asks there). Measured
# about 1 GB per megapixel for the monodepth2 ResNet-18 teacher; kept at 3x.
TRAIN_MEM_MB_PER_MPX = 3000
# Wall time of one optimiser step per megapixel of a process's batch share (s), on one GPU:
# monodepth2's 20 epochs of 192 x 640 x 12 on one GPU in about 12 h is 0.15 s; kept at 0.4 s.
TRAIN_SECONDS_PER_MPX = 0.4
# Fixed minutes of a training job: start-up, validation, model files.
TRAIN_MINUTES_BASE = 20
# Frames per training item in the estimates (stereo pair or two temporal neighbours + target).
TRAIN_FRAMES_PER_ITEM = 3
# Items of an epoch when a stage's length is in epochs and the count is not known before the
# split exists: the Zhou et al. train split (39810 lines) rounded up; endoscopy items_per_epoch 0
# (one per registered view) counts as this many.
TRAIN_EPOCH_ITEMS = {"kitti": 40000, "endo": 4000}
TRAIN_ENDO_SIZE = (256, 320)  # endoscopy size [] (the sfm_data crop): the reference's

# Seed of the training rules (train.smk, semantic.smk): train_seed, else the workflow's seed.
TRAIN_SEED = training_seed(config)


def _train_common(wildcards):
    return config[BRANCH_CONFIG[wildcards.branch]]["train"]["common"]


def train_processes(wildcards):
    """Data-parallel processes of a training stage (<branch>.train.common.processes)."""
    return int(_train_common(wildcards).get("processes", 1))


def train_nodes(wildcards):
    """SLURM nodes of a training stage (<branch>.train.common.nodes); processes is per node."""
    return int(_train_common(wildcards).get("nodes", 1))


def train_gpus(wildcards):
    """The `gpu` resource of a training stage: one GPU per process (SLURM: --gpus=N on one node).
    None (no such resource) on several nodes, where the GPUs are booked per node (train_gres)."""
    return train_processes(wildcards) if train_nodes(wildcards) == 1 else None


def _multi_node(value):
    """A resource only stages on several nodes have (None: the job has no such resource)."""

    def resource(wildcards):
        return value(wildcards) if train_nodes(wildcards) > 1 else None

    return resource


# A stage on several nodes (docs/cluster.md "nodes x GPUs"): `sbatch --nodes=N --ntasks=N
# --gres=gpu:<processes> --cpus-per-task=...` (per node), and the plugin's `mpi` path: the rule's
# script runs in the batch shell of the first node and starts one torchrun per node with srun
# itself (workflow_scripts/training/launch.py). tasks_per_gpu 0: no --ntasks-per-gpu.
train_slurm_nodes = train_slurm_tasks = _multi_node(train_nodes)  # one task (a torchrun) per node
train_tasks_per_gpu = _multi_node(lambda wildcards: 0)
train_mpi = _multi_node(lambda wildcards: "srun")
train_gres = _multi_node(lambda wildcards: f"gpu:{train_processes(wildcards)}")


def train_cores(wildcards):
    """Cores a training job reserves: its processes x their PyTorch threads."""
    return train_processes(wildcards) * train_threads(wildcards)


def train_cpus(wildcards):
    """SLURM --cpus-per-task of a training job: each process's threads and DataLoader workers."""
    common = _train_common(wildcards)
    return train_processes(wildcards) * (int(common["threads"]) + int(common["workers"]))


def _train_share_mpx(wildcards):
    """Megapixels of one process's share of a step's batch (all frames of its items)."""
    common = _train_common(wildcards)
    h, w = common["size"] or TRAIN_ENDO_SIZE
    share = int(common["batch_size"]) / (train_processes(wildcards) * train_nodes(wildcards))
    return share * TRAIN_FRAMES_PER_ITEM * h * w / 1e6


def _train_steps(wildcards, stage):
    """Optimiser steps of a stage (lengths in epochs: of TRAIN_EPOCH_ITEMS or items_per_epoch)."""
    train = config[BRANCH_CONFIG[wildcards.branch]]["train"]
    common = train["common"]
    length = int(train[stage]["length"])
    if common["unit"] == "steps":
        return length
    items = int(common.get("items_per_epoch") or 0) or TRAIN_EPOCH_ITEMS[wildcards.branch]
    return length * -(-items // int(common["batch_size"]))


def train_mem_mb(wildcards, attempt):
    """Memory of a training job (MB, all its processes on a node: SLURM's --mem is per node; x
    attempt on a retry)."""
    common = _train_common(wildcards)
    per_process = (
        TRAIN_MEM_BASE_MB
        + TRAIN_MEM_WORKER_MB * int(common["workers"])
        + TRAIN_MEM_MB_PER_MPX * _train_share_mpx(wildcards)
    )
    return int(train_processes(wildcards) * per_process * attempt)


def train_runtime(stage):
    """Wall time of a training stage in minutes (steps x time per step; x attempt on a retry)."""

    def runtime(wildcards, attempt):
        seconds = _train_steps(wildcards, stage) * TRAIN_SECONDS_PER_MPX * _train_share_mpx(wildcards)
        return int((TRAIN_MINUTES_BASE + seconds / 60) * attempt)

    return runtime
