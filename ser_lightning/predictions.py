"""Prediction records and their files (``predictions.csv``, ``predictions.json``, per-frame CSVs): one definition.

Written by ``predict`` (:class:`~ser_lightning.callbacks.PredictionWriter`) and by the Python API
(:class:`~ser_lightning.inference.EmotionRecognizer`), so both give the same files. Schemas (``docs/inference.md``):

**Classification** — ``predictions.csv``: ``utt_id, path, predicted, p_<class>..., status, error``; one row per
file; ``status`` is ``ok`` or ``error`` (then ``error`` says why and ``predicted`` and the posteriors are empty).
``predictions.json``: ``{"schema", "task": "classification", "model", "sample_rate", "class_names",
"predictions": [{"utt_id", "path", "status", "error", "kind", "duration_s", "predicted", "posteriors":
{class: p}}]}``.

**Regression** (per-frame values, e.g. arousal/valence every 40 ms) — ``predictions.csv``: ``utt_id, path,
frames, mean_<target>..., frames_csv, status, error``; each file's values are in ``frames_csv`` (relative to the
folder, ``frames/<utt_id>.csv``: ``frame, start_s, <target>...``, frame ``i`` covering ``[i / rate, (i + 1) /
rate)``). ``predictions.json``: the same envelope with ``task: "regression"``, ``target_names`` and
``frame_rate_hz``; each entry has ``frames``, ``mean`` ``{target: value}`` and ``frames_csv``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

SCHEMA = "ser_lightning.predictions/1"
"""The ``schema`` field of ``predictions.json``."""
OutputFormat = Literal["csv", "json"]


@dataclass
class Prediction:
    """What a model says about one file or array, or why it could not say anything.

    Args:
        utt_id: identifier (the file's stem, or ``array_<i>``).
        path: the file (empty for an array).
        status: ``ok`` or ``error``.
        error: why the input could not be used (``status == "error"``).
        kind: the kind of error (``unreadable``, ``empty``, ``non_finite``, ``too_short``, ``silent``...).
        duration_s: seconds of audio.
        posteriors: ``[num_classes]`` class posteriors (classifiers).
        predicted: the most probable class (classifiers).
        frames: ``[frames, num_targets]`` per-frame values (regressors).
    """

    utt_id: str
    path: str = ""
    status: str = "ok"
    error: str = ""
    kind: str = ""
    duration_s: float | None = None
    posteriors: np.ndarray | None = None
    predicted: str | None = None
    frames: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        """Whether the model produced an output."""
        return self.status == "ok"


def _file_stem(utt_id: str, taken: set[str]) -> str:
    stem = re.sub(r"[^0-9A-Za-z_.-]+", "_", utt_id) or "utterance"
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    taken.add(name)
    return name


def write_frame_csv(path: Path, values: np.ndarray, target_names: Sequence[str], frame_rate_hz: float) -> Path:
    """Writes one file's per-frame values: ``frame, start_s, <target>...``.

    Args:
        path: the CSV file.
        values: ``[frames, targets]``.
        target_names: column names of the targets.
        frame_rate_hz: frames per second.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "start_s", *target_names])
        for i, row in enumerate(np.asarray(values, dtype=np.float64).reshape(len(values), -1)):
            writer.writerow([i, f"{i / frame_rate_hz:.4f}", *(f"{v:.6f}" for v in row)])
    return path


