"""ONNX export: exportable front-ends equal the eager ones, the tensor-only segment pooling equals the loop, and
onnxruntime matches PyTorch (max abs. difference <= 1e-4, identical argmax, 100 random utterances of varied
lengths) for every architecture — small-width instances here, the paper-size DenseHighway in a slow test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import ser_lightning
from ser_lightning.inference import EmotionRecognizer, ExportableModel, OnnxModel, export_onnx
from ser_lightning.inference.__main__ import main as inference_main
from ser_lightning.inference.export import check_parity, uses_dynamo
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
from ser_lightning.models.frontends import LogMel, LogSpectrogram
from ser_lightning.models.frontends_emoaugnet import ZcrRmsMfcc
from ser_lightning.models.frontends_librosa import LibrosaFeatureStack

TOLERANCE = 1e-4
C = {"num_classes": 4, "class_names": ["neutral", "happy", "angry", "sad"]}

#: Small-width instances of every architecture (export time does not depend much on width; parity does not at all).
# fmt: off
SMALL: dict[str, Callable[[], SERTask]] = {
    "DenseHighway": lambda: DenseHighway(growth_rate=4, block_layers=2, lstm_hidden=8, highway_units=8,
                                         segment_frames=32, eval_segment_hop=24, **C),
    "CNN": lambda: CNN(conv_channels=(4, 4, 8, 8), hidden_size=8, dense_units=8, segment_frames=32, **C),
    "CNNLSTM": lambda: CNNLSTM(conv_channels=(4, 4, 8, 8), hidden_size=8, dense_units=8, segment_frames=32, **C),
    "DenseNet": lambda: DenseNet(growth_rate=2, block_layers=2, fc_units=8, segment_frames=32, **C),
    "DenseNetLSTM": lambda: DenseNetLSTM(growth_rate=2, block_layers=2, fc_units=8, lstm_hidden=8,
                                         segment_frames=32, feature_norm="utterance", **C),
    "CNNBiLSTMMLP": lambda: CNNBiLSTMMLP(lstm_hidden=4, segment_frames=16, **C),
    "EmoAugNet": lambda: EmoAugNet(segment_frames=16, **C),
    "RBLSTMETransformer": lambda: RBLSTMETransformer(conv_channels=16, blstm_hidden=8, ffn_hidden=16,
                                                     num_transformer_blocks=1, num_heads=2, transformer_ffn=16,
                                                     segment_frames=48, **C),
    "EndToEndRegressor": lambda: EndToEndRegressor(conv_channels=(4, 4), lstm_hidden=8, lstm_layers=1, num_targets=2,
                                                   target_names=["arousal", "valence"]),
}
# fmt: on
#: Exported in the default run; the others are exported with ``-m slow`` (about 10-40 s each on 2 loaded cores).
DEFAULT = {"DenseHighway"}
"""The export command's test exports the EndToEndRegressor (the TorchScript-based path) in the default run."""


def small(name: str) -> SERTask:
    torch.manual_seed(0)
    model = SMALL[name]().eval()
    for module in model.modules():  # non-trivial BatchNorm statistics, so that they are checked too
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("frontend", [LogSpectrogram(), LogMel(), LibrosaFeatureStack(), ZcrRmsMfcc()],
                         ids=lambda f: type(f).__name__)  # fmt: skip
def test_exportable_frontends_equal_the_eager_ones(frontend: torch.nn.Module) -> None:
    torch.manual_seed(0)
    x = 0.1 * torch.randn(3, 30000)
    x[1, 5000:9000] = 0.0
    lengths = torch.tensor([30000, 21111, 9000])
    eager, frames = frontend(x, lengths)
    frontend.exportable = True
    try:
        real, real_frames = frontend(x, lengths)
    finally:
        frontend.exportable = False
    assert torch.equal(frames, real_frames)
    scale = eager.abs().amax(dim=(0, 1, 3), keepdim=True).clamp_min(1.0)  # per feature row
    assert ((real - eager).abs() / scale).max() < 2e-4
    assert torch.equal(frontend(x, lengths)[0], eager)  # the switch leaves the eager path as it was


