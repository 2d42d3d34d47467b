"""Data augmentation: additive noise at a given SNR and the noise banks it draws from."""

from ser_lightning.augment.noise import (
    FolderNoiseBank,
    NoiseBank,
    ProceduralNoiseBank,
    achieved_snr,
    coloured_noise,
    fit_length,
    mix_at_snr,
)

__all__ = [
    "FolderNoiseBank",
    "NoiseBank",
    "ProceduralNoiseBank",
    "achieved_snr",
    "coloured_noise",
    "fit_length",
    "mix_at_snr",
]
