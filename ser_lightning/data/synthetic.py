"""The embedded synthetic emotional speech corpus (eSpeak NG), generated offline on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.data.base import SERDataModule
from ser_lightning.data.manifest import Utterance, read_manifest_csv
from ser_lightning.data.splits import Protocol


class SyntheticDataModule(SERDataModule):
    """An emotional speech corpus synthesised with eSpeak NG: the default corpus of the toolkit and its tests.

    It is a stand-in that makes every pipeline runnable offline, not a measure of real SER accuracy. Speakers
    differ by voice variant, accent, habitual pitch, range and rate; emotions are prosody and voice-quality
    profiles with per-utterance jitter; every speaker reads the same neutral sentences. Speakers are paired
    into sessions (one female, one male), so ``loso`` validates on the held-out speaker's session partner.

    The corpus is generated once (deterministically for a size, seed, voice set and emotion list) into a cache
    folder: ``root`` if given, else ``$SER_LIGHTNING_CACHE``, else ``~/.cache/ser_lightning``.

    Args:
        root: cache folder for the generated corpus (default: see above).
        size: ``tiny`` (tests), ``default`` (the main job) or ``large``.
        voice_set: speaker/language set (``en``; ``de`` for a German cross-corpus partner).
        emotions: the emotion classes to generate, in label order.
        corpus_seed: seed of the corpus' generation (independent of the fold seed).
        batch_size: training batch size (per device).
        eval_batch_size: evaluation batch size; defaults to ``batch_size``.
        num_workers: DataLoader worker processes.
        sample_rate: sample rate the audio is resampled to (the corpus is written at 16 kHz).
        protocol: ``loso``, ``lsso``, ``kfold`` or ``holdout``.
        fold: which fold of the protocol.
        num_folds: folds of ``kfold``.
        holdout_fractions: train/validation/test fractions of ``holdout``.
        speaker_dependent: split utterances instead of speakers (``kfold``/``holdout``; stamped in the run).
        group_by: unit of ``kfold``/``holdout``: ``speaker``, ``session`` or ``auto`` (sessions if any).
        seed: seed of the fold shuffles.
        segment_seconds: random training crop length in seconds (``None``: whole utterances).
        predict_paths: audio files or folders to predict on (default: the test split).
        strict: fail on the first unreadable/empty audio file instead of skipping (and counting) it.
        cache_manifest: cache the parsed corpus, keyed by its files' sizes and modification times.
        pin_memory: pin batches in page-locked memory.
        augmentation: a waveform augmentation applied on the fly to the training split only (e.g.
            ``ser_lightning.augment.Recipe`` with ``name: sp``; see ``configs/augment/``); evaluation audio is
            never augmented.
        vad_mode: WebRTC VAD aggressiveness 0-3: trim non-speech from every utterance of every split (seed 002);
            ``None``: off.
    """

    corpus_name = "synthetic"

    def __init__(
        self,
        root: str | None = None,
        size: Literal["tiny", "default", "large"] = "default",
        voice_set: Literal["en", "de"] = "en",
        emotions: list[str] | None = None,
        corpus_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        sample_rate: int = 16000,
        protocol: Protocol = "loso",
        fold: int = 0,
        num_folds: int = 5,
        holdout_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
        speaker_dependent: bool = False,
        group_by: Literal["auto", "speaker", "session"] = "auto",
        seed: int = 0,
        segment_seconds: float | None = None,
        predict_paths: list[str] | None = None,
        strict: bool = False,
        cache_manifest: bool = True,
        pin_memory: bool = False,
        augmentation: WaveformAugmentation | None = None,
        vad_mode: int | None = None,
    ) -> None:
        from ser_lightning.synth.design import DEFAULT_EMOTIONS, EMOTIONS

        emotions = list(emotions) if emotions else list(DEFAULT_EMOTIONS)
        unknown = [e for e in emotions if e not in EMOTIONS]
        if unknown:
            raise ValueError(f"unknown emotion(s) {unknown}; the synthesiser has {sorted(EMOTIONS)}")
        if len(set(emotions)) != len(emotions) or len(emotions) < 2:
            raise ValueError(f"emotions must be at least two distinct names, got {emotions}")
        super().__init__(
            root=root,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            sample_rate=sample_rate,
            protocol=protocol,
            fold=fold,
            num_folds=num_folds,
            holdout_fractions=holdout_fractions,
            speaker_dependent=speaker_dependent,
            group_by=group_by,
            seed=seed,
            segment_seconds=segment_seconds,
            predict_paths=predict_paths,
            strict=strict,
            cache_manifest=cache_manifest,
            pin_memory=pin_memory,
            augmentation=augmentation,
            vad_mode=vad_mode,
        )
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
        from ser_lightning.synth.generate import ensure_corpus

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
