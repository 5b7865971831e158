"""GPU ids for local jobs (workflow_scripts/util/gpu.py) on simulated machines: distinct ids for
concurrent holders (threads and processes), released locks of crashed holders, an existing
CUDA_VISIBLE_DEVICES restriction, SLURM's own assignment, machines without a GPU, and data-parallel
training jobs of several GPUs each (disjoint sets; a dry run planning two of them side by side)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import pytest

from tests.conftest import ROOT
from workflow_scripts.util.gpu import assign_gpu, count_nvidia_gpus


def test_distinct_ids_then_wait_then_reuse(tmp_path):
    env: dict[str, str] = {}
    with assign_gpu(device_count=2, lock_dir=tmp_path, env=env) as first:
        assert first.devices == ("0",) and first.source == "lock"
        assert env == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        env2: dict[str, str] = {}
        with assign_gpu(device_count=2, lock_dir=tmp_path, env=env2) as second:
            assert second.devices == ("1",) and env2["CUDA_VISIBLE_DEVICES"] == "1"
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match="no 1 free GPU"):
                with assign_gpu(device_count=2, lock_dir=tmp_path, env={}, timeout=0.3, poll=0.05):
                    pass
            assert time.monotonic() - t0 >= 0.3
        assert env2 == {}  # restored: the variables were not set before
    assert env == {}
    with assign_gpu(device_count=2, lock_dir=tmp_path, env={}) as again:
        assert again.devices == ("0",)  # released on exit


def test_several_gpus_per_job_and_impossible_requests(tmp_path):
    env = {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    with assign_gpu(2, device_count=3, lock_dir=tmp_path, env=env) as pair:
        assert pair.devices == ("0", "1") and env["CUDA_VISIBLE_DEVICES"] == "0,1"
        assert env["CUDA_DEVICE_ORDER"] == "FASTEST_FIRST"  # a user's choice is kept
        with pytest.raises(TimeoutError):  # only GPU 2 is left: never half an allocation
            with assign_gpu(2, device_count=3, lock_dir=tmp_path, env={}, timeout=0.1, poll=0.02):
                pass
        with assign_gpu(1, device_count=3, lock_dir=tmp_path, env={}) as one:
            assert one.devices == ("2",)
    with pytest.raises(ValueError, match="asks for 4 GPUs"):
        with assign_gpu(4, device_count=3, lock_dir=tmp_path, env={}):
            pass
    with assign_gpu(0, device_count=3, lock_dir=tmp_path, env=env) as none:
        assert none.devices == () and "CUDA_VISIBLE_DEVICES" not in env


def _hold_in_thread(lock_dir, holders: Counter, seen: list, guard: threading.Lock) -> None:
    env: dict[str, str] = {}
    with assign_gpu(device_count=2, lock_dir=lock_dir, env=env, poll=0.01) as got:
        (device,) = got.devices
        with guard:
            holders[device] += 1
            seen.append((device, holders[device], sum(holders.values())))
        time.sleep(0.05)
        with guard:
            holders[device] -= 1


def test_threads_never_share_a_device(tmp_path):
    """8 jobs on 2 simulated GPUs: at most one holder per id and 2 in total, all jobs run."""
    holders: Counter = Counter()
    seen: list = []
    guard = threading.Lock()
    threads = [threading.Thread(target=_hold_in_thread, args=(tmp_path, holders, seen, guard))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(seen) == 8
    assert all(per_device == 1 and total <= 2 for _, per_device, total in seen)
    assert {device for device, _, _ in seen} == {"0", "1"}


def _process_job(lock_dir: str, barrier, queue) -> None:
    with assign_gpu(device_count=3, lock_dir=lock_dir, poll=0.01) as got:
        queue.put((got.devices, os.environ["CUDA_VISIBLE_DEVICES"]))
        barrier.wait(timeout=30)  # all three hold their GPU at the same time


def _side_by_side(job, n: int, lock_dir) -> list:
    """Run ``job(lock_dir, barrier, queue)`` in ``n`` spawned processes that hold their ids at the
    same time; their queued (devices, CUDA_VISIBLE_DEVICES)."""
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=job, args=(str(lock_dir), barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def test_processes_get_distinct_ids(tmp_path):
    results = _side_by_side(_process_job, 3, tmp_path)
    assert sorted(devices for devices, _ in results) == [("0",), ("1",), ("2",)]
    assert all(visible == devices[0] for devices, visible in results)


HOLDER = """
import sys, time
from workflow_scripts.util.gpu import assign_gpu
with assign_gpu(device_count=2, lock_dir=sys.argv[1]) as got:
    print(got.devices[0], flush=True)
    time.sleep(600)
