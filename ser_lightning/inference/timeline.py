"""Emotion over time: a long recording cut into sliding windows, each classified, as a CSV and a plot.

Each window (``window_s`` long, every ``hop_s``) goes through the model as an utterance of its own, so a
classifier gives the same posteriors it would give that stretch of audio as a file; a regressor's per-frame
values are averaged over the window. The last window is aligned to the recording's end (no audio is left out);
a recording shorter than a window is one window. A window of digital silence (or shorter than the model's
``min_seconds``) is not classified: its row has ``status`` ``error`` and empty values.

CSV schema (``timeline.csv``): ``start_s, end_s, predicted, p_<class>..., status`` for a classifier,
``start_s, end_s, <target>..., status`` for a regressor. The plot (``timeline.png``) draws each class's
posterior (or each target) against the window centres.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ser_lightning.audio import check_waveform, read_audio
from ser_lightning.errors import AudioReadError
from ser_lightning.inference.api import EmotionRecognizer, to_mono
from ser_lightning.models.classification import segment_starts

log = logging.getLogger(__name__)


@dataclass
class Timeline:
    """Window-by-window model outputs of one recording.

    Args:
        starts: ``[W]`` window starts in seconds.
        ends: ``[W]`` window ends in seconds.
        values: ``[W, C]`` posteriors (classifier) or window-mean targets (regressor); NaN where not classified.
        names: the class or target names (columns of ``values``).
        task: ``classification`` or ``regression``.
        source: the file (or ``array``).
    """

    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray
    names: list[str]
    task: str
    source: str = ""

    @property
    def ok(self) -> np.ndarray:
        """``[W]`` whether each window was classified."""
        return np.isfinite(self.values).all(axis=1)

    @property
    def predicted(self) -> list[str]:
        """The most probable class of each window (empty where not classified; classifiers only)."""
        return [self.names[int(np.argmax(v))] if ok else "" for v, ok in zip(self.values, self.ok, strict=True)]

    def write_csv(self, path: str | Path) -> Path:
        """Writes the timeline CSV (see the module for the schema)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        classes = self.task == "classification"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            columns = [f"p_{n}" for n in self.names] if classes else list(self.names)
            writer.writerow(["start_s", "end_s", *(["predicted"] if classes else []), *columns, "status"])
            predicted = self.predicted if classes else [""] * len(self.starts)
            for start, end, row, ok, label in zip(self.starts, self.ends, self.values, self.ok, predicted, strict=True):
                values = [f"{v:.6f}" for v in row] if ok else [""] * len(self.names)
                writer.writerow([f"{start:.3f}", f"{end:.3f}", *([label] if classes else []), *values,
                                 "ok" if ok else "error"])  # fmt: skip
        return path

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Draws each column against the window centres and saves the figure (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        centres = (self.starts + self.ends) / 2.0
        figure, axis = plt.subplots(figsize=(max(6.0, min(20.0, 0.15 * len(centres) + 4.0)), 3.5))
        for column, name in enumerate(self.names):
            axis.plot(centres, self.values[:, column], marker="." if len(centres) < 60 else None, label=name)
        axis.set_xlabel("time (s)")
        axis.set_ylabel("posterior" if self.task == "classification" else "value")
        if self.task == "classification":
            axis.set_ylim(0.0, 1.0)
        axis.set_title(title or f"emotion over time: {Path(self.source).name or 'array'}")
        axis.legend(loc="upper right", fontsize="small", ncol=min(len(self.names), 4))
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def emotion_timeline(
    recognizer: EmotionRecognizer,
    audio: str | Path | np.ndarray | Tensor,
    window_s: float = 3.0,
    hop_s: float = 1.0,
    sample_rate: int | None = None,
) -> Timeline:
    """Classifies a recording window by window.

    Args:
        recognizer: the loaded model.
        audio: a file, or an array (``[samples]`` or ``[samples, channels]``) at ``sample_rate``.
        window_s: window length in seconds.
        hop_s: hop between window starts in seconds.
        sample_rate: the array's rate (required for an array).

    Returns:
        The :class:`Timeline`.

    Raises:
        AudioReadError: the file cannot be read.
        ValueError: bad window settings, or an array without its sample rate.
    """
    if not (window_s > 0 and hop_s > 0):
        raise ValueError(f"window_s and hop_s must be positive, got {window_s} and {hop_s}")
    rate = recognizer.sample_rate
    if isinstance(audio, str | Path):
        source, waveform = str(audio), read_audio(audio, rate)
    else:
        if sample_rate is None:
            raise ValueError("an array was given without its sample_rate")
        [(record, waveform)] = recognizer.load_inputs(to_mono(audio), sample_rate) or [(None, None)]
        if waveform is None:
            raise AudioReadError(f"array: {record.error if record else 'empty'}", kind=record.kind if record else "")
        source = "array"
    window, hop = max(1, round(window_s * rate)), max(1, round(hop_s * rate))
    starts = segment_starts(waveform.shape[0], window, hop)  # the evaluation segments' rule, in samples
    pieces, usable = [], []
    for i, start in enumerate(starts):
        piece = waveform[start : start + window]
        try:
            check_waveform(source, piece, rate, min(recognizer.min_seconds, window_s))
        except AudioReadError:
            continue
        pieces.append(piece)
        usable.append(i)
    names = recognizer.class_names if recognizer.task == "classification" else recognizer.target_names
    values = np.full((len(starts), len(names)), np.nan)
    for group in recognizer.batches([p.shape[0] for p in pieces]):
        outputs = recognizer.run_batch([pieces[g] for g in group])
        for g, out in zip(group, outputs, strict=True):
            values[usable[g]] = out if out.ndim == 1 else np.asarray(out, dtype=np.float64).mean(axis=0)
    skipped = len(starts) - len(usable)
    if skipped:
        log.warning("%s: %d of %d windows are silent or too short and were not classified", source, skipped,
                    len(starts))  # fmt: skip
    starts_s = np.array(starts, dtype=np.float64) / rate
    ends_s = np.minimum(starts_s + window / rate, waveform.shape[0] / rate)
    return Timeline(starts_s, ends_s, values, list(names), recognizer.task, source)


__all__ = ["Timeline", "emotion_timeline"]
