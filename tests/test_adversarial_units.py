"""The adversarial budget has units: training-set std per feature row (features), achieved SNR (waveform)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from ser_lightning.augment.mixing import achieved_snr
from ser_lightning.callbacks import AdversarialRobustness, fgsm
from ser_lightning.callbacks.adversarial import perturbation_snr_db
from ser_lightning.callbacks.test_cache import CachedBatch
from ser_lightning.data import SyntheticDataModule
from ser_lightning.data.dataset import UtteranceDataset
from ser_lightning.models import DenseHighway


def small_model(**kwargs: Any) -> DenseHighway:
    pl.seed_everything(0, verbose=False)
    return DenseHighway(num_classes=4, growth_rate=4, block_layers=2, **kwargs).eval()


def cached_batch() -> CachedBatch:
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(3, 24000, generator=generator) * 0.1
    lengths = torch.tensor([24000, 15000, 9000])
    waveform[1, 15000:] = 0
    waveform[2, 9000:] = 0
    return CachedBatch(waveform, lengths, torch.tensor([0, 2, 3]), ["a", "b", "c"])


def with_statistics(model: DenseHighway) -> torch.Tensor:
    rows = model.frontend.n_bins
    std = torch.linspace(0.5, 4.0, rows, dtype=torch.float64)
    mean = torch.linspace(-10, 0, rows, dtype=torch.float64)
    n = torch.tensor(100.0, dtype=torch.float64)
    model.normalisation.set_statistics(n, mean * n, (std**2 + mean**2) * n)
    return std.float()


def test_feature_epsilon_is_relative_to_each_rows_training_std() -> None:
    model = small_model()
    std = with_statistics(model)
    callback = AdversarialRobustness(epsilon=0.08)
    x, loss_fn, _, mask, epsilon = callback.attack_inputs(None, model, cached_batch())
    assert isinstance(epsilon, torch.Tensor) and epsilon.shape == (1, 1, model.frontend.n_bins, 1)
    assert torch.allclose(epsilon.flatten(), 0.08 * std, rtol=1e-5)
    assert callback.feature_std_source == "the model's stored training statistics"
    labels = torch.tensor([0, 2, 3])
    adv = fgsm(loss_fn, x, labels, epsilon, mask=mask)
    moved = (adv - x).abs()
    # Each valid element moves by exactly eps * std of its row (or not at all where the gradient is zero)...
    bound = (0.08 * std).view(1, 1, -1, 1).expand_as(moved)
    valid = mask.expand_as(moved)
    assert torch.minimum(moved, (moved - bound).abs())[valid].max() < 1e-4
    # ...so in training-standardised features every row moves by 0.08, the same for every front-end.
    normalised = moved / std.view(1, 1, -1, 1)
    assert normalised[valid].max() == pytest.approx(0.08, rel=1e-4)
    assert (adv[~valid] == x[~valid]).all()
    # The former raw-feature budget is still available, stated as such.
    raw = AdversarialRobustness(epsilon=0.08, epsilon_unit="absolute").attack_inputs(None, model, cached_batch())[4]
    assert raw == 0.08
    with pytest.raises(ValueError, match="epsilon_unit"):
        AdversarialRobustness(epsilon_unit="dB")  # type: ignore[arg-type]


def test_without_model_statistics_the_callback_computes_them_on_the_training_split(tiny_corpus: Path) -> None:
    model = small_model()  # feature_norm="none": no stored statistics
    assert not model.normalisation.fitted
    dm = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4)
    dm.setup("test")
    trainer = SimpleNamespace(datamodule=dm, world_size=1, global_rank=0, strategy=None)
    std, source = AdversarialRobustness.training_std(trainer, model)  # type: ignore[arg-type]
    assert "computed by the callback" in source and "training split" in source
    assert dm.split is not None
    dataset = UtteranceDataset(dm.split.parts()["train"], dm.class_names, dm.sample_rate)
    with torch.no_grad():
        rows = []
        for i in range(len(dataset)):
            features, frames = model.frontend(dataset[i]["waveform"][None])
            rows.append(features[0, 0, :, : int(frames[0])].double())
    expected = torch.cat(rows, dim=1).std(dim=1, unbiased=False)
    assert torch.allclose(std.double(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="training statistics"):
        AdversarialRobustness.training_std(None, model)


def test_results_record_epsilon_with_its_unit_and_the_achieved_snr(tmp_path: Path) -> None:
    model = small_model()
    with_statistics(model)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
    batch = cached_batch()
    features = AdversarialRobustness(bim_steps=2)
    _, summary = features.evaluate(trainer, model, [batch])
    assert summary["epsilon"] == 0.08 and summary["unit"] == "training-set std per feature row"
    assert summary["step_size_unit"] == "training-set std per feature row"
    assert summary["feature_std_source"] == "the model's stored training statistics"
    assert summary["feature_std"]["rows"] == model.frontend.n_bins
    assert all(row["epsilon_unit"] == "training-set std per feature row" for row in summary["rows"][1:])
    waveform = AdversarialRobustness(domain="waveform", epsilon_snr_db=20.0, bim_steps=3)
    _, summary = waveform.evaluate(trainer, model, [batch])
    assert summary["unit"] == "perturbation SNR in dB" and summary["epsilon_snr_db"] == 20.0
    fgsm_snr, bim_snr = summary["achieved_snr_db"]["fgsm"], summary["achieved_snr_db"]["bim"]
    # FGSM spends the whole budget on (nearly) every sample: SNR at the target; BIM stays inside the ball.
    assert fgsm_snr["mean"] == pytest.approx(20.0, abs=0.05) and fgsm_snr["min"] >= 20.0 - 1e-3
    assert bim_snr["min"] >= 20.0 - 1e-3
    fgsm_row = next(r for r in summary["rows"] if r["attack"] == "fgsm")
    assert fgsm_row["achieved_snr_db_mean"] == fgsm_snr["mean"] and fgsm_row["achieved_snr_db_min"] == fgsm_snr["min"]
    json.dumps(summary)  # plain numbers only


def test_perturbation_snr_is_achieved_snr_per_utterance() -> None:
    generator = torch.Generator().manual_seed(1)
    clean = torch.randn(2, 1000, generator=generator)
    noisy = clean + 0.1 * torch.randn(2, 1000, generator=generator)
    mask = torch.ones(2, 1000, dtype=torch.bool)
    mask[1, 600:] = False
    snr = perturbation_snr_db(clean, noisy, mask)
    assert snr[0] == pytest.approx(achieved_snr(clean[0].numpy(), noisy[0].numpy()), abs=1e-6)
    assert snr[1] == pytest.approx(achieved_snr(clean[1, :600].numpy(), noisy[1, :600].numpy()), abs=1e-6)
