"""The E-transformer paper's residual-BLSTM + E-transformer model, its Table 2 ablations (Base1-Base7) and configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from ser_lightning.cli import main
from ser_lightning.models.frontends import LogMel
from ser_lightning.models.networks.rblstm_etransformer import (
    ConvModule,
    ETransformer,
    PlainBLSTM,
    RBLSTMETransformerNet,
    ResidualBLSTM,
    StatisticsPooling,
    TransformerBlock,
)
from ser_lightning.models.rblstm_etransformer import RBLSTMETransformer

from .conftest import CONFIGS

MODEL_CONFIGS = ["rblstm_etransformer"] + [f"rblstm_etransformer_base{k}" for k in range(1, 8)]
# Narrow widths (the structure is unchanged) keep the forward passes and the smoke runs fast.
SMALL = dict(conv_channels=16, blstm_hidden=16, ffn_hidden=32, transformer_ffn=32, num_heads=4)
SMALL_CLI = [f"--model.init_args.{k}={v}" for k, v in SMALL.items()] + ["--model.init_args.segment_frames=64"]
# Table 2: the components each Base replaces or removes relative to the full model.
BASE_CHANGES = {
    1: {"blstm"},
    2: {"transformer"},
    3: {"blstm", "transformer"},
    4: {"time_pool"},
    5: {"transformer"},
    6: {"blstm", "transformer"},
    7: {"conv", "blstm", "transformer"},
}


def switches(name: str) -> dict[str, object]:
    """The architecture arguments of a model config (the optimizer left out)."""
    init = dict(yaml.safe_load((CONFIGS / "models" / f"{name}.yaml").read_text()).get("init_args") or {})
    init.pop("optimizer", None)
    return init


def layout(module: nn.Module) -> dict[str, type]:
    return {name: type(m) for name, m in module.named_modules() if name}


def changed_components(a: nn.Module, b: nn.Module) -> set[str]:
    """Top-level children whose submodules, module types or parameter shapes differ between two networks."""
    la, lb = layout(a), layout(b)
    names = {n for n in la.keys() | lb.keys() if la.get(n) is not lb.get(n)}
    pa = {n: p.shape for n, p in a.named_parameters()}
    pb = {n: p.shape for n, p in b.named_parameters()}
    names |= {n for n in pa.keys() | pb.keys() if pa.get(n) != pb.get(n)}
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize("name", MODEL_CONFIGS)
@pytest.mark.parametrize("frames", [1, 37])
def test_network_shapes_for_any_length(name: str, frames: int) -> None:
    net = RBLSTMETransformerNet(num_classes=5, **{**SMALL, **switches(name)}).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 1, 40, frames))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


def test_lightning_forward_variable_length_batch() -> None:
    torch.manual_seed(0)
    model = RBLSTMETransformer(num_classes=4, segment_frames=64, **SMALL).eval()
    assert isinstance(model.frontend, LogMel) and model.frontend.n_mels == 40
    lengths = torch.tensor([16000, 3000, 400, 9000])  # 1 s (several segments), short, one frame, medium
    wav = torch.randn(4, 16000) * (torch.arange(16000)[None, :] < lengths[:, None])
    with torch.no_grad():
        probs = model(wav, lengths)
        alone = model(wav[1:2, :3000], lengths[1:2])
    assert probs.shape == (4, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(probs[1], alone[0], atol=1e-5)


def test_defaults_follow_the_paper() -> None:
    model = RBLSTMETransformer(num_classes=4)
    assert model.segment_frames == 400  # 4 s of 10 ms frames (§3.1)
    fe = model.frontend
    assert (fe.n_mels, fe.win_length, fe.hop_length) == (40, 400, 160)  # 40 bands, 25 ms / 10 ms at 16 kHz
    net = model.network
    convs = [net.conv.block1[0], net.conv.block2[0], net.conv.block3[0]]  # §2.1
    assert [c.kernel_size[0] for c in convs] == [5, 3, 3] and all(c.stride[0] == 1 for c in convs)
    assert [c.out_channels for c in convs] == [128] * 3 and convs[0].in_channels == 40
    assert all(isinstance(b[1], nn.BatchNorm1d) and isinstance(b[2], nn.ReLU) for b in net.conv.children())
    assert len(net.blstm) == 2 and all(type(b) is ResidualBLSTM for b in net.blstm)  # §2.2
    for block in net.blstm:
        assert block.lstm.bidirectional and block.lstm.hidden_size == 128 and block.lstm.input_size == 128
        assert [(m.in_features, m.out_features) for m in block.ffn if isinstance(m, nn.Linear)] == [
            (256, 512),
            (512, 128),
        ]
        assert block.dropout.p == 0.2
    assert net.pool_dropout.p == 0.2  # §2.3
    assert isinstance(net.time_pool, nn.MaxPool1d) and (net.time_pool.kernel_size, net.time_pool.stride) == (2, 2)
    assert len(net.transformer) == 3 and all(type(t) is ETransformer for t in net.transformer)  # §2.4
    for block in net.transformer:
        assert block.encoder.self_attn.num_heads == 8 and block.encoder.self_attn.embed_dim == 128
        assert block.conv_in.conv.kernel_size[0] == 3 and block.conv_out.conv.out_channels == 128
    assert isinstance(net.stats_pool, StatisticsPooling)  # §2.5
    assert (net.classifier.in_features, net.classifier.out_features) == (256, 4)


def test_parameter_count() -> None:
    """The paper gives no parameter counts (only that time pooling "reduces the parameters by two" in the
    E-transformer, which a parameter-free pooling cannot do); this checks the count against the layer sizes of
    §2, with the encoder FFN width 2048 (PyTorch's default, not given in the paper): 3,125,252 for 4 classes.
    """
    c, m, h = 128, 40, 128
    conv = (m * c * 5 + c) + 2 * (c * c * 3 + c) + 3 * 2 * c  # three Conv1d + BN affine
    lstm = 2 * (4 * h * (c + h) + 8 * h)  # two directions: W_ih, W_hh, two biases
    ffn = (2 * h * 512 + 512) + (512 * c + c)
    encoder = (4 * c * c + 4 * c) + (c * 2048 + 2048 + 2048 * c + c) + 2 * 2 * c  # MHSA, FFN, two LayerNorms
    conv_ln = c * c * 3 + c + 2 * c
    etransformer = encoder + 2 * conv_ln
    classifier = 2 * c * 4 + 4
    expected = conv + 2 * (lstm + ffn) + 3 * etransformer + classifier
    net = RBLSTMETransformer(num_classes=4).network
    assert sum(p.numel() for p in net.parameters()) == expected == 3_125_252
    assert sum(p.numel() for p in net.transformer.parameters()) == 3 * etransformer


def test_residual_connections_are_where_the_paper_puts_them() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 7, 16)
    residual = ResidualBLSTM(16, 8, 32, 16).eval()
    plain = PlainBLSTM(16, 8, 32, 16).eval()
    plain.load_state_dict(residual.state_dict())
    with torch.no_grad():
        assert torch.allclose(residual(x) - plain(x), x, atol=1e-6)  # Eq. (1): H = FFN(BLSTM(X)) + X
        conv = ConvModule(5, 16).eval()
        z = torch.randn(2, 5, 7)
        h = conv.block2(conv.block1(z))
        assert torch.allclose(conv(z) - conv.block3(h), h, atol=1e-6)  # around the last conv block (§2.1)
        et = ETransformer(16, 4, 32, 0.0).eval()
        assert torch.allclose(et(x) - x, et.conv_out(et.encoder(et.conv_in(x))), atol=1e-5)  # Eq. (8)
    stats = StatisticsPooling()(x)
    assert torch.allclose(stats[:, :16], x.mean(1)) and torch.allclose(stats[:, 16:], x.std(1, correction=0), atol=1e-3)


def test_time_pooling_halves_the_frames_the_transformer_sees() -> None:
    seen: list[int] = []
    for pooling in (True, False):
        net = RBLSTMETransformerNet(4, time_pooling=pooling, **SMALL).eval()
        net.transformer[0].register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
        with torch.no_grad():
            net(torch.randn(1, 1, 40, 11))
    assert seen == [6, 11]


@pytest.mark.parametrize("base", sorted(BASE_CHANGES))
def test_each_base_config_changes_exactly_its_components(base: int) -> None:
    full = RBLSTMETransformer(num_classes=4, **switches("rblstm_etransformer")).network
    ablated = RBLSTMETransformer(num_classes=4, **switches(f"rblstm_etransformer_base{base}")).network
    assert changed_components(full, ablated) == BASE_CHANGES[base]
    if "blstm" in BASE_CHANGES[base]:
        assert all(type(b) is PlainBLSTM for b in ablated.blstm)
    kinds = {1: ETransformer, 2: TransformerBlock, 3: TransformerBlock, 4: ETransformer}
    if base in kinds:
        assert all(type(t) is kinds[base] for t in ablated.transformer)
    else:
        assert ablated.transformer is None
    if base == 1:  # a plain BLSTM module keeps the FFN: same parameters, no skip connection (§3.3)
        assert {n: p.shape for n, p in full.named_parameters()} == {n: p.shape for n, p in ablated.named_parameters()}
    if base == 7:
        assert ablated.conv is None and ablated.blstm[0].lstm.input_size == 40


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="blstm_block='plain'"):
        RBLSTMETransformerNet(4, conv_module=False)
    with pytest.raises(ValueError, match="num_heads"):
        RBLSTMETransformerNet(4, num_heads=5)
    with pytest.raises(ValueError, match="transformer must be"):
        RBLSTMETransformerNet(4, transformer="conformer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        RBLSTMETransformerNet(1)
    with pytest.raises(ValueError, match=r"\[batch, 1, 40, time\]"):
        RBLSTMETransformerNet(4, **SMALL)(torch.randn(2, 1, 64, 10))


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_print_config_of_every_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["fit", "--config", str(CONFIGS / "rblstm_etransformer.yaml"), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"] == "ser_lightning.models.rblstm_etransformer.RBLSTMETransformer"
    assert printed["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 1e-4
    for name in MODEL_CONFIGS:
        model = str(CONFIGS / "models" / f"{name}.yaml")
        args = ["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--model", model, "--print_config"]
        assert run_cli(args) == 0
        printed = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
        assert {k: printed[k] for k in switches(name)} == switches(name)


@pytest.mark.parametrize("name", ["rblstm_etransformer", "rblstm_etransformer_base2", "rblstm_etransformer_base7"])
def test_cli_fast_dev_run(name: str, tmp_path: Path, tiny_corpus: Path) -> None:
    args = ["fit", "--config", str(CONFIGS / "rblstm_etransformer.yaml")]
    if name != "rblstm_etransformer":
        args += ["--model", str(CONFIGS / "models" / f"{name}.yaml")]
    cli = main([*args,
                "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"),
                "--data.init_args.root", str(tiny_corpus.parent),
                "--trainer.logger.init_args.save_dir", str(tmp_path),
                "--trainer.default_root_dir", str(tmp_path),
                "--trainer.enable_progress_bar", "false",
                "--trainer.fast_dev_run", "true",
                *SMALL_CLI])  # fmt: skip
    assert isinstance(cli.model, RBLSTMETransformer)
    assert cli.trainer.state.finished
    assert {k: cli.model.hparams[k] for k in switches(name)} == switches(name)
