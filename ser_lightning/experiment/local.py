"""The local executor: every cell a fresh ``python -m ser_lightning fit`` process, one at a time or ``jobs`` at once.

Per cell it writes ``<cell>/cell.log`` (the process' stdout and stderr, appended attempt after attempt) and
``<cell>/cell.json`` (state ``running``/``done``/``failed``, return code, start and end times, the command).
Running a plan again

- skips a cell that is ``done`` and whose ``results.json`` holds test results,
- skips (with a warning) a cell whose ``running`` process is still alive on this host,
- resumes from ``<cell>/checkpoints/last.ckpt`` a cell that has that checkpoint but no test results (an
  interrupted or failed run),
- starts every other cell (new, or failed before its first checkpoint) from scratch.

A failed cell does not stop the others; the run ends with a summary naming each failed cell and its log file.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ser_lightning.experiment.plan import LAST_CKPT, Cell, Plan

__all__ = [
    "CellOutcome",
    "LocalExecutor",
    "cell_state",
    "has_test_results",
    "read_cell_json",
    "resumes",
    "run_cell",
    "summary",
]

log = logging.getLogger(__name__)

CELL_JSON = "cell.json"
CELL_LOG = "cell.log"
RESULTS = "results.json"
TEST_KEYS = ("test_ua", "test_ccc")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cell-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)


def read_cell_json(directory: Path) -> dict[str, Any] | None:
    """The cell's ``cell.json``, or ``None`` when it has none (or it is unreadable)."""
    path = Path(directory) / CELL_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def has_test_results(directory: Path) -> bool:
    """Whether ``<directory>/results.json`` holds a test metric (an interrupted fit writes only ``training_stop``)."""
    try:
        results = json.loads((Path(directory) / RESULTS).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(results, dict) and any(key in results for key in TEST_KEYS)


def resumes(directory: Path) -> bool:
    """Whether a cell continues from ``<directory>/checkpoints/last.ckpt`` (it has one, but no test results)."""
    return (Path(directory) / LAST_CKPT).is_file() and not has_test_results(directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cell_state(cell: Cell) -> str:
    """The cell's state on disk.

    Returns:
        ``done`` (finished, with test results), ``running`` (its process is alive on this host), ``interrupted``
        (left ``running`` by a process that is gone, or results without a test), ``failed``, or ``pending``
        (never started).
    """
    info = read_cell_json(cell.directory)
    if info is None:
        return "done" if has_test_results(cell.directory) else "pending"
    state = info.get("state")
    if state == "done" and has_test_results(cell.directory):
        return "done"
    if state == "running":
        pid = info.get("pid")
        if info.get("host") == socket.gethostname() and isinstance(pid, int) and _alive(pid):
            return "running"
        return "interrupted"
    return "failed" if state in ("failed", "done") else "pending"


@dataclass
class CellOutcome:
    """What happened to one cell in one executor run.

    Args:
        cell: the cell.
        state: ``done``, ``failed``, ``skipped`` (already done) or ``busy`` (running elsewhere).
        returncode: the process' exit status (``None`` when not run).
        seconds: wall time of the process.
        log: the cell's log file.
        resumed: whether the run continued from ``last.ckpt``.
        reason: why a cell failed.
    """

    cell: Cell
    state: str
    returncode: int | None = None
    seconds: float = 0.0
    log: Path | None = None
    resumed: bool = False
    reason: str = ""


def run_cell(
    cell: Cell,
    env: dict[str, str] | None = None,
    *,
    prefix: list[str] | None = None,
    suffix: list[str] | None = None,
    extra_info: dict[str, Any] | None = None,
    on_process: Callable[[subprocess.Popen | None], None] | None = None,
) -> CellOutcome:
    """Runs one cell to its end: the cell runner shared by every executor (local processes, SLURM array tasks).

    Resumes from ``<cell>/checkpoints/last.ckpt`` when the cell has one but no test results, appends the process'
    output to ``<cell>/cell.log`` and keeps ``<cell>/cell.json`` up to date (``running`` with the pid while it
    runs, then ``done`` or ``failed``).

    Args:
        cell: the cell.
        env: the process' environment (default: this process' environment).
        prefix: a launcher put before the command (e.g. ``srun --ntasks-per-node 2``).
        suffix: extra arguments put after the command (e.g. ``--trainer.devices 2``).
        extra_info: more fields of ``cell.json`` (e.g. the SLURM job id).
        on_process: called with the started process, and with ``None`` once it has ended.

    Returns:
        The outcome.
    """
    cell.directory.mkdir(parents=True, exist_ok=True)
    resume = resumes(cell.directory)
    command = [*(prefix or []), *cell.command(resume=resume), *(suffix or [])]
    previous = read_cell_json(cell.directory) or {}
    attempt = int(previous.get("attempt", 0)) + 1
    log_path = cell.directory / CELL_LOG
    info: dict[str, Any] = {
        "cell": cell.name,
        "variant": cell.variant,
        "fold": cell.fold,
        "seed": cell.seed,
        "state": "running",
        "returncode": None,
        "attempt": attempt,
        "resumed": resume,
        "started": _now(),
        "ended": None,
        "seconds": None,
        "command": command,
        "log": str(log_path),
        "host": socket.gethostname(),
        "pid": None,
        **(extra_info or {}),
    }
    start = time.monotonic()
    with log_path.open("a") as handle:
        handle.write(
            f"\n===== attempt {attempt} started {info['started']}{' (resumed from last.ckpt)' if resume else ''}\n"
            f"===== {shlex.join(command)}\n"
        )
        handle.flush()
        try:
            process = subprocess.Popen(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=dict(os.environ) if env is None else env,
                stdin=subprocess.DEVNULL,
            )
        except OSError as err:
            info.update(state="failed", ended=_now(), seconds=0.0, reason=f"could not start: {err}")
            _write_json(cell.directory / CELL_JSON, info)
            return CellOutcome(cell, "failed", None, 0.0, log_path, resume, info["reason"])
        info["pid"] = process.pid
        _write_json(cell.directory / CELL_JSON, info)
        if on_process is not None:
            on_process(process)
        try:
            returncode = process.wait()
        finally:
            if on_process is not None:
                on_process(None)
    seconds = time.monotonic() - start
    finished = has_test_results(cell.directory)
    reason = ""
    if returncode != 0:
        reason = f"exit status {returncode}"
    elif not finished:
        reason = "exited without test results (interrupted, or test_after_fit false)"
    state = "done" if not reason else "failed"
    info.update(state=state, returncode=returncode, ended=_now(), seconds=round(seconds, 2))
    if reason:
        info["reason"] = reason
    _write_json(cell.directory / CELL_JSON, info)
    return CellOutcome(cell, state, returncode, seconds, log_path, resume, reason)


class LocalExecutor:
    """Runs the cells of a plan as local processes.

    Args:
        jobs: how many cells run at once (default 1: sequentially). With ``jobs > 1`` each process gets
            ``OMP_NUM_THREADS = CPUs // jobs`` unless the environment sets it.
        env: extra environment variables of every cell.
    """

    def __init__(self, jobs: int = 1, env: dict[str, str] | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.env = dict(env or {})
        self._lock = threading.Lock()
        self._running: dict[Cell, subprocess.Popen] = {}

    def _environment(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        if self.jobs > 1 and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.jobs))
        return env

    def run_cell(self, cell: Cell) -> CellOutcome:
        """Runs one cell to its end (resuming from ``last.ckpt`` when it has one but no test results)."""

        def track(process: subprocess.Popen | None) -> None:
            with self._lock:
                if process is None:
                    self._running.pop(cell, None)
                else:
                    self._running[cell] = process

        return run_cell(cell, self._environment(), on_process=track)

    def run(self, plan: Plan, indices: list[int] | None = None) -> list[CellOutcome]:
        """Runs every cell that is not done yet.

        Args:
            plan: the plan.
            indices: run only these cells of the plan (default: all; see :meth:`Plan.select`).

        Returns:
            One outcome per chosen cell, in plan order.
        """
        cells = [plan.cells[i] for i in (plan.select() if indices is None else indices)]
        total = len(cells)
        outcomes: dict[Cell, CellOutcome] = {}
        todo: list[Cell] = []
        for cell in cells:
            state = cell_state(cell)
            if state == "done":
                outcomes[cell] = CellOutcome(cell, "skipped", 0, 0.0, cell.directory / CELL_LOG)
            elif state == "running":
                log.warning(
                    "%s is running in another process (pid in %s): not started again",
                    cell.name,
                    cell.directory / CELL_JSON,
                )
                outcomes[cell] = CellOutcome(cell, "busy", None, 0.0, cell.directory / CELL_LOG)
            else:
                todo.append(cell)
        skipped = sum(o.state == "skipped" for o in outcomes.values())
        log.info(
            "experiment %s: %d cells, %d done already (skipped), %d to run, %d at a time",
            plan.spec.name,
            total,
            skipped,
            len(todo),
            self.jobs,
        )
        start = time.monotonic()
        ran: list[float] = []
        finished = skipped
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                pending: set[Future] = {pool.submit(self.run_cell, cell) for cell in todo}
                while pending:
                    completed, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in completed:
                        outcome = future.result()
                        outcomes[outcome.cell] = outcome
                        ran.append(outcome.seconds)
                        finished += 1
                        elapsed = time.monotonic() - start
                        left = total - finished - sum(o.state == "busy" for o in outcomes.values())
                        eta = (sum(ran) / len(ran)) * left / self.jobs
                        failed = sum(o.state == "failed" for o in outcomes.values())
                        log.info(
                            "cell %d/%d %s: %s%s in %s; %d failed so far; elapsed %s, ETA %s",
                            finished,
                            total,
                            outcome.cell.name,
                            outcome.state,
                            f" ({outcome.reason}, log {outcome.log})" if outcome.reason else "",
                            _duration(outcome.seconds),
                            failed,
                            _duration(elapsed),
                            _duration(eta),
                        )
        except KeyboardInterrupt:
            with self._lock:
                running = list(self._running.values())
            for process in running:
                process.terminate()
            log.warning("interrupted: stopped %d running cell(s); run again to resume them", len(running))
            raise
        return [outcomes[cell] for cell in cells if cell in outcomes]


def summary(plan: Plan, outcomes: list[CellOutcome]) -> str:
    """One paragraph: cells done, skipped, failed (each failed cell with its log file), of the cells run."""
    counts = {state: sum(o.state == state for o in outcomes) for state in ("done", "skipped", "failed", "busy")}
    part = "" if len(outcomes) == len(plan.cells) else f" of the {len(outcomes)} selected"
    lines = [
        f"experiment {plan.spec.name}: {counts['done'] + counts['skipped']}/{len(outcomes)} cells{part} done "
        f"({counts['done']} run now, {counts['skipped']} skipped as done already), {counts['failed']} failed"
        + (f", {counts['busy']} running elsewhere" if counts["busy"] else "")
    ]
    for outcome in outcomes:
        if outcome.state == "failed":
            lines.append(f"  FAILED {outcome.cell.name}: {outcome.reason}; log {outcome.log}")
    return "\n".join(lines)
