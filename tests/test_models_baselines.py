"""Latif et al. 2020's benchmark models: CNN, CNN-LSTM, DenseNet, DenseNet-LSTM (§4.4).

The paper gives no parameter counts for them. Each count is checked twice: against a closed-form formula written
from the layer list in the docstrings (so a change of architecture shows up as a formula mismatch) and against
the figure recorded when the models were written (4 classes, default sizes).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ser_lightning.cli import main
from ser_lightning.models.baselines import CNN, CNNLSTM, DenseNet, DenseNetLSTM
from ser_lightning.models.frontends import LogSpectrogram
from ser_lightning.models.networks.baselines import (
    GlobalAveragePool,
    LastStateLSTM,
    SequenceLSTM,
    SpectrogramCNN,
    SpectrogramDenseNet,
    TimeDistributedFC,
)
from ser_lightning.models.networks.dense_highway import DenseBlock, DenseLayer, Transition

from .conftest import CONFIGS

log = logging.getLogger(__name__)

ALL = [CNN, CNNLSTM, DenseNet, DenseNetLSTM]
RECORDED = {"CNN": 389_092, "CNNLSTM": 848_612, "DenseNet": 464_852, "DenseNetLSTM": 1_204_308}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lstm_params(inputs: int, hidden: int) -> int:
    return 4 * hidden * (inputs + hidden) + 8 * hidden  # W_ih, W_hh and the two bias vectors of 4 gates


def cnn_formula(temporal: str, classes: int = 4, freq: int = 128, channels=(32, 64, 128, 128), h=128, d=128) -> int:
    chans = [1, *channels]
    convs = sum(9 * a * b + 2 * b for a, b in itertools.pairwise(chans))  # bias-free conv + BN
    step = channels[-1] * freq // 2 ** len(channels)
    temporal_params = lstm_params(step, h) if temporal == "lstm" else step * h + 2 * h  # FC (no bias) + BN
    return convs + temporal_params + (h * d + 2 * d) + (d * classes + classes)


def densenet_formula(pooling: str, classes: int = 4, freq: int = 128, g: int = 16, layers: int = 6, blocks: int = 3,
                     lstm: int = 128, fc: int = 1000) -> int:  # fmt: skip
    channels = 2 * g
    total = 49 * channels + 2 * channels  # 7x7 stem conv + BN
    for b in range(blocks):
        for i in range(layers):
            cin = channels + i * g
            total += 2 * cin + 9 * cin * g  # BN + 3x3 conv of H_{l,G}
        channels += layers * g
        if b < blocks - 1:
            total += 2 * channels + channels * (channels // 2)  # transition: BN + 1x1 conv
            channels //= 2
    total += 2 * channels  # final BN
    rows = freq // 4 // 2 ** (blocks - 1)
    pooled = channels if pooling == "average" else lstm
    if pooling == "lstm":
        total += lstm_params(channels * rows, lstm)
    return total + (pooled * fc + 2 * fc) + (fc * classes + classes)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {cls.__name__: cls(num_classes=4, class_names=["neutral", "happy", "angry", "sad"]).eval() for cls in ALL}


def test_parameter_counts_match_formula_and_recorded_figures(models: dict[str, nn.Module]) -> None:
    formulas = {
        "CNN": cnn_formula("fc"),
        "CNNLSTM": cnn_formula("lstm"),
        "DenseNet": densenet_formula("average"),
        "DenseNetLSTM": densenet_formula("lstm"),
    }
    for name, model in models.items():
        n = count(model)
        log.info("%s: %d parameters", name, n)
        assert count(model.frontend) == 0
        assert n == formulas[name] == RECORDED[name], name
    assert models["CNN"].hparams["conv_channels"] == [32, 64, 128, 128]  # a list: hparams.yaml stays plain YAML
    # Another class count and width change the formula's terms the same way.
    assert count(SpectrogramCNN(7, conv_channels=(8, 16), temporal="lstm", hidden_size=32)) == cnn_formula(
        "lstm", classes=7, channels=(8, 16), h=32
    )
    assert count(SpectrogramDenseNet(3, growth_rate=8, block_layers=2, pooling="lstm", lstm_hidden=16)) == (
        densenet_formula("lstm", classes=3, g=8, layers=2, lstm=16)
    )


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_forward_gives_utterance_posteriors_for_variable_lengths(cls: type, models: dict[str, nn.Module]) -> None:
    model = models[cls.__name__]
    assert isinstance(model.frontend, LogSpectrogram) and model.frontend.n_bins == 128
    assert model.frontend.win_length == 400 and model.frontend.hop_length == 160 and model.segment_frames == 256
    with torch.no_grad():
        out = model(torch.randn(3, 48000), torch.tensor([48000, 30000, 1000]))
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.sum(-1).numpy(), np.ones(3), atol=1e-5)


def narrow_networks() -> list[nn.Module]:
    """The four networks at the paper's depth (four conv blocks; three DenseBlocks of six layers) but narrow."""
    return [
        SpectrogramCNN(4, conv_channels=(4, 4, 8, 8), temporal="fc", hidden_size=8, dense_units=8),
        SpectrogramCNN(4, conv_channels=(4, 4, 8, 8), temporal="lstm", hidden_size=8, dense_units=8),
        SpectrogramDenseNet(4, growth_rate=2, pooling="average", fc_units=8),
        SpectrogramDenseNet(4, growth_rate=2, pooling="lstm", lstm_hidden=8, fc_units=8),
    ]


