"""Every callback reports the one UA of ser_lightning.metrics: balanced accuracy, absent classes left out.

A model whose decision is fixed by each utterance's length (which neither noise nor a zero-gradient attack
changes) has a known confusion matrix with a class that is never true (``calm``: the corpora lack it) but
predicted, and a class that is true but never predicted. The noise, adversarial and cross-corpus callbacks must
all report scikit-learn's ``balanced_accuracy_score`` for it — not the macro recall over every class the model
knows (which counts the absent class as a recall of 0).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score
from torch import Tensor, nn

from ser_lightning.callbacks import AdversarialRobustness, CrossCorpusEvaluation, NoiseRobustness
from ser_lightning.data import SyntheticDataModule

PREDICTED = [0, 1, 2, 4]
"""The decision is one of these classes, chosen by a hash of the utterance's length: never class 3, sometimes 4."""


class LengthClassifier(pl.LightningModule):
    """Posteriors that depend only on each utterance's length (and, with zero gradient, on the waveform)."""

    def __init__(self, class_names: list[str]) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.num_classes = len(class_names)
        self.anchor = nn.Parameter(torch.zeros(()))  # a parameter, so the module has a device

    @staticmethod
    def decide(lengths: Tensor) -> Tensor:
        choice = [zlib.crc32(str(int(n)).encode()) % len(PREDICTED) for n in lengths.tolist()]
        return torch.tensor([PREDICTED[c] for c in choice], dtype=torch.long)

    def forward(self, waveform: Tensor, lengths: Tensor) -> Tensor:
        onehot = nn.functional.one_hot(self.decide(lengths), self.num_classes).to(waveform.device).float()
        posteriors = 0.9 * onehot + 0.1 / self.num_classes
        return posteriors + 0.0 * waveform.sum(dim=1, keepdim=True) + 0.0 * self.anchor

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self(batch["waveform"], batch["length"])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_noise_adversarial_and_cross_corpus_report_balanced_accuracy(tiny_corpus: Path, tmp_path: Path) -> None:
    test_data = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny")
    class_names = [*test_data.class_names, "calm"]
    assert len(class_names) == 5 and "calm" not in test_data.class_names
    model = LengthClassifier(class_names)
    callbacks = [
        NoiseRobustness(categories=["white"], snr_db=[0.0]),
        AdversarialRobustness(attacks=["fgsm", "bim"], domain="waveform", bim_steps=2),
        CrossCorpusEvaluation(SyntheticDataModule(size="tiny", voice_set="de"), name="de", part="all"),
    ]
    trainer = pl.Trainer(logger=CSVLogger(str(tmp_path)), callbacks=callbacks, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path))  # fmt: skip
    (metrics,) = trainer.test(model, test_data)
    run = Path(trainer.log_dir)

    # The test split, decided by hand.
    test_data.setup("test")
    truth, pred = [], []
    for batch in test_data.test_dataloader():
        truth += batch["label"].tolist()
        pred += LengthClassifier.decide(batch["length"]).tolist()
    assert 4 in pred and 4 not in truth and 3 in truth and 3 not in pred  # the case the two old definitions split on
    expected = {"ua": balanced_accuracy_score(truth, pred), "wa": accuracy_score(truth, pred),
                "f1": f1_score(truth, pred, average="macro", zero_division=0)}  # fmt: skip
    every_class = recall_score(truth, pred, labels=list(range(5)), average="macro", zero_division=0)
    assert expected["ua"] > every_class + 0.05  # the old torchmetrics macro recall would have differed

    for key in ("test_ua_white_snr0db", "test_ua_noise_snr0db", "test_ua_fgsm_waveform", "test_ua_bim_waveform"):
        assert metrics[key] == pytest.approx(expected["ua"], abs=1e-6), key
    for name in ("noise_robustness", "adversarial_robustness_waveform"):
        for row in json.loads((run / f"{name}.json").read_text())["rows"]:
            assert {k: row[k] for k in expected} == pytest.approx(expected, abs=1e-6), (name, row)

    # The cross-corpus table: its UA is the balanced accuracy of its own confusion matrix.
    table = json.loads((run / "cross_corpus_de.json").read_text())
    matrix = np.array(table["confusion_matrix"])
    assert matrix.shape == (5, 5) and not matrix[4].any() and matrix[:, 4].any() and not matrix[:, 3].any()
    cross_truth = np.repeat(np.arange(5), matrix.sum(axis=1))
    cross_pred = np.concatenate([np.repeat(np.arange(5), row) for row in matrix])
    assert table["ua"] == pytest.approx(balanced_accuracy_score(cross_truth, cross_pred), abs=1e-9)
    assert table["wa"] == pytest.approx(accuracy_score(cross_truth, cross_pred), abs=1e-9)
    assert table["f1"] == pytest.approx(f1_score(cross_truth, cross_pred, average="macro", zero_division=0), abs=1e-9)
    assert metrics["test_ua_cross_de"] == pytest.approx(table["ua"], abs=1e-6)
