"""Additive noise: the one SNR mixing function of the toolkit and the noise banks it draws from.

:func:`mix_at_snr` is the single place where noise is added to speech, used both by training-time
augmentation and by robustness evaluation, so that "10 dB SNR" means the same thing everywhere: the ratio of
the speech power to the noise power over the whole utterance.

Noise banks give noise by category:

* :class:`ProceduralNoiseBank`: ``white``, ``pink``, ``brown`` (FFT-shaped coloured noise), ``babble``
  (eight synthetic talkers from the tiny synthetic corpus) and ``traffic`` (low-frequency rumble).
* :class:`FolderNoiseBank`: user-supplied folders in the DEMAND, MUSAN or plain folder layouts.

Typical use::

    rng = np.random.default_rng(0)
    bank = ProceduralNoiseBank()
    noise = bank.sample("babble", len(speech), 16000, rng)
    noisy = mix_at_snr(speech, noise, snr_db=5.0, rng=rng)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import numpy as np

from ser_lightning.audio import AUDIO_SUFFIXES, read_audio
from ser_lightning.synth import ensure_corpus, read_manifest

"""File suffixes that :class:`FolderNoiseBank` treats as audio (case-insensitive)."""

_LAYOUT_HELP = {
    "demand": "DEMAND layout: <root>/<ENV>/ch01.wav ... ch16.wav (e.g. <root>/DKITCHEN/ch01.wav)",
    "musan": "MUSAN layout: <root>/noise/, <root>/music/, <root>/speech/ with audio files (searched recursively)",
    "folder": "folder layout: audio files in <root> (category 'noise') or in its immediate subfolders "
    "(category = subfolder name)",
}


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


class NoiseBank(ABC):
    """A source of noise by category.

    Attributes:
        categories: The categories :meth:`sample` accepts.
        sample_rate: Default sample rate of :meth:`sample`.
    """

    categories: list[str]
    sample_rate: int

    @abstractmethod
    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples of noise of ``category``.

        Args:
            category: One of :attr:`categories`.
            num_samples: Length (> 0).
            sample_rate: Sample rate; default the bank's.
            rng: Random generator (default: a fresh unseeded one).

        Returns:
            A 1-D float32 array.
        """


