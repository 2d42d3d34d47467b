"""The embedded synthetic emotional speech corpus (eSpeak NG), generated offline on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import Utterance, read_manifest_csv
from ser_lightning.synth import DEFAULT_EMOTIONS, EMOTIONS, ensure_corpus

SER_VOICE_SETS = Literal["en", "de"]
"""The voice sets an SER corpus may be made of (``babble`` and ``enhance`` talkers are never an SER split)."""


class SyntheticDataModule(CorpusDataModule):
    """An emotional speech corpus synthesised with eSpeak NG: the default corpus of the toolkit and its tests.

    It is a stand-in that makes every pipeline runnable offline, not a measure of real SER accuracy. Speakers
    differ by voice variant, accent, habitual pitch, range and rate; emotions are prosody and voice-quality
    profiles with per-utterance jitter; every speaker reads the same neutral sentences. Speakers are paired
    into sessions (one female, one male), so ``loso`` validates on the held-out speaker's session partner.

    The corpus is generated once (deterministically for a size, seed, voice set and emotion list) into a cache
    folder: ``root`` if given, else ``$SER_LIGHTNING_CACHE``, else ``~/.cache/ser_lightning``.

    Args:
        size: ``tiny`` (tests), ``default`` (the main job) or ``large``.
        voice_set: speaker/language set (``en``; ``de`` for a German cross-corpus partner).
        emotions: the emotion classes to generate, in label order.
        corpus_seed: seed of the corpus' generation (independent of the fold seed).
    """

    corpus_name = "synthetic"

    def __init__(
        self,
        size: Literal["tiny", "default", "large"] = "default",
        voice_set: SER_VOICE_SETS = "en",
        emotions: list[str] | None = None,
        corpus_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        emotions = list(emotions) if emotions else list(DEFAULT_EMOTIONS)
        unknown = [e for e in emotions if e not in EMOTIONS]
        if unknown:
            raise ValueError(f"unknown emotion(s) {unknown}; the synthesiser has {sorted(EMOTIONS)}")
        if len(set(emotions)) != len(emotions) or len(emotions) < 2:
            raise ValueError(f"emotions must be at least two distinct names, got {emotions}")
        if voice_set not in get_args(SER_VOICE_SETS):  # e.g. the babble or enhancement talkers: never an SER split
            raise ValueError(f"voice_set must be an SER voice set ({get_args(SER_VOICE_SETS)}), got {voice_set!r}")
        super().__init__(**kwargs)
        self.size = size
        self.voice_set = voice_set
        self.emotions = emotions
        self.corpus_seed = corpus_seed
        self.corpus_dir: Path | None = None

    @property
    def class_names(self) -> list[str]:
        """The generated emotions, in label order."""
        return list(self.emotions)

    def _ensure(self) -> Path:
        if self.corpus_dir is None:
            self.corpus_dir = ensure_corpus(
                size=self.size,
                seed=self.corpus_seed,
                cache_dir=self.root,
                voice_set=self.voice_set,
                emotions=self.emotions,
            )
        return self.corpus_dir

    def corpus_root(self) -> Path | None:
        """The generated corpus' folder."""
        return self._ensure()

    def prepare_data(self) -> None:
        """Generates the corpus if it is not in the cache yet (once, on the main process)."""
        self._ensure()

    def load_records(self) -> list[Utterance]:
        """Reads the generated corpus' manifest."""
        return read_manifest_csv(self._ensure() / "manifest.csv", corpus=self.corpus_name)
