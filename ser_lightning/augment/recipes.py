"""On-the-fly waveform augmentation: the named recipes of the research, over the building blocks.

Every augmentation is a :class:`WaveformAugmentation`: a picklable callable ``(samples, sample_rate) -> samples``
that a DataModule applies to its training split only (``augmentation`` argument; validation, test and predict
audio is never augmented). Each call draws its seed from torch's generator of the current process, so runs are
reproducible under ``seed_everything(workers=True)`` and every epoch and worker sees new draws;
:meth:`WaveformAugmentation.augment` is the deterministic form for a given seed (e.g. offline copies).

Building blocks (:mod:`ser_lightning.augment.transforms`; from YAML ``class_path: ser_lightning.augment.<Name>``):
:class:`PeakScaledGaussianNoise`, :class:`PitchShift`, :class:`TimeStretch`, :class:`RollShift`,
:class:`SpeedPerturbation`, :class:`BankNoise`, :class:`Reverberation`, :class:`Identity`, and the combinators
:class:`Chain` and :class:`OneOf`. :class:`Recipe` selects a named recipe of :data:`RECIPES`:

==========================  =======================================================================================
name                        what one draw does
==========================  =======================================================================================
``emoaugnet_noise``         Paul et al. 2025: Gaussian noise, std = 0.035 x U(0, 1) x peak amplitude
``emoaugnet_pitch``         Paul et al. 2025: pitch shift by U(-1, 1) semitones
``emoaugnet_stretch_slow``  Paul et al. 2025: time stretch by a rate U(0.8, 0.9) (slower, longer)
``emoaugnet_stretch_fast``  Paul et al. 2025: time stretch by a rate U(1.1, 1.25) (faster, shorter)
``emoaugnet_shift``         Paul et al. 2025: circular shift by an integer in [-5000, 5000] samples
``emoaugnet``               Paul et al. 2025, Fig. 1, on the fly: one of 10 equally likely versions per draw: the
                            original, the five single augmentations above, and noise added after pitch, slow, fast
                            or shift (the paper's "10 samples per file including combinations"; its exact list is
                            not given in the text, this is our reading)
``pitch_noise``             Pankratz et al.: pitch shift up U(1, 2) or down U(-2, -1) semitones (even odds), then light
                            Gaussian noise, std = 0.01 x U(0, 1) x peak amplitude
``sp``                      Latif et al. 2020 / Ko et al. (2015): speed perturbation, factor drawn from {0.9, 1.0, 1.1}
                            (the original and the paper's two copies; tempo and pitch change together)
``noise``                   procedural noise bank, ``train`` part (white, pink, brown, babble, traffic), SNR U(0, 20) dB
``reverb``                  synthetic exponentially decaying reverberation, RT60 U(0.2, 0.8) s
==========================  =======================================================================================

Mixup is not a waveform augmentation: it is the model's ``mixup_alpha`` (``configs/augment/mixup.yaml``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.augment.transforms import (
    BankNoise,
    Chain,
    Identity,
    OneOf,
    PeakScaledGaussianNoise,
    PitchShift,
    Reverberation,
    RollShift,
    SpeedPerturbation,
    TimeStretch,
)

log = logging.getLogger(__name__)

__all__ = ["RECIPES", "Recipe", "RecipeName"]


def _emoaugnet_noise() -> WaveformAugmentation:
    return PeakScaledGaussianNoise(scale=0.035)


def _emoaugnet_pitch() -> WaveformAugmentation:
    return PitchShift(semitones=(-1.0, 1.0))


def _emoaugnet_slow() -> WaveformAugmentation:
    return TimeStretch(rate=(0.8, 0.9))


def _emoaugnet_fast() -> WaveformAugmentation:
    return TimeStretch(rate=(1.1, 1.25))


def _emoaugnet_shift() -> WaveformAugmentation:
    return RollShift(max_samples=5000)


def _emoaugnet() -> WaveformAugmentation:
    singles = [_emoaugnet_noise(), _emoaugnet_pitch(), _emoaugnet_slow(), _emoaugnet_fast(), _emoaugnet_shift()]
    combined = [Chain([make(), _emoaugnet_noise()]) for make in (_emoaugnet_pitch, _emoaugnet_slow,
                                                                 _emoaugnet_fast, _emoaugnet_shift)]  # fmt: skip
    return OneOf([Identity(), *singles, *combined])


def _pitch_noise() -> WaveformAugmentation:
    return Chain(
        [
            OneOf([PitchShift(semitones=(1.0, 2.0)), PitchShift(semitones=(-2.0, -1.0))]),
            PeakScaledGaussianNoise(scale=0.01),
        ]
    )


def _sp() -> WaveformAugmentation:
    return SpeedPerturbation(factors=(0.9, 1.0, 1.1))


def _noise() -> WaveformAugmentation:
    return BankNoise(snr_db=(0.0, 20.0), part="train")


RecipeName = Literal[
    "emoaugnet",
    "emoaugnet_noise",
    "emoaugnet_pitch",
    "emoaugnet_stretch_slow",
    "emoaugnet_stretch_fast",
    "emoaugnet_shift",
    "pitch_noise",
    "sp",
    "noise",
    "reverb",
]
"""The names :class:`Recipe` accepts."""

RECIPES: dict[str, Callable[[], WaveformAugmentation]] = {
    "emoaugnet": _emoaugnet,
    "emoaugnet_noise": _emoaugnet_noise,
    "emoaugnet_pitch": _emoaugnet_pitch,
    "emoaugnet_stretch_slow": _emoaugnet_slow,
    "emoaugnet_stretch_fast": _emoaugnet_fast,
    "emoaugnet_shift": _emoaugnet_shift,
    "pitch_noise": _pitch_noise,
    "sp": _sp,
    "noise": _noise,
    "reverb": Reverberation,
}
"""Named recipes: name -> factory of the augmentation (see the module docstring for what each does)."""

class Recipe(WaveformAugmentation):
    """A named augmentation recipe of the research (see :data:`RECIPES` and the module docstring).

    In YAML: ``augmentation: {class_path: ser_lightning.augment.Recipe, init_args: {name: sp}}``.

    Args:
        name: the recipe.
    """

    def __init__(self, name: RecipeName) -> None:
        if name not in RECIPES:
            raise ValueError(f"Recipe: unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
        self.name = name
        self.recipe = RECIPES[name]()

    def config(self) -> dict[str, object]:
        """``{"name": ...}``."""
        return {"name": self.name}

    @property
    def preserves_length(self) -> bool:
        """Whether the recipe preserves the length."""
        return self.recipe.preserves_length

    def apply(self, samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
        """Applies the recipe."""
        return self.recipe.apply(samples, sample_rate, rng)
