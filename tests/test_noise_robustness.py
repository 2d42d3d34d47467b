"""The noise robustness callback without a model: metric names and identical, seeded noisy inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ser_lightning.augment import ProceduralNoiseBank, achieved_snr
from ser_lightning.callbacks import NoiseRobustness
from ser_lightning.callbacks.noise import category_slug, snr_tag

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
