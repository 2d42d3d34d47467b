"""The experiment runner's cost: overhead over its cells, a SLURM array against the local executor, collect time.

Run by hand (prints a table per part; ``--json`` keeps the figures):

    python benchmarks/bench_experiment.py overhead [--spec configs/experiments/quick_synthetic.yaml | --existing DIR]
    python benchmarks/bench_experiment.py slurm [--cells 4] [--parallel 2]
    python benchmarks/bench_experiment.py collect [--cells 200]
    python benchmarks/bench_experiment.py all

* **overhead** = the experiment's wall time / the sum of its cells' own fit + test times (``training_stop.fit_seconds``:
  from the start of ``fit``, after the data's setup, to the end of training; ``test_seconds``: the test loop). What
  lies between is the runner's and each cell process' fixed cost: Python and torch imports, the CLI, reading the
  corpus manifest, building the model, loading the best checkpoint for the test, collecting the card. The target
  is <= 1.10 (no corpus regeneration and no repeated manifest parsing per cell). ``--existing`` reads a finished
  experiment folder instead of running one (its wall time is then the first cell's start to the last cell's end,
  from ``cell.json``). The table also shows the per-cell fixed cost (process time - fit - test).
* **slurm**: the same small experiment (tiny embedded corpus, ``--cells`` cells of a few epochs) run by the local
  executor one cell at a time, then as a SLURM job array with ``--parallel`` tasks at once on a one-node SLURM
  started here (``tests/slurm_cluster.py``; needs Debian's slurmctld, slurmd, slurm-client and munge, and root).
  The table counts the cells whose test UA is the same in both: the local cells use both cores' threads and each
  SLURM task one (``--cpus-per-task 1``), and PyTorch's CPU results are bit-identical only at equal thread counts
  (``tests/test_experiment_slurm.py`` checks identity with one thread on both sides).
* **collect**: ``collect`` (card.json/md/html, CSVs, plots, paired tests, bootstraps over folds and over pooled
  utterances) over ``--cells`` synthetic finished cells (2 variants x folds x 5 seeds, 40 test utterances each, a
  15-row noise table): the statistics machinery alone, no training.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests/slurm_cluster.py

from ser_lightning.experiment import collect  # noqa: E402

log = logging.getLogger("bench_experiment")


def _table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 30))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def _cells(directory: Path) -> list[dict]:
    cells = json.loads((directory / "experiment.json").read_text())["cells"]
    out = []
    for cell in cells:
        folder = Path(cell["directory"])
        info = json.loads((folder / "cell.json").read_text()) if (folder / "cell.json").is_file() else {}
        results = json.loads((folder / "results.json").read_text()) if (folder / "results.json").is_file() else {}
        out.append({"name": cell["name"], "info": info, "results": results})
    return out


def _run(command: list[str], log_path: Path) -> float:
    start = time.monotonic()
    with log_path.open("w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False, cwd=REPO).returncode
    seconds = time.monotonic() - start
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited {code}; see {log_path}")
    return seconds


def overhead(spec: str | None, existing: str | None, out: dict) -> None:
    """Wall time of an experiment over the sum of its cells' fit + test times."""
    if existing:
        directory = Path(existing)
        cells = _cells(directory)
        starts = [datetime.fromisoformat(c["info"]["started"]) for c in cells if c["info"].get("started")]
        ends = [datetime.fromisoformat(c["info"]["ended"]) for c in cells if c["info"].get("ended")]
        wall = (max(ends) - min(starts)).total_seconds()
        source = f"{directory} (first cell start to last cell end)"
    else:
        root = Path(tempfile.mkdtemp(prefix="bench_experiment_"))
        name = yaml.safe_load(Path(spec).read_text())["name"]
        command = [sys.executable, "-m", "ser_lightning.experiment", "run", spec, "--output_root", str(root)]
        log.info("running %s into %s (progress: %s)", spec, root, root / "run.log")
        wall = _run(command, root / "run.log")
        directory = root / name
        cells = _cells(directory)
        source = f"{spec}, run now into {directory} (the whole command: plan, cells, collect)"
    done = [c for c in cells if c["results"].get("training_stop", {}).get("fit_seconds") is not None]
    if not done:
        raise SystemExit(f"{directory}: no cell has training_stop.fit_seconds (run with this version of the toolkit)")
    fit = sum(c["results"]["training_stop"]["fit_seconds"] for c in done)
    test = sum(c["results"].get("test_seconds", 0.0) for c in done)
    process = sum(c["info"].get("seconds") or 0.0 for c in done)
    ratio = wall / (fit + test)
    fixed = (process - fit - test) / len(done)
    out["overhead"] = {
        "source": source,
        "cells": len(done),
        "wall_seconds": wall,
        "fit_seconds": fit,
        "test_seconds": test,
        "process_seconds": process,
        "ratio": ratio,
        "fixed_seconds_per_cell": fixed,
        "load_average": os.getloadavg(),
    }
    _table(
        f"runner overhead: {source}",
        [
            ("cells", str(len(done))),
            ("wall time", f"{wall:.1f} s"),
            ("sum of cells' fit", f"{fit:.1f} s"),
            ("sum of cells' test loops", f"{test:.1f} s"),
            ("sum of cell processes", f"{process:.1f} s"),
            ("overhead = wall / (fit + test)", f"{ratio:.3f}  (target <= 1.10)"),
            ("fixed cost per cell (process - fit - test)", f"{fixed:.1f} s"),
            ("load average (1, 5, 15 min) at the end", " ".join(f"{x:.1f}" for x in os.getloadavg())),
        ],
    )