"""


def test_lock_of_a_killed_holder_is_released(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        with assign_gpu(device_count=2, lock_dir=tmp_path, env={}) as while_alive:
            assert while_alive.devices == ("1",)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no context-manager exit runs
        holder.wait(timeout=30)
    with assign_gpu(device_count=2, lock_dir=tmp_path, env={}) as after:
        assert after.devices == ("0",)


def test_existing_cuda_visible_devices_restricts_the_choice(tmp_path):
    outer = {"CUDA_VISIBLE_DEVICES": "2,3"}
    with assign_gpu(device_count=4, lock_dir=tmp_path, env=outer) as a:
        inner = {"CUDA_VISIBLE_DEVICES": "2,3"}
        with assign_gpu(device_count=4, lock_dir=tmp_path, env=inner) as b:
            assert (a.devices, b.devices) == (("2",), ("3",))
            assert "CUDA_DEVICE_ORDER" not in inner  # the user's ids keep the user's order
            with pytest.raises(TimeoutError):
                with assign_gpu(device_count=4, lock_dir=tmp_path, timeout=0.1, poll=0.02,
                                env={"CUDA_VISIBLE_DEVICES": "2,3"}):
                    pass
        assert inner == {"CUDA_VISIBLE_DEVICES": "2,3"}
    for hidden in ("", "-1"):
        env = {"CUDA_VISIBLE_DEVICES": hidden}
        with assign_gpu(device_count=4, lock_dir=tmp_path, env=env) as got:
            assert got.devices == () and env == {"CUDA_VISIBLE_DEVICES": hidden}


def test_no_gpu_changes_nothing_even_with_cuda_visible_devices(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0"}
    with assign_gpu(device_count=0, lock_dir=tmp_path / "locks", env=env) as got:
        assert got.devices == () and got.source == "none"
        assert env == {"CUDA_VISIBLE_DEVICES": "0"}
    assert not (tmp_path / "locks").exists()


def test_slurm_assignment_is_kept(tmp_path):
    env = {"SLURM_JOB_ID": "41", "SLURM_JOB_GPUS": "3", "CUDA_VISIBLE_DEVICES": "3"}
    before = dict(env)
    for _ in range(2):  # a second job on the same GPU id (another node or a cgroup) never waits
        with assign_gpu(device_count=8, lock_dir=tmp_path, env=env) as got:
            assert got.devices == ("3",) and got.source == "slurm" and env == before
    # cgroup-constrained nodes renumber: CUDA sees GPU 0 although SLURM booked GPU 3
    step = {"SLURM_JOB_ID": "42", "SLURM_STEP_GPUS": "3", "CUDA_VISIBLE_DEVICES": "0"}
    with assign_gpu(device_count=lambda: pytest.fail("not asked inside SLURM"), lock_dir=tmp_path,
                    env=step) as got:
        assert got.devices == ("0",)
    assert list(tmp_path.iterdir()) == []  # no lock was taken


def test_slurm_job_without_gpu_is_cpu_even_with_cuda_visible_devices(tmp_path):
    """SLURM sets CUDA_VISIBLE_DEVICES=0 in some jobs that have no GPU (environment.md)."""
    env = {"SLURM_JOB_ID": "43", "CUDA_VISIBLE_DEVICES": "0"}
    with assign_gpu(device_count=1, lock_dir=tmp_path, env=env) as got:
        assert got.devices == () and got.source == "slurm" and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_local_jobs_inside_a_multi_gpu_slurm_allocation_share_it_out(tmp_path):
    """`salloc --gpus=2` then `snakemake --cores 8 --resources gpu=2`: each job one of the two."""
    def alloc_env() -> dict[str, str]:
        return {"SLURM_JOB_ID": "44", "SLURM_JOB_GPUS": "5,7", "CUDA_VISIBLE_DEVICES": "5,7"}

    with assign_gpu(device_count=8, lock_dir=tmp_path, env=alloc_env()) as a:
        with assign_gpu(device_count=8, lock_dir=tmp_path, env=alloc_env()) as b:
            assert {a.devices, b.devices} == {("5",), ("7",)} and a.source == "lock"
    assert [p.name for p in tmp_path.iterdir()] == ["slurm-job-44"]  # locks private to the job


def test_count_nvidia_gpus_reads_nvidia_smi(tmp_path, monkeypatch, caplog):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)"
        echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)"
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert count_nvidia_gpus() == 2
    fake.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.' >&2
        echo 'Make sure that the latest NVIDIA driver is installed and running.' >&2
        echo '' >&2
        echo 'Details: /var/log/nvidia.log' >&2
        echo 'a fourth line, not shown' >&2
        exit 9
        """))
    assert count_nvidia_gpus() == 0
    (record,) = caplog.records  # a failing tool is logged: the job would silently use the CPU
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"`{fake} -L` failed (exit status 9): NVIDIA-SMI has failed because it could not "
        "communicate with the NVIDIA driver. | Make sure that the latest NVIDIA driver is installed "
        "and running. | Details: /var/log/nvidia.log; counting 0 GPUs: this job runs on the CPU")
    caplog.clear()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert count_nvidia_gpus() == 0
    assert not caplog.records  # no nvidia-smi: a machine without NVIDIA GPUs, nothing to report


