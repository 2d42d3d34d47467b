"""CrossCorpusEvaluation: label harmonisation, the 30/70 draw, metrics, files and the CLI's --evaluation list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score, f1_score

from ser_lightning.audio import read_audio
from ser_lightning.callbacks.cross_corpus import CrossCorpusEvaluation
from ser_lightning.data import CrossCorpusDataModule, SyntheticDataModule
from ser_lightning.metrics import scores_from_confusion
from ser_lightning.models import SERClassificationTask

from .test_cli import common, run_cli

CLASSES = ["neutral", "happy", "angry", "sad"]


def tiny(cache: Path, **kwargs: object) -> SyntheticDataModule:
    return SyntheticDataModule(root=str(cache), size="tiny", **kwargs)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_scores_of_the_confusion_leave_out_classes_the_corpus_lacks() -> None:
    truth = np.array([0, 0, 0, 1, 1, 3, 3, 3])
    pred = np.array([0, 2, 0, 1, 2, 3, 0, 3])  # class 2 is predicted but never true
    matrix = np.zeros((4, 4), dtype=int)
    np.add.at(matrix, (truth, pred), 1)
    values = scores_from_confusion(matrix)  # what CrossCorpusEvaluation reports
    assert values["ua"] == pytest.approx(balanced_accuracy_score(truth, pred))  # the absent class 2 is left out
    assert values["wa"] == pytest.approx(np.mean(truth == pred))
    # F1 (ser_lightning.metrics): over the classes true or predicted, so the predicted-only class 2 scores 0.
    assert values["f1"] == pytest.approx(f1_score(truth, pred, average="macro", zero_division=0))
    assert np.isnan(scores_from_confusion(np.zeros((2, 2)))["ua"])


def test_protocol_test_part_is_the_cross_corpus_datamodules_test_split(_private_cache: Path) -> None:
    emotions = [*CLASSES, "calm"]
    for seed in (0, 3):
        callback = CrossCorpusEvaluation(tiny(_private_cache, voice_set="de", emotions=emotions), seed=seed)
        kept = callback.records(CLASSES)
        source = tiny(_private_cache, voice_set="en")
        target = tiny(_private_cache, voice_set="de", emotions=emotions)
        reference = CrossCorpusDataModule(source=source, target=target, seed=seed)
        reference.setup("test")
        assert sorted(r.path for r in kept) == sorted(r.path for r in reference.split.test)
        test_paths = {r.path for r in reference.split.test}
        calm = [r for r in target.records() if r.label == "calm"]
        tested_speakers = {r.speaker for r in kept}
        assert callback.dropped == {"calm": sum(1 for r in calm if r.speaker in tested_speakers)} != {"calm": 0}
        assert test_paths and {r.speaker for r in kept} != {r.speaker for r in target.records()}
    whole = CrossCorpusEvaluation(tiny(_private_cache, voice_set="de"), part="all")
    assert len(whole.records(CLASSES)) == len(tiny(_private_cache, voice_set="de").records())
    own = CrossCorpusEvaluation(tiny(_private_cache, voice_set="de"), part="test")
    assert {r.speaker for r in own.records(CLASSES)} == set(own.data.describe()["test_speakers"])


def test_labels_are_harmonised_into_the_model_classes(_private_cache: Path) -> None:
    target = tiny(_private_cache, voice_set="de")
    # A model trained with other spellings: 'anger'/'joy' are the synonyms of 'angry'/'happy'.
    kept = CrossCorpusEvaluation(target, part="all").records(["neutral", "joy", "anger"])
    assert {r.extra["model_label"] for r in kept} == {"neutral", "joy", "anger"}
    assert {r.label for r in kept if r.extra["model_label"] == "joy"} == {"happy"}
    callback = CrossCorpusEvaluation(target, part="all", label_map={"sad": "neutral"})
    kept = callback.records(["neutral", "angry"])
    assert {r.label for r in kept if r.extra["model_label"] == "neutral"} == {"neutral", "sad"}
    assert set(callback.dropped) == {"happy"}
    with pytest.raises(ValueError, match="part must be"):
        CrossCorpusEvaluation(target, part="train")  # type: ignore[arg-type]


def test_the_suite_composes_through_the_cli_and_matches_a_direct_evaluation(
    tmp_path: Path, _private_cache: Path
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"evaluation": [{
        "class_path": "ser_lightning.callbacks.CrossCorpusEvaluation",
        "init_args": {"name": "Synthetic DE", "data": {"class_path": "ser_lightning.data.SyntheticDataModule",
                                                       "init_args": {"size": "tiny", "voice_set": "de"}}},
    }]}))  # fmt: skip
    args = ["fit", *common(tmp_path, _private_cache), "--config", str(suite), "--trainer.max_epochs", "1"]
    assert run_cli(args) == 0
    run = next((tmp_path / "runs").rglob("results.json")).parent
    results = json.loads((run / "results.json").read_text())
    table = results["cross_corpus"]["synthetic_de"]
    assert "test_ua" in results  # the model's own clean test is still there
    assert table["part"] == "protocol_test" and table["num_utterances"] > 0
    assert (run / "cross_corpus_synthetic_de.json").exists()
    assert (run / "cross_corpus_synthetic_de_confusion.png").exists()
    checkpoints = list((run / "checkpoints").glob("best-*.ckpt"))
    assert checkpoints, "the suite must not replace the trainer's callbacks (ModelCheckpoint)"

    # The same numbers by hand: the best checkpoint on every selected utterance.
    model = SERClassificationTask.load_from_checkpoint(checkpoints[0], map_location="cpu").eval()
    records = CrossCorpusEvaluation(tiny(_private_cache, voice_set="de")).records(model.class_names)
    matrix = np.zeros((4, 4), dtype=int)
    with torch.no_grad():
        for record in records:
            audio = torch.from_numpy(read_audio(record.path, 16000))[None]
            predicted = int(model(audio).argmax())
            matrix[model.class_names.index(record.extra["model_label"]), predicted] += 1
    assert np.array_equal(matrix, np.array(table["confusion_matrix"]))
    assert table["ua"] == pytest.approx(scores_from_confusion(matrix)["ua"])
