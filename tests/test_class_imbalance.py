"""Class imbalance on the classification base: class-weighted cross-entropy and the class-balanced sampler."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

from ser_lightning.cli import main
from ser_lightning.data import ManifestDataModule
from ser_lightning.data.sampling import ClassBalancedSampler, EpochSampler, decode_key
from ser_lightning.models import DenseHighway
from ser_lightning.models.classification import inverse_frequency_weights

from .conftest import CONFIGS


class Labels(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_inverse_frequency_weights() -> None:
    weights = inverse_frequency_weights([30, 10], ["neutral", "angry"])
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])
    assert float((weights * torch.tensor([30.0, 10.0])).sum()) == pytest.approx(40.0)  # each class weighs n / C
    with pytest.raises(ValueError, match="no utterance of \\['angry'\\]"):
        inverse_frequency_weights([30, 0], ["neutral", "angry"])


def test_class_weights_change_the_loss_as_expected() -> None:
    model = DenseHighway(growth_rate=4, block_layers=2, class_weights="inverse_frequency")
    assert DenseHighway(growth_rate=4, block_layers=2).criterion.weight is None
    weights = torch.tensor([0.5, 1.0, 2.0, 4.0])
    model.criterion.weight.copy_(weights)
    torch.manual_seed(0)
    logits, target = torch.randn(16, 4), torch.tensor([0, 1, 2, 3] * 4)
    per_item = nn.functional.cross_entropy(logits, target, reduction="none")
    expected = (weights[target] * per_item).sum() / weights[target].sum()
    assert torch.allclose(model.criterion(logits, target), expected)
    assert not torch.allclose(model.criterion(logits, target), per_item.mean())
    # mixup's soft targets are weighted per class too
    soft = nn.functional.one_hot(target, 4).float()
    assert torch.allclose(model.criterion(logits, soft), (weights[target] * per_item).mean())
    # the weight buffer is in the state dict, so a checkpoint of a weighted model loads into a weighted model
    assert "criterion.weight" in model.state_dict()
    with pytest.raises(ValueError, match="class_weights"):
        DenseHighway(class_weights="balanced")  # type: ignore[arg-type]


def test_balanced_sampler_draws_classes_evenly_and_exactly_again() -> None:
    labels = [0] * 90 + [1] * 10
    dataset = Labels(len(labels))
    sampler = ClassBalancedSampler(dataset, labels, seed=3)
    drawn: list[int] = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        assert len(keys) == len(dataset)
        assert all(decode_key(k, len(dataset))[0] == epoch for k in keys)
        drawn += [decode_key(k, len(dataset))[1] for k in keys]
    minority = sum(labels[i] for i in drawn) / len(drawn)
    assert minority == pytest.approx(0.5, abs=0.05)  # 2000 draws: std 0.011
    shuffled = EpochSampler(dataset, seed=3)
    shuffled.set_epoch(0)
    assert sum(labels[decode_key(k, 100)[1]] for k in shuffled) == 10  # a plain epoch keeps the imbalance
    again = ClassBalancedSampler(dataset, labels, seed=3)
    again.set_epoch(5)
    epoch5 = list(again)
    sampler.set_epoch(5)
    assert list(sampler) == epoch5  # a function of (seed, epoch): a resumed run draws the same
    sampler.set_epoch(6)
    assert [decode_key(k, 100)[1] for k in sampler] != [decode_key(k, 100)[1] for k in epoch5]
    ranks = [ClassBalancedSampler(dataset, labels, seed=3, num_replicas=2, rank=r) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(5)
    shares = [list(r) for r in ranks]
    assert len(shares[0]) == len(shares[1]) == 50
    assert sorted(shares[0] + shares[1]) == sorted(epoch5)  # the ranks share out one draw


@pytest.fixture(scope="module")
def imbalanced(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus with one angry sentence of three: angry is a third as frequent as each other class."""
    with (tiny_corpus / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] != "angry" or r["sentence"] == "s01"]
    for row in rows:
        row["path"] = str(tiny_corpus / row["path"])
    out = tmp_path_factory.mktemp("imbalanced") / "manifest.csv"
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_balanced_sampler_is_only_on_the_training_split(imbalanced: Path) -> None:
    data = ManifestDataModule(manifest=str(imbalanced), batch_size=8)
    data.setup("fit")
    assert type(data.train_dataloader().sampler) is EpochSampler
    data.set_training_sampler(class_balanced=True)
    assert isinstance(data.train_dataloader().sampler, ClassBalancedSampler)
    for loader in (data.val_dataloader(), data.test_dataloader()):
        assert not isinstance(loader.sampler, ClassBalancedSampler)
        assert sorted(loader.sampler) == list(range(len(loader.dataset)))  # every utterance once


def test_cli_fit_weights_and_balances_and_stamps_results(imbalanced: Path, tmp_path: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "dense_highway.yaml"),
        "--data", "ser_lightning.data.ManifestDataModule", "--data.init_args.manifest", str(imbalanced),
        "--data.init_args.batch_size", "8",
        "--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2",
        "--model.init_args.class_weights", "inverse_frequency", "--model.init_args.balanced_sampler", "true",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    results = json.loads(next((tmp_path / "runs").rglob("results.json")).read_text())
    counts = results["class_counts"]["train"]
    names = results["class_names"]
    n = sum(counts.values())
    expected = {name: n / (len(names) * counts[name]) for name in names}
    assert counts["angry"] * 3 == counts["neutral"]
    assert results["class_weights"]["mode"] == "inverse_frequency"
    assert results["class_weights"]["weights"] == pytest.approx(expected)
    assert results["balanced_sampler"] is True
    sampler = cli.datamodule.train_dataloader().sampler  # the model asked its DataModule for it
    assert isinstance(sampler, ClassBalancedSampler)
    drawn = Counter(cli.datamodule.datasets["train"].records[decode_key(k, n)[1]].label for k in sampler)
    assert drawn["angry"] > counts["angry"]  # the minority class is drawn more often than it occurs
