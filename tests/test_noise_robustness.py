"""The noise robustness callback without a model: metric names, identical seeded noisy inputs, stamps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_lightning.augment import (
    BankNoise,
    Chain,
    FolderNoiseBank,
    Identity,
    OneOf,
    PitchShift,
    ProceduralNoiseBank,
    Recipe,
    achieved_snr,
)
from ser_lightning.callbacks import NoiseRobustness
from ser_lightning.callbacks.noise import _read_training_noise, category_slug, format_table, noise_stamp, snr_tag

# --- names ------------------------------------------------------------------------------------------------


def test_metric_name_parts() -> None:
    assert [snr_tag(s) for s in (0, 10.0, -5, 2.5, -2.5)] == ["snr0db", "snr10db", "snr-5db", "snr2.5db",
                                                              "snr-2.5db"]  # fmt: skip
    assert category_slug("DKITCHEN") == "dkitchen"
    assert category_slug("Street  Traffic-2") == "street_traffic_2"
    assert category_slug("noise") == "noise_category"  # the mean over noises owns test_ua_noise_snr<k>db


# --- identical noisy inputs -------------------------------------------------------------------------------


def _utterances(n: int = 5, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    speech = [(np.sin(2 * np.pi * (150 + 40 * i) * t[: 6000 + 1500 * i]) * (0.2 + 0.1 * i)
               + 0.01 * rng.standard_normal(6000 + 1500 * i)).astype(np.float32) for i in range(n)]  # fmt: skip
    return speech, [f"utt{i}" for i in range(n)]


def _batch(speech: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in speech])
    waveform = torch.zeros(len(speech), int(lengths.max()))
    for row, s in enumerate(speech):
        waveform[row, : len(s)] = torch.from_numpy(s)
    return waveform, lengths


@pytest.mark.parametrize("category", ["pink", "babble"])
def test_noisy_inputs_are_identical_for_any_batching_and_at_the_requested_snr(category: str) -> None:
    callback = NoiseRobustness(bank=ProceduralNoiseBank(seed=0), snr_db=[-5.0, 0.0, 12.5])
    speech, ids = _utterances()
    whole, _ = callback.noisy_versions(*_batch(speech), ids, category, 16000)
    order = [3, 0, 4]  # another batch: other companions, other order, other padding
    part, _ = callback.noisy_versions(*_batch([speech[i] for i in order]), [ids[i] for i in order], category, 16000)
    for snr in callback.snr_db:
        for row, i in enumerate(order):
            n = len(speech[i])
            assert torch.equal(part[snr][row, :n], whole[snr][i, :n])
            assert not part[snr][row, n:].any()  # re-padded with zeros
        for i, s in enumerate(speech):
            assert abs(achieved_snr(s, whole[snr][i, : len(s)].numpy()) - snr) < 0.1
    # The same noise segment at every SNR: the residuals are proportional.
    residual = [(whole[snr][1, : len(speech[1])].double() - torch.from_numpy(speech[1]).double())
                for snr in callback.snr_db]  # fmt: skip
    assert torch.corrcoef(torch.stack(residual))[0].min() > 0.9999
    # Another seed, another category or another utterance id gives another noise.
    other = NoiseRobustness(seed=1).noise_for("utt1", category, 8000, 16000)
    assert not np.array_equal(other, callback.noise_for("utt1", category, 8000, 16000))
    assert not np.array_equal(callback.noise_for("utt2", category, 8000, 16000),
                              callback.noise_for("utt1", category, 8000, 16000))  # fmt: skip
    assert not np.array_equal(callback.noise_for("utt1", "white", 8000, 16000),
                              callback.noise_for("utt1", category, 8000, 16000))  # fmt: skip


def test_silent_utterance_is_evaluated_clean() -> None:
    callback = NoiseRobustness(categories=["white"], snr_db=[0.0])
    speech, ids = _utterances(3)
    speech[1] = np.zeros_like(speech[1])
    versions, silent = callback.noisy_versions(*_batch(speech), ids, "white", 16000)
    assert silent == 1
    assert not versions[0.0][1].any()
    assert versions[0.0][0].abs().sum() > 0 and not torch.equal(versions[0.0][0, : len(speech[0])],
                                                                  torch.from_numpy(speech[0]))  # fmt: skip


# --- stamps against the training augmentation -------------------------------------------------------------


def _trainer(augmentation: object) -> SimpleNamespace:
    return SimpleNamespace(datamodule=SimpleNamespace(augmentation=augmentation))


def _stamps(callback: NoiseRobustness, augmentation: object) -> dict[str, str]:
    sources = _read_training_noise(_trainer(augmentation))
    return {c: noise_stamp(c, callback.bank, sources) for c in callback.categories}


def test_evaluation_draws_from_the_eval_part_and_augmentation_from_the_train_part() -> None:
    assert NoiseRobustness().bank.part == "eval"
    recipe = Recipe(name="noise")
    assert recipe.recipe.part == "train" and recipe.recipe.bank.part == "train"
    assert BankNoise().bank.part == "train"
    assert BankNoise(bank=ProceduralNoiseBank(part="eval")).part == "eval"  # the bank's own part is kept
    with pytest.raises(ValueError, match="give one of them"):
        NoiseRobustness(bank=ProceduralNoiseBank(part="train"), part="eval")
    # The noise recipe and the evaluation never produce the same noise for the same generator.
    evaluation = NoiseRobustness().bank
    for category in ("white", "babble"):
        a = recipe.recipe.bank.sample(category, 8000, 16000, np.random.default_rng(3))
        b = evaluation.sample(category, 8000, 16000, np.random.default_rng(3))
        assert not np.array_equal(a, b)


def test_stamp_mismatched_without_training_noise() -> None:
    callback = NoiseRobustness()
    assert set(_stamps(callback, None).values()) == {"mismatched"}
    assert set(_stamps(callback, Recipe(name="sp")).values()) == {"mismatched"}
    assert set(_stamps(callback, BankNoise(p=0.0)).values()) == {"mismatched"}  # never applied
    assert noise_stamp("white", callback.bank, None) == "unknown"  # no datamodule to read
    assert _read_training_noise(SimpleNamespace(datamodule=None)) is None


def test_stamp_matched_category_for_the_noise_recipe_against_the_eval_part() -> None:
    callback = NoiseRobustness()
    assert set(_stamps(callback, Recipe(name="noise")).values()) == {"matched-category"}
    nested = OneOf([Identity(), Chain([PitchShift(), BankNoise(categories=["pink", "babble"])])])
    assert _stamps(callback, nested) == {"white": "mismatched", "pink": "matched-category", "brown": "mismatched",
                                         "babble": "matched-category", "traffic": "mismatched"}  # fmt: skip
    # White Gaussian noise in training (EmoAugNet) is the white category from another source.
    assert _stamps(callback, Recipe(name="emoaugnet"))["white"] == "matched-category"
    assert _stamps(callback, Recipe(name="emoaugnet"))["pink"] == "mismatched"


def test_stamp_matched_when_both_use_the_same_part() -> None:
    assert set(_stamps(NoiseRobustness(part="train"), Recipe(name="noise")).values()) == {"matched"}
    assert set(_stamps(NoiseRobustness(), BankNoise(part="eval")).values()) == {"matched"}
    assert set(_stamps(NoiseRobustness(part="all"), Recipe(name="noise")).values()) == {"matched"}
    # Another seed: other coloured renderings (matched-category), but the same babble talkers (matched).
    other_seed = NoiseRobustness(bank=ProceduralNoiseBank(seed=1), part="train")
    stamps = _stamps(other_seed, Recipe(name="noise"))
    assert stamps["white"] == "matched-category" and stamps["babble"] == "matched"


def test_stamps_of_a_folder_bank(tmp_path: Path) -> None:
    envs = ["DKITCHEN", "NPARK", "OOFFICE", "PCAFETER", "STRAFFIC", "TBUS"]
    for e, env in enumerate(envs):
        for ch in (1, 2):
            path = tmp_path / env / f"ch{ch:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, 0.1 * np.random.default_rng(10 * e + ch).standard_normal(800), 16000)
    bank = FolderNoiseBank(tmp_path, layout="demand", eval_units=["DKITCHEN", "STRAFFIC"])
    training = BankNoise(bank=bank)  # the other four environments
    assert training.categories == ["NPARK", "OOFFICE", "PCAFETER", "TBUS"]
    evaluation = NoiseRobustness(bank=bank)
    assert _stamps(evaluation, training) == {"DKITCHEN": "mismatched", "STRAFFIC": "mismatched"}
    whole = NoiseRobustness(bank=FolderNoiseBank(tmp_path, layout="demand", channel=2), part="all")
    stamps = _stamps(whole, training)
    assert stamps["NPARK"] == "matched" and stamps["DKITCHEN"] == "mismatched"  # another channel, same recording


def test_table_rows_carry_the_stamp() -> None:
    rows = [{"noise": "clean", "snr_db": None, "stamp": None, "ua": 0.5, "wa": 0.5, "f1": 0.5},
            {"noise": "white", "snr_db": 0.0, "stamp": "mismatched", "ua": 0.25, "wa": 0.25, "f1": 0.2}]  # fmt: skip
    text = format_table(rows)
    assert "mismatched" in text and "clean" in text and "stamp" in text.splitlines()[0]
