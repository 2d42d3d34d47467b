"""Adding an architecture takes a pure network and a LightningModule that declares only its own arguments."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import ser_lightning.models  # noqa: F401  (registers every architecture)
from ser_lightning.cli import main
from ser_lightning.models import (
    SERClassificationTask,
    SERRegressionTask,
    SERTask,
    SpectrogramClassifier,
    SpeechEnhancer,
)

from .conftest import CONFIGS
from .test_cli import run_cli

TINY_NET = f"{__name__}.TinyClassifier"


class TinyNet(nn.Module):
    """A pure network: pooled spectrogram rows -> a hidden layer -> logits."""

    def __init__(self, num_classes: int, n_freq: int = 128, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_freq, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.mean(dim=-1).flatten(1))


class TinyClassifier(SpectrogramClassifier):
    """A new architecture in four lines.

    Args:
        hidden: units of the hidden layer.
        **kwargs: everything else.
    """

    network_class = TinyNet

    def __init__(self, hidden: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)


def _own_parameters(cls: type) -> set[str]:
    if "__init__" not in vars(cls):
        return set()
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def _architectures() -> list[type]:
    """The concrete architectures (not the shared task bases such as SpectrogramClassifier or _CNNTask)."""
    return [
        c
        for c in _subclasses(SERTask)
        if not inspect.isabstract(c) and not c.__name__.startswith("_") and c is not SpectrogramClassifier
    ]


def test_a_new_architecture_trains_through_the_cli(tmp_path: Path, tiny_corpus: Path) -> None:
    cli = main([
        "fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"),
        "--data.init_args.root", str(tiny_corpus.parent), "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.fast_dev_run", "true",
        "--model", TINY_NET, "--model.init_args.hidden", "5", "--model.init_args.n_bins", "64",
        "--model.init_args.segment_frames", "32",
    ])  # fmt: skip
    model = cli.model
    assert isinstance(model, TinyClassifier) and cli.trainer.state.finished
    assert model.network.net[0].in_features == 64 and model.network.net[0].out_features == 5
    assert model.num_classes == cli.datamodule.num_classes and model.class_names == cli.datamodule.class_names
    assert model.segment_frames == 32 and model.hparams["sample_rate"] == cli.datamodule.sample_rate


def test_help_lists_every_inherited_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["fit", "--model.help", TINY_NET]) == 0
    out = capsys.readouterr().out
    inherited = set()
    for cls in TinyClassifier.__mro__:
        if isinstance(cls, type) and issubclass(cls, SERTask):
            inherited |= _own_parameters(cls)
    assert {"hidden", "n_bins", "mixup_alpha", "segment_frames", "optimizer", "sample_rate"} <= inherited
    for name in inherited:
        assert f"--model.{name}" in out or f"--model.init_args.{name}" in out, f"--help lacks {name}"
    assert "units of the hidden layer" in out  # docstrings become help


def test_misspelt_arguments_are_rejected() -> None:
    base = ["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--model", TINY_NET, "--print_config"]
    assert run_cli(base) == 0
    assert run_cli([*base[:-1], "--model.init_args.hiden", "3", "--print_config"]) != 0
    assert run_cli([*base[:-1], "--model.init_args.mixup_alfa", "0.2", "--print_config"]) != 0


@pytest.mark.parametrize("cls", _architectures(), ids=lambda c: c.__name__)
def test_no_architecture_redeclares_an_inherited_argument(cls: type) -> None:
    own = _own_parameters(cls)
    for parent in cls.__mro__[1:]:
        if isinstance(parent, type) and issubclass(parent, SERTask):
            assert not own & _own_parameters(parent), f"{cls.__name__} re-declares {own & _own_parameters(parent)}"
    if "__init__" in vars(cls):
        params = inspect.signature(cls.__init__).parameters.values()
        assert any(p.kind == p.VAR_KEYWORD for p in params), f"{cls.__name__} does not forward **kwargs"


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if p.default is not p.empty:
                    out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


@pytest.mark.parametrize(
    "cls",
    # A non-differentiable model (the openSMILE + SVM baseline) has no torch network built from its arguments: its
    # "network" holds a fitted scikit-learn estimator (tested in test_models_svm.py).
    [c for c in _architectures() if c.__module__.startswith("ser_lightning") and getattr(c, "differentiable", True)],
    ids=lambda c: c.__name__,
)
def test_architecture_defaults_equal_the_pure_network_defaults(cls: type) -> None:
    """An argument passed on to the network by name has the network's default: the two cannot drift apart."""
    if issubclass(cls, SpeechEnhancer):  # a sibling task (waveforms to waveforms): no classes, no targets
        kwargs = {}
    else:
        kwargs = {"num_classes": 4} if issubclass(cls, SERClassificationTask) else {"num_targets": 2}
    model = cls(**kwargs)
    network_defaults = _defaults(type(model.network))
    task_defaults = _defaults(cls)
    shared = set(network_defaults) & set(task_defaults) - {"num_classes"}
    assert shared, f"{cls.__name__} passes no argument to its network"
    for name in shared:
        default = task_defaults[name]
        if name == "sample_rate" and default is None:  # resolved from the architecture's paper
            default = cls.default_sample_rate
        assert default == network_defaults[name], f"{cls.__name__}.{name} differs from the network's"
    assert isinstance(model, SERClassificationTask | SERRegressionTask | SpeechEnhancer)
    assert torch.is_tensor(next(model.parameters()))
