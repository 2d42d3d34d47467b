"""Post-processing of per-frame regression predictions: median filtering, centring, scaling and time shift.

The chain of Trigeorgis et al. (2016, §4), which Triantafyllopoulos et al. (2019, §3.2.2) apply to the end-to-end
arousal predictions on RECOLA, in that order:

1. **median filtering** of each recording's predictions (``scipy.ndimage.median_filter``, window in frames);
2. **centring**: add the offset that moves the mean prediction onto the mean gold standard;
3. **scaling**: stretch the predictions about their mean by the ratio of the gold standard's standard deviation to
   theirs;
4. **time shift**: delay the predictions by a number of frames, compensating the annotators' reaction lag.

Every parameter (the window, the offset, the factor, the delay) is chosen on the development (validation) partition
only and then applied unchanged to the test partition; a step is kept only when it raises the development CCC
(as the AVEC baselines do, Valstar et al. 2016), so the chain never makes the development figure worse. The CCC is
torchmetrics' :func:`~torchmetrics.functional.regression.concordance_corrcoef` over all frames of all recordings
pooled, the definition of the task's ``test_ccc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.ndimage import median_filter
from torchmetrics.functional.regression import concordance_corrcoef

PostStep = Literal["median", "centre", "scale", "shift"]
POST_STEPS: tuple[str, ...] = ("median", "centre", "scale", "shift")
"""The steps, in the order they are applied."""
MEDIAN_WINDOWS: tuple[int, ...] = (3, 5, 9, 15, 25, 41, 61)
"""Default candidate median windows in frames (0.12-2.44 s at 25 Hz; our choice: the papers give no grid)."""
MAX_SHIFT_SECONDS = 2.0
"""Default longest delay tried (2 s: our choice; annotation lags on RECOLA are a few seconds at most)."""


def pooled_ccc(preds: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> float:
    """CCC of one target over all frames of all recordings pooled (torchmetrics' definition).

    Args:
        preds: one 1-D prediction array per recording.
        targets: the matching gold-standard arrays (same lengths).

    Returns:
        The concordance correlation coefficient; 0.0 when fewer than two frames or a constant series leave it
        undefined.
    """
    x = np.concatenate([np.asarray(p, dtype=np.float64) for p in preds]) if preds else np.zeros(0)
    y = np.concatenate([np.asarray(t, dtype=np.float64) for t in targets]) if targets else np.zeros(0)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} predicted frames for {y.size} gold-standard frames")
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return 0.0  # a constant series has no covariance with anything: rho_c = 0
    value = float(concordance_corrcoef(torch.from_numpy(x), torch.from_numpy(y)))
    return value if math.isfinite(value) else 0.0


def delay(sequence: np.ndarray, frames: int) -> np.ndarray:
    """``sequence`` delayed by ``frames`` (``out[t] = sequence[t - frames]``), its first value held at the start.

    Args:
        sequence: a 1-D array.
        frames: the delay, ``>= 0``; the output keeps the input's length.
    """
    if frames <= 0 or sequence.size == 0:
        return sequence
    frames = min(frames, sequence.size)
    return np.concatenate([np.full(frames, sequence[0], dtype=sequence.dtype), sequence[: sequence.size - frames]])


@dataclass
class PostProcessing:
    """The fitted chain for one target; the defaults leave predictions unchanged.

    Attributes:
        median_window: the median filter's window in frames (1: off).
        offset: added by centring (``None``: off).
        scale: the scaling factor (``None``: off) ...
        scale_about: ... applied about this value: ``about + scale * (x - about)``.
        shift_frames: the delay in frames (0: off).
        dev_ccc: the development CCC before any step (``raw``) and after each kept or rejected step.
    """

    median_window: int = 1
    offset: float | None = None
    scale: float | None = None
    scale_about: float = 0.0
    shift_frames: int = 0
    dev_ccc: dict[str, float] = field(default_factory=dict)

    def step(self, name: str, sequence: np.ndarray) -> np.ndarray:
        """One step of the chain on one recording's predictions."""
        x = np.asarray(sequence, dtype=np.float64)
        if name == "median":
            return median_filter(x, size=self.median_window, mode="nearest") if self.median_window > 1 else x
        if name == "centre":
            return x + self.offset if self.offset is not None else x
        if name == "scale":
            return self.scale_about + self.scale * (x - self.scale_about) if self.scale is not None else x
        if name == "shift":
            return delay(x, self.shift_frames)
        raise ValueError(f"unknown post-processing step {name!r}; expected one of {POST_STEPS}")

    def apply(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The whole chain on each recording's 1-D predictions (each keeps its length)."""
        out = []
        for sequence in sequences:
            x = np.asarray(sequence, dtype=np.float64)
            for name in POST_STEPS:
                x = self.step(name, x)
            out.append(x)
        return out

    def describe(self) -> dict[str, object]:
        """The parameters as JSON-ready data (``null`` for a step that is off)."""
        return asdict(self)


def fit_postprocessing(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    steps: Sequence[str] = POST_STEPS,
    median_windows: Sequence[int] = MEDIAN_WINDOWS,
    max_shift_frames: int = 50,
) -> PostProcessing:
    """Chooses the chain's parameters on development predictions of one target.

    Steps run in the order of :data:`POST_STEPS`; each is fitted on the output of the steps before it and kept
    only when it raises the pooled development CCC (:func:`pooled_ccc`). The median window and the delay are
    searched over their candidates; the offset and the factor are computed from the development statistics
    (``mean(gold) - mean(pred)``; ``std(gold) / std(pred)`` about the predictions' mean).

    Args:
        preds: development predictions, one 1-D array per recording.
        targets: the development gold standard, same shapes.
        steps: the steps to consider (a subset of :data:`POST_STEPS`).
        median_windows: candidate median windows in frames (odd numbers > 1).
        max_shift_frames: the longest delay tried (``0 .. max_shift_frames`` frames).

    Returns:
        The fitted :class:`PostProcessing`, its ``dev_ccc`` giving the CCC before (``raw``) and after each step.

    Raises:
        ValueError: an unknown step, an even or non-positive window, a negative delay, no frames, or recordings
            whose prediction and gold-standard lengths differ.
    """
    unknown = [s for s in steps if s not in POST_STEPS]
    if unknown:
        raise ValueError(f"unknown post-processing step(s) {unknown}; expected some of {list(POST_STEPS)}")
    bad = [w for w in median_windows if int(w) < 3 or int(w) % 2 == 0]
    if bad:
        raise ValueError(f"median windows must be odd numbers of frames >= 3, got {bad}")
    if max_shift_frames < 0:
        raise ValueError(f"max_shift_frames must be >= 0, got {max_shift_frames}")
    current = [np.asarray(p, dtype=np.float64).reshape(-1) for p in preds]
    gold = [np.asarray(t, dtype=np.float64).reshape(-1) for t in targets]
    if len(current) != len(gold) or any(p.size != t.size for p, t in zip(current, gold, strict=False)):
        raise ValueError("every development recording needs as many predicted frames as gold-standard frames")
    if sum(p.size for p in current) < 2:
        raise ValueError("post-processing needs at least two development frames to fit on")
    chain = PostProcessing()
    best = pooled_ccc(current, gold)
    chain.dev_ccc["raw"] = best
    all_gold = np.concatenate(gold)
    for name in POST_STEPS:
        if name not in steps:
            continue
        candidates: list[PostProcessing] = []
        if name == "median":
            candidates = [PostProcessing(median_window=int(w)) for w in median_windows]
        elif name == "centre":
            candidates = [PostProcessing(offset=float(all_gold.mean() - np.concatenate(current).mean()))]
        elif name == "scale":
            pooled = np.concatenate(current)
            if pooled.std() > 0:
                candidates = [PostProcessing(scale=float(all_gold.std() / pooled.std()),
                                             scale_about=float(pooled.mean()))]  # fmt: skip
        else:
            candidates = [PostProcessing(shift_frames=k) for k in range(1, max_shift_frames + 1)]
        scored = [(pooled_ccc([c.step(name, p) for p in current], gold), c) for c in candidates]
        value, winner = max(scored, key=lambda item: item[0], default=(-math.inf, None))
        chain.dev_ccc[name] = max(value, best)
        if winner is None or value <= best:
            continue
        best = value
        current = [winner.step(name, p) for p in current]
        chain.median_window = winner.median_window if name == "median" else chain.median_window
        chain.offset = winner.offset if name == "centre" else chain.offset
        if name == "scale":
            chain.scale, chain.scale_about = winner.scale, winner.scale_about
        chain.shift_frames = winner.shift_frames if name == "shift" else chain.shift_frames
    return chain


__all__ = ["MAX_SHIFT_SECONDS", "MEDIAN_WINDOWS", "POST_STEPS", "PostProcessing", "PostStep", "delay",
           "fit_postprocessing", "pooled_ccc"]  # fmt: skip
