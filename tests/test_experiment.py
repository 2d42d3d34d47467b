from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from ser_lightning.experiment import ExperimentSpecError, collect, load_spec, make_plan, parse_spec
from ser_lightning.experiment.__main__ import main

from .conftest import CONFIGS

MAIN = str(CONFIGS / "dense_highway.yaml")
TINY = str(CONFIGS / "data" / "synthetic_tiny.yaml")
FAST = [
    "--model.init_args.growth_rate",
    "4",
    "--model.init_args.block_layers",
    "2",
    "--trainer.max_epochs",
    "1",
    "--trainer.limit_train_batches",
    "2",
    "--trainer.limit_val_batches",
    "2",
]


def write_spec(tmp_path: Path, **overrides: object) -> Path:
    data: dict[str, object] = {
        "name": "demo",
        "base": [MAIN],
        "args": ["--data", TINY],
        "folds": [0, 1],
        "seeds": [0],
        "variants": {"baseline": [], "mixup": ["configs/augment/mixup.yaml"]},
        "output_root": str(tmp_path / "runs"),
    }
    data.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# ----------------------------------------------------------------------------------------------------- spec
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sedes": [0]}, "unknown key(s) 'sedes'"),
        ({"folds": "some"}, "'folds' must be a non-empty list of integers"),
        ({"folds": [0, 0]}, "'folds' has duplicates"),
        ({"seeds": [0], "repeats": 3}, "either 'seeds' or 'repeats'"),
        ({"variants": {}}, "'variants' must be a non-empty mapping"),
        ({"variants": {"sp": ["configs/augment/nope.yaml"]}}, "'variants.sp': config file configs/augment/nope.yaml"),
        ({"base": ["missing.yaml"]}, "'base': config file missing.yaml not found"),
        ({"name": "a b"}, "'name' must be a folder name"),
    ],
)
def test_spec_errors_name_the_file_and_key(tmp_path: Path, overrides: dict, message: str) -> None:
    path = write_spec(tmp_path, **overrides)
    with pytest.raises(ExperimentSpecError) as err:
        load_spec(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_spec_missing_key_and_repeats() -> None:
    with pytest.raises(ExperimentSpecError, match="missing required key 'variants'"):
        parse_spec({"name": "x", "base": [MAIN]}, "x.yaml")
    spec = parse_spec({"name": "x", "base": [MAIN], "repeats": 3, "base_seed": 5, "variants": {"a": None}})
    assert spec.seeds == [5, 6, 7] and spec.folds == "all" and spec.variants == {"a": []}


def test_every_shipped_experiment_parses() -> None:
    files = sorted((CONFIGS / "experiments").glob("*.yaml"))
    assert any(f.name == "quick_synthetic.yaml" for f in files)
    for path in files:
        spec = load_spec(path)
        assert spec.name == path.stem and spec.variants


# The specs run on the CPU here (docs/benchmarks.md): every variant's cell parses, with the variant's arguments in
# force, before an hour of cells can fail on a misspelt one.
CPU_RUNS = [
    "leaderboard_synthetic_cpu",
    "leaderboard_synthetic_lsso_cpu",
    "latif2020_table2_synthetic_quick",
    "dense_highway_recipe_probe_lsso_cpu",
]


@pytest.mark.parametrize("name", CPU_RUNS)
def test_cpu_run_cells_parse(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ser_lightning.cli import main as cli_main

    spec = load_spec(CONFIGS / "experiments" / f"{name}.yaml")
    plan = make_plan(spec, folds=[0])
    assert [c.variant for c in plan.cells[: len(spec.variants)]] == list(spec.variants)
    for cell in plan.cells:
        with pytest.raises(SystemExit) as exit_:
            cli_main([*cell.args, "--print_config"])
        assert not exit_.value.code, cell.name
        printed = yaml.safe_load(capsys.readouterr().out)
        args = dict(zip(cell.args, cell.args[1:], strict=False))  # flag -> the token after it; the last wins
        assert printed["trainer"]["max_time"] is None and printed["data"]["init_args"]["fold"] == 0
        for flag, value in args.items():  # each --model.init_args.<name> of the variant reached the model
            if flag.startswith("--model.init_args."):
                key = flag.removeprefix("--model.init_args.")
                assert yaml.safe_load(value) == printed["model"]["init_args"][key], (cell.name, key)
            for part in ("optimizer", "lr_scheduler"):  # and each injected optimizer / scheduler setting
                injected = printed["model"]["init_args"][part]
                if flag == f"--model.{part}.class_path":
                    assert injected["class_path"] == value, (cell.name, flag)
                elif flag.startswith(f"--model.{part}.init_args."):
                    key = flag.removeprefix(f"--model.{part}.init_args.")
                    assert injected["init_args"][key] == yaml.safe_load(value), (cell.name, flag)
        if "--data.init_args.protocol" in args:
            assert printed["data"]["init_args"]["protocol"] == args["--data.init_args.protocol"]


# ----------------------------------------------------------------------------------------------------- plan
def test_plan_cells_folders_and_commands(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, seeds=[0, 3]))
    plan = make_plan(spec)
    assert len(plan.cells) == 2 * 2 * 2
    root = (tmp_path / "runs" / "demo").resolve()
    assert {c.directory for c in plan.cells} == {
        root / v / f"fold{f}-seed{s}" for v in ("baseline", "mixup") for f in (0, 1) for s in (0, 3)
    }
    cell = next(c for c in plan.cells if c.variant == "mixup" and c.fold == 1 and c.seed == 3)
    command = cell.command()
    assert command[1:4] == ["-m", "ser_lightning", "fit"]
    joined = " ".join(command)
    assert "--seed_everything 3" in joined and "--data.init_args.fold 1" in joined
    assert f"--config {(CONFIGS / 'augment' / 'mixup.yaml').resolve()}" in joined
    assert f"--trainer.default_root_dir {cell.directory} --experiment_cell demo/mixup/fold1-seed3" in joined
    assert "--ckpt_path" in " ".join(cell.command(resume=True))


def test_folds_all_counts_the_protocol(tmp_path: Path, tiny_corpus: Path) -> None:
    spec = load_spec(
        write_spec(
            tmp_path,
            folds="all",
            args=[
                "--data",
                TINY,
                "--data.init_args.root",
                str(tiny_corpus.parent),
                "--data.init_args.protocol",
                "kfold",
                "--data.init_args.num_folds",
                "3",
            ],
        )
    )
    plan = make_plan(spec)
    assert plan.folds == [0, 1, 2] and len(plan.cells) == 6 and "kfold" in plan.fold_source


def test_dry_run_lists_every_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(write_spec(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 cells" in out and out.count(" -m ser_lightning fit ") == 4
    assert "baseline/fold1-seed0" in out and not (tmp_path / "runs").exists()
    assert main(["run", str(write_spec(tmp_path, seedz=[1])), "--dry-run"]) == 2


def test_variants_select_part_of_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    spec_path = write_spec(tmp_path)
    plan = make_plan(load_spec(spec_path))
    assert plan.select() == [0, 1, 2, 3] and plan.select(["mixup"]) == [1, 3]  # fold-major order: pairs complete early
    assert [plan.cells[i].name for i in plan.select(["mixup", "baseline"])] == [c.name for c in plan.cells]
    with pytest.raises(ValueError, match=r"no variant\(s\) 'sp'; its variants are baseline, mixup"):
        plan.select(["baseline", "sp"])
    with pytest.raises(ValueError, match="none given"):
        plan.select([])
    assert main(["run", str(spec_path), "--dry-run", "--variants", "[mixup]"]) == 0
    out = capsys.readouterr().out
    assert "selected: 2 of the 4 cells" in out and out.count(" -m ser_lightning fit ") == 2
    assert "mixup/fold1-seed0" in out and "[baseline/" not in out
    assert main(["run", str(spec_path), "--dry-run", "--variants", "[sp]"]) == 2
    assert "no variant(s) 'sp'" in caplog.text


# ------------------------------------------------------------------------------------------- a real tiny run
def test_local_run_skip_and_failure(tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two tiny cells and one broken variant: the broken one fails alone, the card averages the others, and a rerun
    starts only the failed cell again."""
    args = ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST]
    spec_path = write_spec(
        tmp_path,
        args=args,
        folds=[0],
        seeds=[0, 1],
        variants={"baseline": [], "broken": ["--model.init_args.no_such_argument", "1"]},
    )
    # 4 cells: 2 that train (seeds 0, 1), 2 that fail at parsing. First only the baseline's (--variants): the
    # broken cells are not started, and the card lists them as pending.
    assert main(["run", str(spec_path), "--jobs", "2", "--variants", "[baseline]"]) == 0
    root = tmp_path / "runs" / "demo"
    assert not (root / "broken").exists()
    card = json.loads((root / "card.json").read_text())
    assert set(card["cells_pending"]) == {"broken/fold0-seed0", "broken/fold0-seed1"} and not card["cells_failed"]
    assert card["per_variant"]["baseline"]["test_ua"]["n"] == 2
    assert main(["run", str(spec_path), "--jobs", "2"]) == 1
    done = [root / "baseline" / f"fold0-seed{s}" for s in (0, 1)]
    for cell in done:
        info = json.loads((cell / "cell.json").read_text())
        assert info["state"] == "done" and info["returncode"] == 0 and info["command"][2] == "ser_lightning"
        assert (cell / "results.json").is_file() and (cell / "config.yaml").is_file() and (cell / "cell.log").is_file()
    broken = root / "broken" / "fold0-seed0"
    info = json.loads((broken / "cell.json").read_text())
    assert info["state"] == "failed" and info["returncode"] != 0
    assert "no_such_argument" in (broken / "cell.log").read_text()

    for cell in done:  # per-utterance predictions agree with the cell's confusion matrix
        results = json.loads((cell / "results.json").read_text())
        with (cell / results["test_predictions"]).open() as handle:
            rows = list(csv.DictReader(handle))
        names = results["class_names"]
        assert len(rows) == results["num_test_utterances"] and len({r["utt_id"] for r in rows}) == len(rows)
        matrix = np.zeros((len(names), len(names)), dtype=int)
        for r in rows:
            matrix[names.index(r["label"]), names.index(r["predicted"])] += 1
            probs = [float(r[f"p_{n}"]) for n in names]
            assert names[int(np.argmax(probs))] == r["predicted"] and sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert matrix.tolist() == results["confusion_matrix"]
        assert {r["speaker"] for r in rows} == set(results["test_speakers"])

    card = json.loads((root / "card.json").read_text())
    pooled = card["per_variant"]["baseline"]["pooled"]
    assert pooled["cells"] == 2 and pooled["utterances"] == 2 * results["num_test_utterances"]
    assert pooled["ci95"]["low"] <= pooled["ua"] <= pooled["ci95"]["high"]
    uas = [json.loads((c / "results.json").read_text())["test_ua"] for c in done]
    assert card["per_variant"]["baseline"]["test_ua"]["mean"] == pytest.approx(np.mean(uas))
    assert card["per_variant"]["baseline"]["test_ua"]["n"] == 2
    assert {f["cell"] for f in card["cells_failed"]} == {"broken/fold0-seed0", "broken/fold0-seed1"}
    assert all(f["log"].endswith("cell.log") for f in card["cells_failed"])
    assert (root / "card.md").read_text().count("broken/fold0-seed") >= 2 and (root / "cells.csv").is_file()
    assert card["stamp"]["corpus"] == "synthetic" and card["stamp"]["protocol"] == "loso"
    assert card["stamp"]["speaker_independent"] is True and card["stamp"]["seeds"] == [0, 1]

    # A rerun skips the done cells (their cell.json untouched: no new process) and retries the failed ones.
    before = {c: (c / "cell.json").read_text() for c in done}
    attempts = json.loads((broken / "cell.json").read_text())["attempt"]
    assert main(["run", str(spec_path), "--collect", "false", "--jobs", "2"]) == 1
    assert {c: (c / "cell.json").read_text() for c in done} == before
    assert json.loads((broken / "cell.json").read_text())["attempt"] == attempts + 1

    assert main(["status", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert "done         baseline/fold0-seed1" in out and "failed       broken/fold0-seed0" in out
    assert "4 cells: 2 done, 2 failed" in out
    assert main(["collect", str(spec_path)]) == 1  # a failed cell: non-zero
    assert "# Experiment `demo`" in capsys.readouterr().out


def test_cell_loggers_rewrites_every_logger(tmp_path: Path) -> None:
    from jsonargparse import Namespace

    from ser_lightning.cli import cell_loggers

    cell = tmp_path / "runs" / "demo" / "mixup" / "fold1-seed3"
    tb = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=Namespace(save_dir="runs"))
    wandb = Namespace(class_path="lightning.pytorch.loggers.WandbLogger", init_args=Namespace(project="p", id="x"))
    out = cell_loggers([wandb, tb], "demo/mixup/fold1-seed3", cell)
    assert [c.class_path for c in out] == [wandb.class_path, tb.class_path]
    w, t = (c.init_args for c in out)
    assert (t.save_dir, t.name, t.version) == (str(cell.parent.parent.resolve()), "mixup", "fold1-seed3")
    assert (w.group, w.job_type, w.name) == ("demo", "mixup", "demo/mixup/fold1-seed3")
    assert (w.save_dir, w.id) == (str(cell), None)
    assert w.project == "p" and w.version.startswith("demo-mixup-fold1-seed3-")
    # The same cell of the same experiment folder keeps its W&B id; another folder, variant or seed does not.
    again = cell_loggers([wandb], "demo/mixup/fold1-seed3", cell)[0].init_args.version
    elsewhere = cell_loggers([wandb], "demo/mixup/fold1-seed3", tmp_path / "b" / "demo" / "mixup" / "fold1-seed3")
    other = cell_loggers([wandb], "demo/base/fold1-seed3", cell.parent.parent / "base" / "fold1-seed3")
    assert again == w.version and len({w.version, elsewhere[0].init_args.version, other[0].init_args.version}) == 3
    # A lone W&B logger gets a TensorBoard folder next to it; the default logger becomes that TensorBoard logger.
    assert [c.class_path.rsplit(".", 1)[-1] for c in cell_loggers(wandb, "demo/mixup/fold1-seed3", cell)] == [
        "WandbLogger",
        "TensorBoardLogger",
    ]
    assert [c.class_path.rsplit(".", 1)[-1] for c in cell_loggers(True, "demo/mixup/fold1-seed3", cell)] == [
        "TensorBoardLogger"
    ]
    assert cell_loggers(False, "demo/mixup/fold1-seed3", cell) is False
    with pytest.raises(ValueError, match="does not match the run folder"):
        cell_loggers(tb, "demo/other/fold1-seed3", cell)
    with pytest.raises(ValueError, match="expected <experiment>/<variant>"):
        cell_loggers(tb, "fold1-seed3", cell)


def test_wandb_cell_is_grouped_by_experiment_and_variant(tmp_path: Path, tiny_corpus: Path) -> None:
    """A cell of an experiment that logs to W&B (offline): one run per cell, named after it, grouped by experiment
    and variant, its files and a TensorBoard folder in the cell's folder."""
    from ser_lightning.cli import main as cli_main

    args = ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST]
    args += ["--trainer", str(CONFIGS / "trainer" / "wandb.yaml"), "--test_after_fit", "false"]
    spec = load_spec(write_spec(tmp_path, args=args, folds=[0], variants={"mixup": ["configs/augment/mixup.yaml"]}))
    cell = make_plan(spec).cells[0]
    cli = cli_main(list(cell.args))
    loggers = {type(lg).__name__: lg for lg in cli.trainer.loggers}
    assert set(loggers) == {"WandbLogger", "TensorBoardLogger"}
    run = loggers["WandbLogger"].experiment
    try:
        assert (run.group, run.job_type, run.name) == ("demo", "mixup", "demo/mixup/fold0-seed0")
        assert run.id.startswith("demo-mixup-fold0-seed0-")
    finally:
        run.finish()
    assert Path(cli.trainer.log_dir) == cell.directory
    assert list((cell.directory / "wandb").glob(f"offline-run-*-{run.id}"))
    assert list(cell.directory.glob("events.out.tfevents.*")) and (cell.directory / "config.yaml").is_file()


@pytest.mark.slow
def test_interrupted_cell_resumes_from_last_checkpoint(tmp_path: Path, tiny_corpus: Path) -> None:
    args = ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST]
    spec_path = write_spec(tmp_path, args=args, folds=[0], variants={"baseline": []})
    assert main(["run", str(spec_path), "--collect", "false"]) == 0
    cell = tmp_path / "runs" / "demo" / "baseline" / "fold0-seed0"
    # Make it look interrupted: training_stop only, cell.json left "running" by a process that is gone.
    (cell / "results.json").write_text(json.dumps({"training_stop": {"reason": "interrupted"}}))
    info = json.loads((cell / "cell.json").read_text())
    (cell / "cell.json").write_text(json.dumps({**info, "state": "running", "pid": 2**22 + 12345}))
    assert main(["run", str(spec_path), "--collect", "false"]) == 0
    info = json.loads((cell / "cell.json").read_text())
    assert info["state"] == "done" and info["resumed"] is True and info["attempt"] == 2
    assert str(cell / "checkpoints" / "last.ckpt") in info["command"]
    assert "test_ua" in json.loads((cell / "results.json").read_text())


def test_failure_summary_names_cells_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ser_lightning.experiment.local import CellOutcome, summary

    plan = make_plan(load_spec(write_spec(tmp_path)), folds=[0])
    bad = plan.cells[1]
    outcomes = [
        CellOutcome(plan.cells[0], "done"),
        CellOutcome(bad, "failed", 2, 1.0, bad.directory / "cell.log", reason="exit status 2"),
    ]
    text = summary(plan, outcomes)
    assert "1/2 cells done" in text and "1 failed" in text
    assert f"FAILED {bad.name}: exit status 2; log {bad.directory / 'cell.log'}" in text


# ------------------------------------------------------------------------------------ collect, no training
def fake_results(root: Path, variant: str, fold: int, seed: int, ua: float, matrix: list[list[int]]) -> None:
    cell = root / variant / f"fold{fold}-seed{seed}"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"state": "done", "returncode": 0, "seconds": 1.0}))
    (cell / "results.json").write_text(
        json.dumps(
            {
                "test_ua": ua,
                "test_wa": ua + 0.01,
                "test_f1": ua - 0.01,
                "confusion_matrix": matrix,
                "corpus": "fake",
                "class_names": ["a", "b"],
                "protocol": "loso",
                "protocol_folds": 4,
                "speaker_independent": True,
                "test_speakers": [f"spk{fold}"],
                "augmentation": None,
                "class_counts": {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}},
            }
        )
    )


