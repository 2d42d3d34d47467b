"""The robust-SER study (Triantafyllopoulos et al. 2019): its spec section, its tables, its experiment configs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from ser_lightning.experiment import collect
from ser_lightning.experiment.spec import ExperimentSpecError, load_spec, parse_spec
from ser_lightning.experiment.study import SYNTHETIC_NOTE, format_study, parse_study, study_tables

from .conftest import CONFIGS, REPO

SNRS = [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
MATCHED = {s: f"matched_snr{s:g}" for s in SNRS}
VARIANTS = {"clean": [], **{v: [] for v in MATCHED.values()}, "multi_snr": []}
STUDY = {
    "metric": "ua",
    "snr_db": [-5, 0, 5, 10, 15, 20],
    "clean": "clean",
    "conditions": {"mismatched": {"noisy": "clean"}, "matched": {"noisy": {int(s): v for s, v in MATCHED.items()}},
                   "multi_snr": {"noisy": "multi_snr"}},
}  # fmt: skip


def noise_rows(score_at: dict[float, float]) -> dict:
    """A noise_robustness table whose 'mean' row at each SNR has the given UA (a category row is off by 0.1)."""
    rows = [{"noise": "clean", "snr_db": None, "ua": 0.9}]
    for snr, ua in score_at.items():
        rows += [{"noise": "babble", "snr_db": snr, "ua": ua - 0.1}, {"noise": "mean", "snr_db": snr, "ua": ua}]
    return {"rows": rows}


def fake_results(variant: str, fold: int, seed: int) -> dict:
    """Scores that encode their cell: UA = 0.3 + snr/100 + fold/50 + seed/200 (+0.1 for matched training)."""
    bonus = 0.1 if variant.startswith("matched") else 0.0
    scores = {s: 0.3 + s / 100 + fold / 50 + seed / 200 + bonus for s in SNRS}
    return {"test_ua": 0.8 + fold / 50 + seed / 200, "corpus": "synthetic", "noise_robustness": noise_rows(scores)}


def cells(variants: list[str], folds: range = range(3), seeds: range = range(2)) -> dict:
    return {v: {(f, s): fake_results(v, f, s) for f in folds for s in seeds} for v in variants}


def test_parse_study_checks_names_keys_and_snrs() -> None:
    parsed = parse_study(STUDY, VARIANTS)
    assert parsed["snr_db"] == SNRS and parsed["conditions"]["matched"]["noisy"]["-5.0"] == "matched_snr-5"
    assert parse_study(parsed, VARIANTS) == parsed  # idempotent: experiment.json re-parses it
    bad = [
        ({**STUDY, "clean": "nope"}, "'nope' is not a variant"),
        ({**STUDY, "colums": 1}, "unknown key"),
        ({**STUDY, "conditions": {"crossed": {"noisy": "clean"}}}, "unknown condition"),
        ({**STUDY, "conditions": {"mismatched": {"denoised": "clean"}}}, "unknown side"),
        ({**STUDY, "conditions": {"matched": {"noisy": {25: "clean"}}}}, "SNR 25 is not in snr_db"),
        ({**STUDY, "metric": "uar"}, "metric must be"),
        ({**STUDY, "snr_db": [0, 0]}, "duplicates"),
    ]
    for data, message in bad:
        with pytest.raises(ValueError, match=message):
            parse_study(data, VARIANTS)
    spec = {"name": "s", "base": [str(CONFIGS / "dense_highway.yaml")], "variants": VARIANTS, "study": STUDY}
    assert parse_spec(spec).to_dict()["study"] == parsed
    with pytest.raises(ExperimentSpecError, match="'study'.*not a variant"):
        parse_spec({**spec, "study": {**STUDY, "clean": "nope"}})


def test_study_tables_are_mean_and_std_over_folds() -> None:
    tables = study_tables(parse_study(STUDY, VARIANTS), cells(list(VARIANTS)), corpus="synthetic")
    fold_means = np.array([0.3 + 0.0 + f / 50 + 0.5 / 200 for f in range(3)])  # the seeds averaged first
    mismatched = {r["snr_db"]: r for r in tables["conditions"]["mismatched"]["rows"]}
    assert mismatched[0.0]["noisy"]["mean"] == pytest.approx(fold_means.mean())
    assert mismatched[0.0]["noisy"]["std"] == pytest.approx(fold_means.std(ddof=1))
    assert mismatched[0.0]["noisy"]["folds"] == 3 and mismatched[0.0]["noisy"]["cells"] == 6
    assert mismatched[-5.0]["noisy"]["mean"] == pytest.approx(fold_means.mean() - 0.05)
    # The average over SNRs: each (fold, seed) averaged over the six SNRs (mean SNR 7.5 dB), then over folds.
    assert mismatched["average"]["noisy"]["mean"] == pytest.approx(fold_means.mean() + 0.075)
    # Matched: each SNR from its own variant (trained at that SNR), its row at that SNR.
    matched = {r["snr_db"]: r for r in tables["conditions"]["matched"]["rows"]}
    assert matched[10.0]["noisy"]["mean"] == pytest.approx(fold_means.mean() + 0.1 + 0.1)
    assert tables["clean"]["variant"] == "clean"
    assert tables["clean"]["mean"] == pytest.approx(np.mean([0.8 + f / 50 + 0.5 / 200 for f in range(3)]))
    # No enhancer variant is named: no enhanced column anywhere, nothing filled in.
    assert all(t["columns"] == ["noisy"] for t in tables["conditions"].values())
    assert all("enhanced" not in r for t in tables["conditions"].values() for r in t["rows"])
    assert tables["corpus_note"] == SYNTHETIC_NOTE
    text = "\n".join(format_study(tables))
    assert "| 0 | 32.25 ± 2.00 |" in text and "synthetic" in text and "enhanced" not in text


def test_enhanced_columns_appear_once_their_variants_exist() -> None:
    variants = {**VARIANTS, "clean_enhanced": []}
    study = {**STUDY, "conditions": {"mismatched": {"noisy": "clean", "enhanced": "clean_enhanced"}}}
    parsed = parse_study(study, variants)
    waiting = study_tables(parsed, cells(["clean"]), corpus="emodb")
    rows = waiting["conditions"]["mismatched"]["rows"]
    assert waiting["conditions"]["mismatched"]["columns"] == ["noisy", "enhanced"]
    assert all(r["enhanced"] is None for r in rows) and waiting["corpus_note"] is None  # not run yet: empty
    found = cells(["clean"])
    # A variant with only a noisy table does not fill the enhanced side: it reads noise_robustness_enhanced.
    found["clean_enhanced"] = {k: dict(v) for k, v in found["clean"].items()}
    assert all(r["enhanced"] is None for r in study_tables(parsed, found)["conditions"]["mismatched"]["rows"])
    found["clean_enhanced"] = {k: {**v, "noise_robustness_enhanced": noise_rows({s: 0.7 for s in SNRS})}
                               for k, v in found["clean"].items()}  # fmt: skip
    filled = study_tables(parsed, found, corpus="emodb")
    average = filled["conditions"]["mismatched"]["rows"][-1]
    assert average["snr_db"] == "average" and average["enhanced"]["mean"] == pytest.approx(0.7)
    assert average["enhanced"]["std"] == pytest.approx(0.0)
    assert "| average |" in "\n".join(format_study(filled))


def test_one_clean_cell_fills_both_mismatched_sides_from_its_two_tables() -> None:
    """The mismatched condition from one clean-trained model: noisy from noise_robustness, enhanced from
    noise_robustness_enhanced (the paper's "enhancement at test time only")."""
    study = {**STUDY, "conditions": {"mismatched": {"noisy": "clean", "enhanced": "clean"}}}
    found = cells(["clean"])
    for results in found["clean"].values():
        results["noise_robustness_enhanced"] = noise_rows({s: 0.6 + s / 1000 for s in SNRS})
    tables = study_tables(parse_study(study, VARIANTS), found)
    rows = {r["snr_db"]: r for r in tables["conditions"]["mismatched"]["rows"]}
    assert rows[20.0]["enhanced"]["mean"] == pytest.approx(0.62) and rows[20.0]["enhanced"]["folds"] == 3
    assert rows[20.0]["noisy"]["mean"] == pytest.approx(np.mean([0.3 + 0.2 + f / 50 + 0.5 / 200 for f in range(3)]))
    assert "noise_robustness_enhanced" in tables["statistics"]


def test_robustness_scores_name_every_table_as_the_callbacks_log_it() -> None:
    from ser_lightning.experiment.collect import robustness_scores

    results = {
        "noise_robustness": noise_rows({0.0: 0.5, 2.5: 0.6}),
        "noise_robustness_enhanced": noise_rows({0.0: 0.7}),
        "adversarial_robustness": {"rows": [{"attack": "none", "ua": 0.9}, {"attack": "fgsm", "ua": 0.2},
                                            {"attack": "bim", "ua": float("nan")}]},
        "cross_corpus": {"synthetic_de": {"ua": 0.4}, "broken": {"ua": None}},
    }  # fmt: skip
    assert robustness_scores(results) == {"test_ua_noise_snr0db": 0.5, "test_ua_noise_snr2.5db": 0.6,
                                          "test_ua_enhanced_noise_snr0db": 0.7, "test_ua_fgsm": 0.2,
                                          "test_ua_cross_synthetic_de": 0.4}  # fmt: skip
    assert robustness_scores({"test_ua": 0.5}) == {}


def test_collect_writes_the_study_into_the_card(tmp_path: Path) -> None:
    root = tmp_path / "runs" / "demo"
    variants = ["clean", "multi_snr"]
    for variant, by_cell in cells(variants, folds=range(2), seeds=range(1)).items():
        for (fold, seed), results in by_cell.items():
            cell = root / variant / f"fold{fold}-seed{seed}"
            cell.mkdir(parents=True)
            (cell / "cell.json").write_text(json.dumps({"state": "done", "returncode": 0, "seconds": 1.0}))
            derived = {"output": "noisy", "snr_db": [-5.0, 20.0], "part": "train", "categories": ["pink"],
                       "enhancer": None} if variant == "multi_snr" else None  # fmt: skip
            (cell / "results.json").write_text(json.dumps({**results, "speaker_independent": True,
                                                           "derived": derived}))  # fmt: skip
    study = parse_study({"clean": "clean", "conditions": {"mismatched": {"noisy": "clean"},
                                                          "multi_snr": {"noisy": "multi_snr"}}},
                        dict.fromkeys(variants))  # fmt: skip
    card = collect(root, variants, {"name": "demo", "variants": dict.fromkeys(variants), "study": study})
    assert card["study"]["conditions"]["multi_snr"]["rows"][0]["noisy"]["folds"] == 2
    saved = json.loads((root / "card.json").read_text())
    assert saved["study"]["corpus"] == "synthetic" and saved["study"]["corpus_note"] == SYNTHETIC_NOTE
    assert saved["stamp"]["derived_training_audio"] == {"clean": ["source"],
                                                        "multi_snr": ["noisy at -5 to 20 dB (train noise: pink)"]}
    # The per-SNR scores are named, aggregated over folds and paired against the baseline (here all 0.3 + s/100 +
    # fold/50 at seed 0: the same for both variants, so a zero difference).
    assert card["robustness_scores"][:2] == ["test_ua_noise_snr-5db", "test_ua_noise_snr0db"]
    at_0 = card["per_variant"]["clean"]["robustness_scores"]["test_ua_noise_snr0db"]
    assert at_0["mean"] == pytest.approx(0.3 + 0.01) and at_0["folds"] == 2
    assert card["comparisons"]["multi_snr"]["test_ua_noise_snr20db"]["mean_difference"] == pytest.approx(0.0)
    md = (root / "card.md").read_text()
    assert "## Robustness scores" in md and "test_ua_noise_snr20db" in md
    assert "## Study: Triantafyllopoulos et al. 2019" in md and "### multi_snr" in md
    html = (root / "card.html").read_text()
    assert "Study: Triantafyllopoulos" in html and "stands in for" in html


# ------------------------------------------------------------------------------- shipped experiments
STUDY_SPECS = sorted((CONFIGS / "experiments").glob("study_*.yaml"))


@pytest.mark.parametrize("path", STUDY_SPECS, ids=lambda p: p.name)
def test_study_specs_parse_with_every_condition(path: Path) -> None:
    spec = load_spec(path)
    assert spec.study is not None and set(spec.study["conditions"]) == {"matched", "mismatched", "multi_snr"}
    assert spec.study["snr_db"] == SNRS
    assert "INTEGRATOR" not in path.read_text()  # the SVM and the enhancer are in place
    # Every condition has its enhanced side, and the mismatched one is the clean model's enhanced test.
    assert all(set(sides) == {"noisy", "enhanced"} for sides in spec.study["conditions"].values())
    assert spec.study["conditions"]["mismatched"] == {"noisy": "clean", "enhanced": "clean"}
    assert len(spec.variants) == 15 and next(iter(spec.variants)) == "clean"


def dry_run(spec: Path, cwd: Path, capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, int], str]:
    """``run --dry-run``: its exit status must be 0; returns each listed cell's command by (variant, fold)."""
    from ser_lightning.experiment.__main__ import main

    capsys.readouterr()
    assert main(["run", str(spec), "--dry-run", "--output_root", str(cwd / "runs")]) == 0
    out = capsys.readouterr().out
    cells = re.findall(r"^\[([^/\]]+)/fold(\d+)-seed\d+\] .*\n\s+(.*)$", out, flags=re.MULTILINE)
    assert cells, out[-2000:]
    return {(variant, int(fold)): command for variant, fold, command in cells}


