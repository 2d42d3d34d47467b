"""The SLURM executor: the generated batch script (pure), and real job arrays on a one-node SLURM started here.

The cluster fixture needs the Debian packages ``slurmctld slurmd slurm-client munge`` and root (slurmd runs jobs as
their user); without them the real-SLURM tests are skipped with the reason. Its state, spool, logs, munge key and
socket all live in a temporary folder; the daemons are stopped by their pid files at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ser_lightning.experiment import load_spec, make_plan
from ser_lightning.experiment.__main__ import main
from ser_lightning.experiment.slurm import SlurmOptions, array_spec, load_plan, sbatch_script, squeue_tasks

from .conftest import CONFIGS
from .slurm_cluster import SlurmUnavailableError, one_node_slurm, wait

log = logging.getLogger(__name__)

MAIN = str(CONFIGS / "dense_highway.yaml")
TINY = str(CONFIGS / "data" / "synthetic_tiny.yaml")
FAST = [
    "--model.init_args.growth_rate",
    "4",
    "--model.init_args.block_layers",
    "2",
    "--trainer.max_epochs",
    "2",
    "--trainer.limit_train_batches",
    "3",
    "--trainer.limit_val_batches",
    "2",
]


def write_spec(tmp_path: Path, args: list[str], name: str = "demo", **overrides: object) -> Path:
    data: dict[str, object] = {
        "name": name,
        "base": [MAIN],
        "args": args,
        "folds": [0],
        "seeds": [0, 1],
        "variants": {"baseline": []},
        "output_root": str(tmp_path / "runs"),
    }
    data.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------------------------ pure
def test_array_spec() -> None:
    assert array_spec([0, 1, 2, 3], 2) == "0-3%2"
    assert array_spec([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert array_spec([4]) == "4"
    with pytest.raises(ValueError, match="no cell"):
        array_spec([])


def test_sbatch_script_and_plan_round_trip(tmp_path: Path) -> None:
    plan = make_plan(load_spec(write_spec(tmp_path, ["--data", TINY], seeds=[0, 1, 2])))
    options = SlurmOptions(
        partition="gpu",
        time="4:00:00",
        gpus_per_task=1,
        cpus_per_task=8,
        mem="32G",
        devices=2,
        max_parallel=2,
        extra=["--account=abc", "#SBATCH --constraint=a100"],
        setup=["module load cuda"],
    )
    script = sbatch_script(plan, [0, 2], options, workdir=tmp_path)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in (
        "#SBATCH --array=0,2%2",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=4:00:00",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH --ntasks-per-node=2",
        "#SBATCH --signal=B:USR1@90",
        "#SBATCH --requeue",
        "#SBATCH --account=abc",
        "#SBATCH --constraint=a100",
        f"#SBATCH --output={plan.directory / 'slurm' / '%A_%a.out'}",
        "module load cuda",
        'export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"',
        f"cd {tmp_path}",
    ):
        assert line in lines, line
    # Every #SBATCH line comes before the first command (sbatch stops reading directives there).
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(i < first_command for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert lines[-1].startswith("exec ") and lines[-1].endswith(
        f"-m ser_lightning.experiment cell {plan.directory / 'experiment.json'} "
        '--index "$SLURM_ARRAY_TASK_ID" --devices 2'
    )
    single = sbatch_script(plan, [0, 1, 2], SlurmOptions())
    assert "#SBATCH --array=0-2\n" in single and "--gpus-per-task" not in single and "--partition" not in single
    assert "--devices" not in single.splitlines()[-1]

    # What the tasks read: experiment.json gives back the same cells (commands, folders).
    plan.directory.mkdir(parents=True)
    (plan.directory / "experiment.json").write_text(json.dumps(plan.to_dict()))
    again = load_plan(plan.directory / "experiment.json")
    assert [(c.name, c.directory, c.args) for c in again.cells] == [(c.name, c.directory, c.args) for c in plan.cells]


def test_dry_run_writes_the_script_only(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, ["--data", TINY])
    assert main(["run", str(spec), "--executor", "slurm", "--dry-run", "--slurm.max_parallel", "1"]) == 0
    scripts = list((tmp_path / "runs" / "demo" / "slurm").glob("submit-*.sh"))
    assert len(scripts) == 1 and "#SBATCH --array=0-1%1" in scripts[0].read_text()
    assert not (tmp_path / "runs" / "demo" / "slurm.json").exists()
    # --variants submits only those cells, under their indices in the whole plan (the task id reads experiment.json)
    variants = {"baseline": [], "mixup": ["configs/augment/mixup.yaml"]}
    two = write_spec(tmp_path, ["--data", TINY], name="two", variants=variants)
    assert main(["run", str(two), "--executor", "slurm", "--dry-run", "--variants", "[mixup]"]) == 0
    (script,) = (tmp_path / "runs" / "two" / "slurm").glob("submit-*.sh")
    assert "#SBATCH --array=1,3" in script.read_text()
    assert len(json.loads((tmp_path / "runs" / "two" / "experiment.json").read_text())["cells"]) == 4


# ------------------------------------------------------------------------------------- a real SLURM here
@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A one-node SLURM (munged, slurmctld, slurmd) with everything under a temporary folder; ``SLURM_CONF`` set."""
    cluster = one_node_slurm(tmp_path_factory.mktemp("slurm"))
    try:
        root = cluster.__enter__()
    except SlurmUnavailableError as err:
        pytest.skip(str(err))
    try:
        yield root
    finally:
        cluster.__exit__(None, None, None)


