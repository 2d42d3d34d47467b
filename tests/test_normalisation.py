"""Feature normalisation: training statistics from the training split only, checkpoints, padding, DDP sums."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ser_lightning.data import SyntheticDataModule
from ser_lightning.data.dataset import UtteranceDataset
from ser_lightning.models import DenseHighway, SERClassificationTask
from ser_lightning.models.normalisation import (
    FeatureNormalisation,
    feature_moments,
    moments_to_stats,
    training_feature_moments,
)


class Loud:
    """A training "augmentation" that makes the audio 1000 times louder (it must not reach the statistics)."""

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return audio * 1000.0

    def __repr__(self) -> str:
        return "Loud()"


class _Huge(Dataset):
    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.inner[index])
        item["waveform"] = torch.full_like(item["waveform"], 0.9)  # constant, loud: nothing like speech
        return item


class PoisonedDataModule(SyntheticDataModule):
    """Validation and test utterances replaced by constant loud audio; the training audio augmented x1000."""

    def make_dataset(self, split: str, records: list[Any]) -> Dataset:
        dataset = super().make_dataset(split, records)
        return _Huge(dataset) if split in ("val", "test") else dataset


def poisoned(root: Path) -> PoisonedDataModule:
    return PoisonedDataModule(root=str(root), size="tiny", batch_size=8, segment_seconds=2.575, augmentation=Loud())


def small_model(**kwargs: Any) -> DenseHighway:
    return DenseHighway(num_classes=4, growth_rate=4, block_layers=2, **kwargs)


def fit_briefly(model: pl.LightningModule, dm: pl.LightningDataModule, root: Path, **kwargs: Any) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        limit_val_batches=1,
        **kwargs,
    )
    trainer.fit(model, dm)
    return trainer


def by_hand(model: DenseHighway, dm: SyntheticDataModule) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Mean/std per row over every valid frame of the training split's clean, whole utterances."""
    assert dm.split is not None
    dataset = UtteranceDataset(dm.split.parts()["train"], dm.class_names, dm.sample_rate)
    rows = []
    with torch.no_grad():
        for i in range(len(dataset)):
            features, frames = model.frontend(dataset[i]["waveform"][None])
            rows.append(features[0, 0, :, : int(frames[0])].double())
    stacked = torch.cat(rows, dim=1)
    return stacked.mean(dim=1), stacked.std(dim=1, unbiased=False), stacked.shape[1]


@pytest.fixture(scope="module")
def fitted(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    root = tmp_path_factory.mktemp("fitted")
    pl.seed_everything(0, verbose=False)
    dm = poisoned(tiny_corpus.parent)
    model = small_model(feature_norm="train")
    trainer = fit_briefly(model, dm, root)
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return model, dm, path


def test_training_statistics_come_from_the_clean_training_split_only(fitted: tuple[Any, Any, Path]) -> None:
    model, dm, _ = fitted
    assert model.normalisation.fitted
    mean, std, count = by_hand(model, dm)
    assert int(model.normalisation.count) == count
    assert torch.allclose(model.normalisation.mean.double(), mean, atol=1e-4, rtol=1e-5)
    assert torch.allclose(model.normalisation.std.double(), std, atol=1e-4, rtol=1e-4)
    # The x1000 augmentation would lift every log-power row by log(1e6) = 13.8; the loud constant val/test audio
    # would add frames far from speech: neither is in the statistics.
    assert (model.normalisation.mean.double() - mean).abs().max() < 1e-3


def test_statistics_survive_a_checkpoint_round_trip(
    fitted: tuple[Any, Any, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, dm, path = fitted
    for loaded in (DenseHighway.load_from_checkpoint(path), DenseHighway.load_from_checkpoint(path, strict=True)):
        assert loaded.hparams["feature_norm"] == "train"
        assert torch.equal(loaded.normalisation.mean, model.normalisation.mean)
        assert torch.equal(loaded.normalisation.std, model.normalisation.std)
        assert loaded.normalisation.count == model.normalisation.count
    # test / predict of the loaded model use the stored statistics: recomputing them would fail here.
    monkeypatch.setattr(SERClassificationTask, "fit_feature_statistics", lambda self: pytest.fail("recomputed"))
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), limit_test_batches=1, limit_predict_batches=1)  # fmt: skip
    loaded = DenseHighway.load_from_checkpoint(path).eval()
    trainer.test(loaded, dm)
    (batch,) = trainer.predict(loaded, dm)
    assert batch["probs"].shape[1] == 4
    with torch.no_grad():
        waveform = torch.randn(2, 16000) * 0.1
        assert torch.allclose(loaded(waveform), model.eval()(waveform), atol=1e-6)


def test_old_checkpoints_without_statistics_still_load(fitted: tuple[Any, Any, Path], tmp_path: Path) -> None:
    _, _, path = fitted
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    for key in [k for k in checkpoint["state_dict"] if k.startswith("normalisation.")]:
        del checkpoint["state_dict"][key]
    checkpoint["hyper_parameters"].pop("feature_norm")
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    loaded = DenseHighway.load_from_checkpoint(old)
    assert loaded.hparams["feature_norm"] == "none" and not loaded.normalisation.fitted


def test_train_mode_without_statistics_refuses_to_run() -> None:
    model = small_model(feature_norm="train").eval()
    with pytest.raises(RuntimeError, match="no training statistics"):
        model(torch.randn(1, 16000))
    with pytest.raises(ValueError, match="feature_norm"):
        small_model(feature_norm="global")  # type: ignore[arg-type]


def test_utterance_normalisation_ignores_padded_frames() -> None:
    norm = FeatureNormalisation("utterance")
    features = torch.randn(2, 1, 5, 30) * 3 + 2
    frames = torch.tensor([30, 12])
    garbage = features.clone()
    garbage[1, :, :, 12:] = 1e6  # whatever the padding holds, the statistics do not see it
    mean, std = norm.statistics(garbage, frames)  # type: ignore[misc]
    valid = features[1, 0, :, :12]
    assert torch.allclose(mean[1, 0, :, 0], valid.mean(dim=1), atol=1e-5)
    assert torch.allclose(std[1, 0, :, 0], valid.std(dim=1, unbiased=False), atol=1e-5)
    # In a model: an utterance classified alone or next to a longer one gets the same posteriors.
    pl.seed_everything(0, verbose=False)
    model = small_model(feature_norm="utterance", segment_frames=64).eval()
    short = torch.randn(1, 9000) * 0.1
    batch = torch.zeros(2, 24000)
    batch[0] = torch.randn(24000) * 0.1
    batch[1, :9000] = short[0]
    with torch.no_grad():
        alone = model(short)
        together = model(batch, torch.tensor([24000, 9000]))
    assert torch.allclose(alone[0], together[1], atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "utterance"])
