from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from ser_lightning.models import DenseHighway, mixup
from ser_lightning.models.classification import segment_starts
from ser_lightning.models.frontends import LogSpectrogram
from ser_lightning.models.networks import DenseHighwayNet, HighwayLayer


@pytest.fixture(scope="module")
def model() -> DenseHighway:
    torch.manual_seed(0)
    return DenseHighway(num_classes=4, class_names=["neutral", "happy", "angry", "sad"]).eval()


@pytest.mark.parametrize("frames", [8, 100, 256, 300])
def test_dense_highway_net_shapes_for_variable_lengths(frames: int) -> None:
    net = DenseHighwayNet(num_classes=5).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 1, 128, frames))
    assert out.shape == (3, 5)
    assert torch.isfinite(out).all()


def test_dense_highway_net_layout() -> None:
    net = DenseHighwayNet(num_classes=4)
    # Two DenseBlocks of L = 6 layers, growth 24; stem 2G = 48 maps; transition compresses by half.
    assert len(net.block1) == 6 and len(net.block2) == 6
    assert net.block1.out_channels == 48 + 6 * 24
    assert net.block2.out_channels == (48 + 6 * 24) // 2 + 6 * 24
    assert sum(isinstance(m, HighwayLayer) for m in net.modules()) == 3
    assert net.highway[0].transform.out_features == 128
    assert net.dropout.p == 0.5
    # The LSTM reads the reshaped maps: channels x (128 / 8) frequency rows per step.
    assert net.lstm.input_size == net.block2.out_channels * 16
    with pytest.raises(ValueError, match="multiple of 8"):
        DenseHighwayNet(num_classes=4, n_freq=100)
    with pytest.raises(ValueError, match=r"\[batch, 1, 128, time\]"):
        net(torch.randn(2, 1, 64, 256))


def test_highway_layer_is_gated_mix_of_transform_and_input() -> None:
    layer = HighwayLayer(4)
    x = torch.randn(2, 4)
    t = torch.sigmoid(layer.gate(x))
    expected = torch.relu(layer.transform(x)) * t + x * (1 - t)
    assert torch.allclose(layer(x), expected)


def test_frontend_frames_ignore_batch_padding() -> None:
    fe = LogSpectrogram()
    torch.manual_seed(1)
    wav = torch.randn(1, 16000)
    alone, frames_alone = fe(wav, torch.tensor([16000]))
    padded = torch.cat([wav, torch.zeros(1, 8000)], dim=1)
    batch, frames_batch = fe(padded, torch.tensor([16000]))
    assert frames_alone.item() == frames_batch.item() == (16000 - 400) // 160 + 1
    n = int(frames_alone)
    assert torch.allclose(alone[..., :n], batch[..., :n], atol=1e-5)
    assert torch.all(batch[..., n:] == fe.pad_value)
    assert alone.shape[2] == 128


def test_frontend_matches_hamming_stft_definition() -> None:
    fe = LogSpectrogram(sample_rate=16000, n_bins=128)
    wav = torch.randn(1, 4000, dtype=torch.float64).float()
    feats, _ = fe(wav)
    frame = wav[0, 160:560].double() * torch.hamming_window(400, periodic=False, dtype=torch.float64)
    power = torch.fft.rfft(frame).abs().pow(2)[:128]
    assert torch.allclose(feats[0, 0, :, 1].double(), torch.log(power + 1e-6), atol=1e-3)


