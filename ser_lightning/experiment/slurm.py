"""The SLURM executor: one job array per ``run``, one array task per pending cell.

``python -m ser_lightning.experiment run SPEC --executor slurm [--slurm.partition P --slurm.time 4:00:00 ...]``
writes ``<experiment>/experiment.json`` (the frozen plan) and a generated batch script
``<experiment>/slurm/submit-<time>.sh``, submits it with ``sbatch --parsable`` and records the job in
``<experiment>/slurm.json``. The array's indices are the plan indices of the cells that are not done yet
(``--array=0-N%P`` when all are pending, P = ``--slurm.max_parallel``), so ``SLURM_ARRAY_TASK_ID`` *is* the cell
index. Each task runs ``python -m ser_lightning.experiment cell <experiment>/experiment.json --index K``: the same
cell runner as the local executor (:func:`ser_lightning.experiment.local.run_cell`), so ``cell.json``/``cell.log``,
skip-if-done and resume-from-``last.ckpt`` behave exactly as they do locally.

Why a generated ``sbatch`` script and not submitit: submitit is not installed and this package adds no dependency
for it; a plain script is what a cluster's users and admins read and debug (``sbatch --test-only``, copy, edit,
resubmit by hand), it needs nothing on the compute nodes but this package, and a job array with ``%P`` gives the
throttled one-task-per-cell fan-out that submitit would emulate with pickled callables.

Pre-emption and time limits: the script asks for ``#SBATCH --signal=B:USR1@<seconds>`` and ``--requeue``. SLURM
sends USR1 to the batch shell, which has ``exec``'d the cell runner; the runner interrupts its ``fit`` (SIGINT,
Lightning's graceful Ctrl-C; SIGTERM to ``srun`` for a DDP cell), marks the cell ``requeued`` in ``cell.json`` and
calls ``scontrol requeue $SLURM_JOB_ID``. The requeued task runs the same runner again, which resumes from
``<cell>/checkpoints/last.ckpt`` with ``--ckpt_path``: the exact resume of ``ser_lightning.cli`` (same run folder,
same figures as an uninterrupted run). We do not use Lightning's own ``SLURMEnvironment(auto_requeue=True)``: it
saves an ``hpc_ckpt_N.ckpt`` in the middle of an epoch and requeues from inside the training process, so the
resumed run restarts mid-epoch from a checkpoint the cell runner does not know (not the exact-resume
``last.ckpt``), ``cell.json`` would stay ``running`` and the requeue would bypass the one place that decides skip
and resume. A single-device cell therefore runs its ``fit`` without ``SLURM_NTASKS`` (Lightning sees a plain local
run, exactly the local executor's), and the signal goes to the batch shell only (``B:``).

Multi-GPU: ``--slurm.devices D`` asks for ``--ntasks-per-node=D`` and the runner launches the cell's ``fit`` with
``srun --ntasks-per-node=D ... --trainer.devices D``: one DDP run per cell, ranks from SLURM.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ser_lightning.experiment.local import (
    CELL_JSON,
    _write_json,
    cell_state,
    read_cell_json,
    run_cell,
)
from ser_lightning.experiment.plan import Cell, Plan

__all__ = [
    "SlurmOptions",
    "array_spec",
    "load_plan",
    "pending_indices",
    "run_task",
    "sbatch_script",
    "slurm_states",
    "squeue_tasks",
    "submit",
    "wait_for",
]

log = logging.getLogger(__name__)

SLURM_DIR = "slurm"
SLURM_JSON = "slurm.json"
EXPERIMENT_JSON = "experiment.json"
_JOB_ID = re.compile(r"^[0-9]+(_[0-9]+)?$")


@dataclass
class SlurmOptions:
    """Resources and behaviour of the SLURM job array (``--slurm.<name>``).

    Args:
        partition: ``--partition`` (default: the cluster's default partition).
        time: ``--time`` of each task, e.g. ``4:00:00`` (default: the partition's limit).
        gpus_per_task: ``--gpus-per-task`` (0: none asked).
        cpus_per_task: ``--cpus-per-task``.
        mem: ``--mem`` per node, e.g. ``16G`` (default: the partition's default).
        devices: processes (GPUs) per cell: ``--ntasks-per-node`` and a DDP ``fit`` under ``srun`` when > 1.
        max_parallel: at most this many tasks run at once (the array's ``%P``; 0: no limit).
        signal_seconds: USR1 this many seconds before the time limit (``--signal=B:USR1@<s>``), then requeue.
        job_name: ``--job-name`` (default: ``serl-<experiment>``).
        extra: more ``#SBATCH`` lines, e.g. ``--account=abc`` or ``--constraint=a100`` (with or without
            ``#SBATCH``).
        setup: shell lines run before the cell (e.g. ``module load cuda``, ``source .venv/bin/activate``).
        wait: wait for the array to end, then collect the card.
        wait_timeout: seconds to wait at most (0: no limit).
    """

    partition: str | None = None
    time: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem: str | None = None
    devices: int = 1
    max_parallel: int = 0
    signal_seconds: int = 90
    job_name: str | None = None
    extra: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    wait: bool = False
    wait_timeout: float = 0.0


def array_spec(indices: list[int], max_parallel: int = 0) -> str:
    """The ``--array`` value of some cell indices, consecutive ones as ranges: ``[0, 1, 2, 5]`` -> ``0-2,5``.

    Args:
        indices: the cell indices (plan order).
        max_parallel: the ``%P`` throttle (0: none).
    """
    if not indices:
        raise ValueError("no cell to submit")
    values = sorted(set(indices))
    parts: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ",".join(parts) + (f"%{max_parallel}" if max_parallel > 0 else "")


def pending_indices(plan: Plan, indices: list[int] | None = None) -> list[int]:
    """The plan indices of the cells to submit.

    Args:
        plan: the plan.
        indices: consider only these cells (default: all; see :meth:`Plan.select`).

    Returns:
        The cells not done, not running on this host and not queued or running in an array submitted before
        (``squeue``): a second ``run`` while an array runs submits no cell twice.
    """
    states = slurm_states(plan)
    chosen = plan.select() if indices is None else indices
    return [i for i in chosen if states[plan.cells[i].name] not in ("done", "running", "queued")]


def sbatch_script(plan: Plan, indices: list[int], options: SlurmOptions, workdir: Path | None = None) -> str:
    """The batch script of a job array running the given cells.

    Args:
        plan: the plan (its ``experiment.json`` is what the tasks read).
        indices: the cell indices to run (the array's task ids).
        options: resources and behaviour.
        workdir: the tasks' working directory (default: this one).

    Returns:
        The script's text.
    """
    if options.devices < 1:
        raise ValueError(f"slurm.devices must be >= 1, got {options.devices}")
    directory = plan.directory
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={options.job_name or 'serl-' + plan.spec.name}",
        f"#SBATCH --array={array_spec(indices, options.max_parallel)}",
        f"#SBATCH --output={directory / SLURM_DIR / '%A_%a.out'}",
        "#SBATCH --open-mode=append",
        "#SBATCH --nodes=1",
        f"#SBATCH --ntasks-per-node={options.devices}",
        f"#SBATCH --cpus-per-task={options.cpus_per_task}",
    ]
    if options.gpus_per_task:
        lines.append(f"#SBATCH --gpus-per-task={options.gpus_per_task}")
    if options.mem:
        lines.append(f"#SBATCH --mem={options.mem}")
    if options.time:
        lines.append(f"#SBATCH --time={options.time}")
    if options.partition:
        lines.append(f"#SBATCH --partition={options.partition}")
    lines += [f"#SBATCH --signal=B:USR1@{options.signal_seconds}", "#SBATCH --requeue"]
    for extra in options.extra:
        extra = extra.strip()
        lines.append(extra if extra.startswith("#SBATCH") else f"#SBATCH {extra}")
    command = [
        sys.executable,
        "-m",
        "ser_lightning.experiment",
        "cell",
        str(directory / EXPERIMENT_JSON),
        "--index",
        "$SLURM_ARRAY_TASK_ID",
    ]
    if options.devices > 1:
        command += ["--devices", str(options.devices)]
    quoted = " ".join('"$SLURM_ARRAY_TASK_ID"' if part.startswith("$") else shlex.quote(part) for part in command)
    lines += [
        "",
        f"# Generated by ser_lightning.experiment for experiment {plan.spec.name} ({len(indices)} cell(s)).",
        "# Each task runs one cell (SLURM_ARRAY_TASK_ID = the cell's index in experiment.json) with the same",
        "# runner as the local executor; on USR1 (pre-emption, time limit) it stops the fit and requeues itself,",
        "# and the requeued task resumes from <cell>/checkpoints/last.ckpt.",
        "set -eo pipefail",
        f"cd {shlex.quote(str(workdir or Path.cwd()))}",
        *options.setup,
        "export PYTHONUNBUFFERED=1",
        "# One intra-op thread per CPU SLURM gave the task (unless set): tasks sharing a node do not oversubscribe it.",
        'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"',
        'export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$OMP_NUM_THREADS}"',
        f"exec {quoted}",
        "",
    ]
    return "\n".join(lines)


def _slurm_record(plan: Plan) -> dict[str, Any]:
    try:
        return json.loads((plan.directory / SLURM_JSON).read_text())
    except (OSError, json.JSONDecodeError):
        return {"submissions": []}


def submit(plan: Plan, options: SlurmOptions, dry_run: bool = False, indices: list[int] | None = None) -> str | None:
    """Writes the batch script of every pending cell and submits it.

    Args:
        plan: the plan (``experiment.json`` must already be written).
        options: resources and behaviour.
        dry_run: write the script but do not submit it.
        indices: submit only these cells of the plan, if pending (default: all; see :meth:`Plan.select`).

    Returns:
        The array's job id (``None`` when nothing is pending or on a dry run).
    """
    indices = pending_indices(plan, indices)
    if not indices:
        log.info("experiment %s: every cell is done (or running): nothing to submit", plan.spec.name)
        return None
    folder = plan.directory / SLURM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    script = folder / f"submit-{stamp}.sh"
    script.write_text(sbatch_script(plan, indices, options))
    if dry_run:
        log.info("wrote %s (not submitted)", script)
        return None
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise RuntimeError(f"sbatch not found: SLURM is not installed here (the script is {script})")
    done = subprocess.run([sbatch, "--parsable", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sbatch {script} failed ({done.returncode}): {done.stderr.strip()}")
    job_id = done.stdout.strip().split(";")[0]
    record = _slurm_record(plan)
    record["submissions"].append(
        {"job_id": job_id, "indices": indices, "script": str(script), "submitted": stamp, "options": vars(options)}
    )
    _write_json(plan.directory / SLURM_JSON, record)
    log.info(
        "experiment %s: submitted job array %s (%d cell(s), --array=%s), script %s",
        plan.spec.name,
        job_id,
        len(indices),
        array_spec(indices, options.max_parallel),
        script,
    )
    return job_id


def squeue_tasks(job_ids: list[str]) -> dict[tuple[str, int], str] | None:
    """The SLURM state of every queued or running task of some job arrays.

    Args:
        job_ids: array job ids.

    Returns:
        ``(array job id, task id) -> state`` (``PENDING``, ``RUNNING``, ...), or ``None`` without ``squeue``.
    """
    squeue = shutil.which("squeue")
    if squeue is None or not job_ids:
        return None if squeue is None else {}
    done = subprocess.run(
        [squeue, "-h", "-r", "-j", ",".join(job_ids), "-o", "%F %K %T"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:  # e.g. "Invalid job id specified" once every job has left the queue
        return {}
    tasks: dict[tuple[str, int], str] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            tasks[(parts[0], int(parts[1]))] = parts[2]
    return tasks


def slurm_states(plan: Plan) -> dict[str, str]:
    """Every cell's state, from ``squeue`` while its task is in the queue, else from its ``cell.json``.

    Returns:
        cell name -> ``queued`` or ``running`` (in the queue), else ``done``, ``failed``, ``interrupted``,
        ``requeued`` or ``pending``.
    """
    submissions = _slurm_record(plan)["submissions"]
    tasks = squeue_tasks([s["job_id"] for s in submissions]) or {}
    latest: dict[int, str] = {}
    for submission in submissions:
        for index in submission["indices"]:
            latest[index] = submission["job_id"]
    states = {}
    for index, cell in enumerate(plan.cells):
        queue_state = tasks.get((latest.get(index, ""), index))
        if queue_state in ("RUNNING", "COMPLETING"):
            states[cell.name] = "running"
        elif queue_state is not None:
            states[cell.name] = "queued"
        else:
            info = read_cell_json(cell.directory) or {}
            disk = cell_state(cell)
            states[cell.name] = "requeued" if disk == "pending" and info.get("state") == "requeued" else disk
    return states


def wait_for(job_id: str, timeout: float = 0.0, poll: float = 5.0) -> bool:
    """Waits until no task of a job array is queued or running.

    Args:
        job_id: the array job id.
        timeout: seconds at most (0: no limit).
        poll: seconds between ``squeue`` calls.

    Returns:
        Whether the array ended within the timeout.
    """
    start = time.monotonic()
    while True:
        tasks = squeue_tasks([job_id])
        if not tasks:
            return True
        if timeout and time.monotonic() - start > timeout:
            return False
        time.sleep(poll)


def load_plan(path: str | Path) -> Plan:
    """The plan of ``experiment.json`` (what was submitted: folds resolved, commands fixed) or of a spec YAML."""
    from ser_lightning.experiment.plan import make_plan
    from ser_lightning.experiment.spec import load_spec, parse_spec

    path = Path(path)
    if path.suffix != ".json":
        return make_plan(load_spec(path))
    data = json.loads(path.read_text())
    spec_data = dict(data["spec"])
    source = spec_data.pop("source", "") or str(path)
    spec = parse_spec(spec_data, source)
    cells = []
    for item in data["cells"]:
        command = shlex.split(item["command"])
        cells.append(Cell(item["variant"], item["fold"], item["seed"], Path(item["directory"]), tuple(command[3:])))
    return Plan(spec, list(data["folds"]), cells, data.get("fold_source", ""))


def _requeue(job_id: str) -> bool:
    if not _JOB_ID.match(job_id):
        log.error("not requeued: bad job id %r", job_id)
        return False
    done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log.error("scontrol requeue %s failed: %s", job_id, done.stderr.strip())
        return False
    return True


def run_task(plan: Plan, index: int, devices: int = 1, stop_timeout: float = 60.0) -> int:
    """Runs one cell as a SLURM task (the ``cell`` command): skip if done, resume, requeue on USR1.

    Args:
        plan: the plan.
        index: the cell's index in the plan (``SLURM_ARRAY_TASK_ID``).
        devices: processes of the cell's ``fit``; > 1 launches a DDP ``fit`` with ``srun``.
        stop_timeout: seconds the ``fit`` gets to stop after USR1 before it is killed.

    Returns:
        The exit status: 0 done (or skipped, or requeued), 1 failed.
    """
    if not 0 <= index < len(plan.cells):
        log.error("no cell %d: the plan has %d cells", index, len(plan.cells))
        return 2
    cell = plan.cells[index]
    state = cell_state(cell)
    if state in ("done", "running"):
        log.info("cell %d %s is %s already: not run again", index, cell.name, state)
        return 0
    job_id = os.environ.get("SLURM_JOB_ID", "")
    extra = {
        "executor": "slurm",
        "slurm_job_id": job_id,
        "slurm_array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    prefix: list[str] = []
    suffix: list[str] = []
    if devices > 1:
        prefix = ["srun", f"--ntasks-per-node={devices}", "--nodes=1", "--kill-on-bad-exit=1"]
        suffix = ["--trainer.devices", str(devices), "--trainer.num_nodes", "1"]
    else:  # a plain local fit: Lightning's SLURM environment (and its own auto-requeue) stays out of it
        env.pop("SLURM_NTASKS", None)
    running: list[subprocess.Popen] = []
    requested: list[int] = []

    def on_usr1(signum: int, _frame: Any) -> None:
        log.warning("cell %s: got signal %d: stopping the fit to requeue", cell.name, signum)
        for process in running:
            process.send_signal(signal.SIGTERM if prefix else signal.SIGINT)
        if not requested:
            signal.alarm(max(1, int(stop_timeout)))  # the fit gets stop_timeout seconds, then it is killed
        requested.append(signum)

    def on_alarm(_signum: int, _frame: Any) -> None:
        for process in running:
            process.kill()

    def track(process: subprocess.Popen | None) -> None:
        if process is None:
            running.clear()
        else:
            running.append(process)

    previous = signal.signal(signal.SIGUSR1, on_usr1), signal.signal(signal.SIGALRM, on_alarm)
    try:
        log.info("cell %d %s on %s (job %s)", index, cell.name, socket.gethostname(), job_id or "-")
        outcome = run_cell(cell, env, prefix=prefix, suffix=suffix, extra_info=extra, on_process=track)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGUSR1, previous[0])
        signal.signal(signal.SIGALRM, previous[1])
    if requested and outcome.state != "done":
        info = read_cell_json(cell.directory) or {}
        info.update(state="requeued", reason="stopped by SLURM (pre-emption or time limit): requeued")
        _write_json(cell.directory / CELL_JSON, info)
        requeued = bool(job_id) and _requeue(job_id)
        log.warning("cell %s %s", cell.name, "requeued" if requeued else "stopped but NOT requeued")
        return 0 if requeued else 1
    log.info("cell %s: %s%s", cell.name, outcome.state, f" ({outcome.reason})" if outcome.reason else "")
    return 0 if outcome.state == "done" else 1
