"""Budgets that say what they are: the papers' recipes, one CPU demo budget, why a run stopped, one segment length."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import yaml
from lightning.pytorch.callbacks import EarlyStopping

from ser_lightning.data import SyntheticDataModule
from ser_lightning.models import DenseHighway, RBLSTMETransformer
from ser_lightning.results import RESULTS_FILE

from .conftest import CONFIGS, REPO

FULL_RUNS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "robustness.yaml")
DEMO_KEYS = {"max_epochs", "max_time"}


def _load(name: str) -> dict:
    return yaml.safe_load((CONFIGS / name).read_text())


def test_the_cpu_demo_budget_lives_in_the_main_job_only() -> None:
    for name in FULL_RUNS:
        trainer = _load(name).get("trainer", {})
        if name == "dense_highway.yaml":
            assert trainer["max_time"] == "00:00:09:00" and trainer["max_epochs"] == 15
        else:
            assert "max_time" not in trainer, f"{name} carries a time budget"
            assert "limit_train_batches" not in trainer, f"{name} trains on part of its data"


def test_the_main_job_is_the_paper_recipe_plus_the_demo_budget() -> None:
    main, paper = _load("dense_highway.yaml"), _load("latif2020.yaml")
    for config in (main, paper):
        config["trainer"]["logger"]["init_args"].pop("name")
    assert {k: v for k, v in main["trainer"].items() if k not in DEMO_KEYS} == {
        k: v for k, v in paper["trainer"].items() if k not in DEMO_KEYS
    }
    assert {k: v for k, v in main.items() if k != "trainer"} == {k: v for k, v in paper.items() if k != "trainer"}
    assert "max_time" not in paper["trainer"] and paper["trainer"]["max_epochs"] >= 100


def _early_stopping(config: dict) -> dict | None:
    for callback in config["trainer"].get("callbacks", []):
        if callback["class_path"].endswith("EarlyStopping"):
            return callback["init_args"]
    return None


@pytest.mark.parametrize(
    ("name", "epochs", "patience", "batch_size", "lr"),
    [
        ("latif2020.yaml", None, 20, 32, None),  # Latif et al. 2020 §4.4
        ("cnn.yaml", None, 20, 32, None),
        ("cnn_lstm.yaml", None, 20, 32, None),
        ("densenet.yaml", None, 20, 32, None),
        ("densenet_lstm.yaml", None, 20, 32, None),
        ("cnn_bilstm_mlp.yaml", 80, None, 256, None),  # Pankratz et al. §4: 80 epochs, batches of 256
        ("rblstm_etransformer.yaml", None, 20, 32, 1e-4),  # the E-transformer paper: Adam 1e-4, batches of 32
        ("end_to_end.yaml", 50, None, 25, 1e-4),  # Triantafyllopoulos et al. 2019 §3.2.2
        ("end_to_end_recola.yaml", 50, None, 25, 1e-4),  # the same, on RECOLA's AVEC 2016 partition
    ],
)
def test_full_run_configs_follow_their_papers(
    name: str, epochs: int | None, patience: int | None, batch_size: int, lr: float | None
) -> None:
    config = _load(name)
    if epochs is not None:
        assert config["trainer"]["max_epochs"] == epochs
    early = _early_stopping(config)
    assert (early or {}).get("patience") == patience
    assert config["data"]["init_args"]["batch_size"] == batch_size
    if lr is not None:
        assert config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == lr


def test_readme_real_corpus_commands_do_not_inherit_the_demo_budget() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"python -m ser_lightning (?:fit|test)[^\n]*(?:\\\n[^\n]*)*", readme)
    real = [c for c in commands if re.search(r"configs/data/(iemocap|msp_improv|ravdess|emodb|enterface|crema_d)", c)]
    assert real
    for command in real:
        assert "configs/dense_highway.yaml" not in command, command


# ------------------------------------------------------------------------------------------ stop reasons
def _fit(tmp_path: Path, tiny_corpus: Path, **trainer_args: object) -> dict:
    pl.seed_everything(0)
    dm = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=8)
    model = DenseHighway(num_classes=dm.num_classes, class_names=dm.class_names, growth_rate=4, block_layers=2)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, limit_train_batches=2,
                         limit_val_batches=2, num_sanity_val_steps=0, **trainer_args)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    stamp = json.loads((tmp_path / RESULTS_FILE).read_text())["training_stop"]
    assert stamp == model.training_stop
    assert 0 < stamp.pop("fit_seconds") < 600  # the clock of fit, for the experiment runner's overhead benchmark
    return stamp


def test_max_epochs_is_recorded(tmp_path: Path, tiny_corpus: Path) -> None:
    stamp = _fit(tmp_path, tiny_corpus, max_epochs=1)
    assert stamp["reason"] == "max_epochs" and stamp["epochs_completed"] == 1


def test_early_stopping_is_recorded(tmp_path: Path, tiny_corpus: Path) -> None:
    early = EarlyStopping(monitor="val_loss", mode="min", patience=0, min_delta=1e9)  # no epoch is ever better
    stamp = _fit(tmp_path, tiny_corpus, max_epochs=5, callbacks=[early])
    assert stamp["reason"] == "early_stopping" and "val_loss" in stamp["detail"]
    assert stamp["epochs_completed"] < 5


def test_time_budget_is_recorded(tmp_path: Path, tiny_corpus: Path) -> None:
    stamp = _fit(tmp_path, tiny_corpus, max_epochs=50, max_time={"seconds": 1})
    assert stamp["reason"] == "time_budget" and stamp["epochs_completed"] < 50


# ------------------------------------------------------------------------------------------ one segment
def _setup_fit(model: pl.LightningModule, dm: SyntheticDataModule, tmp_path: Path) -> None:
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, fast_dev_run=True)  # fmt: skip
    trainer.fit(model, datamodule=dm)


@pytest.mark.parametrize(
    ("model", "seconds"),
    [
        (lambda: DenseHighway(growth_rate=4, block_layers=2), 2.575),  # 256 frames of 10 ms, 25 ms window
        (lambda: RBLSTMETransformer(conv_channels=16, blstm_hidden=8, ffn_hidden=16, num_transformer_blocks=1,
                                    num_heads=2, transformer_ffn=16), 4.022),  # 400 frames, 512-point FFT
    ],
)
def test_the_model_segment_decides_the_training_crop(model, seconds: float, tmp_path: Path, tiny_corpus: Path) -> None:
    dm = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4)
    assert dm.segment_seconds is None
    _setup_fit(model(), dm, tmp_path)
    assert dm.segment_seconds == pytest.approx(seconds)
    assert dm.datasets["train"].segment_samples == round(seconds * 16000)


def test_a_data_crop_shorter_than_the_model_segment_is_rejected(tmp_path: Path, tiny_corpus: Path) -> None:
    dm = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4, segment_seconds=1.0)
    with pytest.raises(ValueError, match=r"shorter than the segment of DenseHighway \(256 frames\)"):
        _setup_fit(DenseHighway(growth_rate=4, block_layers=2), dm, tmp_path)
    longer = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=4, segment_seconds=3.0)
    _setup_fit(DenseHighway(growth_rate=4, block_layers=2), longer, tmp_path)
    assert longer.segment_seconds == 3.0  # a longer crop is kept: the model crops again
