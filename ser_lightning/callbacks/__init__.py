"""Callbacks: prediction output and robustness evaluation (noise, adversarial attacks, cross-corpus)."""

from ser_lightning.callbacks.cross_corpus import CrossCorpusEvaluation
from ser_lightning.callbacks.predictions import PredictionWriter
from ser_lightning.callbacks.robustness import AdversarialRobustness, NoiseRobustness, TestSetRobustness, bim, fgsm

__all__ = [
    "AdversarialRobustness",
    "CrossCorpusEvaluation",
    "NoiseRobustness",
    "PredictionWriter",
    "TestSetRobustness",
    "bim",
    "fgsm",
]
