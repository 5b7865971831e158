"""A throw-away two-node SLURM on localhost, for tests of profiles/slurm.

``slurm_skip_reason()`` installs Debian's slurm-wlm and munge when they are missing (as root
with apt-get) and says why SLURM cannot run here otherwise. ``LocalSlurm.start(folder)``
starts munged (unless one already answers), slurmctld and the slurmds in the foreground as child
processes, with all state, logs and configuration in ``folder``; ``stop()`` cancels the jobs
and ends exactly those processes (by PID), then removes what it put in /etc/slurm.

Facts this relies on (Debian 12, SLURM 22.05, root, no systemd):
- munged runs as the ``munge`` user; slurmctld and slurmd run as root.
- Two nodes on this machine, one slurmd each (``slurmd -N <node>``, each with its own port,
  spool, pid and log file), each with the machine's CPUs and two fake GPUs: ``Gres=gpu:2`` on the
  node plus one gres.conf line per GPU with a ``File=`` (here /dev/null and /dev/zero: any device
  file, one each), otherwise the node drains; ``GresTypes=gpu`` and ``SelectType=select/cons_tres``
  so that ``sbatch --gpus=N`` (N <= 2) and ``--nodes=2 --gres=gpu:1`` are accepted. The first
  node is named like the host (other processes resolve it), the second ``<host>-2``.
- ``ProctrackType=proctrack/linuxproc`` and ``TaskPlugin=task/none``: no cgroups needed.
- The configuration must be at /etc/slurm/slurm.conf (symlinks here): the executor plugin
  runs ``srun`` inside each job with the SLURM_* variables removed, so ``SLURM_CONF`` is lost.
- No accounting daemon: the plugin must poll with squeue, which needs ``MinJobAge`` >= 120 s.
- Only one such cluster per machine at a time (fixed /etc/slurm path): a lock file serialises
  concurrent test sessions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ETC = Path("/etc/slurm")
MARKER = "depth-workflow-test-slurm"  # in the folder names we create; identifies our leftovers
LOCK = Path(tempfile.gettempdir()) / f"{MARKER}.lock"
DAEMONS = ("slurmctld", "slurmd", "munged")
PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"
FAKE_GPU_FILES = ("/dev/null", "/dev/zero")  # the node's "GPUs" (SLURM checks only that they exist)


class ClusterBusy(RuntimeError):
    """SLURM already runs here (another test session's, or not ours): the test skips."""


def _run(cmd: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _missing_tools() -> list[str]:
    tools = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scontrol", "srun")
    return [t for t in tools if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]


def _apt_install() -> str | None:
    """Install the Debian packages; returns an error text or None."""
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    first = _run(cmd, timeout=600, env=env)
    if first.returncode == 0:
        return None
    _run(["apt-get", "update", "-q"], timeout=600, env=env)
    second = _run(cmd, timeout=600, env=env)
    return None if second.returncode == 0 else second.stdout[-1500:] + second.stderr[-1500:]


def _running_daemons() -> list[str]:
    """SLURM daemons already running on this machine (someone else's: we never touch them)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                comm = (proc / "comm").read_text().strip()
            except OSError:
                continue
            if comm in ("slurmctld", "slurmd"):
                found.append(f"{comm} (pid {proc.name})")
    return found


def slurm_skip_reason() -> str | None:
    """Why a local SLURM cannot be started here (None: it can). Installs the packages when
    they are missing and this runs as root on a system with apt-get."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "SLURM needs Linux"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root (run the test as root, e.g. in CI)"
    if _missing_tools():
        if shutil.which("apt-get") is None:
            return f"SLURM is not installed ({', '.join(_missing_tools())} missing) and there is no apt-get"
        error = _apt_install()
        if error is not None:
            return f"`apt-get install {' '.join(PACKAGES)}` failed:\n{error}"
        if _missing_tools():
            return f"still missing after apt-get install: {', '.join(_missing_tools())}"
    if (ETC / "slurm.conf").exists() and MARKER not in os.path.realpath(ETC / "slurm.conf"):
        return f"{ETC / 'slurm.conf'} belongs to a real SLURM installation; not replacing it"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def slurm_conf(folder: Path, host: str, cpus: int, mem_mb: int, ports: tuple[int, ...]) -> str:
    """slurm.conf of a cluster on this host whose state and logs live in ``folder``: one node per
    port after the first (``ports[0]`` is slurmctld's), each with ``cpus`` CPUs and the fake GPUs."""
    gpus = len(FAKE_GPU_FILES)
    names = node_names(host, len(ports) - 1)
    nodes = "".join(
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} "
        f"RealMemory={mem_mb} Gres=gpu:{gpus} State=UNKNOWN\n"
        for name, port in zip(names, ports[1:], strict=True)
    )
    return f"""\
ClusterName=depthtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.%n.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# without accounting the workflow polls with squeue: keep finished jobs visible for 5 min
MinJobAge=300
InactiveLimit=0
KillWait=5
SchedulerParameters=sched_interval=2
{nodes}PartitionName={PARTITION} Nodes={",".join(names)} Default=YES MaxTime=INFINITE State=UP
"""


def node_names(host: str, count: int) -> list[str]:
    """The test cluster's node names: the host's own name first (a one-node cluster is just the
    host), then ``<host>-2`` ... (slurmd -N: several slurmd daemons on one machine)."""
    return [host] + [f"{host}-{i}" for i in range(2, count + 1)]


@dataclass
class LocalSlurm:
    """A running cluster of ``nodes`` nodes on this machine (see the module docstring). Use
    ``start`` and ``stop``."""

    folder: Path
    host: str
    cpus: int
    mem_mb: int
    nodes: int = 2
    partition: str = PARTITION
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    links: list[Path] = field(default_factory=list)
    lock_fd: int | None = None

    @classmethod
    def start(cls, folder: Path, wait_lock_s: float = 600, nodes: int = 2) -> LocalSlurm:
        """Start the daemons. Waits up to ``wait_lock_s`` for another test session's cluster;
        raises ClusterBusy when SLURM daemons already run, RuntimeError (with the daemon logs)
        when one of ours fails."""
        folder = Path(folder) / MARKER
        (folder / "state").mkdir(parents=True)
        (folder / "spool").mkdir()
        cluster = cls(folder, socket.gethostname().split(".")[0], os.cpu_count() or 1,
                      max(_mem_mb() - 512, 1024), nodes)
        try:
            cluster._lock(wait_lock_s)
            if busy := _running_daemons():
                raise ClusterBusy(f"SLURM daemons already run on this machine ({', '.join(busy)}); "
                                  "not touching them (if an interrupted test left them, stop them "
                                  "by PID)")
            cluster._configure()
            cluster._start_munge()
            cluster._start_daemons()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _lock(self, wait_s: float) -> None:
        fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.lock_fd = fd
                return
            except BlockingIOError as err:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise ClusterBusy(f"another test session has run a local SLURM for over "
                                      f"{wait_s:.0f} s (lock {LOCK})") from err
                time.sleep(2)

    def _configure(self) -> None:
        conf = self.folder / "slurm.conf"
        ports = tuple(_free_port() for _ in range(self.nodes + 1))
        conf.write_text(slurm_conf(self.folder, self.host, self.cpus, self.mem_mb, ports))
        (self.folder / "gres.conf").write_text("".join(
            f"NodeName={node} Name=gpu File={dev}\n"
            for node in self.node_names for dev in FAKE_GPU_FILES))
        ETC.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf"):
            link = ETC / name
            if link.is_symlink() or link.exists():
                if MARKER not in os.path.realpath(link):
                    raise RuntimeError(f"{link} exists and is not ours")
                link.unlink()  # a leftover of an earlier, killed test session
            link.symlink_to(self.folder / name)
            self.links.append(link)

    def _start_munge(self) -> None:
        if _run(["bash", "-c", "munge -n | unmunge"]).returncode == 0:
            return  # a munged already answers: use it
        for d in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
            Path(d).mkdir(parents=True, exist_ok=True)
            shutil.chown(d, "munge", "munge")
        if not Path("/etc/munge/munge.key").exists():
            _run(["mungekey", "--create", "--keyfile", "/etc/munge/munge.key"], check=True)
            shutil.chown("/etc/munge/munge.key", "munge", "munge")
        self._spawn("munged", ["munged", "--foreground", "--force"], user="munge", group="munge",
                    extra_groups=[])
        self._wait("munged", lambda: _run(["bash", "-c", "munge -n | unmunge"]).returncode == 0)

    @property
    def node_names(self) -> list[str]:
        return node_names(self.host, self.nodes)

    def _start_daemons(self) -> None:
        conf = str(ETC / "slurm.conf")
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", conf])
        self._wait("slurmctld", lambda: "UP" in _run(["scontrol", "ping"]).stdout)
        for node in self.node_names:  # one slurmd per node, told its name
            self._spawn(f"slurmd {node}", ["slurmd", "-D", "-N", node, "-f", conf])
        ready = ("idle", "mixed", "allocated")
        self._wait(f"slurmd {node}", lambda: all(state in ready for state in self.node_states()))

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        """Start a daemon in the foreground (so its PID is ours), stderr to <name>.stderr."""
        with open(self.folder / f"{name.replace(' ', '.')}.stderr", "w") as err:
            self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                                stdin=subprocess.DEVNULL, **kw)

    def node_states(self) -> list[str]:
        """Each node's short state (idle, mixed, down, ...)."""
        return [line.rstrip("*~#") for line in _run(["sinfo", "-h", "-N", "-o", "%t"]).stdout.split()]

    def _wait(self, name: str, ready, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs.get(name) is not None and self.procs[name].poll() is not None:
                break
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not come up (node states {self.node_states()!r}):\n"
                           + self.logs())

    def logs(self, tail: int = 3000) -> str:
        out = []
        for path in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.stderr")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel all jobs, end the daemons we started (by PID), remove our /etc/slurm links."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            _run(["scancel", "--partition", self.partition], timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _run(["squeue", "-h", "-t", "R,CG,PD"]).stdout.strip():
                time.sleep(1)
        slurmds = [name for name in self.procs if name.startswith("slurmd ")]
        for name in (*slurmds, "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for link in self.links:
            if link.is_symlink():
                link.unlink()
        self.links.clear()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
