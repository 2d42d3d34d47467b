"""openSMILE + SVM baseline: CLI fit/test/predict, the feature cache, checkpoints and the robustness callbacks."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ser_lightning.audio import read_audio
from ser_lightning.cli import main
from ser_lightning.models import OpenSmileSVM, SERClassificationTask
from ser_lightning.models.smile import OpenSmileExtractor

from .conftest import CONFIGS

pytest.importorskip("opensmile")
pytest.importorskip("sklearn")

SVM = str(CONFIGS / "egemaps_svm.yaml")
TINY = str(CONFIGS / "data" / "synthetic_tiny.yaml")


def svm_args(runs: Path, cache: Path, *extra: str) -> list[str]:
    return ["--config", SVM, "--data", TINY, "--data.init_args.root", str(cache),
            "--data.init_args.num_workers", "1", "--trainer.logger.init_args.save_dir", str(runs),
            "--trainer.enable_progress_bar", "false", *extra]  # fmt: skip


def suite(path: Path) -> Path:
    """Noise, adversarial (skipped for the SVM) and cross-corpus evaluation, small."""
    path.write_text(yaml.safe_dump({"evaluation": [
        {"class_path": "ser_lightning.callbacks.NoiseRobustness",
         "init_args": {"categories": ["white", "babble"], "snr_db": [0, 20], "seed": 0}},
        {"class_path": "ser_lightning.callbacks.AdversarialRobustness", "init_args": {"attacks": ["fgsm"]}},
        {"class_path": "ser_lightning.callbacks.CrossCorpusEvaluation",
         "init_args": {"name": "synthetic_de", "data": {"class_path": "ser_lightning.data.SyntheticDataModule",
                                                         "init_args": {"size": "tiny", "voice_set": "de"}}}},
    ]}))  # fmt: skip
    return path


def results_of(runs: Path) -> tuple[Path, dict]:
    run = max(runs.rglob("results.json"), key=lambda p: p.stat().st_mtime).parent
    return run, json.loads((run / "results.json").read_text())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("svm")
    features = tmp / "features"  # a private feature cache: the first run extracts everything
    args = svm_args(tmp / "runs", tiny_corpus.parent, "--model.init_args.c_grid", "[0.1, 1.0, 10.0]",
                    "--model.init_args.gamma_scales", "[1.0]", "--model.init_args.feature_cache_dir", str(features))
    cli = main(["fit", *args, "--config", str(suite(tmp / "suite.yaml"))])
    run, results = results_of(tmp / "runs")
    again = main(["fit", *args])  # the same run without the suite: every feature comes from the cache
    _, second = results_of(tmp / "runs")
    best = next((run / "checkpoints").glob("best-*.ckpt"))
    return {"cli": cli, "again": again, "run": run, "results": results, "second": second, "best": best,
            "args": args, "tmp": tmp, "features": features}  # fmt: skip


def test_fit_selects_c_on_validation_and_tests(fitted: dict) -> None:
    results = fitted["results"]
    assert results["model"] == "OpenSmileSVM"
    assert 0.0 <= results["test_ua"] <= 1.0 and results["num_test_utterances"] > 0
    svm = results["svm"]
    assert svm["feature_set"] == "eGeMAPSv02" and svm["num_features"] == 88
    assert svm["C"] in (0.1, 1.0, 10.0) and len(svm["grid"]) == 3
    assert svm["selected_on"].startswith("validation split")
    assert max(cell["val_ua"] for cell in svm["grid"]) == next(c["val_ua"] for c in svm["grid"] if c["C"] == svm["C"])
    assert svm["train_utterances"] == results["sizes"]["train"]  # every training utterance, no drop_last
    assert results["training_stop"]["reason"] == "fitted"
    assert results["feature_norm"].startswith("train")
    assert results["class_weights"]["mode"] == "none" and results["balanced_sampler"] is False
    assert fitted["cli"].trainer.current_epoch == 1  # one epoch, although nothing limits max_epochs beyond 1


def test_second_run_extracts_nothing(fitted: dict) -> None:
    first, second = fitted["results"]["feature_cache"], fitted["second"]["feature_cache"]
    sizes = fitted["results"]["sizes"]
    assert first["fit"] == {"cached": 0, "extracted": sizes["train"] + sizes["val"]}
    assert second["fit"] == {"cached": sizes["train"] + sizes["val"], "extracted": 0}
    assert second["test"] == {"cached": sizes["test"], "extracted": 0}
    assert fitted["second"]["test_ua"] == fitted["results"]["test_ua"]
    assert fitted["second"]["svm"]["C"] == fitted["results"]["svm"]["C"]
    assert len(list(fitted["features"].rglob("*.npy"))) == sum(sizes.values())


def test_noise_callback_runs_the_svm_on_noisy_features(fitted: dict) -> None:
    table = fitted["results"]["noise_robustness"]
    rows = table["rows"]
    assert rows[0]["noise"] == "clean" and rows[0]["ua"] == pytest.approx(fitted["results"]["test_ua"])
    cells = [r for r in rows if r["noise"] in ("white", "babble")]
    assert len(cells) == 4 and all(0.0 <= r["ua"] <= 1.0 for r in cells)
    # 0 dB white noise changes the features, so it cannot leave every decision as the clean one.
    assert any(r["ua"] != rows[0]["ua"] for r in cells)
    assert (fitted["run"] / "noise_robustness.csv").exists()


def test_adversarial_callback_skips_the_svm(fitted: dict) -> None:
    entry = fitted["results"]["adversarial_robustness"]
    assert entry["skipped"] is True and "not differentiable" in entry["reason"]
    assert not (fitted["run"] / "adversarial_robustness.csv").exists()
    assert "test_ua_fgsm" not in fitted["results"]


def test_cross_corpus_callback_runs_the_svm(fitted: dict) -> None:
    table = fitted["results"]["cross_corpus"]["synthetic_de"]
    assert table["num_utterances"] > 0 and 0.0 <= table["ua"] <= 1.0


def test_checkpoint_carries_the_fitted_pipeline(fitted: dict, tiny_corpus: Path) -> None:
    model = SERClassificationTask.load_from_checkpoint(fitted["best"], map_location="cpu").eval()
    assert isinstance(model, OpenSmileSVM) and model.network.fitted
    assert model.selection["C"] == fitted["results"]["svm"]["C"]
    manifest = tiny_corpus / "manifest.csv"
    with manifest.open() as handle:
        row = next(csv.DictReader(handle))
    audio = torch.from_numpy(read_audio(tiny_corpus / row["path"], 16000))[None]
    with torch.no_grad():
        probs = model(audio)
    assert probs.shape == (1, 4) and torch.allclose(probs.sum(-1), torch.ones(1))
    features = model.frontend(audio)
    assert torch.equal(model(audio, features=features), probs)


def test_test_and_predict_from_checkpoint(fitted: dict, tiny_corpus: Path, tmp_path: Path) -> None:
    args = svm_args(tmp_path / "runs", tiny_corpus.parent)
    main(["test", *args, "--ckpt_path", str(fitted["best"])])
    _, results = results_of(tmp_path / "runs")
    assert results["test_ua"] == pytest.approx(fitted["results"]["test_ua"])
    assert results["svm"]["C"] == fitted["results"]["svm"]["C"]
    main(["predict", *args, "--ckpt_path", str(fitted["best"])])
    predictions = next((tmp_path / "runs").rglob("predictions.csv"))
    with predictions.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == fitted["results"]["sizes"]["test"]
    assert {r["predicted"] for r in rows} <= set(fitted["results"]["class_names"])


def test_feature_cache_key_is_the_waveform_content(tmp_path: Path) -> None:
    extractor = OpenSmileExtractor("eGeMAPSv02", cache_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    first, cached = extractor(audio, 16000)
    assert not cached and first.shape == (88,)
    again, cached = extractor(audio.copy(), 16000)
    assert cached and np.array_equal(first, again)
    changed = audio.copy()
    changed[100] += 0.01
    assert extractor.cache_path(changed, 16000) != extractor.cache_path(audio, 16000)
    assert extractor.cache_path(audio, 8000) != extractor.cache_path(audio, 16000)
    default = OpenSmileExtractor("ComParE_2016").folder(16000)
    assert extractor.version in str(default) and "ComParE_2016-16000hz" in str(default)
    with pytest.raises(ValueError, match="too short"):
        extractor.extract(audio[:200], 16000)


def test_missing_opensmile_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opensmile", None)
    with pytest.raises(ImportError, match=r"ser_lightning\[opensmile\]"):
        OpenSmileSVM()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="feature_norm"):
        OpenSmileSVM(feature_norm="utterance")
    with pytest.raises(ValueError, match="mixup"):
        OpenSmileSVM(mixup_alpha=0.2)
    with pytest.raises(ValueError, match="c_grid"):
        OpenSmileSVM(c_grid=())