class ProceduralNoiseBank(NoiseBank):
    """Noise generated on the fly: coloured noise, synthetic babble and traffic-like rumble.

    Args:
        sample_rate: Default sample rate.
        seed: Seed of the babble buffer (which talkers and offsets); per-call randomness comes from ``rng``.
        babble_talkers: Number of talkers summed into the babble.
        babble_seconds: Length of the cached babble buffer.
        cache_dir: Cache folder of the synthetic corpus (default: that of
            :func:`ser_lightning.synth.ensure_corpus`).
    """

    EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}

    def __init__(
        self,
        sample_rate: int = 16000,
        seed: int = 0,
        babble_talkers: int = 8,
        babble_seconds: float = 30.0,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.babble_talkers = int(babble_talkers)
        self.babble_seconds = float(babble_seconds)
        self.cache_dir = cache_dir
        self.categories = ["white", "pink", "brown", "babble", "traffic"]
        self._babble: dict[int, np.ndarray] = {}

    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples of procedural noise (see :class:`NoiseBank`)."""
        if category not in self.categories:
            raise ValueError(f"unknown noise category {category!r}; expected one of {self.categories}")
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        rng = np.random.default_rng() if rng is None else rng
        if category in self.EXPONENTS:
            return coloured_noise(num_samples, self.EXPONENTS[category], rng)
        if category == "traffic":
            return self._traffic(num_samples, rate, rng)
        return np.ascontiguousarray(fit_length(self.babble_buffer(rate), num_samples, rng), dtype=np.float32)

    @staticmethod
    def _traffic(num_samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
        """Brown noise low-passed below ~300 Hz, slowly amplitude-modulated."""
        spectrum = np.fft.rfft(rng.standard_normal(num_samples))
        freqs = np.fft.rfftfreq(num_samples, d=1.0 / rate)
        shaping = np.zeros_like(freqs)
        shaping[1:] = 1.0 / freqs[1:]  # brown: power 1/f^2
        shaping /= 1.0 + (freqs / 300.0) ** 8  # 4th-order-like low-pass at 300 Hz
        rumble = np.fft.irfft(spectrum * shaping, n=num_samples)
        t = np.arange(num_samples) / rate
        modulation = np.ones(num_samples)
        for _ in range(2):  # passing vehicles: two slow sinusoidal swells
            freq = rng.uniform(0.05, 0.5)
            modulation += rng.uniform(0.2, 0.4) * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
        return _normalise(rumble * modulation)

    def babble_buffer(self, sample_rate: int | None = None) -> np.ndarray:
        """The cached babble buffer at ``sample_rate`` (built on first use).

        Utterances of ``babble_talkers`` different speakers of the tiny synthetic corpus are concatenated per
        talker, tiled to the buffer length from a random offset, normalised per talker, summed and normalised.

        Args:
            sample_rate: Sample rate; default the bank's.

        Returns:
            Float32 babble with RMS 0.1.
        """
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if rate not in self._babble:
            self._babble[rate] = self._make_babble(rate)
        return self._babble[rate]

    def _make_babble(self, rate: int) -> np.ndarray:
        """Builds the babble buffer (see :meth:`babble_buffer`)."""
        corpus = ensure_corpus(size="tiny", seed=0, cache_dir=self.cache_dir)
        by_speaker: dict[str, list[str]] = {}
        for row in read_manifest(corpus):
            by_speaker.setdefault(row["speaker"], []).append(row["path"])
        rng = np.random.default_rng(self.seed)
        speakers = sorted(by_speaker)
        chosen = rng.permutation(len(speakers))[: self.babble_talkers]
        length = round(self.babble_seconds * rate)
        mix = np.zeros(length)
        for index in chosen:
            paths = by_speaker[speakers[index]]
            order = rng.permutation(len(paths))
            talker = np.concatenate([read_audio(str(corpus / paths[i]), rate) for i in order]).astype(np.float64)
            talker = fit_length(talker, length, rng)
            power = float(np.mean(talker**2))
            if power > 0.0:
                mix += talker / np.sqrt(power)
        return _normalise(mix)


class FolderNoiseBank(NoiseBank):
    """Noise read from a user-supplied folder (DEMAND, MUSAN or a plain folder of audio files).

    Layouts:

    * ``demand``: ``<root>/<ENV>/ch01.wav ... ch16.wav``; category = environment name (e.g. ``DKITCHEN``),
      one channel (``channel``, default 1).
    * ``musan``: ``<root>/noise/``, ``music/``, ``speech/``; category = subfolder, files searched recursively.
    * ``folder``: category = each immediate subfolder (files searched recursively), or ``noise`` for audio
      files directly in ``root``.

    Files are read with :func:`ser_lightning.data.dataset.read_audio` (mono, resampled); the last
    ``max_cached_files`` files read are kept in memory.

    Args:
        root: The noise folder.
        sample_rate: Default sample rate.
        layout: ``"demand"``, ``"musan"`` or ``"folder"``.
        channel: DEMAND channel (1-16).
        max_cached_files: Number of decoded files kept in memory.

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no category in the expected layout.
    """

    def __init__(
        self,
        root: str | Path,
        sample_rate: int = 16000,
        layout: Literal["demand", "musan", "folder"] = "folder",
        channel: int = 1,
        max_cached_files: int = 16,
    ) -> None:
        if layout not in _LAYOUT_HELP:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_LAYOUT_HELP)}")
        self.root = Path(root).expanduser()
        self.sample_rate = int(sample_rate)
        self.layout = layout
        self.channel = int(channel)
        self.max_cached_files = int(max_cached_files)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        if not self.root.is_dir():
            raise FileNotFoundError(f"noise folder {self.root} does not exist; expected the {_LAYOUT_HELP[layout]}")
        self._files = {name: files for name, files in self._scan().items() if files}
        if not self._files:
            raise FileNotFoundError(f"no noise files found in {self.root}; expected the {_LAYOUT_HELP[layout]}")
        self.categories = sorted(self._files)

    def _scan(self) -> dict[str, list[Path]]:
        """Maps each category to its sorted audio files."""
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        if self.layout == "demand":
            name = f"ch{self.channel:02d}.wav"
            return {d.name: [d / name] for d in subdirs if (d / name).is_file()}
        if self.layout == "musan":
            return {d.name: _audio_files(d) for d in subdirs if d.name in ("noise", "music", "speech")}
        found = {d.name: _audio_files(d) for d in subdirs}
        top = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if top:
            found.setdefault("noise", []).extend(top)
        return found

    def files(self, category: str) -> list[Path]:
        """The audio files of ``category``.

        Raises:
            FileNotFoundError: If the category has no files (the message names the expected path).
        """
        if category not in self._files:
            where = (
                self.root / category if self.layout != "demand" else self.root / category / f"ch{self.channel:02d}.wav"
            )
            raise FileNotFoundError(
                f"noise category {category!r} not found: {where} is missing or holds no audio files; "
                f"available: {self.categories}; expected the {_LAYOUT_HELP[self.layout]}"
            )
        return self._files[category]

    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples from a random file of ``category`` (see :class:`NoiseBank`).

        The file is chosen with ``rng``, then randomly cropped or tiled to ``num_samples``.
        """
        files = self.files(category)
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        rng = np.random.default_rng() if rng is None else rng
        path = files[int(rng.integers(0, len(files)))]
        audio = self._read(path, rate)
        return np.ascontiguousarray(fit_length(audio, num_samples, rng), dtype=np.float32)

    def _read(self, path: Path, rate: int) -> np.ndarray:
        """Reads a file through the small in-memory cache."""
        key = (str(path), rate)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        audio = read_audio(str(path), rate)
        self._cache[key] = audio
        while len(self._cache) > self.max_cached_files:
            self._cache.popitem(last=False)
        return audio


def _audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder``, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