@pytest.mark.parametrize("name", sorted(SMALL))
def test_tensor_segment_pooling_equals_the_models_forward(name: str) -> None:
    model = small(name)
    wrapper = ExportableModel(model)
    assert model.frontend.exportable is False and wrapper.task.frontend.exportable is True
    rate = model.frontend.sample_rate
    rng = np.random.default_rng(1)
    lengths = torch.tensor([int(rate * s) for s in (0.2, 0.77, 1.9, 3.3)])
    x = torch.from_numpy(0.1 * rng.standard_normal((4, int(lengths.max()))).astype(np.float32))
    x[torch.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    with torch.no_grad():
        expected, got = model(x, lengths), wrapper(x, lengths)
    if isinstance(got, tuple):
        got = got[0]
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)


def _parity(name: str, tmp_path: Path) -> tuple[SERTask, Path]:
    model = small(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", example_seconds=1.0)
    batched = check_parity(model, path, utterances=100, batch_size=10, seed=0, max_seconds=3.0)
    single = check_parity(model, path, utterances=10, batch_size=1, seed=1)
    for report in (batched, single):
        assert report["max_abs_diff"] <= TOLERANCE, report
        assert report["argmax_mismatches"] == 0, report
    return model, path


@pytest.mark.parametrize(
    "name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in sorted(SMALL)]
)
def test_onnx_parity_with_pytorch(name: str, tmp_path: Path) -> None:
    model, path = _parity(name, tmp_path)
    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert meta["ser_lightning"] == ser_lightning.__version__ and meta["architecture"] == name
    assert int(meta["sample_rate"]) == model.frontend.sample_rate
    assert meta["exporter"] == ("dynamo" if uses_dynamo(model) else "torchscript")
    runner = OnnxModel(path)
    if runner.task == "classification":
        assert json.loads(meta["class_names"]) == C["class_names"] == runner.class_names
    else:
        assert runner.target_names == ["arousal", "valence"] and runner.frame_rate_hz == 25.0
    # the API gives the same results from the export as from the model
    rate = model.frontend.sample_rate
    rng = np.random.default_rng(2)
    arrays = [(0.1 * rng.standard_normal(int(rate * s))).astype(np.float32) for s in (0.4, 1.3, 2.2)]
    eager = EmotionRecognizer(model, device="cpu").predict(arrays, sample_rate=rate)
    onnx_results = EmotionRecognizer.from_onnx(path).predict(arrays, sample_rate=rate)
    for a, b in zip(eager, onnx_results, strict=True):
        got, expected = (b.posteriors, a.posteriors) if runner.task == "classification" else (b.frames, a.frames)
        np.testing.assert_allclose(got, expected, atol=TOLERANCE)


@pytest.mark.slow
def test_paper_size_dense_highway_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DenseHighway(**C).eval()
    path = export_onnx(model, tmp_path / "dense_highway.onnx")
    report = check_parity(model, path, utterances=100, batch_size=4, max_seconds=6.0)
    assert report["max_abs_diff"] <= TOLERANCE and report["argmax_mismatches"] == 0


def test_export_command_checks_parity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_inference import save_checkpoint

    ckpt = save_checkpoint(small("EndToEndRegressor"), tmp_path / "e2e.ckpt")
    out = tmp_path / "e2e.onnx"
    assert inference_main(["export", str(ckpt), "-o", str(out), "--check", "10"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["utterances"] == 10 and report["max_abs_diff"] <= TOLERANCE
    # an impossible tolerance fails the command
    assert inference_main(["export", str(ckpt), "-o", str(out), "--check", "2", "--tolerance", "0"]) == 1
    with pytest.raises(ValueError, match="not a ser_lightning export"):
        bare = onnx.load(str(out))
        del bare.metadata_props[:]
        onnx.save(bare, str(tmp_path / "bare.onnx"))
        OnnxModel(tmp_path / "bare.onnx")
