"""The one definition of the classification metrics: UA, WA, macro-F1 and the confusion matrix.

Every path that reports them — the classification base (train/val/test), the noise and adversarial robustness
callbacks and the cross-corpus evaluation — uses these definitions, so one figure means the same thing
everywhere:

- **UA** (unweighted accuracy): the mean of the per-class recalls over the classes *present in the truth*. A
  class with no test utterance is left out instead of counting as a recall of 0 (or 1). This is the
  literature's UA and scikit-learn's :func:`~sklearn.metrics.balanced_accuracy_score`.
- **WA** (weighted accuracy): the fraction of utterances classified correctly (scikit-learn's
  :func:`~sklearn.metrics.accuracy_score`).
- **F1**: the mean of the per-class F1 scores over the classes present in the truth *or* in the predictions
  (a class predicted but never true scores 0), i.e. scikit-learn's ``f1_score(average="macro")`` with its
  default labels and ``zero_division=0``.

All three are computed from the confusion matrix (rows: truth, columns: prediction), which is summed across
processes under DDP, so a metric is exact on a sharded test set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassConfusionMatrix

METRIC_NAMES = ("ua", "wa", "f1")
"""The classification metrics every result table reports."""


def scores_from_confusion(matrix: Tensor | np.ndarray) -> dict[str, float]:
    """UA, WA and macro-F1 (see the module docstring) of a confusion matrix.

    Args:
        matrix: ``[C, C]`` counts, rows the true class, columns the predicted class.

    Returns:
        ``{"ua", "wa", "f1"}`` as floats; NaN when the matrix holds no utterance.
    """
    counts = matrix if isinstance(matrix, Tensor) else torch.as_tensor(np.asarray(matrix))
    return {k: float(v) for k, v in _scores(counts).items()}


def unweighted_accuracy(matrices: Tensor | np.ndarray) -> Tensor:
    """UA (the mean recall over the classes present in the truth) of one or a batch of confusion matrices.

    Args:
        matrices: ``[..., C, C]`` counts, rows the true class.

    Returns:
        ``[...]`` UA in float64; NaN for a matrix that holds no utterance.
    """
    m = (matrices if isinstance(matrices, Tensor) else torch.as_tensor(np.asarray(matrices))).double()
    tp = m.diagonal(dim1=-2, dim2=-1)
    support = m.sum(dim=-1)
    present = support > 0
    recall = torch.where(present, tp / support.clamp(min=1), torch.zeros_like(tp))
    return recall.sum(dim=-1) / present.sum(dim=-1)


def _scores(matrix: Tensor) -> dict[str, Tensor]:
    m = matrix.double()
    total = m.sum()
    if total == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=m.device)
        return {"ua": nan, "wa": nan, "f1": nan}
    tp = m.diagonal()
    support = m.sum(dim=1)
    predicted = m.sum(dim=0)
    present = support > 0
    ua = unweighted_accuracy(m)
    wa = tp.sum() / total
    scored = present | (predicted > 0)
    denominator = support + predicted  # 2 tp + fp + fn
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    return {"ua": ua, "wa": wa, "f1": f1[scored].mean()}


class _ConfusionScore(MulticlassConfusionMatrix):
    """A score computed from the confusion matrix (its state, summed across processes)."""

    key = ""

    def compute(self) -> Tensor:
        """The score of the accumulated confusion matrix."""
        return _scores(self.confmat)[self.key].float()

    def plot(self, val: Any = None, ax: Any = None) -> Any:
        """Plots the score (a scalar, as torchmetrics plots scalar metrics; not the confusion matrix)."""
        return self._plot(val, ax)


class UnweightedAccuracy(_ConfusionScore):
    """UA: mean recall over the classes present in the truth (balanced accuracy).

    Args:
        num_classes: number of classes; predictions may be class indices or ``[B, C]`` scores.
    """

    key = "ua"


class WeightedAccuracy(_ConfusionScore):
    """WA: the fraction of correct decisions (accuracy).

    Args:
        num_classes: number of classes; predictions may be class indices or ``[B, C]`` scores.
    """

    key = "wa"


class MacroF1(_ConfusionScore):
    """Macro-F1 over the classes present in the truth or in the predictions.

    Args:
        num_classes: number of classes; predictions may be class indices or ``[B, C]`` scores.
    """

    key = "f1"


def classification_metrics(num_classes: int, prefix: str | None = None) -> MetricCollection:
    """UA, WA and macro-F1 as one collection (they share a single confusion-matrix state).

    Args:
        num_classes: number of classes.
        prefix: prefix of the logged names, e.g. ``"test_"``.

    Returns:
        A :class:`~torchmetrics.MetricCollection` with keys ``ua``, ``wa``, ``f1`` (prefixed).
    """
    return MetricCollection(
        {"ua": UnweightedAccuracy(num_classes), "wa": WeightedAccuracy(num_classes), "f1": MacroF1(num_classes)},
        prefix=prefix,
        compute_groups=[["ua", "wa", "f1"]],
    )


def confusion_matrix(num_classes: int) -> MulticlassConfusionMatrix:
    """The confusion-matrix metric (rows: truth, columns: prediction; counts)."""
    return MulticlassConfusionMatrix(num_classes)


# ------------------------------------------------------------------------------------------ speech quality
SPEECH_QUALITY_NAMES = ("pesq", "stoi", "si_sdr")
"""The speech-quality measures of enhancement (Triantafyllopoulos et al. 2019 report PESQ and STOI)."""


def pesq_build() -> str:
    """The PESQ implementation that :func:`speech_quality` uses, by name and version.

    Two PESQ builds (e.g. the ITU-T P.862.2 reference C code and ports of it) give different numbers, so
    every result names the one that produced it.
    """
    from importlib.metadata import version

    return f"pesq {version('pesq')} (PyPI 'pesq', ITU-T P.862.2 wide-band C code), pystoi {version('pystoi')}"


class SpeechQualitySkipError(ValueError):
    """A reference that speech-quality measures cannot score (silent or too short); a counted skip."""


def speech_quality(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> dict[str, float]:
    """PESQ (wide band), STOI and SI-SDR of ``estimate`` against the clean ``reference``.

    PESQ is ITU-T P.862.2 wide band (16 kHz) through the ``pesq`` package (see :func:`pesq_build`), STOI is
    :func:`pystoi.stoi` (Taal et al. 2011), SI-SDR is torchmetrics' scale-invariant SDR (Le Roux et al. 2019).

    Args:
        reference: clean 1-D signal.
        estimate: the noisy or enhanced 1-D signal, same length.
        sample_rate: 16000 (wide-band PESQ is defined at 16 kHz).

    Returns:
        ``{"pesq", "stoi", "si_sdr"}``.

    Raises:
        SpeechQualitySkipError: the reference is silent, too short (PESQ needs 0.25 s) or PESQ finds no utterance.
    """
    try:
        import pesq
        from pystoi import stoi
    except ImportError as err:
        raise ImportError(
            f"speech-quality measures need the packages pesq and pystoi ({err}): "
            "pip install 'ser_lightning[enhancement]'"
        ) from err
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    if sample_rate != 16000:
        raise ValueError(f"wide-band PESQ needs 16 kHz audio, got {sample_rate} Hz")
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim != 1:
        raise ValueError(f"reference and estimate must be 1-D of one length, got {ref.shape} and {est.shape}")
    if ref.size < sample_rate // 4:
        raise SpeechQualitySkipError(f"too short: {ref.size / sample_rate:.3f} s (PESQ needs at least 0.25 s)")
    if not np.any(np.abs(ref) > 0):
        raise SpeechQualitySkipError("silent reference")
    try:
        pesq_value = float(pesq.pesq(sample_rate, ref, est, "wb"))
    except pesq.PesqError as err:
        raise SpeechQualitySkipError(f"PESQ: {err}") from err
    si_sdr = float(scale_invariant_signal_distortion_ratio(torch.from_numpy(est), torch.from_numpy(ref)))
    return {"pesq": pesq_value, "stoi": float(stoi(ref, est, sample_rate, extended=False)), "si_sdr": si_sdr}
