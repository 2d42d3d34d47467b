"""Inference benchmark: real-time factor of every architecture, PyTorch eager vs onnxruntime, and the API's overhead.

Run by hand (exports every architecture at its paper size first, which takes a minute or more each):

    python benchmarks/bench_inference.py [--threads 2] [--seconds 4] [--utterances 16] [--only DenseHighway,CNN]

For each architecture (default sizes; 4 classes, or 2 targets for the regressor) it prints the real-time factor
(seconds of audio per second of compute; 300x means an hour of audio in 12 s) of:

- ``eager b1`` / ``eager b8``: the bare PyTorch model (``model(waveform, lengths)`` under ``inference_mode``) on
  utterances one at a time, and 8 at a time;
- ``onnx b1`` / ``onnx b8``: its ONNX export run by onnxruntime (:class:`~ser_lightning.inference.OnnxModel`);
- ``API overhead``: :meth:`~ser_lightning.inference.EmotionRecognizer.predict` on the same arrays (checks, batching,
  padding, records) over the bare call on the same backend, at the API's batch size 8 — on the faster backend.

Both backends use ``--threads`` intra-op threads (torch.set_num_threads / onnxruntime's intra_op_num_threads).
Utterances are white noise of ``--seconds`` seconds at the model's rate; timings are the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ser_lightning.inference import EmotionRecognizer, OnnxModel, export_onnx
from ser_lightning.models import (
    CNN,
    CNNLSTM,
    CNNBiLSTMMLP,
    DenseHighway,
    DenseNet,
    DenseNetLSTM,
    EmoAugNet,
    EndToEndRegressor,
    RBLSTMETransformer,
    SERTask,
)

ARCHITECTURES: dict[str, Callable[[], SERTask]] = {
    "DenseHighway": lambda: DenseHighway(num_classes=4),
    "CNN": lambda: CNN(num_classes=4),
    "CNNLSTM": lambda: CNNLSTM(num_classes=4),
    "DenseNet": lambda: DenseNet(num_classes=4),
    "DenseNetLSTM": lambda: DenseNetLSTM(num_classes=4),
    "CNNBiLSTMMLP": lambda: CNNBiLSTMMLP(num_classes=4),
    "EmoAugNet": lambda: EmoAugNet(num_classes=4),
    "RBLSTMETransformer": lambda: RBLSTMETransformer(num_classes=4),
    "EndToEndRegressor": lambda: EndToEndRegressor(num_targets=2),
}


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest of ``repeats`` timed calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def batched(arrays: list[np.ndarray], size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for i in range(0, len(arrays), size):
        group = arrays[i : i + size]
        lengths = np.array([a.shape[0] for a in group], dtype=np.int64)
        batch = np.zeros((len(group), int(lengths.max())), np.float32)
        for j, a in enumerate(group):
            batch[j, : a.shape[0]] = a
        out.append((batch, lengths))
    return out


def eager_run(model: SERTask, arrays: list[np.ndarray], size: int) -> Callable[[], None]:
    """The bare PyTorch model over the arrays, ``size`` at a time."""
    batches = [(torch.from_numpy(b), torch.from_numpy(n)) for b, n in batched(arrays, size)]

    def run() -> None:
        with torch.inference_mode():
            for b, n in batches:
                model(b, n)

    return run


def onnx_run(runner: OnnxModel, arrays: list[np.ndarray], size: int) -> Callable[[], None]:
    """The onnxruntime session over the arrays, ``size`` at a time."""
    batches = batched(arrays, size)

    def run() -> None:
        for b, n in batches:
            runner(b, n)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each utterance")
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated architecture names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    names = [n for n in ARCHITECTURES if not args.only or n in args.only.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            torch.manual_seed(0)
            model = ARCHITECTURES[name]().eval()
            rate = int(model.frontend.sample_rate)
            rng = np.random.default_rng(0)
            arrays = [(0.1 * rng.standard_normal(int(args.seconds * rate))).astype(np.float32)
                      for _ in range(args.utterances)]  # fmt: skip
            audio = args.utterances * args.seconds
            started = time.perf_counter()
            path = export_onnx(model, Path(tmp) / f"{name}.onnx")
            export_s = time.perf_counter() - started
            runner = OnnxModel(path, threads=args.threads)

            timings = {
                "eager b1": best_of(args.repeats, eager_run(model, arrays, 1)),
                "eager b8": best_of(args.repeats, eager_run(model, arrays, 8)),
                "onnx b1": best_of(args.repeats, onnx_run(runner, arrays, 1)),
                "onnx b8": best_of(args.repeats, onnx_run(runner, arrays, 8)),
            }
            faster = "onnx" if timings["onnx b8"] < timings["eager b8"] else "eager"
            api = EmotionRecognizer(runner if faster == "onnx" else model, device="cpu", batch_size=8)
            api_s = best_of(args.repeats, lambda api=api, arrays=arrays, rate=rate: api.predict(arrays, rate))
            overhead = api_s / timings[f"{faster} b8"] - 1.0
            rows.append((name, export_s, *(audio / timings[k] for k in timings), faster, 100.0 * overhead))
            print(f"{name}: done", flush=True)
    header = f"{'architecture':20s} {'export s':>8s} {'eager b1':>9s} {'eager b8':>9s} {'onnx b1':>9s} " \
             f"{'onnx b8':>9s} {'API on':>6s} {'API overhead':>12s}"  # fmt: skip
    print(f"\nreal-time factor (x real time), {args.threads} threads, {args.utterances} utterances of "
          f"{args.seconds:g} s\n")  # fmt: skip
    print(header)
    for name, export_s, e1, e8, o1, o8, faster, overhead in rows:
        print(f"{name:20s} {export_s:8.1f} {e1:9.0f} {e8:9.0f} {o1:9.0f} {o8:9.0f} {faster:>6s} {overhead:11.1f}%")


if __name__ == "__main__":
    main()
