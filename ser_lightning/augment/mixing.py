"""Mixing noise into speech at an exact SNR: the one place where noise is added to speech.

:func:`mix_at_snr` is used both by training-time augmentation and by robustness evaluation, so that "10 dB SNR"
means the same thing everywhere: the ratio of the speech power to the noise power over the whole utterance.
:func:`achieved_snr` measures it back; :func:`coloured_noise` renders FFT-shaped noise.
"""

from __future__ import annotations

import numpy as np


def _check_signal(x: np.ndarray, name: str) -> np.ndarray:
    """Validates a 1-D, non-empty, finite signal and returns it as float64."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite samples")
    return arr


def fit_length(noise: np.ndarray, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Crops or tiles ``noise`` to ``num_samples`` samples.

    A longer noise is cropped at a random start; a shorter one is tiled (circularly) from a random offset.
    A noise of exactly ``num_samples`` is returned unchanged. The random draws come from ``rng`` only.

    Args:
        noise: 1-D noise signal.
        num_samples: Target length (> 0).
        rng: Random generator.

    Returns:
        The noise segment, same dtype as ``noise``.
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    length = len(noise)
    if length == 0:
        raise ValueError("noise is empty")
    if length > num_samples:
        start = int(rng.integers(0, length - num_samples + 1))
        return noise[start : start + num_samples]
    if length < num_samples:
        offset = int(rng.integers(0, length))
        return noise[(offset + np.arange(num_samples)) % length]
    return noise


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Adds noise to speech at an exact signal-to-noise ratio.

    The noise is cropped at a random start (when longer than the speech) or tiled from a random offset (when
    shorter), then scaled so that ``10 * log10(P_speech / P_noise) == snr_db``, where ``P`` is the mean power
    over the whole utterance. All arithmetic is float64; the result is float32.

    Args:
        speech: 1-D speech signal.
        noise: 1-D noise signal (any length).
        snr_db: Requested SNR in dB (finite; may be negative).
        rng: Random generator for the crop or tiling offset.

    Returns:
        ``speech + scaled_noise`` as a float32 array of the speech's length.

    Raises:
        ValueError: If an input is not 1-D, is empty, contains non-finite samples or is silent (zero power,
            including a silent noise segment after cropping), or if ``snr_db`` is not finite.
    """
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    s = _check_signal(speech, "speech")
    n = _check_signal(noise, "noise")
    p_speech = float(np.mean(s**2))
    if p_speech <= 0.0:
        raise ValueError("speech is silent (zero power); the SNR is undefined")
    if float(np.mean(n**2)) <= 0.0:
        raise ValueError("noise is silent (zero power); it cannot be scaled to an SNR")
    segment = fit_length(n, len(s), rng)
    p_noise = float(np.mean(segment**2))
    if p_noise <= 0.0:
        raise ValueError("the noise segment drawn for this utterance is silent (zero power)")
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (float(snr_db) / 10.0)))
    return (s + gain * segment).astype(np.float32)


def achieved_snr(speech: np.ndarray, noisy: np.ndarray) -> float:
    """Measures the SNR (dB) of ``noisy`` relative to the clean ``speech`` it was mixed from.

    Args:
        speech: Clean 1-D signal.
        noisy: Mixed 1-D signal of the same length.

    Returns:
        ``10 * log10(P_speech / P_(noisy - speech))``.
    """
    s = np.asarray(speech, dtype=np.float64)
    residual = np.asarray(noisy, dtype=np.float64) - s
    return float(10.0 * np.log10(np.mean(s**2) / np.mean(residual**2)))


def _normalise(x: np.ndarray, rms: float = 0.1) -> np.ndarray:
    """Scales ``x`` to the given RMS (float64 in, float32 out)."""
    power = float(np.mean(x**2))
    if power <= 0.0:
        return x.astype(np.float32)
    return (x * (rms / np.sqrt(power))).astype(np.float32)


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Generates noise whose power spectrum falls as ``1 / f**exponent`` (FFT shaping of white noise).

    Args:
        num_samples: Length (> 0).
        exponent: 0 for white, 1 for pink, 2 for brown.
        rng: Random generator.

    Returns:
        Float32 noise with RMS 0.1 and no DC component (for ``exponent > 0``).
    """
    white = rng.standard_normal(num_samples)
    if exponent == 0.0:
        return _normalise(white)
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(num_samples)
    shaping = np.zeros_like(freqs)
    shaping[1:] = freqs[1:] ** (-exponent / 2.0)
    return _normalise(np.fft.irfft(spectrum * shaping, n=num_samples))
