"""Tests of ser_lightning.augment.recipes: building blocks, named recipes, DataModule and CLI integration."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import get_args

import lightning
import numpy as np
import pytest
import torch
import yaml

from ser_lightning.audio import read_audio
from ser_lightning.augment import (
    RECIPES,
    BankNoise,
    Chain,
    Identity,
    OneOf,
    PeakScaledGaussianNoise,
    PitchShift,
    ProceduralNoiseBank,
    Recipe,
    Reverberation,
    RollShift,
    SpeedPerturbation,
    TimeStretch,
    WaveformAugmentation,
    achieved_snr,
)
from ser_lightning.augment.recipes import RecipeName
from ser_lightning.data import SyntheticContinuousDataModule, SyntheticDataModule

from .conftest import CONFIGS
from .test_cli import common, run_cli

SR = 16000


def _speech(n: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    return (0.5 * envelope * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _blocks(tiny_corpus: Path) -> dict[str, WaveformAugmentation]:
    bank = ProceduralNoiseBank(cache_dir=tiny_corpus.parent)
    return {
        "gaussian": PeakScaledGaussianNoise(),
        "pitch": PitchShift(),
        "stretch": TimeStretch(),
        "roll": RollShift(),
        "speed": SpeedPerturbation(factors=(0.9, 1.1)),
        "bank_noise": BankNoise(bank=bank),
        "reverb": Reverberation(),
        "chain": Chain([RollShift(), PeakScaledGaussianNoise()]),
        "one_of": OneOf([PitchShift(), RollShift()], weights=[1.0, 2.0]),
        **{f"recipe_{name}": Recipe(name) for name in RECIPES},  # "noise": the default bank, in the test cache
    }


@pytest.fixture(scope="module")
def blocks(tiny_corpus: Path) -> dict[str, WaveformAugmentation]:
    return _blocks(tiny_corpus)


BLOCK_NAMES = ["gaussian", "pitch", "stretch", "roll", "speed", "bank_noise", "reverb", "chain", "one_of"] + [
    f"recipe_{name}" for name in RECIPES
]


def test_recipe_names_match_the_literal() -> None:
    assert set(RECIPES) == set(get_args(RecipeName))


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_block_is_seeded_finite_float32_and_changes_the_audio(
    name: str, blocks: dict[str, WaveformAugmentation], tiny_corpus: Path
) -> None:
    aug = blocks[name]
    x = _speech()
    py_state, np_state = random.getstate(), np.random.get_state()
    outs = [aug.augment(x, SR, seed) for seed in range(6)]
    assert random.getstate() == py_state  # global generators are restored
    restored = np.random.get_state()
    assert restored[0] == np_state[0] and np.array_equal(restored[1], np_state[1]) and restored[2:] == np_state[2:]
    again = aug.augment(x, SR, 3)
    assert np.array_equal(again, outs[3])  # deterministic given the seed
    for y in outs:
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
        assert 0.7 * len(x) <= len(y) <= 1.3 * len(x)
    changed = [not (len(y) == len(x) and np.allclose(y, x)) for y in outs]
    # "emoaugnet" keeps the original for one of its 10 versions and "sp" for one of its 3 factors.
    assert sum(changed) >= (3 if name in ("recipe_sp", "recipe_emoaugnet") else 6), name
    distinct = {y.tobytes() for y in outs}
    assert len(distinct) >= (2 if name == "speed" else 3), f"{name}: different seeds give the same output"
    assert np.array_equal(x, _speech())  # the input is not modified in place


def test_call_draws_the_seed_from_torch() -> None:
    aug = PeakScaledGaussianNoise()
    x = _speech()
    torch.manual_seed(5)
    first = [aug(x, SR) for _ in range(2)]
    torch.manual_seed(5)
    second = [aug(x, SR) for _ in range(2)]
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])


def test_every_block_pickles(blocks: dict[str, WaveformAugmentation]) -> None:
    x = _speech()
    for name, aug in blocks.items():
        clone = pickle.loads(pickle.dumps(aug))
        assert np.array_equal(clone.augment(x, SR, 7), aug.augment(x, SR, 7)), name
        assert repr(clone) == repr(aug)


def test_speed_perturbation_changes_the_length_by_the_factor() -> None:
    x = _speech(3 * SR)
    fast = SpeedPerturbation(factors=(1.1,)).augment(x, SR, 0)
    slow = SpeedPerturbation(factors=(0.9,)).augment(x, SR, 0)
    assert abs(len(fast) - len(x) / 1.1) <= 2 and abs(len(slow) - len(x) / 0.9) <= 2
    assert np.array_equal(SpeedPerturbation(factors=(1.0,)).augment(x, SR, 0), x)
    lengths = {len(SpeedPerturbation().augment(x, SR, s)) for s in range(30)}
    assert len(lengths) == 3  # all three factors are drawn


def test_time_stretch_slow_lengthens_and_fast_shortens() -> None:
    x = _speech(2 * SR)
    assert len(TimeStretch(rate=(0.8, 0.8)).augment(x, SR, 0)) == pytest.approx(len(x) / 0.8, rel=0.02)
    assert len(TimeStretch(rate=(1.25, 1.25)).augment(x, SR, 0)) == pytest.approx(len(x) / 1.25, rel=0.02)


def test_roll_shift_is_a_roll_within_the_bound() -> None:
    x = _speech()
    for seed in range(5):
        y = RollShift(max_samples=5000).augment(x, SR, seed)
        shifts = [k for k in range(-5000, 5001) if np.array_equal(np.roll(x, k), y)]
        assert len(shifts) == 1


def test_peak_scaled_noise_is_bounded_by_scale_times_peak() -> None:
    x = _speech(4 * SR)
    peak = float(np.abs(x).max())
    for seed in range(5):
        deviation = float(np.abs(PeakScaledGaussianNoise(scale=0.035).augment(x, SR, seed) - x).max())
        assert 0 < deviation <= 0.035 * peak * 6  # N(0, 1) stays within ~6 sigma over 64k samples


def test_bank_noise_snr_within_range_and_silence_passes_through(tiny_corpus: Path) -> None:
    aug = BankNoise(bank=ProceduralNoiseBank(cache_dir=tiny_corpus.parent), snr_db=(5.0, 15.0))
    x = _speech()
    snrs = [achieved_snr(x, aug.augment(x, SR, seed)) for seed in range(8)]
    assert all(5.0 - 0.1 <= s <= 15.0 + 0.1 for s in snrs) and max(snrs) - min(snrs) > 1.0
    silent = np.zeros(SR, dtype=np.float32)
    assert np.array_equal(aug.augment(silent, SR, 0), silent)
    with pytest.raises(ValueError, match="unknown noise categories"):
        BankNoise(categories=["rain"])


def test_reverberation_keeps_length_and_peak(tmp_path: Path) -> None:
    x = _speech()
    y = Reverberation(rt60=(0.5, 0.5)).augment(x, SR, 0)
    assert len(y) == len(x) and np.abs(y).max() == pytest.approx(np.abs(x).max(), rel=1e-5)
    with pytest.raises(FileNotFoundError, match="irs"):
        Reverberation(ir_root=str(tmp_path / "irs"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio file"):
        Reverberation(ir_root=str(tmp_path / "empty"))


def test_reverberation_from_an_impulse_response_folder(tmp_path: Path) -> None:
    import soundfile as sf

    folder = tmp_path / "irs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        ir = Reverberation().impulse_response(0.3 + 0.2 * i, SR, rng).astype(np.float32)
        sf.write(folder / f"ir{i}.wav", ir / np.abs(ir).max(), SR)
    aug = Reverberation(ir_root=str(folder))
    x = _speech()
    y = aug.augment(x, SR, 0)
    assert len(y) == len(x) and not np.allclose(y, x)
    assert np.array_equal(pickle.loads(pickle.dumps(aug)).augment(x, SR, 0), y)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: PeakScaledGaussianNoise(scale=0), "scale"),
        (lambda: PitchShift(semitones=(2, 1)), "semitones"),
        (lambda: TimeStretch(rate=(0.01, 1)), "rate"),
        (lambda: RollShift(max_samples=0), "max_samples"),
        (lambda: SpeedPerturbation(factors=()), "factors"),
        (lambda: PeakScaledGaussianNoise(p=2), "p must be"),
        (lambda: Chain([]), "steps"),
        (lambda: OneOf([Identity()], weights=[1, 2]), "weights"),
        (lambda: Recipe("nope"), "unknown recipe"),  # type: ignore[arg-type]
        (lambda: Identity().augment(np.zeros((2, 3)), SR, 0), "1-D"),
    ],
)
def test_bad_arguments_are_rejected_with_a_clear_error(factory: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        factory()  # type: ignore[operator]


def test_length_preservation_is_declared() -> None:
    assert Recipe("noise").preserves_length and Recipe("reverb").preserves_length
    assert not Recipe("sp").preserves_length and not Recipe("emoaugnet").preserves_length


# --- DataModule ----------------------------------------------------------------------------------------------


def _module(tiny_corpus: Path, **kwargs: object) -> SyntheticDataModule:
    data = SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", batch_size=8, **kwargs)  # type: ignore[arg-type]
    data.prepare_data()
    data.setup("predict")
    return data


def _by_utt(loader: torch.utils.data.DataLoader) -> dict[str, np.ndarray]:
    out = {}
    for batch in loader:
        for row, utt in enumerate(batch["utt_id"]):
            out[utt] = batch["waveform"][row, : int(batch["length"][row])].numpy().copy()
    return out


def test_only_the_training_split_is_augmented(tiny_corpus: Path) -> None:
    data = _module(tiny_corpus, augmentation=Recipe("emoaugnet_noise"))
    train = _by_utt(data.train_dataloader())
    paths = {r.utt_id: r.path for r in data.split.train}
    assert len(train) >= 64
    assert all(not np.array_equal(wave, read_audio(paths[utt], 16000)) for utt, wave in train.items())
    for loader, part in ((data.val_dataloader(), data.split.val), (data.test_dataloader(), data.split.test),
                         (data.predict_dataloader(), data.split.test)):  # fmt: skip
        waves = _by_utt(loader)
        assert len(waves) == len(part)
        for record in part:
            assert np.array_equal(waves[record.utt_id], read_audio(record.path, 16000))
    stamp = data.describe()
    assert stamp["augmentation"] == "Recipe(name='emoaugnet_noise')" and stamp["vad_mode"] is None
    assert data.hparams["augmentation"] == "Recipe(name='emoaugnet_noise')"


@pytest.mark.parametrize("workers", [0, 2])
def test_augmented_batches_are_reproducible_and_differ_between_epochs(tiny_corpus: Path, workers: int) -> None:
    def epochs() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        lightning.seed_everything(0, workers=True)
        data = _module(tiny_corpus, augmentation=Recipe("emoaugnet_noise"), num_workers=workers)
        loader = data.train_dataloader()
        result = _by_utt(loader), _by_utt(loader)
        if workers:  # stop the persistent workers now (left to the garbage collector, their exit takes ~5 s each)
            loader._iterator._shutdown_workers()
        return result

    first, first_next = epochs()
    second, second_next = epochs()
    assert first.keys() == second.keys() == first_next.keys()
    assert all(np.array_equal(first[u], second[u]) for u in first)
    assert all(np.array_equal(first_next[u], second_next[u]) for u in first)
    assert all(not np.array_equal(first[u], first_next[u]) for u in first)


def test_datamodule_rejects_bad_augmentation_and_vad_mode(tiny_corpus: Path) -> None:
    with pytest.raises(ValueError, match="augmentation must be"):
        SyntheticDataModule(augmentation="sp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vad_mode"):
        SyntheticDataModule(vad_mode=4)
    with pytest.raises(ValueError, match="misalign"):
        SyntheticContinuousDataModule(vad_mode=2)
    with pytest.raises(ValueError, match="length"):
        SyntheticContinuousDataModule(augmentation=Recipe("sp"))
    SyntheticContinuousDataModule(augmentation=Recipe("noise"))  # length-preserving: accepted


def test_every_datamodule_forwards_augmentation_and_vad_mode(tiny_corpus: Path, tmp_path: Path) -> None:
    import inspect

    import ser_lightning.data as data_pkg
    from ser_lightning.data.base import SERDataModule

    aug = RollShift()
    checked = 0
    for name in data_pkg.__all__:
        cls = getattr(data_pkg, name)
        if not (inspect.isclass(cls) and issubclass(cls, SERDataModule)) or inspect.isabstract(cls):
            continue
        kwargs: dict[str, object] = {"augmentation": aug}
        if name not in ("RECOLADataModule", "SyntheticContinuousDataModule"):
            kwargs["vad_mode"] = 1
        if name == "CrossCorpusDataModule":
            kwargs.update(source=SyntheticDataModule(size="tiny"), target=SyntheticDataModule(size="tiny"))
        if name == "ManifestDataModule":
            kwargs["manifest"] = str(tiny_corpus / "manifest.csv")
        module = cls(**kwargs)
        assert module.augmentation is aug and module.configure_train_transform() is aug, name
        assert module.vad_mode == kwargs.get("vad_mode"), name
        checked += 1
    assert checked >= 11


# --- CLI -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(p.name for p in (CONFIGS / "augment").glob("*.yaml")))
def test_every_augment_preset_composes_with_the_main_config(preset: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--config",
                    str(CONFIGS / "augment" / preset), "--print_config"]) == 0  # fmt: skip
    printed = yaml.safe_load(capsys.readouterr().out)
    data_args = printed["data"]["init_args"]
    if preset == "mixup.yaml":
        assert printed["model"]["init_args"]["mixup_alpha"] == 0.2 and data_args["augmentation"] is None
    elif preset == "vad.yaml":
        assert data_args["vad_mode"] == 2
    else:
        assert data_args["augmentation"]["class_path"].startswith("ser_lightning.augment.")
    if preset.startswith("sp"):
        assert data_args["augmentation"] == {"class_path": "ser_lightning.augment.Recipe", "init_args": {"name": "sp"}}


def test_cli_rejects_an_unknown_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli(["fit", "--config", str(CONFIGS / "dense_highway.yaml"), "--config",
                    str(CONFIGS / "augment" / "sp.yaml"), "--data.init_args.augmentation.init_args.name", "warp",
                    "--print_config"])  # fmt: skip
    assert code != 0


def test_fit_with_a_recipe_and_vad_stamps_results(tmp_path: Path, tiny_corpus: Path) -> None:
    from ser_lightning.cli import main

    cli = main(["fit", *common(tmp_path, tiny_corpus.parent), "--config", str(CONFIGS / "augment" / "sp_mixup.yaml"),
                "--data.init_args.vad_mode", "1", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                "--trainer.limit_val_batches", "1"])  # fmt: skip
    assert cli.trainer.state.finished
    assert isinstance(cli.datamodule.augmentation, Recipe) and cli.datamodule.augmentation.name == "sp"
    assert cli.model.mixup_alpha == 0.2
    assert cli.datamodule.hparams["augmentation"] == "Recipe(name='sp')" and cli.datamodule.hparams["vad_mode"] == 1
    stamp = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    assert stamp["augmentation"] == "Recipe(name='sp')" and stamp["vad_mode"] == 1