def test_padding_becomes_the_normalised_silence_value(mode: str) -> None:
    pl.seed_everything(0, verbose=False)
    model = small_model(feature_norm=mode, segment_frames=256).eval()
    if mode == "train":
        rows = model.frontend.n_bins
        model.normalisation.set_statistics(
            torch.tensor(10.0, dtype=torch.float64),
            torch.linspace(-60, 20, rows, dtype=torch.float64),
            torch.linspace(400, 900, rows, dtype=torch.float64),
        )
    seen: list[torch.Tensor] = []
    model.network.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].detach()))
    waveform = torch.zeros(1, 16000)
    waveform[0, :8000] = torch.randn(8000) * 0.1
    with torch.no_grad():
        model(waveform[:, :8000])  # padded to 256 frames inside the model
        model(waveform)  # real silence after the speech
    features, frames = model.frontend(waveform[:, :8000])
    mean, std = model.normalisation.statistics(features, frames)  # type: ignore[misc]
    silence = (model.frontend.pad_value - mean[0, 0, :, 0]) / std[0, 0, :, 0]
    n = int(frames[0])
    padded, real = seen[0][0, 0], seen[1][0, 0]
    assert torch.allclose(padded[:, n:], silence[:, None].expand(-1, 256 - n), atol=1e-5)
    if mode == "train":  # the same statistics for both inputs: padding equals the features of real silence
        real_silence = real[:, n + 3 : 256]  # frames wholly inside the zeros
        assert torch.allclose(real_silence, silence[:, None].expand_as(real_silence), atol=1e-5)
        assert torch.allclose(padded[:, :n], real[:, :n], atol=1e-5)


def test_ddp_shards_sum_to_the_single_process_statistics(tiny_corpus: Path) -> None:
    dm = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4, eval_batch_size=3)
    dm.setup("fit")
    frontend = small_model().frontend

    def trainer(world: int, rank: int) -> SimpleNamespace:
        strategy = SimpleNamespace(reduce=lambda t, reduce_op: t)  # each shard's own sums, added below
        return SimpleNamespace(datamodule=dm, world_size=world, global_rank=rank, strategy=strategy)

    (single, description) = training_feature_moments(frontend, trainer(1, 0), torch.device("cpu"))
    assert "training split" in description and "unaugmented" in description
    shards = [training_feature_moments(frontend, trainer(2, r), torch.device("cpu"))[0] for r in (0, 1)]
    for whole, part0, part1 in zip(single, *shards, strict=True):
        assert torch.allclose(whole, part0 + part1, rtol=1e-12)
    assert 0 < float(shards[0][0]) < float(single[0])
    mean, std = moments_to_stats(*single, eps=1e-5)
    count, total, _ = feature_moments(torch.ones(1, 1, 3, 4), torch.tensor([2]))
    assert float(count) == 2 and torch.equal(total, torch.full((3,), 2.0, dtype=torch.float64))
    assert mean.shape == std.shape == (frontend.n_bins,)
