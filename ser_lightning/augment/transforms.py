"""Seeded waveform augmentation building blocks: noise, pitch, tempo, shift, speed, reverberation, combinators.

Each is a :class:`~ser_lightning.audio.WaveformAugmentation` (picklable, seeded per call) configured from YAML as
``class_path: ser_lightning.augment.<Name>``; the named recipes of the research that combine them are in
:mod:`ser_lightning.augment.recipes`.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.signal import fftconvolve
from torchaudio import functional as taf

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.augment.parts import NoisePart, resolve_part

log = logging.getLogger(__name__)


class _Described:
    """A value whose repr is its class and constructor arguments (e.g. a noise bank), for stable run stamps."""

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __repr__(self) -> str:
        params = inspect.signature(type(self.obj).__init__).parameters
        args = ", ".join(
            f"{name}={getattr(self.obj, name)!r}" for name in params if name != "self" and hasattr(self.obj, name)
        )
        return f"{type(self.obj).__name__}({args})"


def _check_probability(p: float, owner: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{owner}: p must be in [0, 1], got {p}")
    return float(p)


def _check_range(bounds: Sequence[float], owner: str, name: str, low: float, high: float) -> tuple[float, float]:
    """Validates a ``(min, max)`` pair within ``[low, high]``."""
    values = tuple(float(v) for v in bounds)
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{owner}: {name} must be a (min, max) pair of finite numbers, got {bounds!r}")
    if values[0] > values[1]:
        raise ValueError(f"{owner}: {name} minimum {values[0]} is above its maximum {values[1]}")
    if values[0] < low or values[1] > high:
        raise ValueError(f"{owner}: {name} {values} must lie within [{low}, {high}]")
    return values  # type: ignore[return-value]


def _skip(p: float, rng: np.random.Generator) -> bool:
    """Whether a block applied with probability ``p`` is skipped this draw (no draw when ``p`` is 0 or 1)."""
    if p >= 1.0:
        return False
    if p <= 0.0:
        return True
    return bool(rng.random() >= p)


class Identity(WaveformAugmentation):
    """Returns the waveform unchanged (the "original" choice of a :class:`OneOf`)."""

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Returns ``samples`` unchanged."""
        return samples


class PeakScaledGaussianNoise(WaveformAugmentation):
    """Additive Gaussian noise scaled by the peak amplitude (Paul et al. 2025 §III).

    ``noise = N(0, 1) x scale x U(0, 1) x max|x|``.

    Args:
        scale: the constant factor (0.035 in EmoAugNet).
        p: probability of applying it.
    """

    def __init__(self, scale: float = 0.035, p: float = 1.0) -> None:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"PeakScaledGaussianNoise: scale must be positive, got {scale}")
        self.scale = float(scale)
        self.p = _check_probability(p, "PeakScaledGaussianNoise")

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Adds the noise."""
        if _skip(self.p, rng):
            return samples
        amplitude = self.scale * rng.uniform(0.0, 1.0) * float(np.max(np.abs(samples)))
        return (samples + amplitude * rng.standard_normal(len(samples))).astype(np.float32)


class PitchShift(WaveformAugmentation):
    """Pitch shift without tempo change (audiomentations ``PitchShift``, Signalsmith Stretch).

    Args:
        semitones: range of the shift in semitones, drawn uniformly (negative: down); within [-24, 24].
        p: probability of applying it.
    """

    def __init__(self, semitones: tuple[float, float] = (-1.0, 1.0), p: float = 1.0) -> None:
        self.semitones = _check_range(semitones, "PitchShift", "semitones", -24.0, 24.0)
        self.p = _check_probability(p, "PitchShift")

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Shifts the pitch by a drawn number of semitones."""
        import audiomentations

        if _skip(self.p, rng):
            return samples
        steps = float(rng.uniform(*self.semitones))
        shift = audiomentations.PitchShift(min_semitones=steps, max_semitones=steps, p=1.0)
        return shift(samples, sample_rate=sample_rate)


