"""The Python inference API: load a model once, predict on files, folders or arrays, batched, on CPU or GPU.

>>> from ser_lightning.inference import EmotionRecognizer
>>> recognizer = EmotionRecognizer.from_checkpoint("runs/dense_highway/version_0/checkpoints/best.ckpt")
>>> results = recognizer.predict(["a.wav", "recordings/"])           # files and folders
>>> results = recognizer.predict(samples, sample_rate=44100)           # an array (resampled, mixed to mono)
>>> [(r.utt_id, r.predicted, r.posteriors) for r in results if r.ok]

An exported model works the same way (``EmotionRecognizer.from_onnx("model.onnx")``, run by onnxruntime).
Audio goes through what training uses: :func:`~ser_lightning.audio.read_audio` (soundfile, mixed to mono,
resampled to the model's rate) and :func:`~ser_lightning.audio.check_waveform` (empty, NaN/Inf, too short or
silent input is refused). An input that cannot be used gives a :class:`~ser_lightning.predictions.Prediction`
with ``status="error"`` and the reason; the other inputs are still predicted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ser_lightning.audio import MIN_SECONDS, check_waveform, is_audio_path, read_audio, resample
from ser_lightning.errors import AudioReadError
from ser_lightning.inference.export import OnnxModel
from ser_lightning.models.base import SERTask
from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.regression import SERRegressionTask
from ser_lightning.predictions import OutputFormat, Prediction, write_predictions

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"] | str
AudioInput = str | Path | np.ndarray | Tensor


def _device(device: Device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """The audio files named by ``paths``: each file as given, each folder's audio files (recursively, sorted).

    Raises:
        FileNotFoundError: a path does not exist.
    """
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p)))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return files


def to_mono(samples: np.ndarray | Tensor) -> np.ndarray:
    """A ``[samples]`` or ``[samples, channels]`` (soundfile's layout) array as mono float32 (channel mean)."""
    x = samples.detach().cpu().numpy() if isinstance(samples, Tensor) else np.asarray(samples)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"expected a [samples] or [samples, channels] array, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


class EmotionRecognizer:
    """A trained model (a task or an ONNX export) ready to predict, loaded once.

    Args:
        model: an :class:`~ser_lightning.models.base.SERTask` (classification or regression) or an
            :class:`~ser_lightning.inference.export.OnnxModel`.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:<k>`` (PyTorch models; an ONNX
            model runs on its session's providers).
        batch_size: inputs per model call (sorted by length first, so a batch pads little).
        max_batch_seconds: bounds a batch's padded audio (batch size times its longest input), so long
            recordings go one at a time.
        min_seconds: inputs shorter than this are refused (``too_short``), as in training.
    """

    def __init__(
        self,
        model: SERTask | OnnxModel,
        device: Device = "auto",
        batch_size: int = 16,
        max_batch_seconds: float = 600.0,
        min_seconds: float = MIN_SECONDS,
    ) -> None:
        if batch_size < 1 or max_batch_seconds <= 0:
            raise ValueError("batch_size and max_batch_seconds must be positive")
        self.model = model
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.min_seconds = min_seconds
        if isinstance(model, OnnxModel):
            self.device = torch.device("cpu")
            self.task = model.task
            self.sample_rate = model.sample_rate
            self.architecture = model.architecture
            self.class_names = list(model.class_names)
            self.target_names = list(model.target_names)
            self.frame_rate_hz = model.frame_rate_hz
        elif isinstance(model, SERClassificationTask | SERRegressionTask):
            self.device = _device(device)
            model.to(self.device).eval()
            self.task = "classification" if isinstance(model, SERClassificationTask) else "regression"
            self.sample_rate = int(model.frontend.sample_rate)
            self.architecture = type(model).__name__
            self.class_names = list(getattr(model, "class_names", []))
            self.target_names = list(getattr(model, "target_names", []))
            self.frame_rate_hz = float(getattr(model, "target_rate_hz", float("nan")))
        else:
            raise TypeError(f"expected an SERTask or an OnnxModel, got {type(model).__name__}")

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: Device = "auto", **kwargs: Any) -> EmotionRecognizer:
        """Loads a toolkit checkpoint (any architecture; the checkpoint names its class).

        Args:
            path: the ``.ckpt`` file.
            device: where the model runs (see the class).
            **kwargs: the other arguments of the class.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        model = SERTask.load_from_checkpoint(path, map_location="cpu")
        return cls(model, device=device, **kwargs)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, **kwargs: Any) -> EmotionRecognizer:
        """Loads an exported model (:func:`~ser_lightning.inference.export.export_onnx`), run by onnxruntime.

        Args:
            path: the ``.onnx`` file.
            threads: onnxruntime's intra-op threads (default: its choice).
            **kwargs: the other arguments of the class.
        """
        return cls(OnnxModel(path, threads=threads), **kwargs)

    @classmethod
    def load(cls, path: str | Path, **kwargs: Any) -> EmotionRecognizer:
        """:meth:`from_onnx` for a ``.onnx`` file, else :meth:`from_checkpoint`."""
        if Path(path).suffix.lower() == ".onnx":
            return cls.from_onnx(path, **{k: v for k, v in kwargs.items() if k != "device"})
        return cls.from_checkpoint(path, **kwargs)

    # ------------------------------------------------------------------------------------------ inputs
    def load_inputs(
        self, inputs: AudioInput | Sequence[AudioInput], sample_rate: int | None = None
    ) -> list[tuple[Prediction, np.ndarray | None]]:
        """Reads and checks every input: a record (``status`` error where unusable) and its waveform.

        Args:
            inputs: a file, a folder, an array, or a list of them. An array is one recording (``[samples]`` or
                ``[samples, channels]``) at ``sample_rate``.
            sample_rate: the arrays' sample rate (required when an array is given).
        """
        items = [inputs] if isinstance(inputs, str | Path | np.ndarray | Tensor) else list(inputs)
        loaded: list[tuple[Prediction, np.ndarray | None]] = []
        arrays = 0
        for item in items:
            if isinstance(item, np.ndarray | Tensor):
                if sample_rate is None:
                    raise ValueError("an array was given without its sample_rate")
                record = Prediction(utt_id=f"array_{arrays}")
                arrays += 1
                try:
                    audio = to_mono(item)
                    if not np.isfinite(audio).all():
                        raise AudioReadError(f"{record.utt_id}: the audio contains NaN or infinite samples",
                                             kind="non_finite")  # fmt: skip
                    if sample_rate != self.sample_rate and audio.size:
                        audio = resample(audio, int(sample_rate), self.sample_rate)
                    loaded.append(self._checked(record, audio))
                except (AudioReadError, ValueError) as err:
                    loaded.append((self._failed(record, err), None))
                continue
            for path in audio_files([item]):
                record = Prediction(utt_id=path.stem, path=str(path))
                try:
                    loaded.append(self._checked(record, read_audio(path, self.sample_rate)))
                except AudioReadError as err:
                    loaded.append((self._failed(record, err), None))
        return loaded

    def _checked(self, record: Prediction, audio: np.ndarray) -> tuple[Prediction, np.ndarray | None]:
        try:
            check = check_waveform(record.path or record.utt_id, audio, self.sample_rate, self.min_seconds)
        except AudioReadError as err:
            return self._failed(record, err), None
        record.duration_s = check.duration
        return record, audio

    @staticmethod
    def _failed(record: Prediction, err: Exception) -> Prediction:
        message = str(err)
        prefix = f"{record.path or record.utt_id}: "
        record.status = "error"
        record.error = message[len(prefix) :] if message.startswith(prefix) else message
        record.kind = getattr(err, "kind", "invalid")
        log.warning("skipping %s: %s", record.path or record.utt_id, record.error)
        return record

    # --------------------------------------------------------------------------------------- inference
    @torch.inference_mode()
    def run_batch(self, waveforms: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for mono waveforms at the model's rate, in one call.

        Returns:
            Posteriors ``[C]`` (classifier) or per-frame values ``[N, K]`` (regressor) for each waveform.
        """
        lengths = np.array([w.shape[0] for w in waveforms], dtype=np.int64)
        batch = np.zeros((len(waveforms), int(lengths.max())), dtype=np.float32)
        for i, w in enumerate(waveforms):
            batch[i, : w.shape[0]] = w
        if isinstance(self.model, OnnxModel):
            out = self.model(batch, lengths)
            if self.task == "classification":
                return list(np.asarray(out, dtype=np.float64))
            preds, frames = out
            return [preds[i, : int(n)] for i, n in enumerate(frames)]
        x = torch.from_numpy(batch).to(self.device)
        n = torch.from_numpy(lengths).to(self.device)
        if self.task == "classification":
            return list(self.model(x, n).double().cpu().numpy())
        preds, frames = self.model.frame_predictions(x, n)
        preds = preds.float().cpu().numpy()
        return [preds[i, : int(k)] for i, k in enumerate(frames.tolist())]

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches: sorted by length, at most ``batch_size`` and ``max_batch_seconds``."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        limit = self.max_batch_seconds * self.sample_rate
        groups: list[list[int]] = []
        for i in order:
            if groups and len(groups[-1]) < self.batch_size and lengths[i] * (len(groups[-1]) + 1) <= limit:
                groups[-1].append(i)
            else:
                groups.append([i])
        return groups

    def predict(self, inputs: AudioInput | Sequence[AudioInput], sample_rate: int | None = None) -> list[Prediction]:
        """Predicts every input; unusable ones give ``status="error"`` records (never an exception).

        Args:
            inputs: a file, a folder (its audio files, recursively), an array (one recording at
                ``sample_rate``), or a list of them.
            sample_rate: the arrays' sample rate.

        Returns:
            One :class:`~ser_lightning.predictions.Prediction` per file or array, in input order (a folder's
            files sorted): ``predicted`` and ``posteriors`` for a classifier, ``frames`` for a regressor.
        """
        loaded = self.load_inputs(inputs, sample_rate)
        usable = [i for i, (_, audio) in enumerate(loaded) if audio is not None]
        for group in self.batches([loaded[i][1].shape[0] for i in usable]):  # type: ignore[union-attr]
            indices = [usable[g] for g in group]
            try:
                outputs = self.run_batch([loaded[i][1] for i in indices])  # type: ignore[misc]
            except Exception as err:  # e.g. out of memory on one long file: the others still get their results
                if len(indices) > 1:
                    outputs = []
                    for i in indices:
                        outputs.extend(self._single(loaded[i]))
                else:
                    self._failed(loaded[indices[0]][0], RuntimeError(f"the model failed: {err}"))
                    continue
            for i, out in zip(indices, outputs, strict=True):
                self._fill(loaded[i][0], out)
        return [record for record, _ in loaded]

    def _single(self, item: tuple[Prediction, np.ndarray | None]) -> list[np.ndarray | None]:
        try:
            return self.run_batch([item[1]])  # type: ignore[list-item]
        except Exception as err:
            self._failed(item[0], RuntimeError(f"the model failed: {err}"))
            return [None]

    def _fill(self, record: Prediction, output: np.ndarray | None) -> None:
        if output is None:
            return
        if self.task == "classification":
            record.posteriors = output
            record.predicted = self.class_names[int(np.argmax(output))]
        else:
            record.frames = output

    def write(
        self,
        records: Sequence[Prediction],
        directory: str | Path,
        filename: str = "predictions.csv",
        formats: Sequence[OutputFormat] = ("csv", "json"),
    ) -> list[Path]:
        """Writes records in ``predict``'s schemas (:func:`~ser_lightning.predictions.write_predictions`)."""
        names: dict[str, Any] = (
            {"class_names": self.class_names}
            if self.task == "classification"
            else {"target_names": self.target_names, "frame_rate_hz": self.frame_rate_hz}
        )
        return write_predictions(records, directory, **names, model=self.architecture, sample_rate=self.sample_rate,
                                 filename=filename, formats=formats)  # fmt: skip


__all__ = ["EmotionRecognizer", "audio_files", "to_mono"]
