"""Data augmentation: on-the-fly waveform recipes, voice-activity trimming, noise at a given SNR and noise banks."""

from ser_lightning.augment.noise import (
    FolderNoiseBank,
    NoiseBank,
    ProceduralNoiseBank,
    achieved_snr,
    coloured_noise,
    fit_length,
    mix_at_snr,
)
from ser_lightning.augment.recipes import (
    RECIPES,
    BankNoise,
    Chain,
    Identity,
    OneOf,
    PeakScaledGaussianNoise,
    PitchShift,
    Recipe,
    Reverberation,
    RollShift,
    SpeedPerturbation,
    TimeStretch,
    WaveformAugmentation,
)
from ser_lightning.augment.vad import VoiceActivityTrimmer

__all__ = [
    "RECIPES",
    "BankNoise",
    "Chain",
    "FolderNoiseBank",
    "Identity",
    "NoiseBank",
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
]
