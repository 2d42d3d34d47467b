"""What the synthetic corpus is: its version, format, folder layout and the sampled parameters of every utterance.

Planning is pure: :func:`plan_corpus` turns (size, seed, voice set, emotions) into one :class:`UtterancePlan` per
utterance, drawing every jittered prosodic and voice-quality parameter from an independent random stream per
utterance, so an utterance has the same parameters in every corpus size and emotion subset. Rendering the plans
to audio is :mod:`ser_lightning.synth.render`; the signal processing it applies is :mod:`ser_lightning.synth.dsp`.

Layout of a corpus folder::

    <corpus>/
        wav/<speaker>/<utt_id>.wav   16 kHz, mono, 16-bit PCM     (UtterancePlan.relpath)
        manifest.csv                 one row per utterance         (MANIFEST_FILE, columns MANIFEST_COLUMNS)
        corpus.json                  parameters, counts, checksums (INFO_FILE); written last: completeness marker
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_lightning.synth.design import (
    ALL_EMOTIONS,
    EMOTIONS,
    EmotionProfile,
    Speaker,
    get_voice_set,
    resolve_emotions,
)

__all__ = [
    "GENERATOR_VERSION",
    "INFO_FILE",
    "MANIFEST_COLUMNS",
    "MANIFEST_FILE",
    "SAMPLE_RATE",
    "CorpusGenerationError",
    "UtterancePlan",
    "base_formants",
    "plan_corpus",
    "render_variant_lines",
]

#: Version of the generator; part of the cache folder name. Bump it whenever the audio would change.
GENERATOR_VERSION = 1

#: Sample rate of the generated corpus (Hz).
SAMPLE_RATE = 16000

#: Columns of ``manifest.csv``, in order.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id",
    "path",
    "label",
    "speaker",
    "gender",
    "session",
    "sentence",
    "duration",
    "arousal",
    "valence",
    "sha256",
)

#: File name of the manifest in a corpus folder.
MANIFEST_FILE = "manifest.csv"

#: File name of the corpus description (parameters, counts, checksums) in a corpus folder; written last.
INFO_FILE = "corpus.json"

# Tone (spectral tilt) rendering: eSpeak's default harmonic gains at these frequencies.
_TONE_POINTS = ((600, 170), (1200, 135), (2000, 110), (3000, 110))
_TILT_EXPONENT = 0.8
# Breath noise per formant (1..8) at breathiness 1.
_BREATH_SHAPE = (0, 16, 20, 22, 20, 16, 10, 5)


class CorpusGenerationError(RuntimeError):
    """Raised when the synthetic corpus cannot be generated or verified."""


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to synthesise one utterance (the sampled, jittered parameters).

    Attributes:
        utt_id: Utterance id, ``<speaker>_<sentence>_<emotion>``.
        speaker: The speaker.
        emotion: The emotion profile.
        sentence_id: Sentence id (``s01``, ...).
        text: The sentence.
        variant_lines: eSpeak variant lines appended to the speaker's base variant (voice quality).
        rate: Speaking rate (words per minute).
        volume: eSpeak amplitude (0-200).
        pitch: eSpeak pitch (0-99).
        pitch_range: eSpeak pitch range (0-99).
        word_gap: eSpeak word gap (10 ms units).
        level_db: Output level relative to the reference peak, in dB.
        noise_floor_db: Level of the recording noise floor (RMS, dB re full scale).
        espeak_seed: Seed of eSpeak's random generators for this utterance.
        noise_seed: Seed of the recording noise floor of this utterance.
    """

    utt_id: str
    speaker: Speaker
    emotion: EmotionProfile
    sentence_id: str
    text: str
    variant_lines: tuple[str, ...]
    rate: int
    volume: int
    pitch: int
    pitch_range: int
    word_gap: int
    level_db: float
    noise_floor_db: float
    espeak_seed: int
    noise_seed: int

    @property
    def relpath(self) -> str:
        """Path of the WAV file relative to the corpus folder."""
        return f"wav/{self.speaker.speaker_id}/{self.utt_id}.wav"


def _tone_line(tilt: float) -> str:
    parts = []
    for freq, height in _TONE_POINTS:
        value = height * (freq / 1000.0) ** (_TILT_EXPONENT * tilt)
        parts.append(f"{freq} {int(min(255, max(1, round(value))))}")
    return "tone " + " ".join(parts)


@functools.lru_cache(maxsize=256)
def base_formants(variant: str) -> dict[int, tuple[int, int, int, int]]:
    """Formant settings of a built-in eSpeak variant: ``{formant: (freq%, height%, width%, freqadd)}``.

    Formants the variant does not set have eSpeak's defaults (100, 100, 100, 0).
    """
    import espeakng_loader

    path = Path(espeakng_loader.get_data_path()) / "voices" / "!v" / variant
    formants = {k: (100, 100, 100, 0) for k in range(9)}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("//", 1)[0].split()
        if len(line) >= 3 and line[0] == "formant":
            try:
                values = [int(v) for v in line[1:6]]
            except ValueError:
                continue
            k, rest = values[0], values[1:] + [100, 100, 0][len(values) - 2 :]
            if 0 <= k <= 8:
                formants[k] = (rest[0], rest[1], rest[2], rest[3])
    return formants


