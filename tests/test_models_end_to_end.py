"""The end-to-end regressor (Triantafyllopoulos et al. 2019), the regression base (CCC) and continuous data."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torchmetrics.functional.regression import concordance_corrcoef

from ser_lightning.data.synthetic_continuous import SyntheticContinuousDataModule
from ser_lightning.models.end_to_end import EndToEndRegressor
from ser_lightning.models.networks.end_to_end import EndToEndNet
from ser_lightning.models.regression import CCCLoss, masked_ccc

from .conftest import CONFIGS

# Narrow widths keep the tests fast; the paper's layout is checked on the network alone.
SMALL = {"conv_channels": (4, 8), "lstm_hidden": 16}


def small_model(**kwargs: object) -> EndToEndRegressor:
    torch.manual_seed(0)
    return EndToEndRegressor(**{"num_targets": 2, "target_names": ["arousal", "valence"], **SMALL, **kwargs})


# --------------------------------------------------------------------------------------------- CCC loss
def test_ccc_loss_equals_one_minus_torchmetrics_ccc() -> None:
    torch.manual_seed(0)
    target = torch.randn(3, 50, 2)
    preds = 0.6 * target + 0.3 * torch.randn(3, 50, 2) + 0.1
    expected = concordance_corrcoef(preds.reshape(-1, 2), target.reshape(-1, 2))
    assert torch.allclose(masked_ccc(preds, target), expected, atol=1e-5)
    assert torch.allclose(CCCLoss()(preds, target), 1 - expected.mean(), atol=1e-5)
    # The documented single-output example of torchmetrics.
    x, y = torch.tensor([2.5, 0.0, 2.0, 8.0]), torch.tensor([3.0, -0.5, 2.0, 7.0])
    assert torch.allclose(masked_ccc(x[:, None], y[:, None]), torch.tensor([0.9777]), atol=1e-4)


def test_ccc_loss_ignores_padded_frames() -> None:
    torch.manual_seed(0)
    target, preds = torch.randn(2, 40, 2), torch.randn(2, 40, 2)
    mask = torch.arange(40)[None, :] < torch.tensor([40, 25])[:, None]
    loss = CCCLoss()(preds, target, mask)
    changed_p, changed_t = preds.clone(), target.clone()
    changed_p[1, 25:] = 100.0
    changed_t[1, 25:] = -7.0
    assert torch.allclose(CCCLoss()(changed_p, changed_t, mask), loss)
    expected = concordance_corrcoef(preds[mask], target[mask])
    assert torch.allclose(loss, 1 - expected.mean(), atol=1e-5)
    assert torch.isfinite(CCCLoss()(torch.zeros(1, 5, 1), torch.zeros(1, 5, 1)))  # constant series: no NaN


def test_aligned_masks_frames_past_the_audio_and_the_targets() -> None:
    model = small_model().eval()
    waveform = torch.randn(2, 16000)
    batch = {
        "waveform": waveform,
        "length": torch.tensor([16000, 6400]),  # 25 and 10 frames of 40 ms
        "targets": torch.rand(2, 25, 2),
        "target_length": torch.tensor([20, 25]),
    }
    preds, targets, mask = model.aligned(batch)
    assert preds.shape == targets.shape == (2, 25, 2)
    assert mask.sum(1).tolist() == [20, 10]
    with torch.no_grad():
        loss = model.criterion(preds, targets, mask)
        batch["targets"][0, 20:] = 5.0
        batch["targets"][1, 10:] = -5.0
        assert torch.allclose(model.criterion(*model.aligned(batch)), loss)


def test_validation_ccc_is_torchmetrics_ccc_over_valid_frames() -> None:
    model = small_model().eval()
    torch.manual_seed(1)
    batches = [
        {"waveform": torch.randn(2, 12800), "length": torch.tensor([12800, 8000]), "targets": torch.rand(2, 20, 2),
         "target_length": torch.tensor([20, 13])},
        {"waveform": torch.randn(1, 9600), "length": torch.tensor([9600]), "targets": torch.rand(1, 15, 2),
         "target_length": torch.tensor([15])},
    ]  # fmt: skip
    preds, targets = [], []
    with torch.no_grad():
        for batch in batches:
            model.validation_step(batch, 0)
            p, t, m = model.aligned(batch)
            preds.append(p[m])
            targets.append(t[m])
    expected = concordance_corrcoef(torch.cat(preds), torch.cat(targets))
    assert torch.allclose(model.val_ccc.compute(), expected, atol=1e-5)


# ------------------------------------------------------------------------------------------------ shapes
@pytest.mark.parametrize("samples", [640, 1000, 16000])
def test_network_shapes_for_variable_lengths(samples: int) -> None:
    net = EndToEndNet(2, conv_channels=(4, 8), lstm_hidden=16).eval()
    out = net(torch.randn(3, 1, 1, samples))
    assert out.shape == (3, math.ceil(samples / 640), 2)
    assert out.abs().max() <= 1.0  # tanh output


def test_forward_shapes_and_independence_of_batch_companions() -> None:
    model = small_model().eval()
    lengths = torch.tensor([16000, 10000, 641])
    waveform = torch.randn(3, 16000)
    for row, n in enumerate(lengths.tolist()):
        waveform[row, n:] = 0.0
    with torch.no_grad():
        out = model(waveform, lengths)
        alone = model(waveform[1:2, :10000], lengths[1:2])
    assert out.shape == (3, 25, 2)
    assert model.target_frames(lengths).tolist() == [25, 16, 2]
    assert torch.all(out[1, 16:] == 0) and torch.all(out[2, 2:] == 0)
    assert torch.allclose(out[1, :16], alone[0], atol=1e-5)  # chunks are independent, the LSTM causal


def test_network_layout_and_parameter_count() -> None:
    """Layer sizes of Triantafyllopoulos et al. §3.2.2; the paper gives no parameter count: the count is the layout's.

    conv1 20 x 1 x 20 + 20 = 420; conv2 40 x 20 x 40 + 40 = 32,040; 40 ms = 640 samples pooled by 2 and 10 give
    32 x 40 = 1280 features per chunk; LSTM 1: 4 x 256 x (1280 + 256) + 2 x 4 x 256 = 1,574,912; LSTM 2:
    4 x 256 x 512 + 2048 = 526,336; output 256 x 2 + 2 = 514: 2,134,222 for arousal and valence.
    """
    net = EndToEndNet(2)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv1d)]
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool1d)]
    drops = [m for m in net.features if isinstance(m, torch.nn.Dropout)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(20, 20), (40, 40)]
    assert [p.stride for p in pools] == [2, 10] and [d.p for d in drops] == [0.5, 0.5]
    assert net.feature_size == 1280
    assert (net.lstm.hidden_size, net.lstm.num_layers, net.lstm.bidirectional) == (256, 2, False)
    assert sum(p.numel() for p in net.parameters()) == 2_134_222
    model = EndToEndRegressor(num_targets=1, target_names=["arousal"])
    assert sum(p.numel() for p in model.parameters()) == 2_134_222 - 257


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="whole number of samples"):
        EndToEndRegressor(sample_rate=16000, target_rate_hz=30.0)
    with pytest.raises(ValueError, match="target names"):
        EndToEndRegressor(num_targets=2, target_names=["arousal"])
    with pytest.raises(ValueError, match="shorter than the pooling"):
        EndToEndNet(1, chunk_samples=10)
    with pytest.raises(ValueError, match="unknown target"):
        SyntheticContinuousDataModule(targets=["dominance"])  # type: ignore[list-item]


# -------------------------------------------------------------------------------------------------- data
def test_synthetic_continuous_batches_are_recola_shaped(tiny_corpus: Path) -> None:
    dm = SyntheticContinuousDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4, segment_seconds=1.0)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.target_names == ["arousal", "valence"] and dm.num_targets == 2
    values = {"neutral": (0.0, 0.0), "happy": (0.6, 0.8), "angry": (0.8, -0.6), "sad": (-0.6, -0.7)}
    train = next(iter(dm.train_dataloader()))
    assert train["waveform"].shape == (4, 16000) and train["targets"].shape == (4, 25, 2)
    assert train["target_length"].tolist() == [25] * 4
    batch = next(iter(dm.val_dataloader()))
    frames = torch.ceil(batch["length"] / 640 - 1e-6).long()
    assert torch.equal(batch["target_length"], frames)
    for row, utt in enumerate(batch["utt_id"]):
        expected = torch.tensor(values[utt.rsplit("_", 1)[-1]])
        n = int(batch["target_length"][row])
        assert torch.allclose(batch["targets"][row, :n], expected.expand(n, 2))
        assert torch.all(batch["targets"][row, n:] == 0)
    only = SyntheticContinuousDataModule(root=str(tiny_corpus.parent), size="tiny", targets=["arousal"])
    assert only.target_names == ["arousal"] and only.num_targets == 1


# --------------------------------------------------------------------------------------------------- CLI
def test_cli_fast_dev_run_fit_and_test(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ser_lightning.cli import main
    from ser_lightning.models.regression import SERRegressionTask

    logged: dict[str, float] = {}
    original = SERRegressionTask._log_ccc

    def spy(self: SERRegressionTask, *args: object, **kwargs: object) -> dict[str, float]:
        values = original(self, *args, **kwargs)  # type: ignore[arg-type]
        logged.update(values)
        return values

    monkeypatch.setattr(SERRegressionTask, "_log_ccc", spy)

    cli = main([
        "fit",
        "--config", str(CONFIGS / "end_to_end.yaml"),
        "--data", str(CONFIGS / "data" / "synthetic_continuous.yaml"),
        "--data.init_args.size", "tiny",
        "--data.init_args.root", str(tiny_corpus.parent),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--trainer.fast_dev_run", "true",
        "--model.init_args.conv_channels", "[4, 8]",
        "--model.init_args.lstm_hidden", "16",
    ])  # fmt: skip
    assert isinstance(cli.model, EndToEndRegressor) and cli.model.target_names == ["arousal", "valence"]
    for key in ("train_ccc", "val_ccc", "val_ccc_arousal", "val_ccc_valence", "test_ccc", "test_ccc_arousal"):
        assert key in logged and math.isfinite(logged[key]), key
    assert "test_ccc_valence" in cli.trainer.callback_metrics


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "end_to_end.yaml"],
        ["--config", "end_to_end.yaml", "--data", "data/recola.yaml"],
        ["--config", "dense_highway.yaml", "--model", "models/end_to_end.yaml"],
    ],
)
def test_print_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from ser_lightning.cli import main

    resolved = [str(CONFIGS / a) if a.endswith(".yaml") else a for a in args]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *resolved, "--print_config"])
    assert not exit_.value.code
    assert "EndToEndRegressor" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ learning
class _History(pl.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.values.append(float(trainer.callback_metrics["val_ccc_arousal"]))  # validation ran before


@pytest.mark.slow
def test_short_fit_learns_synthetic_arousal(tiny_corpus: Path, tmp_path: Path) -> None:
    pl.seed_everything(0)
    dm = SyntheticContinuousDataModule(root=str(tiny_corpus.parent), size="tiny", targets=["arousal"], batch_size=8,
                                       segment_seconds=1.0)  # fmt: skip
    model = EndToEndRegressor(
        num_targets=1,
        target_names=["arousal"],
        conv_channels=(8, 16),
        lstm_hidden=64,
        optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
    )
    history = _History()
    trainer = pl.Trainer(max_epochs=6, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[history],
                         default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert len(history.values) == 6
    assert max(history.values) > 0.3, history.values