def slurm(cells: int, parallel: int, out: dict) -> None:
    """A small experiment run locally one cell at a time, then as a SLURM array with ``parallel`` tasks at once."""
    from ser_lightning.synth import ensure_corpus
    from tests.slurm_cluster import SlurmUnavailableError, one_node_slurm

    work = Path(tempfile.mkdtemp(prefix="bench_slurm_"))
    os.environ.setdefault("SER_LIGHTNING_CACHE", str(work / "cache"))
    corpus = ensure_corpus(size="tiny", seed=0)
    seeds = max(1, cells // 2)
    spec = {
        "name": "bench",
        "base": [str(REPO / "configs" / "dense_highway.yaml")],
        "args": ["--data", str(REPO / "configs" / "data" / "synthetic_tiny.yaml"), "--data.init_args.root",
                 str(corpus.parent), "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2",
                 "--trainer.max_epochs", "3"],
        "folds": [0, 1] if cells > 1 else [0],
        "seeds": list(range(seeds)),
        "variants": {"baseline": []},
    }
    path = work / "bench.yaml"
    path.write_text(yaml.safe_dump(spec))
    base = [sys.executable, "-m", "ser_lightning.experiment", "run", str(path)]
    local = _run([*base, "--output_root", str(work / "local")], work / "local.log")
    (work / "slurm_state").mkdir()
    try:
        with one_node_slurm(work / "slurm_state") as _:
            array = _run(
                [*base, "--output_root", str(work / "slurm"), "--executor", "slurm", "--slurm.max_parallel",
                 str(parallel), "--slurm.wait", "true"],
                work / "slurm.log",
            )
    except SlurmUnavailableError as err:
        raise SystemExit(f"SLURM is unavailable here: {err}") from err
    ua = {}
    for kind in ("local", "slurm"):
        for c in _cells(work / kind / "bench"):
            ua.setdefault(c["name"], []).append(c["results"].get("test_ua"))
    same = sum(len(v) == 2 and v[0] == v[1] and v[0] is not None for v in ua.values())
    n = len(ua)
    out["slurm"] = {"cells": n, "parallel": parallel, "local_seconds": local, "slurm_seconds": array,
                    "speedup": local / array, "cells_with_identical_ua": same, "cpus": os.cpu_count()}  # fmt: skip
    _table(
        f"SLURM array vs local executor: {n} cells of 3 epochs (tiny corpus), {os.cpu_count()} cores",
        [
            ("local, one cell at a time", f"{local:.1f} s"),
            (f"SLURM array, %{parallel}", f"{array:.1f} s"),
            ("speed-up", f"{local / array:.2f}x"),
            ("cells with the same test UA (threads differ: 2 local, 1 per task)", f"{same}/{n}"),
            ("folder", str(work)),
        ],
    )


def fake_experiment(root: Path, cells: int, utterances: int = 40) -> None:
    """``cells`` finished cells (2 variants x folds x 5 seeds) with results, noise tables and test predictions."""
    rng = np.random.default_rng(0)
    names = ["angry", "happy", "neutral", "sad"]
    seeds = 5
    folds = max(1, cells // (2 * seeds))
    plan = []
    for variant in ("baseline", "mixup"):
        for fold in range(folds):
            for seed in range(seeds):
                folder = root / variant / f"fold{fold}-seed{seed}"
                folder.mkdir(parents=True)
                truth = rng.integers(0, 4, utterances)
                hit = rng.uniform(size=utterances) < (0.6 if variant == "baseline" else 0.65)
                pred = np.where(hit, truth, rng.integers(0, 4, utterances))
                matrix = np.zeros((4, 4), dtype=int)
                np.add.at(matrix, (truth, pred), 1)
                ua = float(np.mean([np.mean(pred[truth == k] == k) for k in range(4) if (truth == k).any()]))
                noises = ("white", "pink", "brown", "babble", "traffic")
                noise_rows = [{"noise": n, "snr_db": s, "ua": ua - 0.01 * (20 - s), "wa": ua, "f1": ua}
                              for n in noises for s in (0, 10, 20)]  # fmt: skip
                results = {"test_ua": ua, "test_wa": float(np.mean(hit)), "test_f1": ua, "class_names": names,
                           "confusion_matrix": matrix.tolist(), "corpus": "synthetic", "protocol": "loso",
                           "protocol_folds": folds, "speaker_independent": True, "test_speakers": [f"spk{fold:02d}"],
                           "test_predictions": "test_predictions.csv", "noise_robustness": {"rows": noise_rows},
                           "training_stop": {"reason": "max_epochs", "fit_seconds": 30.0}}  # fmt: skip
                (folder / "results.json").write_text(json.dumps(results))
                (folder / "cell.json").write_text(json.dumps({"state": "done", "returncode": 0, "seconds": 40.0}))
                with (folder / "test_predictions.csv").open("w", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["utt_id", "speaker", "label", "predicted", *(f"p_{n}" for n in names)])
                    for i in range(utterances):
                        writer.writerow([f"u{fold}_{i}", f"spk{fold:02d}", names[truth[i]], names[pred[i]],
                                         0.1, 0.1, 0.1, 0.7])  # fmt: skip
                plan.append({"name": f"{variant}/{folder.name}", "variant": variant, "fold": fold, "seed": seed,
                             "directory": str(folder), "command": ""})  # fmt: skip
    (root / "experiment.json").write_text(json.dumps({"spec": {"name": "bench", "variants": {}}, "cells": plan}))


def collect_time(cells: int, out: dict) -> None:
    """Seconds ``collect`` takes over ``cells`` finished cells."""
    root = Path(tempfile.mkdtemp(prefix="bench_collect_")) / "bench"
    fake_experiment(root, cells)
    start = time.perf_counter()
    import matplotlib.pyplot  # noqa: F401 -- what collect imports lazily, timed apart
    import scipy.stats  # noqa: F401

    import ser_lightning.metrics  # noqa: F401 -- torch, torchmetrics

    imports = time.perf_counter() - start
    start = time.perf_counter()
    card = collect(root, ["baseline", "mixup"], {"name": "bench", "variants": {"baseline": [], "mixup": []}})
    seconds = time.perf_counter() - start
    out["collect"] = {"cells": card["cells_done"], "seconds": seconds, "import_seconds": imports}
    _table(
        f"collect over {card['cells_done']} cells ({card['cells_done'] // 2} per variant, 40 test utterances each)",
        [
            ("collect (card.json/md/html, CSVs, plots, bootstraps, paired tests)", f"{seconds:.2f} s"),
            ("imports before it (torch, torchmetrics, scipy, matplotlib)", f"{imports:.2f} s"),
            ("load average (1, 5, 15 min)", " ".join(f"{x:.1f}" for x in os.getloadavg())),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["overhead", "slurm", "collect", "all"])
    parser.add_argument("--spec", default=str(REPO / "configs" / "experiments" / "quick_synthetic.yaml"))
    parser.add_argument("--existing", default=None, help="a finished experiment folder (overhead only)")
    parser.add_argument("--cells", type=int, default=None, help="slurm: 4; collect: 200")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    out: dict = {}
    if args.part in ("collect", "all"):
        collect_time(args.cells or 200, out)
    if args.part in ("overhead", "all"):
        overhead(args.spec, args.existing, out)
    if args.part in ("slurm", "all"):
        slurm(args.cells or 4, args.parallel, out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
