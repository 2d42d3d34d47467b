"""Pankratz et al.' CNN + BiLSTM + MLP (with and without dropout) and its 162-row librosa feature stack."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from torch import nn

from ser_lightning.cli import main
from ser_lightning.models.cnn_bilstm_mlp import CNNBiLSTMMLP
from ser_lightning.models.frontends_librosa import LibrosaFeatureStack
from ser_lightning.models.networks.cnn_bilstm_mlp import CNNBiLSTMMLPNet

from .conftest import CONFIGS

SR = 16000


def _signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced-like test signal: a gliding harmonic tone, noise, and a silent tail (exercises top_db)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.2 * t)) + 0.1 * np.sin(2 * np.pi * 540 * t)
    y = y + 0.03 * rng.standard_normal(t.size)
    y[t > 0.7 * seconds] *= 1e-4
    return y.astype(np.float32)


def _librosa_stack(y: np.ndarray) -> dict[str, np.ndarray]:
    """The authors' feature calls (defaults, sr=16000), with the toolkit's center=False framing."""
    return {
        "zcr": librosa.feature.zero_crossing_rate(y=y, center=False),
        "chroma": librosa.feature.chroma_stft(S=np.abs(librosa.stft(y, center=False)), sr=SR, tuning=0.0),
        "mfcc": librosa.feature.mfcc(y=y, sr=SR, center=False),
        "rms": librosa.feature.rms(y=y, center=False),
        "mel": librosa.feature.melspectrogram(y=y, sr=SR, center=False),
    }


# Tolerance per block, relative to the block's largest magnitude in each frame (float32 STFTs on both sides).
TOLERANCE = {"zcr": 1e-6, "chroma": 1e-5, "mfcc": 1e-5, "rms": 1e-5, "mel": 1e-5}


def test_feature_stack_matches_librosa_per_block_on_a_padded_batch() -> None:
    """Every block (all computed in torch) equals librosa on each unpadded utterance of a zero-padded batch."""
    front = LibrosaFeatureStack(SR)
    assert front.num_features == 162
    assert [(k, s.stop - s.start) for k, s in front.blocks.items()] == [
        ("zcr", 1), ("chroma", 12), ("mfcc", 20), ("rms", 1), ("mel", 128),
    ]  # fmt: skip
    signals = [_signal(2.2, seed=0), _signal(1.3, seed=1)]
    batch = torch.zeros(2, len(signals[0]))
    for row, y in enumerate(signals):
        batch[row, : len(y)] = torch.from_numpy(y)
    lengths = torch.tensor([len(y) for y in signals])
    features, frames = front(batch, lengths)
    assert features.shape == (2, 1, 162, front.num_frames(lengths).max())
    for row, y in enumerate(signals):
        reference = _librosa_stack(y)
        n = reference["mel"].shape[1]
        assert int(frames[row]) == n
        ours = features[row, 0].numpy()
        for name, rows in front.blocks.items():
            got, want = ours[rows, :n], reference[name]
            scale = np.abs(want).max(axis=0, keepdims=True) + 1e-12
            error = float((np.abs(got - want) / scale).max())
            assert error < TOLERANCE[name], f"{name}: relative error {error:.2e}"
        assert np.all(ours[:, n:] == 0.0), "frames past the utterance must be the paper's zero padding"


def test_chroma_with_librosa_tuning_estimate_is_close_on_a_tuned_signal() -> None:
    """On an A440-tuned signal librosa's per-utterance tuning estimate is ~0, so the fixed-tuning chroma agrees."""
    t = np.arange(SR * 2) / SR
    y = sum(np.sin(2 * np.pi * 440.0 * 2 ** (k / 12) * t) for k in (0, 4, 7)).astype(np.float32) * 0.2
    front = LibrosaFeatureStack(SR)
    ours = front.compute(torch.from_numpy(y)[None])[0, 0, front.blocks["chroma"]].numpy()
    estimated = librosa.feature.chroma_stft(S=np.abs(librosa.stft(y, center=False)), sr=SR)
    assert np.abs(ours - estimated).max() < 0.05


def test_feature_stack_frames_and_validation() -> None:
    front = LibrosaFeatureStack(SR)
    for samples in (2048, 2559, 2560, 16000):
        assert int(front.num_frames(torch.tensor([samples]))) == front.compute(torch.randn(1, samples)).shape[-1]
    with pytest.raises(ValueError, match="n_mfcc"):
        LibrosaFeatureStack(SR, n_mfcc=200)
    with pytest.raises(ValueError, match="chroma_tuning"):
        LibrosaFeatureStack(SR, chroma_tuning=0.7)


