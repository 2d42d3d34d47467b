"""EmoAugNet (Paul et al.): librosa-equivalent front-end, Table I network and count, activation switch, CLI smoke."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from ser_lightning.cli import main
from ser_lightning.models.emoaugnet import EmoAugNet
from ser_lightning.models.frontends_emoaugnet import ZcrRmsMfcc
from ser_lightning.models.networks.emoaugnet import EmoAugConvLSTMNet, keras_parameter_count

from .conftest import CONFIGS

SR = 22050
CLIP = 55125  # 2.5 s at 22.05 kHz: the paper's clip


def _speechlike(samples: int, seed: int) -> np.ndarray:
    """An amplitude-modulated harmonic tone with noise, silent onset and a quiet tail (exercises top_db)."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SR
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.1 * np.sin(2 * np.pi * 660 * t)
    y = y + 0.02 * rng.standard_normal(samples)
    y[:3000] = 0.0
    y[-4000:] *= 1e-3
    return y.astype(np.float32)


def test_frontend_matches_librosa_in_a_padded_batch() -> None:
    """Every valid frame equals librosa's on the utterance alone, even when the utterance is batch-padded.

    Tolerances (float32): ZCR exact (counts), RMS 1e-5 absolute, MFCC 1e-2 absolute on values up to ~550 (the
    measured difference is below 1e-3).
    """
    fe = ZcrRmsMfcc(SR)
    long, short = _speechlike(CLIP, 0), _speechlike(30000, 1)
    wav = torch.zeros(2, CLIP)
    wav[0], wav[1, :30000] = torch.from_numpy(long), torch.from_numpy(short)
    wav[1, 30000:] = 0.7  # garbage past the end must not leak into the short utterance's frames
    feats, frames = fe(wav, torch.tensor([CLIP, 30000]))
    assert feats.shape == (2, 1, 22, 108) and frames.tolist() == [108, 1 + 30000 // 512]
    for row, y in enumerate([long, short]):
        n = int(frames[row])
        ours = feats[row, 0, :, :n].double().numpy()
        zcr = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0]
        rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0]
        mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, n_fft=2048, hop_length=512)
        assert ours.shape[1] == zcr.shape[0] == rms.shape[0] == mfcc.shape[1]
        np.testing.assert_allclose(ours[0], zcr, atol=1e-6)
        np.testing.assert_allclose(ours[1], rms, atol=1e-5)
        np.testing.assert_allclose(ours[2:], mfcc, atol=1e-2)
    assert torch.all(feats[1, :, :, int(frames[1]) :] == fe.pad_value)


@pytest.mark.parametrize("samples", [1, 511, 512, 2047, 2048, 30000, CLIP])
def test_frontend_frame_count_matches_compute(samples: int) -> None:
    fe = ZcrRmsMfcc(SR)
    computed = fe.compute(torch.randn(1, samples)).shape[-1]
    assert computed == int(fe.num_frames(torch.tensor([samples]))) == 1 + samples // 512
    assert int(fe.num_frames(torch.tensor([fe.segment_samples(108)]))) == 108


@pytest.mark.parametrize("frames", [1, 37])
def test_network_shapes_for_variable_lengths(frames: int) -> None:
    net = EmoAugConvLSTMNet(num_classes=7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 22, frames))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_network_follows_table_one_shapes_and_frame_major_flattening() -> None:
    net = EmoAugConvLSTMNet(num_classes=7, input_norm=False).eval()
    seen: dict[str, torch.Tensor] = {}
    net.conv.register_forward_hook(lambda m, i, o: seen.update(conv_in=i[0], conv_out=o))
    net.lstm1.register_forward_hook(lambda m, i, o: seen.update(lstm1=o[0]))
    x = torch.randn(1, 1, 22, 108)
    with torch.no_grad():
        assert net(x).shape == (1, 7)
    # Frame-major: [zcr, rms, mfcc_0..19] of frame 0, then of frame 1, ... -> (None, 2376, 1) in Keras.
    assert torch.equal(seen["conv_in"], x[:, 0].transpose(1, 2).reshape(1, 1, 2376))
    assert seen["conv_in"][0, 0, 22] == x[0, 0, 0, 1]
    assert seen["conv_out"].shape == (1, 256, 297)  # Table I: MaxPooling1D (None, 297, 256)
    assert seen["lstm1"].shape == (1, 297, 128)  # Table I: LSTM (None, 297, 128)


def test_keras_parameter_count_is_table_one() -> None:
    """Keras count = trainable params + BN moving mean/var - the LSTMs' second bias vectors (``bias_hh``).

    Table I per layer: Conv1D 1,536 / 393,728 / 393,472; BN 1,024 / 2,048 / 1,024 / 512 / 256 / 128 (4 x units:
    gamma, beta, moving mean, moving variance); LSTM 197,120 / 131,584 (one 4 x 128 bias); Dense 16,512 / 8,256 /
    2,080 / 231. Total 1,149,511 for 7 classes. The optional input standardisation (no trainable weights) is not a
    Table I layer and is left out.
    """
    for input_norm in (True, False):
        net = EmoAugConvLSTMNet(num_classes=7, input_norm=input_norm)
        assert keras_parameter_count(net) == 1_149_511
    net = EmoAugConvLSTMNet(num_classes=7, input_norm=False)
    assert keras_parameter_count(net, exclude=()) == 1_149_511
    trainable = sum(p.numel() for p in net.parameters())
    assert trainable == 1_149_511 - 2 * (256 + 512 + 256 + 128 + 64 + 32) + 4 * 128 * 2  # PyTorch's own count
    per_layer = [keras_parameter_count(m, exclude=()) for m in net.conv if any(True for _ in m.parameters())]
    assert per_layer == [1536, 1024, 393_728, 2048, 393_472, 1024]
    assert keras_parameter_count(net.lstm1) == 197_120 and keras_parameter_count(net.lstm2) == 131_584
    dense = [keras_parameter_count(m) for m in net.classifier if any(True for _ in m.parameters())]
    assert dense == [16_512, 512, 8256, 256, 2080, 128, 231]


