"""Inference outside training: the prediction engine, emotion over time, and ONNX export.

- :class:`EmotionRecognizer` (:mod:`.api`): load a checkpoint (or an ONNX export) once; predict on files,
  folders or arrays, batched, on CPU or GPU, with a per-file error record for unusable input.
- :func:`emotion_timeline` (:mod:`.timeline`): sliding-window posteriors of a long recording, CSV and plot.
- :func:`export_onnx` / :class:`OnnxModel` (:mod:`.export`): front-end + network to ONNX, run by onnxruntime.

The command line is ``python -m ser_lightning {export,timeline,infer}`` (:mod:`.__main__`).
"""

from ser_lightning.inference.api import EmotionRecognizer, audio_files, to_mono
from ser_lightning.inference.export import ExportableModel, OnnxModel, export_metadata, export_onnx
from ser_lightning.inference.timeline import Timeline, emotion_timeline

__all__ = [
    "EmotionRecognizer",
    "ExportableModel",
    "OnnxModel",
    "Timeline",
    "audio_files",
    "emotion_timeline",
    "export_metadata",
    "export_onnx",
    "to_mono",
]