@pytest.mark.parametrize("frames", [13, 100, 256, 300])
def test_networks_accept_any_segment_length(frames: int) -> None:
    for net in narrow_networks():
        with torch.no_grad():
            out = net.eval()(torch.randn(2, 1, 128, frames))
        assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_networks_train_with_gradients_to_the_input_layer() -> None:
    torch.manual_seed(0)
    for net in narrow_networks():
        net.train()
        loss = nn.functional.cross_entropy(net(torch.randn(3, 1, 128, 64)), torch.tensor([0, 1, 2]))
        loss.backward()
        first = next(net.parameters())
        assert first.grad is not None and first.grad.abs().sum() > 0


def names_and_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_cnn_and_cnn_lstm_differ_exactly_in_fc_versus_lstm(models: dict[str, nn.Module]) -> None:
    cnn, crnn = models["CNN"].network, models["CNNLSTM"].network
    assert isinstance(cnn.temporal, TimeDistributedFC) and isinstance(crnn.temporal, LastStateLSTM)
    a, b = names_and_shapes(cnn), names_and_shapes(crnn)
    outside_a = {k: v for k, v in a.items() if not k.startswith("temporal.")}
    outside_b = {k: v for k, v in b.items() if not k.startswith("temporal.")}
    assert outside_a == outside_b  # same conv stack, dropout, dense layer and classifier, same shapes
    assert [type(m) for m in cnn.features.modules()] == [type(m) for m in crnn.features.modules()]
    assert {k for k in a if k.startswith("temporal.")} == {
        "temporal.linear.weight",
        "temporal.norm.weight",
        "temporal.norm.bias",
        "temporal.norm.running_mean",
        "temporal.norm.running_var",
        "temporal.norm.num_batches_tracked",
    }
    assert all(k.startswith("temporal.lstm.") for k in b if k.startswith("temporal."))
    # Both temporal layers read 1024 values per step (128 maps x 8 rows) and give 128 units.
    assert cnn.temporal.linear.in_features == crnn.temporal.lstm.input_size == 128 * 8
    assert cnn.temporal.out_features == crnn.temporal.out_features == 128
    # The conv stack: four conv-BN-ReLU-max-pool blocks, BN before every ReLU.
    kinds = [type(m) for block in crnn.features for m in block]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d] * 4
    assert [block[0].out_channels for block in crnn.features] == [32, 64, 128, 128]


def test_densenet_structure_follows_section_4_4(models: dict[str, nn.Module]) -> None:
    net = models["DenseNet"].network
    blocks = [m for m in net.features if isinstance(m, DenseBlock)]
    assert len(blocks) == 3 and all(len(b) == 6 for b in blocks)  # three DenseBlocks of L = 6
    assert all(layer.conv.out_channels == 16 for b in blocks for layer in b)  # growth rate G = 16
    assert all(isinstance(layer, DenseLayer) for b in blocks for layer in b)
    assert [type(m) for m in net.features] == [
        DenseBlock, Transition, DenseBlock, Transition, DenseBlock, nn.BatchNorm2d, nn.ReLU
    ]  # fmt: skip
    assert net.stem[0].out_channels == 32 and net.stem[0].kernel_size == (7, 7)  # DenseHighway's stem, 2G maps
    assert [b.out_channels for b in blocks] == [32 + 96, 64 + 96, 80 + 96]
    assert isinstance(net.pool, GlobalAveragePool)
    assert net.fc[0].out_features == 1000 and isinstance(net.fc[1], nn.BatchNorm1d)  # FC of 1000 units, BN
    assert net.classifier.in_features == 1000