def _job_array(directory: Path) -> str:
    return json.loads((directory / "slurm.json").read_text())["submissions"][-1]["job_id"]


def _wait_array(job_id: str, timeout: float, release: bool = False) -> None:
    """Waits for the array to leave the queue.

    ``release`` starts a requeued task after 3 s instead of SLURM's requeue delay (``BeginTime``, about 2 minutes):
    not at once, since slurmd refuses a job's new credential issued within the same second as the requeue revoked
    its old one ("Job credential revoked").
    """
    pending_since: dict[tuple[str, int], float] = {}

    def finished() -> bool:
        tasks = squeue_tasks([job_id]) or {}
        if release:
            for key, state in tasks.items():
                if state != "PENDING":
                    pending_since.pop(key, None)
                elif time.monotonic() - pending_since.setdefault(key, time.monotonic()) > 3:
                    subprocess.run(
                        ["scontrol", "update", f"JobId={key[0]}_{key[1]}", "StartTime=now"],
                        capture_output=True,
                        check=False,
                    )
        return not tasks

    wait(finished, timeout, f"job array {job_id}", poll=1.0)


def _figures(directory: Path) -> dict[str, dict]:
    out = {}
    for results in sorted(directory.glob("*/fold*-seed*/results.json")):
        data = json.loads(results.read_text())
        out[str(results.parent.relative_to(directory))] = {
            k: v for k, v in data.items() if (k.startswith("test_") and k != "test_seconds") or k == "confusion_matrix"
        }
    return out


def _same_weights(directory: Path, reference: Path) -> bool:
    """Whether every cell kept the reference run's best checkpoint (same file name, the tested weights bit for bit).

    (``last.ckpt`` is no measure: with ``save_last: true`` Lightning refreshes it only when a best checkpoint is
    saved, so a resumed run's last.ckpt may be later than the uninterrupted run's.)
    """
    import torch

    cells = sorted(p.relative_to(directory) for p in directory.glob("*/fold*-seed*/checkpoints/best-*.ckpt"))
    theirs_cells = sorted(p.relative_to(reference) for p in reference.glob("*/fold*-seed*/checkpoints/best-*.ckpt"))
    assert cells, f"no best checkpoint under {directory}"
    if cells != theirs_cells:
        return False
    for cell in cells:
        ours = torch.load(directory / cell, map_location="cpu", weights_only=False)["state_dict"]
        theirs = torch.load(reference / cell, map_location="cpu", weights_only=False)["state_dict"]
        if ours.keys() != theirs.keys() or not all(torch.equal(ours[k], theirs[k]) for k in ours):
            return False
    return True


def _card_figures(directory: Path) -> dict:
    card = json.loads((directory / "card.json").read_text())
    return {"per_variant": card["per_variant"], "comparisons": card.get("comparisons"), "failed": card["cells_failed"]}