def _model_from_config(name: str) -> EmoAugNet:
    spec = yaml.safe_load((CONFIGS / "models" / name).read_text())
    torch.manual_seed(0)
    return EmoAugNet(num_classes=7, **spec.get("init_args", {}))


def test_activation_switch_changes_only_the_convolution_activations() -> None:
    relu, elu = _model_from_config("emoaugnet.yaml"), _model_from_config("emoaugnet_elu.yaml")
    assert relu.hparams["activation"] == "relu" and elu.hparams["activation"] == "elu"
    # Same parameters and buffers, names and shapes.
    assert {k: v.shape for k, v in relu.state_dict().items()} == {k: v.shape for k, v in elu.state_dict().items()}
    a, b = dict(relu.named_modules()), dict(elu.named_modules())
    assert a.keys() == b.keys()
    differing = [name for name in a if type(a[name]) is not type(b[name])]
    assert differing == ["network.conv.1", "network.conv.6", "network.conv.11"]
    assert all(isinstance(a[n], nn.ReLU) and isinstance(b[n], nn.ELU) for n in differing)
    # The Dense layers keep the paper's ELU in both settings.
    assert sum(isinstance(m, nn.ELU) for m in relu.network.classifier) == 3


def test_lightning_module_forward_on_variable_length_batch() -> None:
    torch.manual_seed(0)
    model = EmoAugNet(num_classes=4, class_names=["neutral", "happy", "angry", "sad"]).eval()
    assert model.segment_frames == 108 and model.frontend.sample_rate == SR
    lengths = torch.tensor([62000, 4000])  # 122 frames: 2 segments; 8 frames: 1 segment padded to 108
    wav = torch.randn(2, 62000) * 0.1
    with torch.no_grad():
        probs = model(wav, lengths)
    assert probs.shape == (2, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-5)


def test_task_widths_reach_the_network_and_its_hparams() -> None:
    """``conv_channels`` / ``lstm_hidden`` (the leaderboard's CPU sizes) change the network and nothing else."""
    narrow = EmoAugNet(num_classes=4, conv_channels=(64, 128, 64), lstm_hidden=64)
    widths = [m.out_channels for m in narrow.network.conv if isinstance(m, torch.nn.Conv1d)]
    assert widths == [64, 128, 64] and narrow.network.lstm1.hidden_size == 64
    assert narrow.hparams["conv_channels"] == [64, 128, 64]  # plain YAML in hparams.yaml
    paper = EmoAugNet(num_classes=4)
    assert [m.out_channels for m in paper.network.conv if isinstance(m, torch.nn.Conv1d)] == [256, 512, 256]
    assert paper.network.lstm1.hidden_size == 128
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in paper.parameters()) / 5
    with torch.no_grad():
        assert narrow.eval()(torch.randn(2, 40000) * 0.1).shape == (2, 4)


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="activation"):
        EmoAugConvLSTMNet(num_classes=7, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout"):
        EmoAugConvLSTMNet(num_classes=7, dropout=1.0)
    with pytest.raises(ValueError, match=r"\[batch, 1, 22, frames\]"):
        EmoAugConvLSTMNet(num_classes=7)(torch.randn(2, 1, 40, 108))
    with pytest.raises(ValueError, match="n_mfcc"):
        ZcrRmsMfcc(SR, n_mfcc=0)


@pytest.mark.parametrize(
    "extra",
    [[], ["--model", str(CONFIGS / "models" / "emoaugnet_elu.yaml")]],
    ids=["emoaugnet", "emoaugnet_elu"],
)
def test_cli_smoke(extra: list[str], tiny_corpus: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            "--config", str(CONFIGS / "emoaugnet.yaml"),
            *extra,
            "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"),
            "--data.init_args.root", str(tiny_corpus.parent),
            "--data.init_args.batch_size", "2",  # one batch of 2 per stage keeps the smoke test quick on CPU
            "--trainer.logger.init_args.save_dir", str(tmp_path),
            "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false",
            "--trainer.fast_dev_run", "true",
        ]
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["--config", str(CONFIGS / "emoaugnet.yaml")],
        ["--config", str(CONFIGS / "dense_highway.yaml"), "--model", str(CONFIGS / "models" / "emoaugnet.yaml")],
        ["--config", str(CONFIGS / "dense_highway.yaml"), "--model", str(CONFIGS / "models" / "emoaugnet_elu.yaml")],
    ],
    ids=["full", "model", "model_elu"],
)
def test_print_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args, "--print_config"])
    assert not exit_.value.code
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "ser_lightning.models.emoaugnet.EmoAugNet"
