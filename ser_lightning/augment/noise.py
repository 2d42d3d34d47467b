"""Additive noise: the one SNR mixing function of the toolkit and the noise banks it draws from.

:func:`mix_at_snr` is the single place where noise is added to speech, used both by training-time
augmentation and by robustness evaluation, so that "10 dB SNR" means the same thing everywhere: the ratio of
the speech power to the noise power over the whole utterance.

Noise banks give noise by category:

* :class:`ProceduralNoiseBank`: ``white``, ``pink``, ``brown`` (FFT-shaped coloured noise), ``babble``
  (synthetic talkers of a voice set the default corpus never uses: the German voices) and ``traffic``
  (low-frequency rumble).
* :class:`FolderNoiseBank`: user-supplied folders in the DEMAND, MUSAN or plain folder layouts.

Every bank has a ``part`` (see :data:`NoisePart`, and ``docs/noise.md``): ``"train"`` and ``"eval"`` are
disjoint by construction, so that noise used for training-time augmentation (``BankNoise`` binds its bank to
``"train"``) can never be the noise a model is evaluated on (``NoiseRobustness`` binds to ``"eval"``):

* coloured and traffic noise of each part is rendered from its own seed space: each draw's generator is seeded
  by ``(seed, part, category, draw)`` (:func:`part_seed`), and the parts' tags differ;
* babble of each part sums its own talkers: the sessions of the babble voice set alternate between the parts;
* folder files are split by a hash of their path relative to the root (a DEMAND environment, all 16 channels
  of its one recording, is one unit), :data:`DEFAULT_EVAL_FRACTION` of them held out for ``"eval"``.

``part=None`` (the default of a bank built directly) leaves the choice to its user; used directly, such a bank
draws from the whole, unsplit bank (``"all"``), which overlaps both parts.

Typical use::

    rng = np.random.default_rng(0)
    bank = ProceduralNoiseBank()
    noise = bank.sample("babble", len(speech), 16000, rng)
    noisy = mix_at_snr(speech, noise, snr_db=5.0, rng=rng)
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ser_lightning.audio import AUDIO_SUFFIXES, read_audio
from ser_lightning.synth import ensure_corpus, get_voice_set, read_manifest

NoisePart = Literal["train", "eval", "all"]
"""The part of a noise bank: ``train`` and ``eval`` are disjoint; ``all`` is the whole bank (overlaps both)."""

PARTS: tuple[str, ...] = ("train", "eval", "all")

log = logging.getLogger(__name__)

DEFAULT_EVAL_FRACTION = 0.2
"""The fraction of a folder bank's units (files; DEMAND environments) held out for the ``eval`` part."""

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


def check_part(part: str | None, owner: str) -> str | None:
    """Validates a noise bank part (``None`` passes: not chosen yet).

    Args:
        part: ``"train"``, ``"eval"``, ``"all"`` or ``None``.
        owner: who asks (for the message).

    Returns:
        The part.
    """
    if part is not None and part not in PARTS:
        raise ValueError(f"{owner}: unknown noise part {part!r}; expected one of {list(PARTS)}")
    return part


def resolve_part(requested: str | None, bank: NoiseBank, default: str, owner: str) -> str:
    """The part a bank's user draws from: the one it asks for, else the bank's own, else ``default``.

    Args:
        requested: the part the user (``BankNoise``, ``NoiseRobustness``) was given, or ``None``.
        bank: the bank.
        default: the user's default (``"train"`` for augmentation, ``"eval"`` for evaluation).
        owner: who asks (for the message).

    Raises:
        ValueError: if the user's part and the bank's own part are both given and differ.
    """
    check_part(requested, owner)
    own = getattr(bank, "part", None)
    if requested is not None and own is not None and requested != own:
        raise ValueError(f"{owner}: part={requested!r} but its bank was built with part={own!r}; give one of them")
    return requested or own or default


def part_seed(seed: int, part: str, category: str, draw: int) -> np.random.SeedSequence:
    """The seed of one procedural draw: ``(seed, CRC32 of the part, CRC32 of the category, draw)``.

    The parts' tags differ, so the ``train`` and ``eval`` seed spaces never coincide: no seed of one part is a
    seed of the other, whatever ``seed`` and ``draw``.

    Args:
        seed: the bank's seed.
        part: the bank's part.
        category: the noise category.
        draw: a 63-bit number drawn from the caller's generator.
    """
    tag = zlib.crc32(f"ser_lightning.noise.part/{part}".encode())
    return np.random.SeedSequence([int(seed) % (1 << 64), tag, zlib.crc32(category.encode()), int(draw)])


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


