"""The noise and adversarial robustness callbacks and the FGSM/BIM attacks on a trained model (``trainer.test``).

The model-free tests of the noise callback (metric names, identical noisy inputs) are in ``test_noise_robustness.py``.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from ser_lightning.callbacks import AdversarialRobustness, NoiseRobustness, bim, fgsm
from ser_lightning.callbacks.noise import snr_tag
from ser_lightning.callbacks.test_cache import CachedBatch
from ser_lightning.cli import main
from ser_lightning.data import SyntheticDataModule
from ser_lightning.models import DenseHighway

from .conftest import CONFIGS, REPO
from .test_ddp import data_args

SNRS = [-10.0, 10.0, 30.0]
NOISES = ["white", "pink", "brown", "babble", "traffic"]


def datamodule(cache: Path, eval_batch_size: int | None = None) -> SyntheticDataModule:
    return SyntheticDataModule(root=str(cache), size="tiny", batch_size=8, eval_batch_size=eval_batch_size,
                               segment_seconds=2.575)  # fmt: skip


def test_trainer(logs: Path, callbacks: list[pl.Callback], **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(logger=CSVLogger(str(logs)), callbacks=callbacks, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(logs), **kwargs)  # fmt: skip


test_trainer.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(scope="module")
def trained(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> DenseHighway:
    """A narrow DenseHighway trained for a few epochs on the tiny corpus (about 25 s on 2 CPU cores)."""
    pl.seed_everything(0, verbose=False)
    dm = datamodule(tiny_corpus.parent)
    model = DenseHighway(num_classes=4, class_names=dm.class_names, growth_rate=4, block_layers=2)
    trainer = pl.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path_factory.mktemp("trained"))  # fmt: skip
    trainer.fit(model, dm)
    return model.eval()


@pytest.fixture(scope="module")
def suite(trained: DenseHighway, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The full suite (5 noises x 3 SNRs, FGSM, BIM) run once by ``trainer.test``."""
    logs = tmp_path_factory.mktemp("suite")
    callbacks = [NoiseRobustness(snr_db=SNRS), AdversarialRobustness()]
    trainer = test_trainer(logs, list(callbacks))
    (metrics,) = trainer.test(trained, datamodule(tiny_corpus.parent))
    return {"metrics": metrics, "run": Path(trainer.log_dir), "callbacks": callbacks}