def _print_config(command: str, capsys: pytest.CaptureFixture[str]) -> dict:
    """The composed config of a listed cell command (``--print_config``: parsed, nothing instantiated)."""
    import shlex

    from ser_lightning.cli import main as cli_main

    argv = shlex.split(command)[3:]  # after "python -m ser_lightning"
    with pytest.raises(SystemExit) as exit_:
        cli_main([*argv, "--print_config"])
    assert not exit_.value.code
    return yaml.safe_load(capsys.readouterr().out)


def test_demo_conditions_plan_correctly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CPU demo: eGeMAPS + SVM, 15 variants (clean; matched noisy / enhanced at each SNR; multi-SNR noisy /
    enhanced) x LOSO folds 0-1; training noise from derived corpora, enhancement from the demo enhancer."""
    commands = dry_run(CONFIGS / "experiments" / "study_synthetic.yaml", tmp_path, capsys)
    assert len(commands) == 15 * 2 and {f for _, f in commands} == {0, 1}
    for (variant, _fold), command in commands.items():
        assert "configs/egemaps_svm.yaml" in command and "configs/evaluation/study_noise_demo.yaml" in command
        derived = re.search(r"derived\.init_args\.snr_db ('\[-5, 20\]'|-?\d+)", command)
        tested_at = re.search(r"--evaluation\.init_args\.snr_db '\[(-?\d+)\]'", command)
        enhanced_training = "configs/derived/enhanced_demo.yaml" in command
        if variant == "clean":
            assert "study_noise_both_demo.yaml" in command and "configs/derived/" not in command and not tested_at
            continue
        assert enhanced_training == ("enhanced" in variant), variant
        assert ("configs/derived/noisy.yaml" in command) == (not enhanced_training), variant
        assert ("study_noise_enhanced_demo.yaml" in command) == enhanced_training, variant
        if variant.startswith("matched"):
            level = variant.rsplit("snr", 1)[1]
            assert derived and derived.group(1) == level and tested_at and tested_at.group(1) == level, variant
        else:
            assert derived and derived.group(1) == "'[-5, 20]'" and not tested_at, variant  # mixed SNRs, every SNR
    assert not (tmp_path / "runs" / "study_synthetic").exists()  # a dry run starts nothing
    matched = _print_config(commands[("matched_enhanced_snr0", 1)], capsys)
    derived = matched["data"]["init_args"]["derived"]
    assert derived["class_path"].endswith("DerivedCorpus") and derived["init_args"]["output"] == "enhanced"
    assert derived["init_args"]["snr_db"] == 0 and derived["init_args"]["part"] == "train"
    assert derived["init_args"]["enhancer"] == "runs/enhancement_demo/version_0/checkpoints/last.ckpt"
    (evaluation,) = matched["evaluation"]
    assert evaluation["init_args"]["enhancer"] == derived["init_args"]["enhancer"]
    assert evaluation["init_args"]["snr_db"] == [0.0] and evaluation["init_args"]["part"] == "eval"
    assert matched["data"]["init_args"]["fold"] == 1
    clean = _print_config(commands[("clean", 0)], capsys)
    assert [e["init_args"]["enhancer"] for e in clean["evaluation"]] == [None, derived["init_args"]["enhancer"]]
    assert all(e["init_args"]["categories"] == ["babble", "traffic"] for e in clean["evaluation"])
    assert clean["data"]["init_args"]["derived"] is None


@pytest.mark.parametrize("features", ["egemaps", "compare"])
@pytest.mark.parametrize("replica", ["emodb", "enterface"])
def test_corpus_studies_plan_on_the_replicas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replica: str, features: str
) -> None:
    """The shipped EMO-DB / eNTERFACE studies (openSMILE + SVM, the paper's enhancer), their corpus root pointed at
    the test replica: LOSO, every fold, 15 variants."""
    from ser_lightning.data.splits import num_folds

    name = f"study_{replica}_{features}.yaml"
    data = yaml.safe_load((CONFIGS / "experiments" / name).read_text())
    roots = [i for i, a in enumerate(data["args"]) if a == "--data.init_args.root"]
    assert len(roots) == 1 and data["folds"] == "all"
    data["args"][roots[0] + 1] = str(REPO / "tests" / "data" / replica)
    spec = tmp_path / "configs" / "experiments" / name
    shutil.copytree(CONFIGS, tmp_path / "configs")  # relative config paths resolve in the folders above the spec
    spec.write_text(yaml.safe_dump(data))
    commands = dry_run(spec, tmp_path, capsys)
    module = {"emodb": "EMODBDataModule", "enterface": "ENTERFACEDataModule"}[replica]
    import ser_lightning.data as data_package

    records = getattr(data_package, module)(root=str(REPO / "tests" / "data" / replica), cache_manifest=False).records()
    folds = num_folds(records, "loso")
    assert folds >= 3 and {f for _, f in commands} == set(range(folds))
    assert len(commands) == folds * len(data["variants"]) == folds * 15
    assert all(f"{features}_svm.yaml" in c and "study_noise.yaml" in c for c in commands.values())
    assert all("_demo" not in c for c in commands.values())  # the paper's enhancer, not the demo's
    printed = _print_config(commands[("multi_snr_enhanced", 0)], capsys)
    assert printed["data"]["class_path"].endswith(module)
    assert printed["data"]["init_args"]["derived"]["init_args"]["snr_db"] == [-5.0, 20.0]
    assert printed["evaluation"][0]["init_args"]["enhancer"] == "runs/enhancement/version_0/checkpoints/last.ckpt"


def test_one_tiny_condition_cell_runs(tmp_path: Path, tiny_corpus: Path) -> None:
    """A matched cell (noise at exactly 0 dB in training, tested per SNR) through the runner, into the study table."""
    from ser_lightning.experiment.__main__ import main

    from .test_experiment import FAST, MAIN, TINY

    # The shipped test side (configs/evaluation/study_noise.yaml) on two SNRs and one noise, to keep the test short.
    evaluation = yaml.safe_load((CONFIGS / "evaluation" / "study_noise.yaml").read_text())
    evaluation["evaluation"][0]["init_args"].update(snr_db=[0, 5], categories=["pink"])
    (tmp_path / "noise.yaml").write_text(yaml.safe_dump(evaluation))
    spec = {
        "name": "tiny_study",
        "base": [MAIN, str(tmp_path / "noise.yaml")],
        "args": ["--data", TINY, "--data.init_args.root", str(tiny_corpus.parent), *FAST],
        "folds": [0],
        "seeds": [0],
        "variants": {"matched_snr0": ["configs/augment/noise.yaml", "--data.init_args.augmentation.init_args.snr_db",
                                      "[0, 0]"]},
        "output_root": str(tmp_path / "runs"),
        "study": {"snr_db": [0, 5], "conditions": {"matched": {"noisy": {0: "matched_snr0"}}}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    root = tmp_path / "runs" / "tiny_study"
    results = json.loads((root / "matched_snr0" / "fold0-seed0" / "results.json").read_text())
    assert "snr_db=(0.0, 0.0)" in results["augmentation"] and "part='train'" in results["augmentation"]
    table = results["noise_robustness"]
    assert table["snr_db"] == [0.0, 5.0] and table["part"] == "eval" and table["categories"] == ["pink"]
    assert set(table["stamps"].values()) == {"matched-category"}  # the same noises, from the held-out part
    rows = {r["snr_db"]: r for r in json.loads((root / "card.json").read_text())["study"]["conditions"]["matched"]
            ["rows"]}  # fmt: skip
    mean_at_0 = next(r["ua"] for r in table["rows"] if r["noise"] == "mean" and r["snr_db"] == 0.0)
    assert rows[0.0]["noisy"]["mean"] == pytest.approx(mean_at_0) and rows[0.0]["noisy"]["folds"] == 1
    assert rows[5.0]["noisy"] is None  # no variant trained at 5 dB: empty, not borrowed from another SNR


def test_recola_study_plans_one_avec_fold_and_its_cells_parse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """study_recola.yaml on the replica (with test ratings): one official fold, 15 cells whose configs compose."""
    from .test_postprocess import with_test_ratings

    data = yaml.safe_load((CONFIGS / "experiments" / "study_recola.yaml").read_text())
    assert data["args"][0] == "--data.init_args.root" and data["study"]["metric"] == "ccc"
    data["args"][1] = str(with_test_ratings(tmp_path))
    spec = tmp_path / "configs" / "experiments" / "study_recola.yaml"
    shutil.copytree(CONFIGS, tmp_path / "configs")
    spec.write_text(yaml.safe_dump(data))
    commands = dry_run(spec, tmp_path, capsys)
    assert {f for _, f in commands} == {0} and len(commands) == 15
    printed = _print_config(commands[("multi_snr", 0)], capsys)
    assert printed["data"]["init_args"]["protocol"] == "official"
    assert printed["data"]["init_args"]["derived"]["init_args"]["snr_db"] == [-5.0, 20.0]
    assert printed["evaluation"][0]["class_path"].endswith("RegressionNoiseRobustness")
    assert printed["evaluation"][0]["init_args"]["snr_db"] == SNRS  # tested at every SNR (Table 6)
    clean = _print_config(commands[("clean", 0)], capsys)
    assert [e["class_path"].rsplit(".", 1)[1] for e in clean["evaluation"]] == ["RegressionNoiseRobustness"] * 2
    assert clean["evaluation"][1]["init_args"]["enhancer"] == "runs/enhancement/version_0/checkpoints/last.ckpt"
    matched = _print_config(commands[("matched_enhanced_snr10", 0)], capsys)
    assert matched["data"]["init_args"]["derived"]["init_args"]["output"] == "enhanced"
    assert matched["evaluation"][0]["init_args"]["snr_db"] == SNRS