def parts_overlap(a: str | None, b: str | None) -> bool:
    """Whether two parts of one bank may hold the same noise: the same part, or one of them the whole bank.

    Args:
        a: a part (``None``: not chosen, the whole bank).
        b: another part.
    """
    a, b = a or "all", b or "all"
    return a == b or "all" in (a, b)


class NoiseBank(ABC):
    """A source of noise by category, split into disjoint ``train`` and ``eval`` parts.

    Attributes:
        categories: The categories :meth:`sample` accepts (those of the bank's part).
        sample_rate: Default sample rate of :meth:`sample`.
        part: ``"train"``, ``"eval"``, ``"all"`` or ``None`` (not chosen; used directly: the whole bank).
    """

    categories: list[str]
    sample_rate: int
    part: str | None = None

    @property
    def effective_part(self) -> str:
        """The part the bank draws from (``"all"`` when none was chosen)."""
        return self.part or "all"

    def with_part(self, part: str) -> NoiseBank:
        """This bank restricted to ``part`` (the bank itself when it already is).

        A bank class that does not record its constructor arguments (``_init_args``) cannot be rebuilt for a
        part: it is returned unchanged (with a warning) and draws from its whole self.

        Args:
            part: ``"train"``, ``"eval"`` or ``"all"``.
        """
        check_part(part, type(self).__name__)
        if part == self.part:
            return self
        args = getattr(self, "_init_args", None)
        if args is None:
            log.warning(
                "%s does not support noise parts; it is used whole, so training and evaluation may share noise",
                type(self).__name__,
            )
            return self
        return type(self)(**{**args, "part": part})

    def may_share_samples(self, other: NoiseBank, category: str) -> bool:
        """Whether this bank and ``other`` may draw the very same samples of ``category`` (conservative).

        The default: banks of the same class with the same public settings whose parts overlap.

        Args:
            other: another bank.
            category: the category.
        """
        if type(self) is not type(other):
            return False

        def settings(bank: NoiseBank) -> dict[str, Any]:
            return {k: repr(v) for k, v in vars(bank).items() if not k.startswith("_") and k != "part"}

        return settings(self) == settings(other) and parts_overlap(self.part, other.part)

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

    Parts (see the module docstring): coloured and traffic noise is rendered, draw by draw, from a generator
    seeded by :func:`part_seed` ``(seed, part, category, draw)``, where ``draw`` comes from the caller's ``rng``:
    the ``train`` and ``eval`` seed spaces never coincide. Babble sums talkers of the voice set
    ``babble_voice_set`` (default ``babble``: Spanish talkers whose eSpeak voices and variants no corpus voice
    set uses, so neither the ``en`` corpus nor the ``de`` cross-corpus test set is ever in the babble); its
    sessions alternate between the parts in sorted order (the first, third, ... session's talkers
    are ``train``, the second, fourth, ... ``eval``; ``all`` takes every talker), so the two parts' babble
    share no talker.

    Args:
        sample_rate: Default sample rate.
        seed: Seed of the babble buffer (which talkers and offsets) and of the procedural seed space;
            per-call randomness comes from ``rng``.
        babble_talkers: Number of talkers summed into the babble (default: every talker of the part).
        babble_seconds: Length of the cached babble buffer.
        cache_dir: Cache folder of the synthetic corpus (default: that of
            :func:`ser_lightning.synth.ensure_corpus`).
        part: ``"train"``, ``"eval"``, ``"all"`` or ``None`` (not chosen: ``BankNoise`` takes ``train``,
            ``NoiseRobustness`` ``eval``; used directly, ``all``).
        babble_voice_set: Voice set of the babble talkers (see :mod:`ser_lightning.synth.design`).
        babble_size: Corpus size of the babble voice set (its first ``n_speakers`` speakers are the talkers).
        babble_corpus_seed: Corpus seed of the babble voice set.
    """

    EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}

    def __init__(
        self,
        sample_rate: int = 16000,
        seed: int = 0,
        babble_talkers: int | None = None,
        babble_seconds: float = 30.0,
        cache_dir: str | Path | None = None,
        part: NoisePart | None = None,
        babble_voice_set: str = "babble",
        babble_size: str = "tiny",
        babble_corpus_seed: int = 0,
    ) -> None:
        self._init_args = {
            "sample_rate": sample_rate,
            "seed": seed,
            "babble_talkers": babble_talkers,
            "babble_seconds": babble_seconds,
            "cache_dir": cache_dir,
            "part": part,
            "babble_voice_set": babble_voice_set,
            "babble_size": babble_size,
            "babble_corpus_seed": babble_corpus_seed,
        }
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        if babble_talkers is not None and int(babble_talkers) < 1:
            raise ValueError(f"babble_talkers must be at least 1, got {babble_talkers}")
        self.babble_talkers = None if babble_talkers is None else int(babble_talkers)
        self.babble_seconds = float(babble_seconds)
        self.cache_dir = cache_dir
        self.part = check_part(part, "ProceduralNoiseBank")
        get_voice_set(babble_voice_set).size(babble_size)  # fails early on an unknown voice set or size
        self.babble_voice_set = babble_voice_set
        self.babble_size = babble_size
        self.babble_corpus_seed = int(babble_corpus_seed)
        self.categories = ["white", "pink", "brown", "babble", "traffic"]
        self._babble: dict[int, np.ndarray] = {}

    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples of procedural noise of the bank's part (see :class:`NoiseBank`)."""
        if category not in self.categories:
            raise ValueError(f"unknown noise category {category!r}; expected one of {self.categories}")
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        rng = np.random.default_rng() if rng is None else rng
        if category == "babble":
            return np.ascontiguousarray(fit_length(self.babble_buffer(rate), num_samples, rng), dtype=np.float32)
        render = self.render_rng(category, rng)
        if category in self.EXPONENTS:
            return coloured_noise(num_samples, self.EXPONENTS[category], render)
        return self._traffic(num_samples, rate, render)

    def render_rng(self, category: str, rng: np.random.Generator) -> np.random.Generator:
        """The generator one coloured or traffic draw is rendered from (seeded by :func:`part_seed`).

        Args:
            category: the category.
            rng: the caller's generator (one 63-bit number is drawn from it).
        """
        draw = int(rng.integers(0, 2**63))
        return np.random.default_rng(part_seed(self.seed, self.effective_part, category, draw))

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

    def babble_speakers(self, part: str | None = None) -> list[str]:
        """The speaker ids whose voices the babble of ``part`` (default: the bank's) sums, sorted.

        Args:
            part: ``"train"``, ``"eval"`` or ``"all"``.
        """
        part = check_part(part, "ProceduralNoiseBank") or self.effective_part
        voice_set = get_voice_set(self.babble_voice_set)
        speakers = voice_set.speakers[: voice_set.size(self.babble_size).n_speakers]
        sessions = sorted({s.session for s in speakers})
        train_sessions = set(sessions[0::2])
        if part == "all":
            chosen = speakers
        else:
            chosen = tuple(s for s in speakers if (s.session in train_sessions) == (part == "train"))
        return sorted(s.speaker_id for s in chosen)

    def babble_buffer(self, sample_rate: int | None = None) -> np.ndarray:
        """The cached babble buffer of the bank's part at ``sample_rate`` (built on first use).

        Utterances of the part's talkers (:meth:`babble_speakers`; ``babble_talkers`` of them when given) are
        concatenated per talker, tiled to the buffer length from a random offset, normalised per talker, summed
        and normalised.

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
        talkers = self.babble_speakers()
        if self.babble_talkers is not None and self.babble_talkers > len(talkers):
            raise ValueError(
                f"babble_talkers={self.babble_talkers}, but the {self.effective_part!r} part of the "
                f"{self.babble_voice_set!r} {self.babble_size!r} voice set has {len(talkers)} talkers ({talkers})"
            )
        corpus = ensure_corpus(
            size=self.babble_size,
            seed=self.babble_corpus_seed,
            cache_dir=self.cache_dir,
            voice_set=self.babble_voice_set,
        )
        by_speaker: dict[str, list[str]] = {}
        for row in read_manifest(corpus):
            if row["speaker"] in talkers:
                by_speaker.setdefault(row["speaker"], []).append(row["path"])
        missing = sorted(set(talkers) - set(by_speaker))
        if missing:
            raise RuntimeError(f"babble talkers {missing} have no utterance in the corpus {corpus}")
        rng = np.random.default_rng(part_seed(self.seed, self.effective_part, "babble", 0))
        speakers = sorted(by_speaker)
        chosen = rng.permutation(len(speakers))[: self.babble_talkers or len(speakers)]
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

    def may_share_samples(self, other: NoiseBank, category: str) -> bool:
        """Whether ``other`` may draw the very samples of ``category`` this bank draws (see :class:`NoiseBank`).

        Two procedural banks whose parts overlap: babble when they use the same babble corpus (the same talkers
        and utterances, maybe other offsets); coloured and traffic noise when they share the seed (the same seed
        space).
        """
        if not isinstance(other, ProceduralNoiseBank) or category not in self.categories:
            return False
        if category not in other.categories or not parts_overlap(self.part, other.part):
            return False
        if category == "babble":
            mine = (self.babble_voice_set, self.babble_size, self.babble_corpus_seed)
            return mine == (other.babble_voice_set, other.babble_size, other.babble_corpus_seed)
        return self.seed == other.seed


class FolderNoiseBank(NoiseBank):
    """Noise read from a user-supplied folder (DEMAND, MUSAN or a plain folder of audio files).

    Layouts:

    * ``demand``: ``<root>/<ENV>/ch01.wav ... ch16.wav``; category = environment name (e.g. ``DKITCHEN``),
      one channel (``channel``, default 1).
    * ``musan``: ``<root>/noise/``, ``music/``, ``speech/``; category = subfolder, files searched recursively.
    * ``folder``: category = each immediate subfolder (files searched recursively), or ``noise`` for audio
      files directly in ``root``.

    Parts: the folder's units are split deterministically into ``train`` and ``eval``. A unit is a file, named
    by its path relative to ``root`` (``noise/free-sound/noise-0001.wav``), or, for DEMAND, an environment
    folder (``DKITCHEN``): its 16 channels are one recording and are never on both sides. A unit is ``eval``
    when ``sha256(f"{split_seed}/{unit}")`` read as a fraction of 2**64 is below ``eval_fraction``; then, per
    category (DEMAND: over all environments) of at least two units, if no unit fell in a part that should have
    one, the unit of lowest (for ``eval``) or highest (for ``train``) hash is moved there. ``eval_units`` names
    the ``eval`` units instead (e.g. the five DEMAND environments of Latif et al. (2020)). The bank's
    :attr:`categories` are those with files in its part; ``all`` is the whole folder.

    Files are read with :func:`ser_lightning.audio.read_audio` (mono, resampled); the last
    ``max_cached_files`` files read are kept in memory.

    Args:
        root: The noise folder.
        sample_rate: Default sample rate.
        layout: ``"demand"``, ``"musan"`` or ``"folder"``.
        channel: DEMAND channel (1-16).
        max_cached_files: Number of decoded files kept in memory.
        part: ``"train"``, ``"eval"``, ``"all"`` or ``None`` (not chosen: ``BankNoise`` takes ``train``,
            ``NoiseRobustness`` ``eval``; used directly, ``all``).
        eval_fraction: Fraction of the units held out for ``eval`` (0 to 1).
        split_seed: Seed of the split hash.
        eval_units: The ``eval`` units by name (relative file paths; DEMAND: environment names), instead of the
            hash split; every other unit is ``train``.

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no category in the expected layout (or none in
            the bank's part).
    """

    def __init__(
        self,
        root: str | Path,
        sample_rate: int = 16000,
        layout: Literal["demand", "musan", "folder"] = "folder",
        channel: int = 1,
        max_cached_files: int = 16,
        part: NoisePart | None = None,
        eval_fraction: float = DEFAULT_EVAL_FRACTION,
        split_seed: int = 0,
        eval_units: Sequence[str] | None = None,
    ) -> None:
        self._init_args = {
            "root": root,
            "sample_rate": sample_rate,
            "layout": layout,
            "channel": channel,
            "max_cached_files": max_cached_files,
            "part": part,
            "eval_fraction": eval_fraction,
            "split_seed": split_seed,
            "eval_units": eval_units,
        }
        if layout not in _LAYOUT_HELP:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_LAYOUT_HELP)}")
        if not 0.0 <= float(eval_fraction) <= 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
        self.root = Path(root).expanduser()
        self.sample_rate = int(sample_rate)
        self.layout = layout
        self.channel = int(channel)
        self.max_cached_files = int(max_cached_files)
        self.part = check_part(part, "FolderNoiseBank")
        self.eval_fraction = float(eval_fraction)
        self.split_seed = int(split_seed)
        self.eval_units = None if eval_units is None else [str(u) for u in eval_units]
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        if not self.root.is_dir():
            raise FileNotFoundError(f"noise folder {self.root} does not exist; expected the {_LAYOUT_HELP[layout]}")
        self._all_files = {name: files for name, files in self._scan().items() if files}
        if not self._all_files:
            raise FileNotFoundError(f"no noise files found in {self.root}; expected the {_LAYOUT_HELP[layout]}")
        self._split = self._make_split()
        wanted = ("train", "eval") if self.effective_part == "all" else (self.effective_part,)
        in_part = {c: [f for f in fs if self._split[self.unit_of(f)] in wanted] for c, fs in self._all_files.items()}
        self._files = {c: fs for c, fs in in_part.items() if fs}
        if not self._files:
            raise FileNotFoundError(
                f"the {self.effective_part!r} part of the noise folder {self.root} holds no file "
                f"(eval_fraction={self.eval_fraction}, eval_units={self.eval_units}); split: {self.split()}"
            )
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

    def unit_of(self, path: Path) -> str:
        """The split unit of a file: its path relative to the root; for DEMAND, its environment folder.

        Args:
            path: a file of the bank.
        """
        target = path.parent if self.layout == "demand" else path
        return target.relative_to(self.root).as_posix()

    def _score(self, unit: str) -> float:
        """The unit's split hash as a fraction in [0, 1)."""
        digest = hashlib.sha256(f"{self.split_seed}/{unit}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def _make_split(self) -> dict[str, str]:
        """Maps every unit of the folder to ``"train"`` or ``"eval"`` (see the class docstring)."""
        groups: dict[str, list[str]] = {}
        for category, files in self._all_files.items():
            group = "" if self.layout == "demand" else category
            groups.setdefault(group, []).extend(self.unit_of(f) for f in files)
        units = sorted({u for members in groups.values() for u in members})
        if self.eval_units is not None:
            unknown = sorted(set(self.eval_units) - set(units))
            if unknown:
                raise ValueError(f"eval_units {unknown} are not units of the noise folder {self.root}; units: {units}")
            return {u: "eval" if u in self.eval_units else "train" for u in units}
        split = {u: "eval" if self._score(u) < self.eval_fraction else "train" for u in units}
        for members in groups.values():
            members = sorted(set(members))
            if len(members) < 2:
                continue
            if self.eval_fraction > 0.0 and all(split[u] == "train" for u in members):
                split[min(members, key=self._score)] = "eval"
            if self.eval_fraction < 1.0 and all(split[u] == "eval" for u in members):
                split[max(members, key=self._score)] = "train"
        return split

    def split(self) -> dict[str, str]:
        """The split of the whole folder: unit -> ``"train"`` or ``"eval"`` (see the class docstring)."""
        return dict(sorted(self._split.items()))

    def files(self, category: str) -> list[Path]:
        """The audio files of ``category`` in the bank's part.

        Raises:
            FileNotFoundError: If the category has no files in the bank's part (the message names the expected
                path, or says that the category's files are in the other part).
        """
        if category not in self._files:
            if category in self._all_files:
                raise FileNotFoundError(
                    f"noise category {category!r} has no file in the {self.effective_part!r} part of "
                    f"{self.root}: its units are in the other part (split: {self.split()}); choose another part, "
                    f"eval_fraction or eval_units; available here: {self.categories}"
                )
            where = (
                self.root / category if self.layout != "demand" else self.root / category / f"ch{self.channel:02d}.wav"
            )
            raise FileNotFoundError(
                f"noise category {category!r} not found: {where} is missing or holds no audio files; "
                f"available: {self.categories}; expected the {_LAYOUT_HELP[self.layout]}"
            )
        return self._files[category]

    def recordings(self, category: str) -> set[str]:
        """The resolved audio files ``category`` may draw from; for DEMAND every channel of its recordings.

        Args:
            category: the category (a category without files in the bank's part has none).
        """
        if category not in self._files:
            return set()
        if self.layout == "demand":
            return {str(p.resolve()) for f in self._files[category] for p in _audio_files(f.parent)}
        return {str(f.resolve()) for f in self._files[category]}

    def may_share_samples(self, other: NoiseBank, category: str) -> bool:
        """Whether ``other`` may draw samples of ``category`` from a recording this bank draws from."""
        if not isinstance(other, FolderNoiseBank):
            return False
        return bool(self.recordings(category) & other.recordings(category))

    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples from a random file of ``category`` (see :class:`NoiseBank`).

        The file is chosen with ``rng`` among the category's files in the bank's part, then randomly cropped or
        tiled to ``num_samples``.
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
