"""Data augmentation: on-the-fly waveform recipes, voice-activity trimming, noise at a given SNR and noise banks."""

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.augment.folder_noise import FolderNoiseBank
from ser_lightning.augment.mixing import achieved_snr, coloured_noise, fit_length, mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.augment.parts import DEFAULT_EVAL_FRACTION, PARTS, NoisePart, part_seed, parts_overlap
from ser_lightning.augment.recipes import RECIPES, Recipe
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
from ser_lightning.augment.vad import VoiceActivityTrimmer

__all__ = [
    "DEFAULT_EVAL_FRACTION",
    "PARTS",
    "RECIPES",
    "BankNoise",
    "Chain",
    "FolderNoiseBank",
    "Identity",
    "NoiseBank",
    "NoisePart",
    "OneOf",
    "PeakScaledGaussianNoise",
    "PitchShift",
    "ProceduralNoiseBank",
    "Recipe",
    "Reverberation",
    "RollShift",
    "SpeedPerturbation",
    "TimeStretch",
    "VoiceActivityTrimmer",
    "WaveformAugmentation",
    "achieved_snr",
    "coloured_noise",
    "fit_length",
    "mix_at_snr",
    "part_seed",
    "parts_overlap",
]