class TimeStretch(WaveformAugmentation):
    """Tempo change without pitch change (audiomentations ``TimeStretch``); the length changes by ``1 / rate``.

    Args:
        rate: range of the stretch rate, drawn uniformly: below 1 slows down (longer), above 1 speeds up
            (shorter); within [0.1, 10].
        p: probability of applying it.
    """

    def __init__(self, rate: tuple[float, float] = (0.8, 1.25), p: float = 1.0) -> None:
        self.rate = _check_range(rate, "TimeStretch", "rate", 0.1, 10.0)
        self.p = _check_probability(p, "TimeStretch")

    @property
    def preserves_length(self) -> bool:
        """False: the output is ``len / rate`` long."""
        return False

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Stretches by a drawn rate."""
        import audiomentations

        if _skip(self.p, rng):
            return samples
        rate = float(rng.uniform(*self.rate))
        stretch = audiomentations.TimeStretch(min_rate=rate, max_rate=rate, leave_length_unchanged=False, p=1.0)
        return stretch(samples, sample_rate=sample_rate)


class RollShift(WaveformAugmentation):
    """Circular time shift (``np.roll``) by an integer drawn uniformly from ``[-max_samples, max_samples]``.

    Args:
        max_samples: largest shift in samples (5000 in EmoAugNet).
        p: probability of applying it.
    """

    def __init__(self, max_samples: int = 5000, p: float = 1.0) -> None:
        if int(max_samples) != max_samples or max_samples < 1:
            raise ValueError(f"RollShift: max_samples must be a positive integer, got {max_samples}")
        self.max_samples = int(max_samples)
        self.p = _check_probability(p, "RollShift")

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Rolls the waveform."""
        if _skip(self.p, rng):
            return samples
        return np.roll(samples, int(rng.integers(-self.max_samples, self.max_samples + 1)))


class SpeedPerturbation(WaveformAugmentation):
    """Speed perturbation (Ko et al., 2015; Latif et al. 2020): resampling that changes tempo and pitch together.

    A factor is drawn uniformly from ``factors``; the waveform is resampled from ``factor x sample_rate`` to
    ``sample_rate`` (``torchaudio.functional.speed``), so a factor of 1.1 plays 10 % faster and is ``1 / 1.1``
    as long.

    Args:
        factors: the speed factors (each in (0, 10]); 1.0 keeps the original.
    """

    def __init__(self, factors: tuple[float, ...] = (0.9, 1.0, 1.1)) -> None:
        values = tuple(float(f) for f in factors)
        if not values or not all(math.isfinite(f) and 0.0 < f <= 10.0 for f in values):
            raise ValueError(f"SpeedPerturbation: factors must be a non-empty list of speeds in (0, 10], got {factors}")
        self.factors = values

    @property
    def preserves_length(self) -> bool:
        """False unless every factor is 1."""
        return all(f == 1.0 for f in self.factors)

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Resamples by a drawn factor."""
        factor = self.factors[int(rng.integers(0, len(self.factors)))]
        if factor == 1.0:
            return samples
        out, _ = taf.speed(torch.from_numpy(np.ascontiguousarray(samples)), sample_rate, factor)
        return out.numpy()


class BankNoise(WaveformAugmentation):
    """Noise from a noise bank at an SNR drawn uniformly from a range (mixed by :func:`mix_at_snr`).

    Each draw picks a category uniformly, samples noise from the bank at the waveform's rate and mixes it at the
    drawn SNR over the whole utterance. Silent input (zero power: the SNR is undefined) is returned unchanged.

    The bank is bound to a part (see :mod:`ser_lightning.augment.noise`): by default ``train``, which shares no
    noise with the ``eval`` part that :class:`~ser_lightning.callbacks.NoiseRobustness` evaluates on.

    Args:
        bank: the noise bank (default: a :class:`~ser_lightning.augment.noise.ProceduralNoiseBank`).
        categories: the categories to draw from (default: all of the bank's part).
        snr_db: SNR range in dB, drawn uniformly.
        p: probability of applying it.
        part: the bank's part to draw from (default: the bank's own part when it was built with one, else
            ``"train"``); a part that differs from the bank's own is an error.
    """

    def __init__(
        self,
        bank: NoiseBank | None = None,
        categories: list[str] | None = None,
        snr_db: tuple[float, float] = (0.0, 20.0),
        p: float = 1.0,
        part: NoisePart | None = None,
    ) -> None:
        bank = bank if bank is not None else ProceduralNoiseBank()
        self.part = resolve_part(part, bank, "train", "BankNoise")
        self.bank = bank.with_part(self.part)
        chosen = list(categories) if categories else list(self.bank.categories)
        unknown = [c for c in chosen if c not in self.bank.categories]
        if unknown:
            raise ValueError(
                f"BankNoise: unknown noise categories {unknown}; the {self.part!r} part of the bank has "
                f"{self.bank.categories}"
            )
        self.categories = chosen
        self.snr_db = _check_range(snr_db, "BankNoise", "snr_db", -100.0, 200.0)
        self.p = _check_probability(p, "BankNoise")

    def config(self) -> dict[str, object]:
        """The constructor arguments (the bank shown by its class and arguments)."""
        return {
            "bank": _Described(self.bank),
            "categories": self.categories,
            "snr_db": self.snr_db,
            "p": self.p,
            "part": self.part,
        }

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Mixes a drawn noise at a drawn SNR."""
        if _skip(self.p, rng):
            return samples
        if float(np.mean(np.square(samples, dtype=np.float64))) <= 0.0:
            return samples
        category = self.categories[int(rng.integers(0, len(self.categories)))]
        snr = float(rng.uniform(*self.snr_db))
        noise = self.bank.sample(category, len(samples), sample_rate, rng)
        return mix_at_snr(samples, noise, snr, rng)


