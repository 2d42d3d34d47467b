"""Embedded synthetic emotional speech corpus, generated offline with eSpeak NG.

The corpus is a *synthetic stand-in*: it makes every pipeline of the toolkit runnable anywhere without
downloads, and it is designed to be learnable but not trivial (speaker variation comparable to emotion
variation, per-utterance jitter of every prosodic and voice-quality parameter). It is not a measure of
speech emotion recognition accuracy on real speech.

Typical use::

    from ser_lightning.synth import ensure_corpus, read_manifest

    corpus_dir = ensure_corpus(size="default", seed=0)  # generated once, then cached
    rows = read_manifest(corpus_dir)  # utt_id, path, label, speaker, gender, session, sentence, ...

Modules, in dependency order: :mod:`~ser_lightning.synth.design` (speakers, emotions, sentences, sizes, as data),
:mod:`~ser_lightning.synth.espeak` (the eSpeak NG binding), :mod:`~ser_lightning.synth.plan` (version, layout and
the sampled parameters of every utterance), :mod:`~ser_lightning.synth.dsp` (trimming, level, noise floor, WAV),
:mod:`~ser_lightning.synth.render` (plans to files, one worker process per speaker),
:mod:`~ser_lightning.synth.cache` (naming, verification, locking, :func:`ensure_corpus`) and
``python -m ser_lightning.synth`` (the command line, :mod:`ser_lightning.synth.__main__`).
"""

from ser_lightning.synth.cache import corpus_dir_name, ensure_corpus, read_manifest, verify_corpus
from ser_lightning.synth.design import (
    ALL_EMOTIONS,
    DEFAULT_EMOTIONS,
    EMOTIONS,
    SIZES,
    VOICE_SETS,
    CorpusSize,
    EmotionProfile,
    Speaker,
    VoiceSet,
    emotions_key,
    get_voice_set,
    resolve_emotions,
)
from ser_lightning.synth.espeak import NATIVE_SAMPLE_RATE, ESpeakSynthesizer, SynthesisError, espeak_version
from ser_lightning.synth.plan import (
    GENERATOR_VERSION,
    MANIFEST_COLUMNS,
    SAMPLE_RATE,
    CorpusGenerationError,
    UtterancePlan,
    plan_corpus,
)
from ser_lightning.synth.render import generate_corpus

__all__ = [
    "ALL_EMOTIONS",
    "DEFAULT_EMOTIONS",
    "EMOTIONS",
    "GENERATOR_VERSION",
    "MANIFEST_COLUMNS",
    "NATIVE_SAMPLE_RATE",
    "SAMPLE_RATE",
    "SIZES",
    "VOICE_SETS",
    "CorpusGenerationError",
    "CorpusSize",
    "ESpeakSynthesizer",
    "EmotionProfile",
    "Speaker",
    "SynthesisError",
    "UtterancePlan",
    "VoiceSet",
    "corpus_dir_name",
    "emotions_key",
    "ensure_corpus",
    "espeak_version",
    "generate_corpus",
    "get_voice_set",
    "plan_corpus",
    "read_manifest",
    "resolve_emotions",
    "verify_corpus",
]
