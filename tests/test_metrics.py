"""The one definition of UA, WA and macro-F1, checked against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from ser_lightning.metrics import (
    MacroF1,
    UnweightedAccuracy,
    WeightedAccuracy,
    classification_metrics,
    scores_from_confusion,
    unweighted_accuracy,
)

CASES = [
    # the issue's example: class 3 has no test support but is predicted
    ([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 3], 4),
    # class 2 is in the truth but never predicted
    ([0, 1, 2, 2, 1, 0], [0, 1, 1, 0, 1, 0], 3),
    # a class neither in the truth nor predicted
    ([0, 1, 0, 1], [0, 1, 1, 1], 5),
    # everything wrong
    ([0, 0, 1, 1], [1, 1, 0, 0], 2),
]


def _sklearn(truth: list[int], pred: list[int]) -> dict[str, float]:
    return {
        "ua": balanced_accuracy_score(truth, pred),
        "wa": accuracy_score(truth, pred),
        "f1": f1_score(truth, pred, average="macro", zero_division=0),
    }


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize(("truth", "pred", "num_classes"), CASES)
def test_scores_equal_scikit_learn(truth: list[int], pred: list[int], num_classes: int) -> None:
    expected = _sklearn(truth, pred)
    matrix = confusion_matrix(truth, pred, labels=list(range(num_classes)))
    assert scores_from_confusion(matrix) == pytest.approx(expected)
    metrics = classification_metrics(num_classes, prefix="test_")
    probs = torch.nn.functional.one_hot(torch.tensor(pred), num_classes).float()
    for half in (slice(0, len(truth) // 2), slice(len(truth) // 2, None)):  # accumulated over batches
        metrics.update(probs[half], torch.tensor(truth)[half])
    values = {k.removeprefix("test_"): float(v) for k, v in metrics.compute().items()}
    assert values == pytest.approx(expected)
    for cls, key in ((UnweightedAccuracy, "ua"), (WeightedAccuracy, "wa"), (MacroF1, "f1")):
        single = cls(num_classes)
        single.update(torch.tensor(pred), torch.tensor(truth))  # class indices work too
        assert float(single.compute()) == pytest.approx(expected[key])


def test_issue_example_gives_the_literature_ua() -> None:
    matrix = confusion_matrix([0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 3], labels=[0, 1, 2, 3])
    assert scores_from_confusion(matrix)["ua"] == pytest.approx(2.5 / 3)  # not 0.625


def test_random_predictions_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        truth, pred = rng.integers(0, 6, n).tolist(), rng.integers(0, 6, n).tolist()
        matrix = confusion_matrix(truth, pred, labels=list(range(6)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns about classes only one side has
            assert scores_from_confusion(matrix) == pytest.approx(_sklearn(truth, pred))


def test_empty_matrix_is_nan() -> None:
    values = scores_from_confusion(np.zeros((3, 3), dtype=int))
    assert all(np.isnan(v) for v in values.values())



def test_a_score_plots_as_a_scalar() -> None:
    import matplotlib

    matplotlib.use("Agg")
    metric = UnweightedAccuracy(3)
    metric.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]))
    figure, axis = metric.plot()
    assert figure is not None and axis.get_lines()


def test_batched_ua_equals_the_single_matrix_score() -> None:
    rng = np.random.default_rng(3)
    matrices = rng.integers(0, 5, size=(6, 4, 4))
    matrices[2, 1] = 0  # a class absent from the truth: not averaged
    matrices[5] = 0  # no utterance: NaN
    batched = unweighted_accuracy(torch.as_tensor(matrices))
    assert batched.shape == (6,)
    for i in range(5):
        assert float(batched[i]) == pytest.approx(scores_from_confusion(matrices[i])["ua"])
    assert torch.isnan(batched[5])