def test_mixup_mixes_labels_with_the_same_lambda_as_inputs() -> None:
    torch.manual_seed(3)
    x = torch.randn(6, 1, 4, 5)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    mixed, soft, lam = mixup(x, y, alpha=0.4, num_classes=4)
    assert 0.0 <= lam <= 1.0
    # Recover the permutation from the inputs, then check labels use the same lam and partner.
    onehot = torch.nn.functional.one_hot(y, 4).float()
    for i in range(6):
        partner = [j for j in range(6) if torch.allclose(mixed[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)]
        assert partner, "input is not a lam-combination of two examples"
        assert any(torch.allclose(soft[i], lam * onehot[i] + (1 - lam) * onehot[j]) for j in partner)
    assert torch.allclose(soft.sum(dim=1), torch.ones(6))


def test_training_step_uses_soft_targets_under_mixup() -> None:
    torch.manual_seed(0)
    model = DenseHighway(num_classes=4, mixup_alpha=0.2, segment_frames=32, growth_rate=4, block_layers=1)
    seen = {}

    class Spy(torch.nn.CrossEntropyLoss):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            seen["target"] = target
            return super().forward(logits, target)

    model.criterion = Spy()
    batch = {
        "waveform": torch.randn(4, 8000),
        "length": torch.tensor([8000, 6000, 4000, 8000]),
        "label": torch.tensor([0, 1, 2, 3]),
    }
    model.log = lambda *a, **k: None  # no trainer attached
    loss = model.training_step(batch, 0)
    assert loss.requires_grad
    assert seen["target"].shape == (4, 4) and torch.allclose(seen["target"].sum(1), torch.ones(4))


def test_segment_starts_cover_the_utterance() -> None:
    assert segment_starts(100, 256, 256) == [0]
    assert segment_starts(256, 256, 256) == [0]
    assert segment_starts(600, 256, 256) == [0, 256, 344]
    assert segment_starts(600, 256, 128) == [0, 128, 256, 344]


def test_utterance_posterior_is_mean_of_segment_posteriors(model: DenseHighway) -> None:
    torch.manual_seed(2)
    n = 700
    feats = torch.randn(1, 1, 128, n)
    probs = model.utterance_posteriors(feats, torch.tensor([n]))
    with torch.no_grad():
        segs = [feats[..., s : s + 256] for s in segment_starts(n, 256, 256)]
        expected = torch.stack([torch.softmax(model.network(s), -1)[0] for s in segs]).mean(0)
    assert torch.allclose(probs[0], expected, atol=1e-5)
    assert torch.allclose(probs.sum(-1), torch.ones(1), atol=1e-5)


def test_utterance_posteriors_do_not_depend_on_batch_companions(model: DenseHighway) -> None:
    torch.manual_seed(4)
    short, long = torch.randn(1, 20000), torch.randn(1, 70000)
    with torch.no_grad():
        alone = model(short, torch.tensor([20000]))
        batch = torch.zeros(2, 70000)
        batch[0, :20000], batch[1] = short[0], long[0]
        together = model(batch, torch.tensor([20000, 70000]))
    assert torch.allclose(alone[0], together[0], atol=1e-5)


def test_crop_segments_pads_short_and_crops_long(model: DenseHighway) -> None:
    feats = torch.arange(300, dtype=torch.float32).expand(2, 1, 128, 300).clone()
    frames = torch.tensor([300, 100])
    feats[1, ..., 100:] = model.frontend.pad_value
    torch.manual_seed(0)
    crops = model.crop_segments(feats, frames, random=True)
    assert crops.shape == (2, 1, 128, 256)
    start = int(crops[0, 0, 0, 0])
    assert 0 <= start <= 44 and torch.equal(crops[0, 0, 0], torch.arange(start, start + 256).float())
    assert torch.equal(crops[1, 0, 0, :100], torch.arange(100).float())
    assert torch.all(crops[1, ..., 100:] == model.frontend.pad_value)


def test_ua_wa_f1_match_scikit_learn() -> None:
    model = DenseHighway(num_classes=4)
    y_true = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    y_pred = torch.tensor([0, 0, 0, 0, 1, 2, 1, 0, 2, 2, 3, 3])
    probs = torch.nn.functional.one_hot(y_pred, 4).float()
    values = {k: float(v) for k, v in model.test_metrics(probs, y_true).items()}
    assert values["test_ua"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert values["test_wa"] == pytest.approx(float((y_true == y_pred).float().mean()))
    assert values["test_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert values["test_ua"] != pytest.approx(values["test_wa"])  # the example is imbalanced on purpose


def test_model_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="class names"):
        DenseHighway(num_classes=4, class_names=["a", "b"])
    with pytest.raises(ValueError, match="mixup_alpha"):
        DenseHighway(num_classes=4, mixup_alpha=-1)
    with pytest.raises(ValueError, match="num_classes"):
        DenseHighway(num_classes=1)


def test_forward_is_utterance_level_posteriors(model: DenseHighway) -> None:
    with torch.no_grad():
        out = model(torch.randn(3, 48000), torch.tensor([48000, 30000, 1000]))
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(-1).numpy(), np.ones(3), atol=1e-5)


def test_log_mel_matches_librosa() -> None:
    import librosa

    from ser_lightning.models.frontends import LogMel

    fe = LogMel(sample_rate=16000, n_mels=40)
    wav = torch.from_numpy(np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1)
    feats, frames = fe(wav[None], torch.tensor([16000]))
    ref = librosa.feature.melspectrogram(
        y=wav.numpy().astype(np.float64), sr=16000, n_fft=512, win_length=400, hop_length=160,
        window="hamming", center=False, n_mels=40, htk=True, norm=None,
    )  # fmt: skip
    assert feats.shape[-1] == int(frames) == ref.shape[1]
    # Same filterbank (torchaudio's HTK mel, no area normalisation); the window differs only in symmetry.
    np.testing.assert_allclose(feats[0, 0].numpy(), np.log(ref + 1e-6), atol=0.05)
