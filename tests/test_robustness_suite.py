"""configs/robustness.yaml: the whole suite, composed on any experiment, after `test` and at the end of `fit`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import CONFIGS
from .test_cli import common, run_cli

SUITE = CONFIGS / "robustness.yaml"


def cheap_suite(tmp_path: Path) -> Path:
    """The shipped suite with the cross-corpus target at its tiny size (everything else as shipped)."""
    suite = yaml.safe_load(SUITE.read_text())
    for entry in suite["evaluation"]:
        if entry["class_path"].endswith("CrossCorpusEvaluation"):
            entry["init_args"]["data"]["init_args"]["size"] = "tiny"
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_the_suite_composes_with_every_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    for experiment in sorted(p for p in CONFIGS.glob("*.yaml") if p != SUITE and p.stem != "end_to_end"):
        assert run_cli(["test", "--config", str(experiment), "--config", str(SUITE), "--print_config"]) == 0
        printed = yaml.safe_load(capsys.readouterr().out)
        names = [entry["class_path"].rsplit(".", 1)[-1] for entry in printed["evaluation"]]
        assert names == ["NoiseRobustness", "AdversarialRobustness", "CrossCorpusEvaluation"], experiment
        assert printed["evaluation"][0]["init_args"]["snr_db"] == [0, 10, 20]
        assert printed["evaluation"][1]["init_args"]["epsilon"] == 0.08
        assert printed["trainer"]["callbacks"], "the experiment's own callbacks must stay"


def test_the_documented_command_runs_the_whole_suite_on_a_trained_model(tmp_path: Path, _private_cache: Path) -> None:
    suite = cheap_suite(tmp_path)
    # Trained with the suite attached: it runs after fit's final test.
    fit_args = ["fit", *common(tmp_path, _private_cache), "--config", str(suite), "--trainer.max_epochs", "1"]
    assert run_cli(fit_args) == 0
    (fit_run,) = (tmp_path / "runs" / "dense_highway").glob("version_*")
    fitted = json.loads((fit_run / "results.json").read_text())
    assert {"noise_robustness", "adversarial_robustness", "cross_corpus"} <= set(fitted)
    checkpoint = next((fit_run / "checkpoints").glob("best-*.ckpt"))

    # The README's command on that checkpoint.
    test_args = ["test", *common(tmp_path, _private_cache), "--config", str(suite), "--ckpt_path", str(checkpoint)]
    assert run_cli(test_args) == 0
    (test_run,) = [p for p in (tmp_path / "runs" / "dense_highway").glob("version_*") if p != fit_run]
    results = json.loads((test_run / "results.json").read_text())
    assert results["test_ua"] == pytest.approx(fitted["test_ua"])  # the same model, the same clean test
    noise = results["noise_robustness"]
    assert len(noise["rows"]) >= 15  # five environments x three SNRs (plus the clean row)
    cells = {(row["noise"], row["snr_db"]) for row in noise["rows"] if row["noise"] not in ("clean", "mean")}
    assert cells == {(n, s) for n in ("white", "pink", "brown", "babble", "traffic") for s in (0.0, 10.0, 20.0)}
    assert noise == fitted["noise_robustness"] | {"seconds": noise["seconds"]}  # seeded: identical noisy inputs
    attacks = results["adversarial_robustness"]
    assert {row["attack"] for row in attacks["rows"]} == {"none", "fgsm", "bim"}  # "none": the clean reference
    assert attacks["epsilon"] == 0.08
    cross = results["cross_corpus"]["synthetic_de"]
    assert cross["num_utterances"] > 0 and 0.0 <= cross["ua"] <= 1.0
    for name in ("noise_robustness.csv", "noise_robustness.json", "noise_robustness.png",
                 "adversarial_robustness.csv", "adversarial_robustness.json",
                 "cross_corpus_synthetic_de.json", "cross_corpus_synthetic_de_confusion.png"):  # fmt: skip
        assert (test_run / name).is_file(), name
