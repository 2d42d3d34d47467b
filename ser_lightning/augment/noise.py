"""Noise banks: the base class and the procedural bank (coloured noise, synthetic babble, traffic rumble).

:func:`~ser_lightning.augment.mixing.mix_at_snr` is the single place where noise is added to speech; the parts
are defined in :mod:`ser_lightning.augment.parts`; folder banks are in :mod:`ser_lightning.augment.folder_noise`.

Noise banks give noise by category:

* :class:`ProceduralNoiseBank`: ``white``, ``pink``, ``brown`` (FFT-shaped coloured noise), ``babble``
  (synthetic talkers of the ``babble`` voice set, which no corpus uses) and ``traffic``
  (low-frequency rumble).
* :class:`~ser_lightning.augment.folder_noise.FolderNoiseBank`: folders in the DEMAND, MUSAN or plain layouts.

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

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ser_lightning.audio import read_audio
from ser_lightning.augment.mixing import _normalise, coloured_noise, fit_length
from ser_lightning.augment.parts import NoisePart, check_part, part_seed, parts_overlap
from ser_lightning.synth import ensure_corpus, get_voice_set, read_manifest

log = logging.getLogger(__name__)


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
