"""Callbacks: prediction output and robustness evaluation (noise, adversarial attacks, cross-corpus).

``attacks`` holds the pure FGSM/BIM functions, ``test_cache`` the clean test batches shared by the robustness
callbacks (and their base :class:`TestSetRobustness`), ``noise`` (``noise_regression`` for regressors),
``adversarial`` and ``cross_corpus`` one evaluation each, ``predictions`` the ``predict`` writer.
"""

from ser_lightning.callbacks.adversarial import AdversarialRobustness
from ser_lightning.callbacks.attacks import bim, fgsm
from ser_lightning.callbacks.cross_corpus import CrossCorpusEvaluation
from ser_lightning.callbacks.noise import NoiseRobustness
from ser_lightning.callbacks.noise_regression import RegressionNoiseRobustness
from ser_lightning.callbacks.predictions import PredictionWriter
from ser_lightning.callbacks.test_cache import TestSetRobustness

__all__ = [
    "AdversarialRobustness",
    "CrossCorpusEvaluation",
    "NoiseRobustness",
    "PredictionWriter",
    "RegressionNoiseRobustness",
    "TestSetRobustness",
    "bim",
    "fgsm",
]
