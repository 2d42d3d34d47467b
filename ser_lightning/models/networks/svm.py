"""A fitted scikit-learn classifier as a pure ``nn.Module``: feature vectors in, class posteriors out."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class SklearnClassifier(nn.Module):
    """Holds a fitted scikit-learn classifier (e.g. ``StandardScaler`` + RBF ``SVC``) behind ``forward``.

    The posteriors are the softmax of the classifier's one-vs-rest decision values (``decision_function``): scores
    whose argmax is the classifier's decision, not calibrated probabilities. A class the classifier never saw in
    training gets probability 0. There are no parameters: the classifier travels in the task's checkpoint.

    Args:
        num_classes: number of classes of the output.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.pipeline: Any = None
        """The fitted scikit-learn estimator (``None`` until fitted)."""

    @property
    def fitted(self) -> bool:
        """Whether a fitted estimator is held."""
        return self.pipeline is not None

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``[B, num_classes]`` one-vs-rest decision values (``-inf`` for a class unseen in training)."""
        if self.pipeline is None:
            raise RuntimeError(
                "the classifier is not fitted yet: run `fit` (it fits at the end of its single training epoch) or "
                "load the checkpoint of a fitted model"
            )
        raw = np.asarray(self.pipeline.decision_function(features), dtype=np.float64)
        classes = np.asarray(self.pipeline.classes_, dtype=np.int64)
        if raw.ndim == 1:  # two classes seen: the decision value favours classes_[1]
            raw = np.stack([-raw, raw], axis=1)
        out = np.full((features.shape[0], self.num_classes), -np.inf)
        out[:, classes] = raw
        return out

    def forward(self, features: Tensor) -> Tensor:
        """Class posteriors ``[B, num_classes]`` (on the features' device) of ``[B, D]`` feature vectors."""
        if features.shape[0] == 0:
            return torch.zeros(0, self.num_classes, device=features.device)
        scores = torch.from_numpy(self.scores(features.detach().float().cpu().numpy()))
        return torch.softmax(scores, dim=-1).float().to(features.device)
