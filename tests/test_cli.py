from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ser_lightning import __version__
from ser_lightning.cli import main
from ser_lightning.models import DenseHighway, SERClassificationTask

from .conftest import CONFIGS, REPO

MAIN = str(CONFIGS / "dense_highway.yaml")
TINY = str(CONFIGS / "data" / "synthetic_tiny.yaml")
# A narrow DenseHighway keeps the CLI tests fast; the architecture itself is tested in test_models.py.
SMALL = ["--model.init_args.growth_rate", "4", "--model.init_args.block_layers", "2"]


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def common(tmp_path: Path, cache: Path) -> list[str]:
    return [
        "--config", MAIN,
        "--data", TINY,
        "--data.init_args.root", str(cache),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
        "--trainer.enable_progress_bar", "false",
        *SMALL,
    ]  # fmt: skip


def test_version_and_help() -> None:
    out = subprocess.run([sys.executable, "-m", "ser_lightning", "--version"], capture_output=True, text=True,
                         cwd=REPO, check=True)  # fmt: skip
    assert __version__ in out.stdout
    out = subprocess.run([sys.executable, "-m", "ser_lightning", "fit", "--help"], capture_output=True, text=True,
                         cwd=REPO, check=True)  # fmt: skip
    assert "--data" in out.stdout and "--model" in out.stdout and "--test_after_fit" in out.stdout


def all_yaml(group: str) -> list[str]:
    return sorted(str(p.relative_to(CONFIGS)) for p in (CONFIGS / group).glob("*.yaml"))


# configs/robustness.yaml is a suite composed on top of an experiment (tests/test_robustness_suite.py).
EXPERIMENTS = sorted(str(p.name) for p in CONFIGS.glob("*.yaml") if p.name != "robustness.yaml")