def render_variant_lines(
    speaker: Speaker,
    emotion: EmotionProfile,
    formant_shift: float,
    tilt: float,
    breathiness: float,
    roughness: int,
    flutter: int,
) -> tuple[str, ...]:
    """Render the voice-quality lines of one utterance as eSpeak variant lines.

    Args:
        speaker: The speaker (its base variant is the start of the voice file).
        emotion: The emotion (its ``extra_lines`` are appended).
        formant_shift: Total relative shift of formants 1-5 (speaker + emotion + jitter).
        tilt: Total spectral tilt (speaker + emotion + jitter).
        breathiness: Total breathiness (0 keeps the base variant's own breath setting).
        roughness: Total eSpeak roughness (0-7).
        flutter: Total eSpeak flutter.

    Returns:
        The lines, in order.
    """
    lines = []
    formants = base_formants(speaker.variant)
    for k in range(1, 6):
        freq, height, width, freqadd = formants[k]
        if freq > 0:
            lines.append(f"formant {k} {round(freq * (1.0 + formant_shift))} {height} {width} {freqadd}")
    lines += [_tone_line(tilt), f"roughness {int(roughness)}", f"flutter {int(flutter)}"]
    if breathiness > 0.0:
        values = [round(breathiness * v) for v in _BREATH_SHAPE]
        if any(values):
            lines.append("breath " + " ".join(str(v) for v in values))
    lines.extend(emotion.extra_lines)
    return tuple(lines)


def _utterance_rng(
    seed: int, voice_set: str, speaker_index: int, emotion: str, sentence_index: int
) -> np.random.Generator:
    """Independent random stream per utterance, stable when sizes or emotion subsets change."""
    key = [
        int(seed) & 0xFFFFFFFF,
        zlib.crc32(voice_set.encode()),
        speaker_index,
        ALL_EMOTIONS.index(emotion),
        sentence_index,
    ]
    return np.random.default_rng(np.random.SeedSequence(key))


def plan_corpus(
    size: str = "default", seed: int = 0, voice_set: str = "en", emotions: Sequence[str] | None = None
) -> list[UtterancePlan]:
    """Sample the parameters of every utterance, in generation order.

    Order: speakers (session order), then emotions (label order), then sentences.

    Args:
        size: Corpus size name of the voice set (``tiny``, ``default``, ``large``).
        seed: Corpus seed.
        voice_set: Voice set name (``en``, ``de``).
        emotions: Emotions in label order (default: neutral, happy, angry, sad).

    Returns:
        One :class:`UtterancePlan` per utterance.
    """
    vset = get_voice_set(voice_set)
    csize = vset.size(size)
    names = resolve_emotions(emotions)
    plans: list[UtterancePlan] = []
    for s_idx, spk in enumerate(vset.speakers[: csize.n_speakers]):
        for name in names:
            emo = EMOTIONS[name]
            for k in range(csize.n_sentences):
                rng = _utterance_rng(seed, vset.name, s_idx, name, k)
                z = rng.standard_normal(10)
                semitones = spk.pitch + emo.pitch_shift + emo.pitch_jitter * z[0]
                pitch = 50.0 + semitones * 50.0 / 12.0
                rate = spk.rate * emo.rate_factor * math.exp(emo.rate_jitter * z[1])
                prange = spk.pitch_range * emo.range_factor * math.exp(emo.range_jitter * z[2])
                level_db = spk.gain_db + emo.volume_db + emo.volume_jitter * z[3]
                # eSpeak's amplitude follows half the emotion's level change (in dB); the rest, and the
                # speaker's recording gain, is applied by the output normalisation.
                volume = 100.0 * 10.0 ** ((emo.volume_db + emo.volume_jitter * z[3]) / 40.0)
                word_gap = spk.word_gap + emo.word_gap + emo.word_gap_jitter * z[4]
                tilt = spk.tilt + emo.tilt + emo.quality_jitter * z[5]
                breath = max(0.0, spk.breathiness + emo.breathiness + emo.quality_jitter * z[6])
                rough = int(np.clip(spk.roughness + emo.roughness + round(0.6 * z[7]), 0, 7))
                flutter = int(np.clip(spk.flutter + emo.flutter + round(1.5 * z[8]), 0, 40))
                fshift = spk.formant_shift + emo.formant_shift + emo.formant_jitter * z[9]
                espeak_seed = int(rng.integers(1, 2**31 - 1))
                noise_seed = int(rng.integers(1, 2**31 - 1))
                sentence_id = vset.sentence_id(k)
                plans.append(
                    UtterancePlan(
                        utt_id=f"{spk.speaker_id}_{sentence_id}_{name}",
                        speaker=spk,
                        emotion=emo,
                        sentence_id=sentence_id,
                        text=vset.sentences[k],
                        variant_lines=render_variant_lines(spk, emo, fshift, tilt, breath, rough, flutter),
                        rate=int(np.clip(round(rate), 80, 450)),
                        volume=int(np.clip(round(volume), 20, 200)),
                        pitch=int(np.clip(round(pitch), 0, 99)),
                        pitch_range=int(np.clip(round(prange), 0, 99)),
                        word_gap=int(np.clip(round(word_gap), 0, 100)),
                        level_db=float(level_db),
                        noise_floor_db=float(spk.noise_floor_db),
                        espeak_seed=espeak_seed,
                        noise_seed=noise_seed,
                    )
                )
    return plans