@pytest.fixture(scope="session")
def local_reference(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> tuple[list[str], Path]:
    """The tiny experiment run by the local executor: the figures the SLURM runs must match.

    With one intra-op thread, as each SLURM task of these tests gets (``--cpus-per-task 1``: the task script sets
    ``OMP_NUM_THREADS`` from ``SLURM_CPUS_PER_TASK``): PyTorch's CPU results are bit-identical only at equal thread
    counts.
    """
    tmp = tmp_path_factory.mktemp("local_ref")
    args = ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST]
    spec = write_spec(tmp, args)
    with one_thread():
        assert main(["run", str(spec)]) == 0
    return args, tmp / "runs" / "demo"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Local cells (which inherit the environment) with one intra-op thread, as each SLURM task of these tests."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_slurm_array_matches_local_run(
    slurm_cluster: Path, local_reference: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two cells as a job array of a real SLURM: the same results and card as the local executor's."""
    args, reference = local_reference
    spec = write_spec(tmp_path, args)
    assert main(["run", str(spec), "--executor", "slurm", "--slurm.max_parallel", "2"]) == 0
    directory = tmp_path / "runs" / "demo"
    job_id = _job_array(directory)
    assert main(["status", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "2 cells:" in out and ("queued" in out or "running" in out or "done" in out)
    assert main(["run", str(spec), "--executor", "slurm"]) == 0  # while it runs: nothing submitted twice
    assert len(json.loads((directory / "slurm.json").read_text())["submissions"]) == 1
    assert main(["collect", str(spec)]) == 0  # while the array runs: no failed cell, the others pending
    assert json.loads((directory / "card.json").read_text())["cells_failed"] == []
    capsys.readouterr()
    _wait_array(job_id, 300)
    assert main(["collect", str(spec)]) == 0
    for cell in ("baseline/fold0-seed0", "baseline/fold0-seed1"):
        info = json.loads((directory / cell / "cell.json").read_text())
        assert info["state"] == "done" and info["executor"] == "slurm" and info["slurm_array_job_id"] == job_id
    assert _figures(directory) == _figures(reference) and len(_figures(directory)) == 2
    assert _same_weights(directory, reference)
    assert _card_figures(directory) == _card_figures(reference)
    assert main(["status", str(spec)]) == 0
    assert "2 cells: 2 done" in capsys.readouterr().out
    # Submitting again: nothing is pending.
    assert main(["run", str(spec), "--executor", "slurm"]) == 0
    assert len(json.loads((directory / "slurm.json").read_text())["submissions"]) == 1


@pytest.mark.slow
def test_requeued_task_resumes_and_matches_local_run(
    slurm_cluster: Path, local_reference: tuple[list[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """USR1 to one task's batch shell mid-training (as at a time limit): the task stops, requeues itself, resumes
    from last.ckpt and ends with the uninterrupted local run's figures."""
    args, reference = local_reference
    spec = write_spec(tmp_path, [*args, "--trainer.max_epochs", "6"], seeds=[0])
    (tmp_path / "ref4").mkdir()
    local_spec = write_spec(tmp_path / "ref4", [*args, "--trainer.max_epochs", "6"], seeds=[0])
    with one_thread():
        assert main(["run", str(local_spec)]) == 0
    assert main(["run", str(spec), "--executor", "slurm"]) == 0
    directory = tmp_path / "runs" / "demo"
    cell = directory / "baseline" / "fold0-seed0"
    job_id = _job_array(directory)
    wait(lambda: (cell / "checkpoints" / "last.ckpt").is_file(), 300, "the first last.ckpt")
    assert not (cell / "results.json").is_file() or "test_ua" not in (cell / "results.json").read_text()
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{job_id}_0"], check=True)
    wait(lambda: json.loads((cell / "cell.json").read_text())["state"] == "requeued", 120, "the requeue")
    # Requeued (held ~2 minutes by SLURM's BeginTime): queued in status, pending (not failed) on the card.
    assert main(["status", str(spec)]) == 0
    assert "queued       baseline/fold0-seed0" in capsys.readouterr().out
    assert main(["collect", str(spec)]) == 0
    card = json.loads((directory / "card.json").read_text())
    assert card["cells_failed"] == [] and card["cells_pending"] == ["baseline/fold0-seed0"]
    _wait_array(job_id, 300, release=True)
    info = json.loads((cell / "cell.json").read_text())
    assert info["state"] == "done", info
    assert info["attempt"] == 2 and info["resumed"] is True and info["slurm_restart_count"] == 1
    assert "--ckpt_path" in info["command"]
    log_text = (cell / "cell.log").read_text()
    assert "attempt 2" in log_text and "resumed from last.ckpt" in log_text
    assert _figures(directory) == _figures(tmp_path / "ref4" / "runs" / "demo")
    assert _same_weights(directory, tmp_path / "ref4" / "runs" / "demo")
    assert reference.is_dir()


@pytest.mark.slow
def test_ddp_cell_under_srun(slurm_cluster: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """``--slurm.devices 2``: the cell's fit runs as two srun tasks (CPU DDP here) and ends done, with its card."""
    args = ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST, "--trainer.accelerator", "cpu"]
    spec = write_spec(tmp_path, args, seeds=[0])
    assert main(["run", str(spec), "--executor", "slurm", "--slurm.devices", "2", "--slurm.wait", "true"]) == 0
    cell = tmp_path / "runs" / "demo" / "baseline" / "fold0-seed0"
    info = json.loads((cell / "cell.json").read_text())
    assert info["state"] == "done" and info["command"][0] == "srun" and "--ntasks-per-node=2" in info["command"]
    assert info["command"][-4:] == ["--trainer.devices", "2", "--trainer.num_nodes", "1"]
    assert "test_ua" in json.loads((cell / "results.json").read_text())
    assert (tmp_path / "runs" / "demo" / "card.json").is_file()
    log_text = (cell / "cell.log").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log_text and "Starting with 2 processes" in log_text, log_text[-3000:]