# --- names and arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: NoiseRobustness(categories=["white", "rain"]), "not in the ProceduralNoiseBank"),
        (lambda: NoiseRobustness(snr_db=[]), "at least one SNR"),
        (lambda: NoiseRobustness(snr_db=[0, 0]), "duplicates"),
        (lambda: NoiseRobustness(snr_db=[math.inf]), "finite"),
        (lambda: NoiseRobustness(categories=[]), "at least one noise category"),
        (lambda: AdversarialRobustness(attacks=["pgd"]), "attacks"),  # type: ignore[list-item]
        (lambda: AdversarialRobustness(epsilon=0.0), "epsilon"),
        (lambda: AdversarialRobustness(bim_steps=0), "bim_steps"),
        (lambda: AdversarialRobustness(clamp=(1.0, 0.0)), "clamp"),
        (lambda: AdversarialRobustness(domain="spectrum"), "domain"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_rejected(factory: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()


def test_non_classifier_is_rejected(tmp_path: Path, tiny_corpus: Path) -> None:
    class Regressor(pl.LightningModule):
        def test_step(self, batch: Any, batch_idx: int) -> None:
            pass

    trainer = test_trainer(tmp_path, [NoiseRobustness()])
    with pytest.raises(TypeError, match="classification module"):
        trainer.test(Regressor(), datamodule(tiny_corpus.parent))


# --- the suite through trainer.test -----------------------------------------------------------------------


def test_suite_logs_every_key_and_writes_tables(suite: dict[str, Any]) -> None:
    metrics, run = suite["metrics"], suite["run"]
    for noise in NOISES:
        for snr in SNRS:
            for k in ("ua", "wa"):
                assert 0.0 <= metrics[f"test_{k}_{noise}_{snr_tag(snr)}"] <= 1.0
    for snr in SNRS:
        mean = np.mean([metrics[f"test_ua_{n}_{snr_tag(snr)}"] for n in NOISES])
        assert metrics[f"test_ua_noise_{snr_tag(snr)}"] == pytest.approx(mean, abs=1e-6)
    for key in ("test_ua_fgsm", "test_wa_fgsm", "test_ua_bim", "test_wa_bim", "test_ua", "test_wa"):
        assert key in metrics, key
    for name in ("noise_robustness.csv", "noise_robustness.json", "noise_robustness.png",
                 "adversarial_robustness.csv", "adversarial_robustness.json"):  # fmt: skip
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert results["test_ua"] == pytest.approx(metrics["test_ua"])  # the model's own clean results are kept
    noise = results["noise_robustness"]
    assert noise["snr_db"] == SNRS and noise["categories"] == NOISES and noise["seed"] == 0
    assert noise["bank"]["class"].endswith("ProceduralNoiseBank")
    assert noise["clean_ua"] == pytest.approx(metrics["test_ua"])  # clean posteriors captured from the test pass
    with (run / "noise_robustness.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 + len(NOISES) * len(SNRS) + len(SNRS)  # clean, cells, means
    assert set(rows[0]) >= {"noise", "snr_db", "ua", "wa", "f1", "num_utterances"}
    assert all(int(r["num_utterances"]) == results["num_test_utterances"] for r in rows)
    cell = next(r for r in rows if r["noise"] == "babble" and float(r["snr_db"] or "nan") == 10.0)
    assert float(cell["ua"]) == pytest.approx(metrics["test_ua_babble_snr10db"])
    # Held-out noise, stamped against the run's (absent) training augmentation, in every table.
    assert noise["part"] == "eval" and noise["bank"]["part"] == "eval"
    assert noise["training_noise"] == [] and noise["stamps"] == dict.fromkeys(NOISES, "mismatched")
    assert [r["stamp"] for r in rows] == [""] + ["mismatched"] * (len(NOISES) * len(SNRS) + len(SNRS))
    assert [r["stamp"] for r in noise["rows"]] == [None] + ["mismatched"] * (len(rows) - 1)
    assert json.loads((run / "noise_robustness.json").read_text())["stamps"] == noise["stamps"]
    adversarial = results["adversarial_robustness"]
    assert [r["attack"] for r in adversarial["rows"]] == ["none", "fgsm", "bim"]
    assert adversarial["epsilon"] == 0.08 and adversarial["bim_steps"] == 10
    assert adversarial["bim_step_size"] == pytest.approx(0.02) and adversarial["domain"] == "features"
    assert adversarial["clean_ua"] == pytest.approx(metrics["test_ua"])
    # One shared cache, freed at the end of the test epoch.
    noise_cb, adversarial_cb = suite["callbacks"]
    assert adversarial_cb._cache is None and noise_cb._cache is not None and not noise_cb._cache.batches


def test_ua_falls_as_snr_falls(suite: dict[str, Any]) -> None:
    metrics = suite["metrics"]
    means = [metrics[f"test_ua_noise_{snr_tag(s)}"] for s in sorted(SNRS, reverse=True)]  # 30, 10, -10 dB
    assert means[-1] < metrics["test_ua"] - 0.1, (means, metrics["test_ua"])
    assert all(lower <= higher + 0.05 for higher, lower in itertools.pairwise(means)), means
    assert metrics["test_ua"] > 0.4  # the model did learn something (chance is 0.25)


def test_noise_metrics_do_not_depend_on_batching(
    suite: dict[str, Any], trained: DenseHighway, tiny_corpus: Path, tmp_path: Path
) -> None:
    trainer = test_trainer(tmp_path, [NoiseRobustness(snr_db=SNRS)])
    (metrics,) = trainer.test(trained, datamodule(tiny_corpus.parent, eval_batch_size=5))
    keys = [k for k in suite["metrics"] if "_snr" in k]
    assert len(keys) == 3 * (len(NOISES) + 1) * len(SNRS)
    assert {k: metrics[k] for k in keys} == pytest.approx({k: suite["metrics"][k] for k in keys}, abs=1e-6)


def test_fast_dev_run_logs_but_writes_nothing(trained: DenseHighway, tiny_corpus: Path, tmp_path: Path) -> None:
    callback = NoiseRobustness(categories=["white"], snr_db=[0.0])
    trainer = test_trainer(tmp_path, [callback], fast_dev_run=True)
    (metrics,) = trainer.test(trained, datamodule(tiny_corpus.parent))
    assert "test_ua_white_snr0db" in metrics and "test_ua_noise_snr0db" in metrics
    assert not list(tmp_path.rglob("noise_robustness.*"))


# --- attacks ----------------------------------------------------------------------------------------------


class LogPosteriors(nn.Module):
    """The utterance log-posteriors of features scaled into [0, 1] (torchattacks' input range)."""

    def __init__(self, task: DenseHighway, frames: torch.Tensor, low: float, high: float) -> None:
        super().__init__()
        self.task, self.frames, self.low, self.high = task, frames, low, high

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        features = u * (self.high - self.low) + self.low
        return torch.log(self.task.utterance_posteriors(features, self.frames).clamp_min(1e-12))


def _features(model: DenseHighway, seconds: float = 2.0, batch: int = 4) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    n = int(seconds * 16000)
    t = torch.arange(n) / 16000
    waveform = torch.stack([0.3 * torch.sin(2 * math.pi * (120 + 60 * i) * t) * (1 + torch.sin(2 * math.pi * t))
                            + 0.02 * torch.randn(n) for i in range(batch)])  # fmt: skip
    with torch.no_grad():
        features, frames = model.frontend(waveform, torch.full((batch,), n))
    return features, frames, torch.tensor([0, 1, 2, 3][:batch])


def test_fgsm_and_bim_match_torchattacks(trained: DenseHighway) -> None:
    torchattacks = pytest.importorskip("torchattacks")
    features, frames, labels = _features(trained)
    low, high = float(features.min()), float(features.max())
    u = (features - low) / (high - low)
    wrapper = LogPosteriors(trained, frames, low, high).eval()

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(wrapper(x), y)

    eps, alpha, steps = 0.03, 0.0075, 5
    ours = fgsm(loss_fn, u, labels, eps, clamp=(0.0, 1.0))
    reference = torchattacks.FGSM(wrapper, eps=eps)(u, labels)
    assert torch.allclose(ours, reference, atol=1e-6)
    ours_bim = bim(loss_fn, u, labels, eps, alpha, steps, clamp=(0.0, 1.0))
    reference_bim = torchattacks.BIM(wrapper, eps=eps, alpha=alpha, steps=steps)(u, labels)
    assert torch.allclose(ours_bim, reference_bim, atol=1e-6)
    assert not torch.allclose(ours_bim, ours, atol=1e-3)  # the attacks really differ, so the parity means something
    with torch.no_grad():
        for mine, theirs in ((ours, reference), (ours_bim, reference_bim)):
            assert torch.equal(wrapper(mine).argmax(1), wrapper(theirs).argmax(1))
        clean_loss = nn.functional.cross_entropy(wrapper(u), labels)
        assert nn.functional.cross_entropy(wrapper(ours_bim), labels) > clean_loss


def test_attacks_raise_the_loss_keep_padding_and_leave_parameters_alone(trained: DenseHighway) -> None:
    model = trained
    waveform = torch.randn(3, 24000) * 0.1
    lengths = torch.tensor([24000, 15000, 9000])
    waveform[1, 15000:] = 0
    waveform[2, 9000:] = 0
    batch = CachedBatch(waveform, lengths, torch.tensor([0, 2, 3]), ["a", "b", "c"])
    callback = AdversarialRobustness(epsilon=0.5, epsilon_unit="absolute")  # raw feature units: a number
    x, loss_fn, _, mask, epsilon = callback.attack_inputs(None, model, batch)
    labels = batch.labels
    for p in model.parameters():
        p.grad = None
    adv_f = fgsm(loss_fn, x, labels, epsilon, mask=mask)
    adv_b = bim(loss_fn, x, labels, epsilon, epsilon / 4, 5, mask=mask)
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        clean = loss_fn(x, labels)
        assert loss_fn(adv_f, labels) > clean and loss_fn(adv_b, labels) > clean
    for adv in (adv_f, adv_b):
        assert torch.equal(adv[~mask.expand_as(adv)], x[~mask.expand_as(x)])  # padded frames keep the pad value
        assert (adv[~mask.expand_as(adv)] == model.frontend.pad_value).all()
        assert (adv - x).abs().max() <= epsilon + 1e-5
    moved = (adv_f - x).abs()[mask.expand_as(x)]
    # FGSM moves each valid element by eps, or not at all where the gradient is exactly zero (max-pooling).
    assert torch.minimum(moved, (moved - epsilon).abs()).max() < 1e-5
    assert (moved > epsilon / 2).float().mean() > 0.5
    # The waveform domain: a per-utterance budget at the requested perturbation SNR; padding untouched.
    callback = AdversarialRobustness(domain="waveform", epsilon_snr_db=20.0)
    w, loss_w, _, mask_w, eps_w = callback.attack_inputs(None, model, batch)
    assert eps_w.shape == (3, 1)
    rms = torch.stack([waveform[i, : int(n)].double().pow(2).mean().sqrt() for i, n in enumerate(lengths)])
    assert torch.allclose(eps_w[:, 0].double(), rms * 10 ** (-20 / 20), rtol=1e-5)
    adv_w = fgsm(loss_w, w, labels, eps_w, mask=mask_w)
    assert not adv_w[~mask_w].any()
    assert ((adv_w - w).abs() <= eps_w + 1e-7).all()
    with torch.no_grad():
        assert loss_w(adv_w, labels) > loss_w(w, labels)


def test_trained_model_loses_ua_under_attack(trained: DenseHighway, tiny_corpus: Path, tmp_path: Path) -> None:
    callback = AdversarialRobustness(epsilon=1.0, bim_steps=3)
    trainer = test_trainer(tmp_path, [callback])
    (metrics,) = trainer.test(trained, datamodule(tiny_corpus.parent))
    assert metrics["test_ua_fgsm"] < metrics["test_ua"]
    assert metrics["test_ua_bim"] < metrics["test_ua"]
    assert all(p.grad is None for p in trained.parameters())
    rows = json.loads((Path(trainer.log_dir) / "adversarial_robustness.json").read_text())["rows"]
    assert [r["steps"] for r in rows] == [0, 1, 3]


# --- DDP --------------------------------------------------------------------------------------------------

SUITE_YAML = """
evaluation:
  - class_path: ser_lightning.callbacks.NoiseRobustness
    init_args: {categories: [white, babble], snr_db: [0, 20]}
  - class_path: ser_lightning.callbacks.AdversarialRobustness
    init_args: {bim_steps: 2, epsilon: 0.5}
  - class_path: ser_lightning.callbacks.CrossCorpusEvaluation
    init_args:
      name: de
      data: {class_path: ser_lightning.data.SyntheticDataModule, init_args: {size: tiny, voice_set: de}}
"""


@pytest.mark.slow
def test_ddp_tables_equal_single_process(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Two CPU processes (an odd test split, sharded unevenly) give the single process' tables."""
    manifest = request.getfixturevalue("odd_manifest")
    suite_yaml = tmp_path / "suite.yaml"
    suite_yaml.write_text(SUITE_YAML)
    fit = main(["fit", *data_args(manifest, tmp_path / "fit"), "--trainer.max_epochs", "2",
                "--test_after_fit", "false"])  # fmt: skip
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    main(["test", *data_args(manifest, tmp_path / "single"), "--config", str(suite_yaml), "--ckpt_path", ckpt])
    ddp = ["--trainer", str(CONFIGS / "trainer" / "ddp_cpu.yaml"), "--config", str(suite_yaml), "--ckpt_path", ckpt]
    proc = subprocess.run([sys.executable, "-m", "ser_lightning", "test", *data_args(manifest, tmp_path / "ddp"), *ddp],
                          cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (single_dir,) = (tmp_path / "single").glob("*/version_*")
    (ddp_dir,) = (tmp_path / "ddp").glob("*/version_*")
    for name in ("noise_robustness", "adversarial_robustness"):
        single = json.loads((single_dir / f"{name}.json").read_text())["rows"]
        ddp_rows = json.loads((ddp_dir / f"{name}.json").read_text())["rows"]
        assert len(ddp_rows) == len(single) and ddp_rows[0]["num_utterances"] % 2 == 1
        for a, b in zip(single, ddp_rows, strict=True):
            assert a == pytest.approx(b, abs=1e-6), (name, a, b)
    single_cross = json.loads((single_dir / "cross_corpus_de.json").read_text())
    ddp_cross = json.loads((ddp_dir / "cross_corpus_de.json").read_text())
    assert ddp_cross["confusion_matrix"] == single_cross["confusion_matrix"]  # every utterance once
    assert ddp_cross["num_utterances"] == single_cross["num_utterances"] > 0


def test_suite_runs_under_bf16_mixed(trained: DenseHighway, tiny_corpus: Path, tmp_path: Path) -> None:
    callbacks = [NoiseRobustness(categories=["pink"], snr_db=[0.0]), AdversarialRobustness(bim_steps=2),
                 AdversarialRobustness(attacks=["fgsm"], domain="waveform")]  # fmt: skip
    trainer = test_trainer(tmp_path, callbacks, precision="bf16-mixed")
    (metrics,) = trainer.test(trained, datamodule(tiny_corpus.parent))
    for key in ("test_ua_pink_snr0db", "test_ua_fgsm", "test_ua_bim", "test_ua_fgsm_waveform", "test_ua"):
        assert 0.0 <= metrics[key] <= 1.0, key
    run = Path(trainer.log_dir)
    results = json.loads((run / "results.json").read_text())
    assert results["adversarial_robustness"]["domain"] == "features"
    waveform = results["adversarial_robustness_waveform"]
    assert waveform["domain"] == "waveform" and waveform["epsilon_snr_db"] == 30.0
    assert (run / "adversarial_robustness_waveform.csv").is_file()