class Reverberation(WaveformAugmentation):
    """Reverberation: a synthetic room impulse response, or one drawn from a folder of recorded ones.

    Without ``ir_root`` the impulse response is a direct path followed by exponentially decaying Gaussian noise
    (a diffuse tail) whose energy falls by 60 dB in an RT60 drawn uniformly from ``rt60``; it is convolved with
    ``scipy.signal.fftconvolve``. With ``ir_root`` a file of that folder (searched recursively) is drawn and applied
    by audiomentations ``ApplyImpulseResponse``. Either way the output keeps the input's length and is rescaled to
    the input's peak amplitude, so levels stay comparable.

    Args:
        rt60: range of the synthetic reverberation time in seconds (ignored with ``ir_root``).
        ir_root: folder of impulse-response audio files (``None``: synthetic).
        p: probability of applying it.

    Raises:
        FileNotFoundError: ``ir_root`` is missing or holds no audio file.
    """

    def __init__(self, rt60: tuple[float, float] = (0.2, 0.8), ir_root: str | None = None, p: float = 1.0) -> None:
        self.rt60 = _check_range(rt60, "Reverberation", "rt60", 1e-3, 10.0)
        self.ir_root = ir_root
        self.p = _check_probability(p, "Reverberation")
        self._convolver = None
        if ir_root is not None:
            from audiomentations.core.utils import find_audio_files_in_paths

            root = Path(ir_root).expanduser()
            if not root.is_dir():
                raise FileNotFoundError(f"Reverberation: impulse-response folder {root} does not exist")
            if not find_audio_files_in_paths(root):
                raise FileNotFoundError(f"Reverberation: impulse-response folder {root} holds no audio file")

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_convolver"] = None  # audiomentations' IR cache is rebuilt in each worker
        return state

    def impulse_response(self, rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """A synthetic impulse response: unit direct path, then a noise tail decaying 60 dB in ``rt60`` seconds.

        Args:
            rt60: reverberation time in seconds.
            sample_rate: sample rate.
            rng: random generator of the tail.

        Returns:
            The float64 impulse response, ``rt60`` seconds long (at least 2 samples).
        """
        length = max(2, round(rt60 * sample_rate))
        t = np.arange(length) / sample_rate
        tail = rng.standard_normal(length) * np.exp(-3.0 * math.log(10.0) * t / rt60)
        tail[0] = 0.0
        tail *= 1.0 / math.sqrt(max(float(np.sum(tail**2)), 1e-12))  # tail energy = direct-path energy
        tail[0] = 1.0
        return tail

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Convolves with a drawn impulse response and restores the input's peak."""
        if _skip(self.p, rng):
            return samples
        peak = float(np.max(np.abs(samples)))
        if peak <= 0.0:
            return samples
        if self.ir_root is None:
            ir = self.impulse_response(float(rng.uniform(*self.rt60)), sample_rate, rng)
            wet = fftconvolve(samples.astype(np.float64), ir, mode="full")[: len(samples)]
        else:
            if self._convolver is None:
                import audiomentations

                self._convolver = audiomentations.ApplyImpulseResponse(
                    ir_path=str(Path(self.ir_root).expanduser()), p=1.0, leave_length_unchanged=True
                )
            wet = self._convolver(samples, sample_rate=sample_rate)  # draws the file from the seeded `random`
        wet_peak = float(np.max(np.abs(wet)))
        if wet_peak <= 0.0 or not math.isfinite(wet_peak):
            return samples
        return (wet * (peak / wet_peak)).astype(np.float32)


class Chain(WaveformAugmentation):
    """Applies augmentations one after the other.

    Args:
        steps: the augmentations, in order (at least one).
    """

    def __init__(self, steps: list[WaveformAugmentation]) -> None:
        if not steps:
            raise ValueError("Chain: steps must hold at least one augmentation")
        bad = [s for s in steps if not isinstance(s, WaveformAugmentation)]
        if bad:
            raise ValueError(f"Chain: every step must be a WaveformAugmentation, got {bad!r}")
        self.steps = list(steps)

    @property
    def preserves_length(self) -> bool:
        """True when every step preserves the length."""
        return all(s.preserves_length for s in self.steps)

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Applies every step."""
        for step in self.steps:
            samples = np.asarray(step.apply(samples, sample_rate, rng), dtype=np.float32)
        return samples


class OneOf(WaveformAugmentation):
    """Applies one augmentation per draw, chosen at random.

    Args:
        choices: the augmentations (at least one).
        weights: relative weights of the choices (default: equal); non-negative with a positive sum.
    """

    def __init__(self, choices: list[WaveformAugmentation], weights: list[float] | None = None) -> None:
        if not choices:
            raise ValueError("OneOf: choices must hold at least one augmentation")
        bad = [c for c in choices if not isinstance(c, WaveformAugmentation)]
        if bad:
            raise ValueError(f"OneOf: every choice must be a WaveformAugmentation, got {bad!r}")
        self.choices = list(choices)
        if weights is not None:
            w = [float(x) for x in weights]
            if len(w) != len(self.choices) or any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
                raise ValueError(
                    f"OneOf: weights must be {len(self.choices)} non-negative numbers with a positive sum, "
                    f"got {weights}"
                )
            self.weights: list[float] | None = w
        else:
            self.weights = None

    @property
    def preserves_length(self) -> bool:
        """True when every choice preserves the length."""
        return all(c.preserves_length for c in self.choices)

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Applies one drawn choice."""
        if self.weights is None:
            index = int(rng.integers(0, len(self.choices)))
        else:
            probs = np.asarray(self.weights) / sum(self.weights)
            index = int(rng.choice(len(self.choices), p=probs))
        return self.choices[index].apply(samples, sample_rate, rng)


# ------------------------------------------------------------------------------------------------ named recipes