def test_densenet_and_densenet_lstm_differ_exactly_in_pooling_versus_lstm(models: dict[str, nn.Module]) -> None:
    dense, dense_lstm = models["DenseNet"].network, models["DenseNetLSTM"].network
    assert isinstance(dense.pool, GlobalAveragePool) and isinstance(dense_lstm.pool, SequenceLSTM)
    a, b = names_and_shapes(dense), names_and_shapes(dense_lstm)
    assert not any(k.startswith("pool.") for k in a)
    assert all(k.startswith("pool.lstm.") for k in b if k.startswith("pool."))
    outside_b = {k: v for k, v in b.items() if not k.startswith("pool.")}
    assert set(a) == set(outside_b)
    # Only the FC's input width follows the pooled size: 176 maps vs 128 LSTM units.
    assert {k for k in a if a[k] != outside_b[k]} == {"fc.0.weight"}
    assert a["fc.0.weight"] == (1000, 176) and b["fc.0.weight"] == (1000, 128)
    # The LSTM reads the maps as DenseHighway does: 176 maps x 128/16 rows per step.
    assert dense_lstm.pool.lstm.input_size == 176 * 8
    # With as many LSTM units as maps, every parameter outside the pooling has the same shape.
    wide = names_and_shapes(SpectrogramDenseNet(4, pooling="lstm", lstm_hidden=176))
    assert {k: v for k, v in wide.items() if not k.startswith("pool.")} == a


def test_pooling_is_global_average_and_lstm_reads_time_steps() -> None:
    maps = torch.randn(2, 3, 4, 5)
    assert torch.allclose(GlobalAveragePool(3)(maps), maps.mean(dim=(2, 3)))
    torch.manual_seed(0)
    seq_lstm = SequenceLSTM(12, 6)
    _, (h, _) = seq_lstm.lstm(maps.reshape(2, 12, 5).transpose(1, 2))
    assert torch.allclose(seq_lstm(maps), h[-1])


def test_networks_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temporal"):
        SpectrogramCNN(4, temporal="gru")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conv_channels"):
        SpectrogramCNN(4, conv_channels=())
    with pytest.raises(ValueError, match="num_classes"):
        SpectrogramCNN(1)
    with pytest.raises(ValueError, match="pooling"):
        SpectrogramDenseNet(4, pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout"):
        SpectrogramDenseNet(4, dropout=1.0)
    with pytest.raises(ValueError, match="n_freq"):
        SpectrogramDenseNet(4, n_freq=8)
    net = SpectrogramDenseNet(4, growth_rate=4, block_layers=1)
    with pytest.raises(ValueError, match="at least 13 frames"):
        net(torch.randn(1, 1, 128, 12))
    with pytest.raises(ValueError, match=r"\[batch, 1, 128, time\]"):
        net(torch.randn(1, 1, 64, 256))


# Narrow widths keep the smoke runs fast; the default sizes are tested above.
NARROW = {
    "cnn": ["--model.init_args.conv_channels", "[4, 4, 8, 8]", "--model.init_args.hidden_size", "8"],
    "cnn_lstm": ["--model.init_args.conv_channels", "[4, 4, 8, 8]", "--model.init_args.hidden_size", "8"],
    "densenet": ["--model.init_args.growth_rate", "2", "--model.init_args.fc_units", "16"],
    "densenet_lstm": ["--model.init_args.growth_rate", "2", "--model.init_args.lstm_hidden", "8"],
}


@pytest.mark.parametrize("name", sorted(NARROW))
def test_cli_fast_dev_run(name: str, tmp_path: Path, tiny_corpus: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / f"{name}.yaml"),
        "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"),
        "--data.init_args.root", str(tiny_corpus.parent),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--trainer.fast_dev_run", "true",
        *NARROW[name],
    ])  # fmt: skip
    expected = {"cnn": CNN, "cnn_lstm": CNNLSTM, "densenet": DenseNet, "densenet_lstm": DenseNetLSTM}[name]
    assert type(cli.model) is expected
    assert cli.model.class_names == ["neutral", "happy", "angry", "sad"]
    assert cli.trainer.state.finished