def write_predictions(
    records: Sequence[Prediction],
    directory: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
    frame_rate_hz: float | None = None,
    model: str = "",
    sample_rate: int | None = None,
    filename: str = "predictions.csv",
    formats: Sequence[OutputFormat] = ("csv", "json"),
) -> list[Path]:
    """Writes prediction records as ``predictions.csv`` / ``predictions.json`` (and per-frame CSVs for regression).

    Exactly one of ``class_names`` (a classifier) and ``target_names`` (a regressor) is given.

    Args:
        records: the records, in the order to write them.
        directory: the output folder (created).
        class_names: the classifier's classes (posterior columns).
        target_names: the regressor's targets (per-frame columns).
        frame_rate_hz: the regressor's frame rate.
        model: the architecture's name (JSON envelope).
        sample_rate: the model's input rate (JSON envelope).
        filename: name of the CSV file; the JSON file has the same stem.
        formats: which of ``csv`` and ``json`` to write.

    Returns:
        The files written (CSV, JSON, then the per-frame CSVs).
    """
    if (class_names is None) == (target_names is None):
        raise ValueError("give class_names (classification) or target_names (regression), not both or neither")
    unknown = sorted(set(formats) - {"csv", "json"})
    if unknown:
        raise ValueError(f"unknown prediction formats {unknown}: use csv and/or json")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    regression = target_names is not None
    names = list(target_names if regression else class_names)  # type: ignore[arg-type]
    entries: list[dict[str, Any]] = []
    frame_files: list[Path] = []
    taken: set[str] = set()
    for r in records:
        entry: dict[str, Any] = {"utt_id": r.utt_id, "path": r.path, "status": r.status, "error": r.error,
                                 "kind": r.kind, "duration_s": r.duration_s}  # fmt: skip
        if regression:
            values = np.zeros((0, len(names))) if r.frames is None else np.asarray(r.frames).reshape(-1, len(names))
            entry["frames"] = int(values.shape[0]) if r.ok else None
            entry["mean"] = {n: float(v) for n, v in zip(names, values.mean(0), strict=True)} if r.ok else None
            entry["frames_csv"] = None
            if r.ok:
                relative = Path("frames") / f"{_file_stem(r.utt_id, taken)}.csv"
                frame_files.append(write_frame_csv(directory / relative, values, names, float(frame_rate_hz or 1.0)))
                entry["frames_csv"] = relative.as_posix()
        else:
            entry["predicted"] = r.predicted if r.ok else None
            probs = r.posteriors if r.ok and r.posteriors is not None else None
            entry["posteriors"] = None if probs is None else {n: float(p) for n, p in zip(names, probs, strict=True)}
        entries.append(entry)
    written: list[Path] = []
    if "csv" in formats:
        written.append(_write_csv(directory / filename, entries, names, regression))
    if "json" in formats:
        envelope: dict[str, Any] = {"schema": SCHEMA, "task": "regression" if regression else "classification",
                                    "model": model, "sample_rate": sample_rate}  # fmt: skip
        if regression:
            envelope.update(target_names=names, frame_rate_hz=frame_rate_hz)
        else:
            envelope["class_names"] = names
        envelope["predictions"] = entries
        path = directory / f"{Path(filename).stem}.json"
        path.write_text(json.dumps(envelope, indent=1) + "\n")
        written.append(path)
    errors = sum(1 for r in records if not r.ok)
    if errors:
        log.warning("%d of %d inputs could not be used (status 'error' in %s)", errors, len(records), directory)
    log.info("wrote %d predictions to %s", len(records) - errors, ", ".join(str(p) for p in written[:2]))
    return written + frame_files


def _write_csv(path: Path, entries: list[dict[str, Any]], names: list[str], regression: bool) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if regression:
            writer.writerow(["utt_id", "path", "frames", *(f"mean_{n}" for n in names), "frames_csv", "status",
                             "error"])  # fmt: skip
        else:
            writer.writerow(["utt_id", "path", "predicted", *(f"p_{n}" for n in names), "status", "error"])
        for e in entries:
            ok = e["status"] == "ok"
            if regression:
                means = [f"{e['mean'][n]:.6f}" for n in names] if ok else [""] * len(names)
                writer.writerow([e["utt_id"], e["path"], e["frames"] if ok else "", *means, e["frames_csv"] or "",
                                 e["status"], e["error"]])  # fmt: skip
            else:
                probs = [f"{e['posteriors'][n]:.6f}" for n in names] if ok else [""] * len(names)
                writer.writerow([e["utt_id"], e["path"], e["predicted"] or "", *probs, e["status"], e["error"]])
    return path


__all__ = ["SCHEMA", "OutputFormat", "Prediction", "write_frame_csv", "write_predictions"]