@pytest.mark.parametrize("frames", [3, 15, 128, 200])
def test_network_shapes(frames: int) -> None:
    net = CNNBiLSTMMLPNet(8).eval()
    assert net.min_frames == 15
    with torch.no_grad():
        assert net(torch.randn(3, 1, 162, frames)).shape == (3, 8)
    with pytest.raises(ValueError, match="expected"):
        net(torch.randn(3, 1, 40, frames))


def test_network_argument_validation() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        CNNBiLSTMMLPNet(1)
    with pytest.raises(ValueError, match="dropout_p"):
        CNNBiLSTMMLPNet(8, dropout_p=1.0)
    with pytest.raises(ValueError, match="equal length"):
        CNNBiLSTMMLPNet(8, conv_channels=(60,), conv_kernels=(5, 3))


def test_parameter_count() -> None:
    """The paper (§4) gives no parameter count; this pins the count its layer sizes imply, for 8 RAVDESS classes.

    conv 162->60 k5: 48,660; conv 60->40 k3: 7,240; BiLSTM 40->2x40: 2 x 13,120 = 26,240; BatchNorm(160): 320;
    FC 160->60: 9,660; 60->50: 3,050; 50->8: 408. Total 95,578; dropout adds none.
    """
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in CNNBiLSTMMLPNet(8).named_modules()
        if name in {"features.conv1", "features.conv2", "lstm", "classifier.norm", "classifier.fc1",
                    "classifier.fc2", "classifier.out"}
    }  # fmt: skip
    assert counts == {
        "features.conv1": 48660, "features.conv2": 7240, "lstm": 26240, "classifier.norm": 320,
        "classifier.fc1": 9660, "classifier.fc2": 3050, "classifier.out": 408,
    }  # fmt: skip
    for dropout in (True, False):
        assert sum(p.numel() for p in CNNBiLSTMMLPNet(8, dropout=dropout).parameters()) == 95578


def test_dropout_switch_changes_only_the_dropout_layers() -> None:
    on, off = CNNBiLSTMMLPNet(8, dropout=True), CNNBiLSTMMLPNet(8, dropout=False)
    modules_on = {name: type(m) for name, m in on.named_modules()}
    modules_off = {name: type(m) for name, m in off.named_modules()}
    extra = {name: kind for name, kind in modules_on.items() if name not in modules_off}
    assert extra == {"classifier.dropout1": nn.Dropout, "classifier.dropout2": nn.Dropout}
    assert {n: k for n, k in modules_on.items() if n not in extra} == modules_off
    assert not any(isinstance(m, nn.Dropout) for m in off.modules())
    assert all(m.p == 0.25 for m in on.modules() if isinstance(m, nn.Dropout))
    # Same parameter names and shapes: a state dict loads across the two settings.
    assert {k: v.shape for k, v in on.state_dict().items()} == {k: v.shape for k, v in off.state_dict().items()}
    off.load_state_dict(on.state_dict())
    on.eval(), off.eval()
    x = torch.randn(2, 1, 162, 40)
    with torch.no_grad():
        torch.testing.assert_close(on(x), off(x))


def test_lightning_module_forward_on_variable_lengths() -> None:
    model = CNNBiLSTMMLP(num_classes=8).eval()
    assert model.segment_frames == 128 and model.hparams["sample_rate"] == 16000
    assert isinstance(model.frontend, LibrosaFeatureStack)
    lengths = torch.tensor([80000, 48000, 20000, 1000])  # 5 s (two segments), 3 s, 1.25 s, shorter than a frame
    waveform = torch.randn(4, 80000) * 0.1
    waveform[torch.arange(80000)[None, :] >= lengths[:, None]] = 0.0
    with torch.no_grad():
        probs = model(waveform, lengths)
    assert probs.shape == (4, 8)
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))
    off = CNNBiLSTMMLP(num_classes=8, dropout=False)
    assert not any(isinstance(m, nn.Dropout) for m in off.modules())


@pytest.mark.parametrize(
    "extra",
    [[], ["--model", str(CONFIGS / "models" / "cnn_bilstm_mlp_no_dropout.yaml")]],
    ids=["dropout", "no_dropout"],
)
def test_cli_smoke(extra: list[str], tmp_path: Path, tiny_corpus: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "cnn_bilstm_mlp.yaml"), *extra,
        "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"),
        "--data.init_args.root", str(tiny_corpus.parent),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--trainer.fast_dev_run", "true",
    ])  # fmt: skip
    assert isinstance(cli.model, CNNBiLSTMMLP)
    assert cli.model.hparams["dropout"] is (not extra)
    assert cli.trainer.state.finished
