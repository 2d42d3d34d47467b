"""ONNX export of a whole model — waveform in, posteriors (or per-frame values) out — and an onnxruntime runner.

A checkpoint carries its front-end (:mod:`ser_lightning.models.frontends`), so the exported graph does too:
unlike audonnx (Wagner et al. 2023), which exports the network and keeps the feature extraction in Python, an
exported model here needs only onnxruntime and a waveform at the model's sample rate.

The exporter is ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based path, the default in torch
2.9): it exports every architecture of the toolkit (LSTMs, transformer encoders, DenseNets) with a dynamic batch
and a dynamic length, so the deprecated TorchScript-based exporter is not needed. Two things make the models
exportable without changing their PyTorch results:

- **STFT**: ONNX has no complex tensors, and onnxruntime's ``STFT`` on non-power-of-two sizes (DenseHighway's
  400-point FFT) is less accurate than PocketFFT; the front-ends' ``exportable`` switch
  (:meth:`~ser_lightning.models.frontends.FrontEnd.stft_magnitude`) computes ``|STFT|`` as a strided ``conv1d``
  with a windowed DFT basis instead. It is switched on only on the copy that is exported; eager models keep
  ``torch.stft``.
- **Segments**: the classification base averages the posteriors of an utterance's segments, found with a Python
  loop over its frame count (:func:`~ser_lightning.models.classification.segment_starts`). :class:`ExportableModel`
  computes the same segments with tensor operations (``unfold`` every ``eval_segment_hop`` frames over the
  batch, a mask of the starts inside each utterance, and the end-aligned last segment gathered per row with a
  weight of 0 where it repeats a regular one), so one graph serves every length and batch.

The ONNX inputs are ``waveform`` (``[batch, samples]`` float32, zero-padded) and ``lengths`` (``[batch]`` int64);
outputs are ``posteriors`` (``[batch, classes]``) for a classifier, ``predictions`` (``[batch, frames, targets]``,
0 past each recording's end) and ``frames`` (``[batch]``) for a regressor. ``samples`` must be at least
``min_samples`` (metadata; :class:`OnnxModel` pads shorter input, which changes nothing since padding is masked).
The model's ``metadata_props`` hold ``ser_lightning`` (the toolkit version), ``architecture``, ``task``,
``sample_rate``, ``min_samples``, ``class_names`` (JSON) or ``target_names`` (JSON) and ``frame_rate_hz``, and
``hparams`` (JSON).
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import ser_lightning
from ser_lightning.models.base import SERTask
from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.regression import SERRegressionTask
from ser_lightning.results import jsonable

log = logging.getLogger(__name__)

OPSET = 18
OPTIMIZE = True
"""ONNX opset of the exported graphs (what torch 2.9's dynamo exporter targets)."""
MAX_BATCH = 4096
MAX_SAMPLES = 1 << 31
_HUGE = 1 << 62


class _ExportLSTM(nn.LSTM):
    """``nn.LSTM`` whose final states are reshaped to ``[layers * directions, batch, hidden]``.

    The same values, but ``torch.export`` then traces the right shape: torch 2.9's fake-tensor kernel of
    ``aten.lstm`` gives the states an extra leading axis, which breaks ``h_n[-1]`` in the traced graph; the real
    states already have the documented shape, so the reshape is a no-op when the graph runs.
    """

    def forward(self, input: Tensor, hx: Any = None) -> Any:
        """``nn.LSTM.forward`` on a batched input, with the documented state shapes."""
        output, (h, c) = super().forward(input, hx)
        batch = input.shape[0] if self.batch_first else input.shape[1]
        layers = self.num_layers * (2 if self.bidirectional else 1)
        return output, (h.reshape(layers, batch, -1), c.reshape(layers, batch, -1))


def length_multiple(task: SERTask) -> int:
    """Exported waveforms are zero-padded to a multiple of this: a chunking network's chunk, else 1."""
    chunk = getattr(task.network, "chunk_samples", None)
    return int(chunk) if isinstance(task, SERRegressionTask) and isinstance(chunk, int) else 1


def uses_dynamo(task: SERTask) -> bool:
    """Whether the model is exported with the dynamo exporter (else the TorchScript-based one, see the module)."""
    return length_multiple(task) == 1


def min_samples(task: SERTask) -> int:
    """The shortest waveform an exported graph accepts: one evaluation segment (classifiers) or one frame."""
    if isinstance(task, SERClassificationTask):
        return max(task.frontend.segment_samples(task.segment_frames), task.frontend.frame_length)
    return max(int(task.frontend.frame_length), 2)


class ExportableModel(nn.Module):
    """A copy of a task as a pure function of ``(waveform, lengths)``, with the front-end in exportable mode.

    Its outputs equal the task's ``forward`` (up to float rounding of the real-valued STFT), for any batch of
    zero-padded waveforms of at least :func:`min_samples` samples.

    Args:
        task: a classification or regression task (copied; the original is not changed).
    """

    def __init__(self, task: SERTask) -> None:
        super().__init__()
        if not isinstance(task, SERClassificationTask | SERRegressionTask):
            raise TypeError(f"cannot export {type(task).__name__}: not a classification or regression task")
        self.task = copy.deepcopy(task).cpu().eval()
        self.task.frontend.exportable = True
        for module in self.task.modules():
            if type(module) is nn.LSTM:
                module.__class__ = _ExportLSTM
        for module in self.task.modules():  # chunked evaluation loops become one call (bounded by MAX_SAMPLES)
            for name in ("eval_max_chunks", "eval_max_segments"):
                if isinstance(getattr(module, name, None), int):
                    setattr(module, name, _HUGE)
        self.classifier = isinstance(task, SERClassificationTask)
        self.min_samples = min_samples(task)
        self.length_multiple = length_multiple(task)

    def forward(self, waveform: Tensor, lengths: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Posteriors ``[B, C]`` (classifier) or ``(predictions [B, N, K], frames [B])`` (regressor)."""
        task = self.task
        short = max(self.min_samples - waveform.shape[1], 0)
        short += (-(waveform.shape[1] + short)) % self.length_multiple
        if short:  # never while tracing: the example has the right length, and dims say so
            waveform = nn.functional.pad(waveform, (0, short))
        features, frames = task.frontend(waveform, lengths)
        if not self.classifier:
            preds = task.network(features) if self.length_multiple == 1 else self.chunked_network(features)
            frames = task.target_frames(lengths)
            valid = torch.arange(preds.shape[1], device=preds.device)[None, :] < frames[:, None]
            return preds.masked_fill(~valid[..., None], 0.0), frames
        return self.segment_posteriors(features, frames)

    def chunked_network(self, features: Tensor) -> Tensor:
        """:class:`~ser_lightning.models.networks.end_to_end.EndToEndNet`'s forward, traceable with a dynamic length.

        The waveform's length is a multiple of the chunk; there is no Python arithmetic on it, so a traced graph
        keeps it dynamic.
        """
        net = self.task.network
        waveform = features.reshape(features.shape[0], -1)
        feats = net.features(waveform.reshape(-1, 1, net.chunk_samples))
        hidden, _ = net.lstm(feats.reshape(waveform.shape[0], -1, net.feature_size))
        return torch.tanh(net.output(hidden))

    def segment_posteriors(self, features: Tensor, frames: Tensor) -> Tensor:
        """The classification base's ``utterance_posteriors`` with tensor operations only.

        Args:
            features: ``[B, 1, F, N]`` masked features, ``N >= segment_frames``.
            frames: ``[B]`` valid frames.

        Returns:
            ``[B, num_classes]`` mean posteriors of each utterance's segments.
        """
        task = self.task
        s, hop = task.segment_frames, task.eval_segment_hop
        batch, channels, rows, _ = features.shape
        count = (features.shape[3] - s) // hop + 1  # regular segments of the longest utterance
        starts = torch.arange(count, device=features.device) * hop
        steps = (starts[:, None] + torch.arange(s, device=features.device)[None, :]).reshape(-1)
        windows = features.index_select(3, steps).reshape(batch, channels, rows, count, s)
        windows = windows.permute(0, 3, 1, 2, 4)  # [B, K, 1, F, s]
        last = torch.clamp(frames - s, min=0)
        regular = starts[None, :] <= last[:, None]  # [B, K]
        index = (last[:, None] + torch.arange(s, device=features.device)[None, :])[:, None, None, :]
        tail = features.gather(3, index.expand(batch, channels, rows, s))  # [B, 1, F, s]
        segments = torch.cat([windows, tail[:, None]], dim=1)  # [B, K + 1, 1, F, s]
        weights = torch.cat([regular, torch.remainder(last, hop)[:, None] != 0], dim=1).to(features.dtype)
        stats = task.normalisation.statistics(features, frames)
        if stats is not None:
            segments = task.normalisation.apply(segments, (stats[0][:, None], stats[1][:, None]))
        count = count + 1
        logits = task.network(segments.reshape(batch * count, channels, rows, s))
        probs = torch.softmax(logits.float(), dim=-1).reshape(batch, count, -1)
        return (probs * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)


def export_metadata(task: SERTask) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (every value a string; lists and dicts as JSON)."""
    meta = {
        "ser_lightning": ser_lightning.__version__,
        "architecture": type(task).__name__,
        "class_path": f"{type(task).__module__}.{type(task).__qualname__}",
        "sample_rate": str(int(task.frontend.sample_rate)),
        "min_samples": str(min_samples(task)),
        "length_multiple": str(length_multiple(task)),
        "exporter": "dynamo" if uses_dynamo(task) else "torchscript",
        "hparams": json.dumps(jsonable(dict(task.hparams)), default=str),
    }
    if isinstance(task, SERClassificationTask):
        meta.update(task="classification", class_names=json.dumps(task.class_names))
    else:
        meta.update(task="regression", target_names=json.dumps(task.target_names),
                    frame_rate_hz=repr(float(task.target_rate_hz)))  # fmt: skip
    return meta


def export_onnx(task: SERTask, path: str | Path, example_seconds: float = 3.0) -> Path:
    """Exports a task (front-end + network + utterance pooling) to an ONNX file with its metadata.

    Args:
        task: the model (e.g. from ``SERTask.load_from_checkpoint``); not changed.
        path: the ``.onnx`` file to write (its folder is created).
        example_seconds: length of the example waveform traced (any length works afterwards).

    Returns:
        The path written.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportableModel(task).eval()
    rate = int(task.frontend.sample_rate)
    step = wrapper.length_multiple
    samples = -(-max(int(example_seconds * rate), wrapper.min_samples + 1) // step) * step
    waveform = 0.1 * torch.randn(2, samples, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([samples, max(wrapper.min_samples, samples * 2 // 3)], dtype=torch.int64)
    outputs = ["posteriors"] if wrapper.classifier else ["predictions", "frames"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if uses_dynamo(task):
            # batch min 2: torch.export would otherwise specialise on batch 1; the graph runs at batch 1 too
            dims = {0: torch.export.Dim("batch", min=2, max=MAX_BATCH),
                    1: torch.export.Dim("samples", min=wrapper.min_samples, max=MAX_SAMPLES)}  # fmt: skip
            program = torch.onnx.export(
                wrapper,
                (waveform, lengths),
                dynamo=True,
                input_names=["waveform", "lengths"],
                output_names=outputs,
                dynamic_shapes=(dims, {0: dims[0]}),
                opset_version=OPSET,
                optimize=OPTIMIZE,
                verbose=False,
            )
            program.save(str(path))
        else:  # an LSTM over the recording's frames: torch.export would fix their number (see the module)
            axes = {"waveform": {0: "batch", 1: "samples"}, "lengths": {0: "batch"},
                    "predictions": {0: "batch", 1: "frames"}, "frames": {0: "batch"}}  # fmt: skip
            torch.onnx.export(
                wrapper,
                (waveform, lengths),
                str(path),
                dynamo=False,
                input_names=["waveform", "lengths"],
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
            )
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, export_metadata(task))
    onnx.save(model, str(path))
    log.info("exported %s to %s (%.1f MB)", type(task).__name__, path, path.stat().st_size / 1e6)
    return path


class OnnxModel:
    """An exported model run by onnxruntime, with the metadata it was exported with.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: onnxruntime's choice).
        providers: onnxruntime execution providers (default: CUDA when available, then CPU).
    """

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        if "ser_lightning" not in self.metadata:
            raise ValueError(f"{self.path}: not a ser_lightning export (no ser_lightning metadata)")
        self.task = self.metadata["task"]
        self.sample_rate = int(self.metadata["sample_rate"])
        self.min_samples = int(self.metadata["min_samples"])
        self.length_multiple = int(self.metadata.get("length_multiple", "1"))
        self.architecture = self.metadata["architecture"]
        self.class_names: list[str] = json.loads(self.metadata.get("class_names", "[]"))
        self.target_names: list[str] = json.loads(self.metadata.get("target_names", "[]"))
        self.frame_rate_hz = float(self.metadata.get("frame_rate_hz", "nan"))

    def __call__(self, waveform: np.ndarray | Tensor, lengths: np.ndarray | Tensor | None = None) -> Any:
        """Runs the graph on ``[B, T]`` zero-padded waveforms (padded to ``min_samples`` when shorter).

        Returns:
            ``[B, C]`` posteriors (classifier) or ``(predictions [B, N, K], frames [B])`` (regressor), numpy.
        """
        x = np.ascontiguousarray(np.asarray(waveform, dtype=np.float32))
        if x.ndim != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {x.shape}")
        n = np.full(x.shape[0], x.shape[1], np.int64) if lengths is None else np.asarray(lengths, np.int64)
        short = max(self.min_samples - x.shape[1], 0)
        short += (-(x.shape[1] + short)) % self.length_multiple
        if short:  # zeros past every length: masked, so the outputs do not change
            x = np.pad(x, ((0, 0), (0, short)))
        outputs = self.session.run(None, {"waveform": x, "lengths": n})
        return outputs[0] if self.task == "classification" else (outputs[0], outputs[1])


def check_parity(
    task: SERTask,
    onnx_path: str | Path,
    utterances: int = 100,
    min_seconds: float = 0.3,
    max_seconds: float = 4.0,
    batch_size: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Compares an export with its PyTorch model on random utterances of varied lengths.

    Utterances are white noise with a random gain and a random silent stretch, ``min_seconds`` to
    ``max_seconds`` long, run ``batch_size`` at a time (zero-padded, with their lengths) through both.

    Args:
        task: the PyTorch model.
        onnx_path: its export.
        utterances: how many utterances.
        min_seconds: shortest utterance.
        max_seconds: longest utterance.
        batch_size: utterances per call.
        seed: random seed.

    Returns:
        ``{"utterances", "max_abs_diff", "argmax_mismatches"}`` (argmax over classes, or 0 for a regressor).
    """
    runner = OnnxModel(onnx_path)
    rng = np.random.default_rng(seed)
    rate = int(task.frontend.sample_rate)
    task = task.cpu().eval()
    worst, mismatches = 0.0, 0
    for first in range(0, utterances, batch_size):
        count = min(batch_size, utterances - first)
        lengths = rng.integers(int(min_seconds * rate), int(max_seconds * rate) + 1, size=count)
        batch = np.zeros((count, int(lengths.max())), dtype=np.float32)
        for i, n in enumerate(lengths):
            x = rng.standard_normal(n) * 10 ** rng.uniform(-2.5, -0.5)
            gap = int(rng.integers(0, n // 4 + 1))
            start = int(rng.integers(0, n - gap + 1))
            x[start : start + gap] = 0.0
            batch[i, :n] = x
        with torch.no_grad():
            expected = task(torch.from_numpy(batch), torch.from_numpy(lengths))
        got = runner(batch, lengths)
        if isinstance(task, SERClassificationTask):
            reference = expected.numpy()
            mismatches += int((reference.argmax(-1) != got.argmax(-1)).sum())
            worst = max(worst, float(np.abs(reference - got).max()))
        else:
            reference = expected.numpy()
            got_values = got[0][:, : reference.shape[1]]
            worst = max(worst, float(np.abs(reference - got_values).max()))
            if got[0].shape[1] != reference.shape[1] or not np.array_equal(got[1], task.target_frames(
                    torch.from_numpy(lengths)).numpy()):  # fmt: skip
                mismatches += count
    return {"utterances": utterances, "max_abs_diff": worst, "argmax_mismatches": mismatches}


__all__ = [
    "ExportableModel",
    "OnnxModel",
    "check_parity",
    "export_metadata",
    "export_onnx",
    "length_multiple",
    "min_samples",
    "uses_dynamo",
]