def test_count_nvidia_gpus_warns_when_nvidia_smi_hangs_or_cannot_start(tmp_path, monkeypatch, caplog):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('sleep')} 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    t0 = time.monotonic()
    assert count_nvidia_gpus(timeout=0.5) == 0
    assert time.monotonic() - t0 < 10  # killed at the timeout, not waited for
    assert caplog.records[-1].getMessage() == (
        f"`{fake} -L` failed (no answer within 0.5 s), nothing on stderr; counting 0 GPUs: "
        "this job runs on the CPU")
    fake.write_text("#!/no/such/interpreter\n")  # executable, but exec fails: OSError
    assert count_nvidia_gpus() == 0
    message = caplog.records[-1].getMessage()
    assert message.startswith(f"`{fake} -L` failed (could not run (FileNotFoundError: ")
    assert message.endswith("this job runs on the CPU") and len(caplog.records) == 2


def _hold_pair(lock_dir: str, barrier, queue) -> None:
    with assign_gpu(2, device_count=4, lock_dir=lock_dir, poll=0.01) as got:
        queue.put((got.devices, os.environ["CUDA_VISIBLE_DEVICES"]))
        barrier.wait(timeout=30)  # both jobs hold their pair at the same time


def test_two_data_parallel_jobs_of_two_gpus_get_disjoint_pairs(tmp_path):
    """`--resources gpu=4`, two training stages with processes: 2 (gpu=2 each) side by side on a
    simulated 4-GPU machine: each job's CUDA_VISIBLE_DEVICES names 2 ids, none shared; its
    torchrun ranks then use cuda:0 and cuda:1 of those (LOCAL_RANK)."""
    results = _side_by_side(_hold_pair, 2, tmp_path)
    pairs = sorted(devices for devices, _ in results)
    assert pairs == [("0", "1"), ("2", "3")]
    assert all(visible == ",".join(devices) for devices, visible in results)


def test_dry_run_plans_two_stages_of_two_gpus_side_by_side(tmp_path):
    """A dry run with `--resources gpu=4` and both branches' stages set to 2 processes: the two
    teachers (independent jobs) each ask for gpu=2 and 2 x threads cores, so both fit at once."""
    overlay = tmp_path / "processes.yaml"
    overlay.write_text("kitti: {train: {common: {processes: 2}}}\n"
                       "endoscopy: {train: {common: {processes: 2}}}\n")
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "results/kitti/train/teacher/model.pt",
         "results/endo/train/teacher/model.pt", "-n", "--cores", "8", "--resources", "gpu=4",
         "--directory", str(tmp_path / "run"), "--configfile", str(overlay)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    jobs = run.stdout.split("rule train_teacher:")[1:]
    assert len(jobs) == 2
    gpus = []
    for job in jobs:
        lines = [line.strip() for line in job.splitlines()]
        resources = next(line for line in lines if line.startswith("resources:"))
        threads = int(next(line for line in lines if line.startswith("threads:")).split()[-1])
        gpus.append(int(resources.split("gpu=")[1].split(",")[0]))
        assert threads == 2 * 2  # processes x <branch>.train.common.threads (2 in the demo)
    assert gpus == [2, 2] and sum(gpus) <= 4