def test_collect_statistics_against_scipy(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    rng = np.random.default_rng(1)
    base = {(f, s): float(rng.uniform(0.4, 0.6)) for f in range(4) for s in range(2)}
    other = {k: v + float(rng.uniform(-0.02, 0.08)) for k, v in base.items()}
    for (f, s), ua in base.items():
        fake_results(root, "baseline", f, s, ua, [[1, 0], [0, 1]])
        fake_results(root, "sp", f, s, other[(f, s)], [[1, 1], [0, 2]])
    card = collect(root, variants=["baseline", "sp"])
    stat = card["per_variant"]["baseline"]["test_ua"]
    values = [base[k] for k in sorted(base)]
    assert stat["mean"] == pytest.approx(np.mean(values)) and stat["std"] == pytest.approx(np.std(values, ddof=1))
    assert stat["n"] == 8 and stat["folds"] == 4
    fold_means = [np.mean([base[(f, s)] for s in range(2)]) for f in range(4)]
    expected = stats.bootstrap(
        (np.asarray(fold_means),),
        np.mean,
        n_resamples=9999,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert stat["ci95"]["low"] == pytest.approx(expected.low) and stat["ci95"]["high"] == pytest.approx(expected.high)
    assert stat["ci95"]["low"] <= np.mean(fold_means) <= stat["ci95"]["high"]

    keys = sorted(base)
    a, b = [base[k] for k in keys], [other[k] for k in keys]
    test = card["comparisons"]["sp"]["test_ua"]
    assert test["n"] == 8 and test["mean_difference"] == pytest.approx(np.mean(np.subtract(b, a)))
    assert test["wilcoxon"]["pvalue"] == pytest.approx(stats.wilcoxon(b, a).pvalue)
    assert test["ttest_rel"]["pvalue"] == pytest.approx(stats.ttest_rel(b, a).pvalue)
    assert test["ttest_rel"]["statistic"] == pytest.approx(stats.ttest_rel(b, a).statistic)

    assert card["per_variant"]["sp"]["confusion_matrix"] == [[8, 8], [0, 16]]
    assert card["per_variant"]["baseline"]["per_speaker_ua"]["spk2"] == pytest.approx(fold_means[2])
    assert "pooled" not in card["per_variant"]["baseline"]  # no cell wrote per-utterance predictions
    assert card["stamp"]["class_counts"] == {"a": 5, "b": 5} and card["stamp"]["folds"] == [0, 1, 2, 3]
    assert card["stamp"]["package_version"]
    rows = (root / "cells.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("variant,fold,seed,state,test_ua")
    md = (root / "card.md").read_text()
    assert "| baseline |" in md and "Wilcoxon" in md and "Protocol stamp" in md


def test_pooled_predictions_bootstrap_over_utterances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pooled UA and its utterance-bootstrap interval equal scikit-learn's balanced accuracy bootstrapped by
    scipy; per-speaker UA comes from the predictions when a test split holds several speakers."""
    import importlib

    from sklearn.metrics import balanced_accuracy_score

    collect_module = importlib.import_module("ser_lightning.experiment.collect")  # the package exports collect()
    monkeypatch.setattr(collect_module, "BOOTSTRAP_RESAMPLES", 499)  # the reference statistic is not vectorised

    root = tmp_path / "exp"
    rng = np.random.default_rng(5)
    names = ["a", "b", "c"]
    truth, guess = [], []
    for fold in range(3):
        fake_results(root, "baseline", fold, 0, 0.5, [[1, 0], [0, 1]])
        cell = root / "baseline" / f"fold{fold}-seed0"
        results = json.loads((cell / "results.json").read_text())
        results.update(class_names=names, test_predictions="test_predictions.csv", test_speakers=["s1", "s2"])
        (cell / "results.json").write_text(json.dumps(results))
        with (cell / "test_predictions.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["utt_id", "speaker", "label", "predicted", "p_a", "p_b", "p_c"])
            for i in range(20):
                y = int(rng.integers(3))
                p = y if rng.uniform() < 0.6 else int(rng.integers(3))
                truth.append(y)
                guess.append(p)
                writer.writerow([f"u{fold}_{i}", f"s{i % 2 + 1}", names[y], names[p], 0.2, 0.3, 0.5])
    card = collect(root, variants=["baseline"])
    pooled = card["per_variant"]["baseline"]["pooled"]
    y, p = np.asarray(truth), np.asarray(guess)
    assert pooled["utterances"] == 60 and pooled["cells"] == 3
    assert pooled["ua"] == pytest.approx(balanced_accuracy_score(y, p))
    expected = stats.bootstrap(
        (y, p),
        lambda a, b: balanced_accuracy_score(a, b),
        paired=True,
        vectorized=False,
        n_resamples=499,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert pooled["ci95"]["low"] == pytest.approx(expected.low)
    assert pooled["ci95"]["high"] == pytest.approx(expected.high)
    speakers = np.array([i % 2 + 1 for _ in range(3) for i in range(20)])
    per_speaker = card["per_variant"]["baseline"]["per_speaker_ua"]
    assert per_speaker["s1"] == pytest.approx(balanced_accuracy_score(y[speakers == 1], p[speakers == 1]))
    md = (root / "card.md").read_text()
    assert "## Pooled test predictions" in md and f"{pooled['ua']:.4f}" in md


def test_collect_with_one_pair_skips_the_tests(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    fake_results(root, "baseline", 0, 0, 0.5, [[1, 0], [0, 1]])
    fake_results(root, "mixup", 0, 0, 0.6, [[1, 0], [0, 1]])
    card = collect(root, variants=["baseline", "mixup"])
    test = card["comparisons"]["mixup"]["test_ua"]
    assert test["n"] == 1 and "skipped" in test["wilcoxon"] and "skipped" in test["ttest_rel"]
    assert card["per_variant"]["baseline"]["test_ua"]["std"] is None
    assert card["per_variant"]["baseline"]["test_ua"]["ci95"] is None
    assert "| - (" in (root / "card.md").read_text()


def test_cell_states_and_resume(tmp_path: Path) -> None:
    import os

    from ser_lightning.experiment.local import cell_state, resumes

    cell = make_plan(load_spec(write_spec(tmp_path)), folds=[0]).cells[0]
    assert cell_state(cell) == "pending" and not resumes(cell.directory)
    (cell.directory / "checkpoints").mkdir(parents=True)
    (cell.directory / "checkpoints" / "last.ckpt").write_bytes(b"")
    # An interrupted fit writes only training_stop: resumed from last.ckpt, not skipped.
    (cell.directory / "results.json").write_text(json.dumps({"training_stop": {"reason": "interrupted"}}))
    info = {"state": "running", "pid": 2**22 + 12345, "host": __import__("socket").gethostname()}
    (cell.directory / "cell.json").write_text(json.dumps(info))
    assert cell_state(cell) == "interrupted" and resumes(cell.directory)
    assert "--ckpt_path" in cell.command(resume=True)
    (cell.directory / "cell.json").write_text(json.dumps({**info, "pid": os.getpid()}))
    assert cell_state(cell) == "running"
    (cell.directory / "cell.json").write_text(json.dumps({"state": "failed", "returncode": 1}))
    assert cell_state(cell) == "failed"
    (cell.directory / "results.json").write_text(json.dumps({"test_ua": 0.5}))
    (cell.directory / "cell.json").write_text(json.dumps({"state": "done", "returncode": 0}))
    assert cell_state(cell) == "done" and not resumes(cell.directory)
