"""Callbacks: prediction output and (later) robustness evaluation."""

from ser_lightning.callbacks.predictions import PredictionWriter

__all__ = ["PredictionWriter"]
