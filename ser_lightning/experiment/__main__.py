"""``python -m ser_lightning.experiment {run,status,collect,cell} SPEC.yaml``.

- ``run SPEC [--dry-run] [--executor local|slurm] [--jobs N] [--output_root DIR] [--slurm.<option> ...]``: runs
  every cell not done yet (skips done cells, resumes interrupted ones from ``last.ckpt``, reruns failed ones), then
  collects the card. ``--dry-run`` lists every cell, its folder and its command, and runs nothing (with
  ``--executor slurm`` it also writes the batch script without submitting it). ``--executor slurm`` submits one
  job array (one task per pending cell) and returns at once, unless ``--slurm.wait true``.
- ``status SPEC``: the state of every cell (done, running, interrupted, failed, pending; with SLURM also queued
  and requeued, from ``squeue``).
- ``collect SPEC``: writes ``card.json``, ``card.md`` and ``cells.csv`` from the cells' ``results.json`` (also
  while cells still run: the card counts the cells done so far).
- ``cell EXPERIMENT_JSON_OR_SPEC --index K [--devices D]``: runs cell K only, as a SLURM array task does.

The exit status of ``run`` is 0 when every cell is done (or the array was submitted), 1 when any failed, 2 for a
bad spec.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from typing import Any, Literal

from jsonargparse import ArgumentParser

import ser_lightning
from ser_lightning.experiment.slurm import SlurmOptions
from ser_lightning.experiment.spec import ExperimentSpecError, load_spec

__all__ = ["main"]

log = logging.getLogger("ser_lightning.experiment")


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m ser_lightning.experiment",
        version=ser_lightning.__version__,
        description="Run an experiment (base config x folds x seeds x variants) and collect its result card.",
    )
    commands = parser.add_subcommands(dest="command")
    for name, help_ in (
        ("run", "run every cell that is not done yet, then collect the card"),
        ("status", "the state of every cell"),
        ("collect", "write card.json, card.md and cells.csv from the cells' results"),
    ):
        sub = ArgumentParser(description=help_)
        sub.add_argument("spec", type=str, help="the experiment YAML (configs/experiments/<name>.yaml)")
        sub.add_argument(
            "--output_root",
            type=str | None,
            default=None,
            help="the folder that holds the experiment folder (default: the spec's output_root)",
        )
        if name == "run":
            sub.add_argument(
                "--dry-run",
                dest="dry_run",
                type=bool,
                default=False,
                nargs="?",
                const=True,
                help="list every cell and its command; run nothing",
            )
            sub.add_argument(
                "--executor",
                type=Literal["local", "slurm"],
                default="local",
                help="where cells run: local processes, or a SLURM job array (docs/experiments.md)",
            )
            sub.add_argument("--jobs", type=int, default=1, help="cells run at once (local executor)")
            sub.add_argument(
                "--variants",
                type=list[str] | None,
                default=None,
                help="run only these variants' cells (default: all); the card lists the others as pending",
            )
            sub.add_argument("--collect", type=bool, default=True, help="collect the card when the run ends")
            sub.add_class_arguments(SlurmOptions, "slurm", help="the SLURM job array (--executor slurm)")
        commands.add_subcommand(name, sub, help=help_)
    cell = ArgumentParser(description="run one cell (what a SLURM array task runs)")
    cell.add_argument("experiment", type=str, help="<experiment>/experiment.json (or the spec YAML)")
    cell.add_argument("--index", type=int, required=True, help="the cell's index in the plan")
    cell.add_argument("--devices", type=int, default=1, help="processes of the cell's fit (> 1: DDP under srun)")
    commands.add_subcommand("cell", cell, help="run one cell (a SLURM array task)")
    return parser


def _configure_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def main(args: list[str] | None = None) -> int:
    """Runs the experiment command line.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    _configure_logging()
    config = _parser().parse_args(args)
    command = config.command
    options: Any = config[command]
    if command == "cell":
        from ser_lightning.experiment.slurm import load_plan, run_task

        try:
            plan = load_plan(options.experiment)
        except (OSError, ValueError, KeyError) as err:
            log.error("cannot read the plan %s: %s", options.experiment, err)
            return 2
        return run_task(plan, options.index, devices=options.devices)
    try:
        spec = load_spec(options.spec)
    except ExperimentSpecError as err:
        log.error("%s", err)
        return 2
    if options.output_root:
        spec.output_root = options.output_root

    from ser_lightning.experiment.collect import collect
    from ser_lightning.experiment.local import LocalExecutor, cell_state, summary
    from ser_lightning.experiment.plan import make_plan

    if command == "collect":
        if not spec.directory.is_dir():
            log.error("no experiment folder %s: run the experiment first (or pass --output_root)", spec.directory)
            return 2
        card = collect(spec.directory, list(spec.variants), spec.to_dict())
        print(open(spec.directory.resolve() / "card.md").read())  # noqa: SIM115 - the command's output
        return 0 if not card["cells_failed"] else 1
    plan = make_plan(spec)
    if command == "status":
        from ser_lightning.experiment.slurm import SLURM_JSON, slurm_states

        if (plan.directory / SLURM_JSON).is_file():
            states = slurm_states(plan)
        else:
            states = {cell.name: cell_state(cell) for cell in plan.cells}
        for name, state in states.items():
            print(f"{state:12s} {name}")
        counts = Counter(states.values())
        print(f"{len(states)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        return 0
    try:
        indices = plan.select(options.variants)
    except ValueError as err:
        log.error("%s", err)
        return 2
    if options.dry_run and options.executor == "local":
        print(plan.describe(indices))
        return 0
    plan.directory.mkdir(parents=True, exist_ok=True)
    (plan.directory / "experiment.json").write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    if options.executor == "slurm":
        return _run_slurm(plan, options, indices)
    outcomes = LocalExecutor(jobs=options.jobs).run(plan, indices)
    text = summary(plan, outcomes)
    failed = any(o.state == "failed" for o in outcomes)
    (log.warning if failed else log.info)("%s", text)
    if options.collect:
        collect(plan.directory, list(spec.variants), spec.to_dict())
        log.info("result card: %s", plan.directory / "card.md")
    return 1 if failed else 0


def _run_slurm(plan: Any, options: Any, indices: list[int]) -> int:
    from ser_lightning.experiment.collect import collect
    from ser_lightning.experiment.slurm import SlurmOptions, slurm_states, submit, wait_for

    slurm = options.slurm
    slurm = SlurmOptions(**(slurm.as_dict() if hasattr(slurm, "as_dict") else dict(vars(slurm))))
    if options.dry_run:
        print(plan.describe(indices))
    try:
        job_id = submit(plan, slurm, dry_run=options.dry_run, indices=indices)
    except RuntimeError as err:
        log.error("%s", err)
        return 1
    if job_id is None or not slurm.wait:
        if job_id is not None:
            log.info("follow it with: python -m ser_lightning.experiment status %s", plan.spec.source)
        return 0
    if not wait_for(job_id, timeout=slurm.wait_timeout):
        log.warning("job array %s still runs after %.0f s: not collected", job_id, slurm.wait_timeout)
        return 1
    states = slurm_states(plan)
    chosen = {plan.cells[i].name for i in indices}
    failed = [name for name, state in states.items() if name in chosen and state != "done"]
    if failed:
        log.warning("cells not done: %s", ", ".join(failed))
    if options.collect:
        collect(plan.directory, list(plan.spec.variants), plan.spec.to_dict())
        log.info("result card: %s", plan.directory / "card.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
