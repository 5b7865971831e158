"""profiles/slurm on a real SLURM: a one-node cluster started on localhost by the test itself
(tests/slurm_cluster.py) runs the driving branch of the reduced demo DAG (TARGETS), whose
outputs must equal, byte for byte, those of a local run; GPU rules must reach their jobs as
`sbatch --gpus=1`.

The GPU path is proven twice: a test-only workflow (tests/data/slurm_gpu/) whose one rule
declares `resources: gpu=1` must get a GPU booked by SLURM (seen from inside the job), and
every job of the real GPU rules (GPU_RULES) in the demo DAG must be submitted with `--gpus=1`
(train_* and predict_depth are in TARGETS' DAG).

Data-parallel training through the profile: the endoscopy teacher set to 2 processes is one job
submitted as `sbatch --gpus=2` (the test node has two fake GPUs); inside it the stage runs under
torchrun on 2 ranks and ends with the local one-process run's weights (float tolerance).

Needs root (CI) to install and start SLURM; skips with the reason otherwise. The SLURM run
takes a few minutes on 2 cores (plus ~10 s for apt-get on a fresh machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.conftest import ROOT
from tests.slurm_cluster import ClusterBusy, LocalSlurm, slurm_skip_reason

pytestmark = pytest.mark.slurm

PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
GPU_WORKFLOW = ROOT / "tests" / "data" / "slurm_gpu" / "Snakefile"
# What the SLURM run builds: the driving branch of the reduced demo to its table (data, hints,
# ground truth, the three GPU training stages, predictions). Each SLURM job costs a submission, a
# Snakemake start inside the job and a status check: the whole DAG (61 jobs) took 10+ minutes
# on 2 cores, over the CI budget. It is compared with conftest.tiny_demo_run's `all`.
TARGETS = ("results/kitti_eval.csv",)
GPU_RULES = ("train_teacher", "train_student", "finetune", "train_unmasked", "predict_depth",
             "predict_segmentation", "predict_endo_depth")


def snakemake(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _without_timings(doc):
    """A JSON document without its wall-clock fields (`times`, `seconds`: the only run-dependent
    values)."""
    if isinstance(doc, dict):
        return {k: _without_timings(v) for k, v in doc.items() if k not in ("times", "seconds")}
    if isinstance(doc, list):
        return [_without_timings(v) for v in doc]
    if isinstance(doc, float):  # Open3D's threaded ICP sums differ in the last bits between runs
        return float(f"{doc:.10g}")
    return doc


def outputs(workdir: Path) -> dict[str, bytes]:
    """Every file under resources/ and results/ of a run, by relative path (JSON files
    compared without their timing fields, histories without their seconds, checkpoints by their
    weights; TensorBoard event files, whose names hold the time,
    host and process id, only counted per folder)."""
    files = {}
    for top in ("resources", "results"):
        for path in sorted((workdir / top).rglob("*")):
            if path.is_file():
                if path.name.startswith("events.out.tfevents."):
                    key = str(path.parent.relative_to(workdir) / "<tensorboard events>")
                    files[key] = str(int(files.get(key, b"0")) + 1).encode()
                    continue
                data = path.read_bytes()
                if path.name == "history.csv":  # without the wall-clock column
                    data = pd.read_csv(path).drop(columns="seconds").to_csv(index=False).encode()
                elif path.name == "endo_eval.csv":
                    data = pd.read_csv(path).drop(columns="register_seconds").to_csv(index=False).encode()
                elif path.name == "checkpoint.pt":  # the weights (the history inside has times)
                    nets = torch.load(path, weights_only=True, map_location="cpu")["nets"]
                    data = b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(nets.items()))
                elif path.suffix == ".json":
                    data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
                files[str(path.relative_to(workdir))] = data
    return files


def test_profile_documents_placeholders_and_gpu_rules():
    """The shipped profile: SLURM executor, squeue polling, placeholders, `gpu` on GPU rules."""
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    defaults = profile["default-resources"]
    assert defaults["slurm_account"] == "CHANGE_ME_account"
    assert defaults["slurm_partition"] == "CHANGE_ME_cpu"
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(defaults)
    training = ("train_teacher", "train_student", "finetune", "train_unmasked")
    for rule in GPU_RULES:  # the training rules ask for gpu = <branch>.train.common.processes themselves
        if rule in training:
            assert "gpu" not in profile["set-resources"][rule] and rule not in profile.get("set-threads", {})
        else:
            assert profile["set-resources"][rule]["gpu"] == 1
    docs = (ROOT / "docs" / "cluster.md").read_text()
    assert "CHANGE_ME_account" in docs and "CHANGE_ME_gpu" in docs


@pytest.mark.parametrize("name", ["local", "slurm"])
def test_profiles_are_accepted_by_snakemake(name, tmp_path):
    """Dry run with each profile (slurm's set-resources name rules the DAG may lack so far)."""
    run = snakemake(
        "all",
        "-n",
        "--profile",
        str(ROOT / "profiles" / name),
        "--configfile",
        str(TINY),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "make_demo_kitti" in run.stdout


def test_without_root_the_cluster_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in slurm_skip_reason()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(f"no local SLURM: {reason}")
    try:
        cluster = LocalSlurm.start(tmp_path_factory.mktemp("slurm"))
    except ClusterBusy as busy:
        pytest.skip(str(busy))
    yield cluster
    cluster.stop()


def cluster_profile(cluster: LocalSlurm, folder: Path) -> Path:
    """profiles/slurm with its placeholders filled in for the test cluster, polling faster,
    threads capped to the node's CPUs and SLURM logs kept for the assertions."""
    profile = yaml.safe_load(PROFILE.read_text())
    for resources in [profile["default-resources"], *profile.get("set-resources", {}).values()]:
        resources.update({k: cluster.partition for k in resources if k == "slurm_partition"})
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], cluster.mem_mb)
    profile["default-resources"]["slurm_account"] = "depthtest"
    profile.update(
        {
            "max-threads": cluster.cpus,
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 3,
            "slurm-keep-successful-logs": True,
            "retries": 0,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def check_gpu_requests(sbatch_calls: list[str], submitted: int, gpu_rules=GPU_RULES) -> None:
    """Jobs of the GPU rules (none in the demo-only DAG, all of them once the training rules
    exist) were submitted with `--gpus=1`, all other jobs without a GPU."""
    assert len(sbatch_calls) == submitted
    for call in sbatch_calls:
        comment = re.search(r"--comment '?([^' ]+)", call).group(1)  # rule_<rule>[_wildcards_...]
        gpu_rule = any(
            comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_") for rule in gpu_rules
        )
        assert (" --gpus=1" in call) == gpu_rule, call


@pytest.mark.slow
def test_demo_dag_on_slurm_equals_local_run(slurm, tiny_demo_run, tmp_path):
    # the local run: plain `--cores 2` (conftest.tiny_demo_run, shared with test_workflow.py),
    # while the profile gives the GPU rules 8 (capped) threads: the thread counts that change
    # the last bits are settings (<branch>.train.common.threads, <branch>.evaluate.threads,
    # endoscopy.register.threads), so the outputs are compared bit for bit all the same
    tiny_demo_run.check()
    local, remote = tiny_demo_run.folder, tmp_path / "slurm"
    common = ("--configfile", str(TINY), "--snakefile", str(ROOT / "Snakefile"))

    profile = cluster_profile(slurm, tmp_path / "profile")
    run = snakemake(
        *TARGETS, "--profile", str(profile), *common, "--verbose", "--directory", str(remote), cwd=ROOT
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:] + slurm.logs()
    log = run.stdout + run.stderr
    submitted = log.count("has been submitted with SLURM jobid")
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", log)
    local_rules = {"all", "merge_depth_hints"}  # localrules (linking a drive's hint shards): no sbatch
    jobs = sum(rule not in local_rules for rule in finished)  # every other job on SLURM
    assert "merge_depth_hints" in finished
    assert submitted == jobs >= 2, log[-3000:]
    assert len(list((remote / ".snakemake" / "slurm_logs").rglob("*.log"))) == submitted
    check_gpu_requests([line for line in log.splitlines() if "sbatch call:" in line], submitted)

    expected, got = outputs(local), outputs(remote)
    made = [f"results/kitti/train/{stage}/model.pt" for stage in ("teacher", "student", "finetune")]
    assert set(made + ["results/kitti_eval.csv", "results/kitti/gt/eigen.npz"]) <= set(got), sorted(got)
    assert sorted(set(got) - set(expected)) == []  # the local `all` made every file the target needs
    differing = [name for name in got if got[name] != expected[name]]
    assert differing == [], f"{len(differing)} files differ, e.g. {differing[:5]}"


@pytest.mark.slow
def test_gpu_rule_gets_a_gpu_through_slurm(slurm, tmp_path):
    """A rule with `resources: gpu=1` is submitted as `sbatch --gpus=1`; inside the job SLURM
    has booked one GPU and assign_gpu keeps SLURM's choice."""
    profile = cluster_profile(slurm, tmp_path / "profile")
    run = snakemake(
        "--profile",
        str(profile),
        "--snakefile",
        str(GPU_WORKFLOW),
        "--verbose",
        "--directory",
        str(tmp_path / "work"),
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:] + slurm.logs()
    sbatch_calls = [line for line in (run.stdout + run.stderr).splitlines() if "sbatch call:" in line]
    check_gpu_requests(sbatch_calls, 1, gpu_rules=("gpu_probe",))
    with pytest.raises(AssertionError):  # the check above can fail: not a GPU rule -> no --gpus
        check_gpu_requests(sbatch_calls, 1, gpu_rules=GPU_RULES)
    probe = json.loads((tmp_path / "work" / "gpu_probe.json").read_text())
    assert "TresPerJob=gres:gpu:1" in probe["scontrol_show_job"]
    assert probe["env"]["SLURM_STEP_GPUS"] == "0"  # the rule runs in an `srun --gpus=1` step
    assert probe["source"] == "slurm" and probe["assigned"] == ["0"]
    assert probe["cuda_visible_devices_inside"] == probe["cuda_visible_devices_before"] == "0"


def parallel_stage_on_slurm(cluster: LocalSlurm, source: Path, work: Path, common: dict
                            ) -> subprocess.CompletedProcess:
    """The endoscopy teacher of the run in ``source`` trained again through the profile with
    ``endoscopy.train.common`` updated by ``common`` (processes, nodes), in a copy of that run (its
    inputs with their times) whose teacher folder, checkpoints included, is gone: only
    train_teacher can run."""
    shutil.copytree(source, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    shutil.rmtree(work / "results" / "endo" / "train" / "teacher")
    overlay = work.parent / "parallel.yaml"
    overlay.write_text(yaml.safe_dump({"endoscopy": {"train": {"common": common}}}))
    profile = cluster_profile(cluster, work.parent / "profile")
    return snakemake(
        "results/endo/train/teacher/model.pt", "--profile", str(profile), "--configfile", str(TINY),
        str(overlay), "--snakefile", str(ROOT / "Snakefile"), "--rerun-triggers", "mtime", "--verbose",
        "--directory", str(work), cwd=ROOT,
    )


def check_parallel_stage(run: subprocess.CompletedProcess, local: Path, work: Path, flags: list[str],
                         lines: list[str]) -> None:
    """One sbatch of train_teacher with ``flags`` ran the teacher, its log has ``lines``, and its
    weights and loss history equal the local one-process run's (same global batch and seed) to
    float tolerance."""
    log = run.stdout + run.stderr
    calls = [line for line in log.splitlines() if "sbatch call:" in line]
    assert len(calls) == 1 and "rule_train_teacher" in calls[0], calls
    for flag in flags:
        assert f" {flag}" in calls[0], (flag, calls[0])
    job_log = (work / "logs" / "train_teacher" / "endo.log").read_text()
    for line in lines:
        assert line in job_log, (line, job_log[-3000:])
    path = "results/endo/train/teacher/model.pt"
    ours = torch.load(work / path, weights_only=True, map_location="cpu")["nets"]
    theirs = torch.load(local / path, weights_only=True, map_location="cpu")["nets"]
    assert ours.keys() == theirs.keys() == {"depth"}
    assert ours["depth"].keys() == theirs["depth"].keys()
    for name, value in ours["depth"].items():
        torch.testing.assert_close(value, theirs["depth"][name], rtol=1e-5, atol=1e-6, msg=name)
    history = "results/endo/train/teacher/history.csv"
    ours, theirs = pd.read_csv(work / history), pd.read_csv(local / history)
    assert ours.step.tolist() == theirs.step.tolist()
    pd.testing.assert_series_equal(ours.loss, theirs.loss, rtol=1e-5)


# A stage on 2 GPUs of one node: `sbatch --gpus=2`, torchrun --standalone inside the job step.
ONE_NODE = {
    "common": {"processes": 2, "threads": 1},
    "flags": ["--gpus=2", "--cpus-per-task=2"],
    "lines": ["endo/teacher on GPU ('0', '1') (slurm)", "endo/teacher on 2 processes", "--nproc-per-node=2",
              "rank 0 of 2 (gloo)"],
}
# A stage on 2 nodes x 1 GPU: `sbatch --nodes=2 --ntasks=2 --gres=gpu:1`, the rule in the batch
# shell (the plugin's mpi path), srun starts a torchrun on each node (static rendezvous on the first).
TWO_NODES = {
    "common": {"processes": 1, "nodes": 2, "threads": 1},
    "flags": ["--nodes=2", "--ntasks=2", "--gres=gpu:1", "--cpus-per-task=1"],
    "lines": ["endo/teacher on 2 nodes x 1 processes", "--ntasks-per-node=1", "--node-of 2,1,",
              "rank 0 of 2 (gloo)"],
}


@pytest.mark.slow
@pytest.mark.parametrize("layout", [ONE_NODE, TWO_NODES], ids=["2_gpus_1_node", "2_nodes_1_gpu"])
def test_data_parallel_training_stage_on_slurm_equals_local_run(slurm, tiny_demo_run, tmp_path, layout):
    """A training stage set to 2 data-parallel processes, on one node (processes: 2) or on two
    (nodes: 2), is one SLURM job with the GPUs booked for it; inside it the stage runs under
    torchrun (gloo: the GPUs here are fake) and ends where the local one-process run of the same
    global batch and seed ends."""
    tiny_demo_run.check()
    work = tmp_path / "work"
    run = parallel_stage_on_slurm(slurm, tiny_demo_run.folder, work, layout["common"])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:] + slurm.logs()
    check_parallel_stage(run, tiny_demo_run.folder, work, layout["flags"], layout["lines"])
    if "nodes" in layout["common"]:  # the GPUs are per node (--gres), a torchrun on each node
        assert " --gpus=" not in run.stdout + run.stderr
        job_log = (work / "logs" / "train_teacher" / "endo.log").read_text()
        started = dict(re.findall(r"^node (\S+) \(node rank (\d)\) starts torchrun", job_log, re.M))
        assert sorted(started.values()) == ["0", "1"] and len(set(started)) == 2, job_log[-3000:]