@pytest.mark.parametrize("config", EXPERIMENTS)
def test_print_config_every_experiment_yaml(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["fit", "--config", str(CONFIGS / config), "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("ser_lightning.models.")


@pytest.mark.parametrize("config", all_yaml("models") + all_yaml("data") + all_yaml("trainer"))
def test_print_config_every_group_yaml_composes_with_main(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    group = config.split("/")[0].rstrip("s") if config.startswith("models") else config.split("/")[0]
    flag = {"model": "--model", "data": "--data", "trainer": "--trainer"}[group]
    assert run_cli(["fit", "--config", MAIN, flag, str(CONFIGS / config), "--print_config"]) == 0
    assert "class_path" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_no_yaml_sets_what_the_data_links_in(path: Path) -> None:
    def keys(node: object) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    model = yaml.safe_load(path.read_text()) or {}
    model = model.get("model", model) if path.parent.name != "models" else model
    if path.parent.name in ("data", "trainer"):
        return
    assert not keys(model) & {"num_classes", "class_names"}, f"{path} repeats what the data links in"


def test_typos_and_bad_choices_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["fit", "--config", MAIN, "--data.init_args.protocl", "loso", "--print_config"]) != 0
    assert run_cli(["fit", "--config", MAIN, "--data.init_args.protocol", "random", "--print_config"]) != 0
    assert run_cli(["fit", "--config", MAIN, "--model.init_args.num_clases", "3", "--print_config"]) != 0


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fit_fast_dev_run(tmp_path: Path, tiny_corpus: Path, precision: str) -> None:
    cli = main(["fit", *common(tmp_path, tiny_corpus.parent), "--trainer.fast_dev_run", "true",
                "--trainer.precision", precision])  # fmt: skip
    assert cli.trainer.precision == precision
    assert isinstance(cli.model, DenseHighway)
    assert cli.model.num_classes == cli.datamodule.num_classes == 4
    assert cli.model.class_names == ["neutral", "happy", "angry", "sad"]
    assert cli.trainer.state.finished


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, object]:
    """A one-epoch fit on the tiny corpus, which ends by testing its best checkpoint."""
    tmp = tmp_path_factory.mktemp("fit")
    cli = main(["fit", *common(tmp, tiny_corpus.parent), "--trainer.max_epochs", "2"])
    run = Path(cli.trainer.log_dir)
    return {"cli": cli, "run": run, "tmp": tmp, "best": cli.trainer.checkpoint_callback.best_model_path}


def test_fit_writes_checkpoint_and_tests_best(trained: dict[str, object]) -> None:
    run = trained["run"]
    assert Path(trained["best"]).is_file()
    results = json.loads((run / "results.json").read_text())
    for key in ("corpus", "protocol", "fold", "seed", "class_names", "test_ua", "test_wa", "test_f1",
                "confusion_matrix", "speaker_independent", "test_speakers"):  # fmt: skip
        assert key in results, key
    assert results["corpus"] == "synthetic" and results["protocol"] == "loso"
    assert results["class_names"] == ["neutral", "happy", "angry", "sad"]
    matrix = results["confusion_matrix"]
    assert len(matrix) == 4 and sum(map(sum, matrix)) == results["sizes"]["test"]
    assert results["checkpoint"] == trained["best"]
    assert (run / "test_confusion_matrix.png").stat().st_size > 1000
    assert results["speaker_independent"] is True
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert hparams["split"]["speaker_independent"] is True


def test_checkpoint_round_trip_rebuilds_class_and_classes(trained: dict[str, object]) -> None:
    model = SERClassificationTask.load_from_checkpoint(trained["best"], map_location="cpu")
    assert type(model) is DenseHighway
    assert model.num_classes == 4 and model.class_names == ["neutral", "happy", "angry", "sad"]
    original = trained["cli"].model
    state = torch.load(trained["best"], map_location="cpu", weights_only=False)["state_dict"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert model.hparams.growth_rate == original.hparams.growth_rate == 4


def test_test_and_predict_from_checkpoint(trained: dict[str, object], tiny_corpus: Path) -> None:
    tmp = trained["tmp"]
    args = common(tmp, tiny_corpus.parent)
    cli = main(["test", *args, "--ckpt_path", trained["best"]])
    results = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    earlier = json.loads((trained["run"] / "results.json").read_text())
    assert results["test_ua"] == pytest.approx(earlier["test_ua"])
    assert results["confusion_matrix"] == earlier["confusion_matrix"]

    cli = main(["predict", *args, "--ckpt_path", trained["best"]])
    with (Path(cli.trainer.log_dir) / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == results["sizes"]["test"]
    assert set(rows[0]) == {"utt_id", "path", "predicted", "p_neutral", "p_happy", "p_angry", "p_sad",
                            "status", "error"}  # fmt: skip
    assert all(r["status"] == "ok" and r["error"] == "" for r in rows)
    assert all(r["predicted"] in ("neutral", "happy", "angry", "sad") for r in rows)
    assert all(abs(sum(float(r[f"p_{c}"]) for c in ("neutral", "happy", "angry", "sad")) - 1) < 1e-4 for r in rows)


def test_predict_on_a_folder_of_files(trained: dict[str, object], tiny_corpus: Path, tmp_path: Path) -> None:
    wavs = sorted((tiny_corpus / "wav").rglob("*.wav"))[:3]
    folder = tmp_path / "mine"
    folder.mkdir()
    for wav in wavs:
        (folder / wav.name).write_bytes(wav.read_bytes())
    cli = main(["predict", *common(tmp_path, tiny_corpus.parent), "--ckpt_path", trained["best"],
                "--data.init_args.predict_paths", f"[{folder}]"])  # fmt: skip
    with (Path(cli.trainer.log_dir) / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["utt_id"] for r in rows) == sorted(w.stem for w in wavs)


def test_wandb_logger_runs_offline(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    args = common(tmp_path, tiny_corpus.parent)
    args = [a for a in args if a not in ("--trainer.logger.init_args.save_dir", str(tmp_path / "runs"))]
    cli = main(["fit", *args, "--trainer", str(CONFIGS / "trainer" / "wandb.yaml"),
                "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.max_epochs", "1",
                "--trainer.limit_train_batches", "1", "--test_after_fit", "false"])  # fmt: skip
    from lightning.pytorch.loggers import WandbLogger

    assert isinstance(cli.trainer.logger, WandbLogger)
    cli.trainer.logger.experiment.finish()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline W&B run was written"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_fit_on_gpu_with_mixed_precision(tmp_path: Path, tiny_corpus: Path, precision: str) -> None:
    cli = main(["fit", *common(tmp_path, tiny_corpus.parent), "--trainer.accelerator", "gpu", "--trainer.devices", "1",
                "--trainer.precision", precision, "--trainer.max_epochs", "1"])  # fmt: skip
    results = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    assert 0.0 <= results["test_ua"] <= 1.0
    assert next(cli.model.parameters()).device.type == "cuda"
