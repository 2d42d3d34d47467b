"""A one-node SLURM (munged, slurmctld, slurmd from Debian's packages) under a folder, for tests and benchmarks.

Used by the ``slurm_cluster`` fixture of ``tests/test_experiment_slurm.py`` and by
``benchmarks/bench_experiment.py``. :func:`one_node_slurm` raises :class:`SlurmUnavailableError` (the fixture turns it
into a skip) when the packages or root are missing or the daemons do not come up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
APT = "apt-get install -y slurmctld slurmd slurm-client munge"


class SlurmUnavailableError(RuntimeError):
    """SLURM cannot run here (why is the message)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(predicate, timeout: float, what: str, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)




@contextlib.contextmanager
def one_node_slurm(root: Path) -> Iterator[Path]:
    """Starts a one-node SLURM with its state, spool, logs and munge key under ``root``; sets ``SLURM_CONF``.

    Args:
        root: an empty folder.

    Yields:
        ``root``; on exit every job is cancelled and the daemons stop.

    Raises:
        SlurmUnavailableError: the packages or root are missing, or the daemons did not come up.
    """
    missing = [name for name in BINARIES if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]
    if missing:
        raise SlurmUnavailableError(f"SLURM is not installed ({', '.join(missing)} missing): {APT}")
    if os.geteuid() != 0:
        raise SlurmUnavailableError("the one-node SLURM of these tests runs its daemons as root")
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir()
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    munge_socket = root / "munge" / "munge.socket"
    host = socket.gethostname()
    cpus = os.cpu_count() or 1
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=serltest",
                f"SlurmctldHost={host}",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={munge_socket}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "SlurmUser=root",
                "SlurmdUser=root",
                "ReturnToService=2",
                "MpiDefault=none",
                "SchedulerType=sched/backfill",
                "SchedulerParameters=sched_interval=1",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "KillWait=5",
                "MinJobAge=30",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                f"NodeName={host} CPUs={cpus} RealMemory=4000 State=UNKNOWN",
                f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    previous_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    started = False
    pid_files = [root / "slurmd.pid", root / "slurmctld.pid", root / "munge" / "munged.pid"]
    try:
        subprocess.run(
            [
                shutil.which("munged") or "/usr/sbin/munged",
                "--force",
                f"--key-file={key}",
                f"--socket={munge_socket}",
                f"--pid-file={root / 'munge' / 'munged.pid'}",
                f"--log-file={root / 'log' / 'munged.log'}",
                f"--seed-file={root / 'munge' / 'munged.seed'}",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run([shutil.which("slurmctld") or "/usr/sbin/slurmctld", "-f", str(conf)], check=True)
        subprocess.run([shutil.which("slurmd") or "/usr/sbin/slurmd", "-f", str(conf)], check=True)

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, check=False).stdout
            return out.strip() in ("idle", "mix", "alloc")

        try:
            wait(idle, 30, "the SLURM node to come up idle")
        except TimeoutError as err:
            logs = "\n".join(p.read_text()[-2000:] for p in (root / "log").glob("*.log"))
            raise SlurmUnavailableError(f"SLURM did not start here ({err}):\n{logs}") from err
        started = True
        yield root
    except subprocess.CalledProcessError as err:
        if started:  # a failure of the code that used the cluster, not of its start
            raise
        raise SlurmUnavailableError(f"SLURM daemons did not start: {err} {getattr(err, 'stderr', b'')!r}") from err
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True, check=False)
        for pid_file in pid_files:
            _stop(pid_file)
        if previous_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous_conf


