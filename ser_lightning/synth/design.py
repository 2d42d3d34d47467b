"""The design of the synthetic emotional speech corpus, as data.

The corpus is a *stand-in*: it makes every pipeline of the toolkit runnable anywhere, offline, but it says
nothing about accuracy on real emotional speech. It is built to be learnable yet not trivial:

* **Emotions** are prosody profiles (speaking rate, pitch level and range, loudness, pauses) plus voice
  quality (spectral tilt, breathiness, roughness, pitch flutter), all *relative to the speaker's habitual
  values*, with per-utterance random jitter of every parameter.
* **Speakers** differ in base voice (eSpeak variant: formants, glottal source), accent, habitual pitch, rate,
  pitch range, voice quality and recording level, so that speaker variation is comparable to emotion
  variation, as in acted corpora. Speakers are paired into sessions (one female, one male).
* **Sentences** are emotionally neutral, and every speaker says every sentence in every emotion.

A :class:`VoiceSet` bundles the speakers and sentences of one language (``en`` is the default corpus, ``de``
a second one for cross-corpus experiments); :data:`SIZES` name the corpus sizes of each voice set.

Changing anything here changes the generated audio: bump ``GENERATOR_VERSION`` in
:mod:`ser_lightning.synth.plan` when you do.

The module is long (~550 lines) because most of it is data: the speaker tables, emotion profiles and sentences
of each voice set; the code is a few small dataclasses and look-ups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALL_EMOTIONS",
    "DEFAULT_EMOTIONS",
    "EMOTIONS",
    "SIZES",
    "VOICE_SETS",
    "CorpusSize",
    "EmotionProfile",
    "Speaker",
    "VoiceSet",
    "emotions_key",
    "get_voice_set",
    "resolve_emotions",
]


@dataclass(frozen=True)
class EmotionProfile:
    """How one emotion modifies a speaker's voice.

    Prosody is expressed relative to the speaker's habitual values; voice quality as offsets to the
    speaker's own quality settings. Jitter values are standard deviations of per-utterance Gaussian noise.

    Attributes:
        name: Emotion label (e.g. ``"sad"``).
        code: Three-letter code used in corpus folder names.
        arousal: Continuous arousal value in [-1, 1] (regression target).
        valence: Continuous valence value in [-1, 1] (regression target).
        rate_factor: Multiplier of the speaker's speaking rate.
        pitch_shift: Shift of the speaker's pitch level, in semitones.
        range_factor: Multiplier of the speaker's pitch range.
        volume_db: Level relative to neutral, in dB (drives eSpeak's amplitude and the output peak level).
        word_gap: Added pause between words, in units of 10 ms.
        formant_shift: Relative shift of formants 1-5 (e.g. ``0.05`` raises them by 5%, as when smiling).
        tilt: Spectral tilt offset (negative: darker, positive: brighter), rendered as an eSpeak ``tone`` line.
        breathiness: Added breath noise, 0 (none) to about 1 (very breathy).
        roughness: Added eSpeak roughness steps (amplitude modulation, creak), speaker value + this in 0..7.
        flutter: Added eSpeak pitch flutter (slow random pitch wobble, tremor).
        extra_lines: Further raw eSpeak variant lines appended to the voice (e.g. ``stressAmp ...``).
        rate_jitter: Relative (log-scale) standard deviation of the speaking rate.
        pitch_jitter: Standard deviation of the pitch level, in semitones.
        range_jitter: Relative (log-scale) standard deviation of the pitch range.
        volume_jitter: Standard deviation of the level, in dB.
        word_gap_jitter: Standard deviation of the word gap, in units of 10 ms.
        quality_jitter: Standard deviation of tilt and of breathiness (absolute units).
        formant_jitter: Standard deviation of the relative formant shift.
    """

    name: str
    code: str
    arousal: float
    valence: float
    rate_factor: float = 1.0
    pitch_shift: float = 0.0
    range_factor: float = 1.0
    volume_db: float = 0.0
    word_gap: float = 0.0
    formant_shift: float = 0.0
    tilt: float = 0.0
    breathiness: float = 0.0
    roughness: int = 0
    flutter: int = 0
    extra_lines: tuple[str, ...] = ()
    rate_jitter: float = 0.08
    pitch_jitter: float = 1.2
    range_jitter: float = 0.2
    volume_jitter: float = 2.0
    word_gap_jitter: float = 0.8
    quality_jitter: float = 0.15
    formant_jitter: float = 0.015

    def __post_init__(self) -> None:
        if not (-1.0 <= self.arousal <= 1.0 and -1.0 <= self.valence <= 1.0):
            raise ValueError(f"emotion {self.name!r}: arousal and valence must lie in [-1, 1]")
        if len(self.code) != 3:
            raise ValueError(f"emotion {self.name!r}: code must have three characters")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker.

    Attributes:
        speaker_id: Identifier such as ``"spk01"``.
        gender: ``"F"`` or ``"M"``.
        session: Session identifier (one female and one male speaker per session), e.g. ``"ses01"``.
        voice: eSpeak language voice giving the accent, e.g. ``"en-gb-scotland"``.
        variant: eSpeak base voice variant (formants, glottal source), e.g. ``"f3"``; distinct per speaker.
        pitch: Habitual pitch offset in semitones, relative to the variant's own pitch.
        rate: Habitual speaking rate in words per minute.
        pitch_range: Habitual pitch range on eSpeak's 0-99 scale (50 = the variant's own range).
        gain_db: Recording level of the speaker's session, in dB.
        word_gap: Habitual pause between words, in units of 10 ms.
        formant_shift: Relative shift of formants 1-5 (vocal-tract length), e.g. ``-0.04``.
        tilt: Habitual spectral tilt (negative: darker, positive: brighter).
        breathiness: Habitual breathiness, 0 to about 1.
        roughness: Habitual eSpeak roughness, 0..7 (eSpeak's default is 2).
        flutter: Habitual eSpeak pitch flutter (eSpeak's default is 2).
        noise_floor_db: Recording noise floor of the speaker's session (RMS, dB re full scale).
    """

    speaker_id: str
    gender: str
    session: str
    voice: str
    variant: str
    pitch: float
    rate: float
    pitch_range: float
    gain_db: float
    word_gap: float = 0.0
    formant_shift: float = 0.0
    tilt: float = 0.0
    breathiness: float = 0.0
    roughness: int = 2
    flutter: int = 2
    noise_floor_db: float = -66.0

    def __post_init__(self) -> None:
        if self.gender not in ("F", "M"):
            raise ValueError(f"speaker {self.speaker_id!r}: gender must be 'F' or 'M'")


@dataclass(frozen=True)
class CorpusSize:
    """Size of a generated corpus: the first ``n_speakers`` speakers and ``n_sentences`` sentences.

    Attributes:
        name: Size name (``"tiny"``, ``"default"``, ``"large"``).
        n_speakers: Number of speakers (even: whole sessions).
        n_sentences: Number of sentences per speaker and emotion.
    """

    name: str
    n_speakers: int
    n_sentences: int


@dataclass(frozen=True)
class VoiceSet:
    """Speakers and sentences of one language.

    Attributes:
        name: Voice-set name (``"en"``, ``"de"``), part of the corpus folder name.
        language: Language of the sentences (BCP-47 style).
        speakers: The speakers, in session order (F, M, F, M, ...).
        sentences: The sentences, emotionally neutral; sentence ids are ``s01``, ``s02``, ...
        sizes: Available corpus sizes for this voice set.
        description: Human-readable description.
    """

    name: str
    language: str
    speakers: tuple[Speaker, ...]
    sentences: tuple[str, ...]
    sizes: dict[str, CorpusSize] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        ids = [s.speaker_id for s in self.speakers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"voice set {self.name!r}: duplicate speaker ids")
        variants = [s.variant for s in self.speakers]
        if len(set(variants)) != len(variants):
            raise ValueError(f"voice set {self.name!r}: every speaker needs its own base variant")
        for size in self.sizes.values():
            if size.n_speakers > len(self.speakers) or size.n_sentences > len(self.sentences):
                raise ValueError(f"voice set {self.name!r}: size {size.name!r} exceeds the design")
            if size.n_speakers % 2:
                raise ValueError(f"voice set {self.name!r}: size {size.name!r} must hold whole sessions")

    def size(self, name: str) -> CorpusSize:
        """Return the :class:`CorpusSize` called ``name``.

        Raises:
            ValueError: If the size is not defined for this voice set.
        """
        try:
            return self.sizes[name]
        except KeyError:
            raise ValueError(
                f"unknown corpus size {name!r} for voice set {self.name!r}; choose from {sorted(self.sizes)}"
            ) from None

    def sentence_id(self, index: int) -> str:
        """Return the id (``s01``, ...) of the sentence at 0-based ``index``."""
        return f"s{index + 1:02d}"


# --------------------------------------------------------------------------------------------------------------
# Emotions
# --------------------------------------------------------------------------------------------------------------

#: All emotion profiles, by name. Only :data:`DEFAULT_EMOTIONS` are generated unless asked otherwise.
EMOTIONS: dict[str, EmotionProfile] = {
    p.name: p
    for p in (
        EmotionProfile(
            name="neutral",
            code="neu",
            arousal=0.0,
            valence=0.0,
        ),
        EmotionProfile(
            # high and wide pitch, fast, a little louder, brighter, raised formants (smiling)
            name="happy",
            code="hap",
            arousal=0.6,
            valence=0.8,
            rate_factor=1.1,
            pitch_shift=4.0,
            range_factor=1.5,
            volume_db=2.0,
            formant_shift=0.08,
            tilt=0.45,
            flutter=2,
        ),
        EmotionProfile(
            # fast-ish, loud, rough, bright, wide range, raised pitch, stronger stress
            name="angry",
            code="ang",
            arousal=0.8,
            valence=-0.6,
            rate_factor=1.06,
            pitch_shift=2.0,
            range_factor=1.4,
            volume_db=5.0,
            formant_shift=0.04,
            tilt=1.2,
            roughness=4,
            extra_lines=("stressAmp 20 20 24 24 24 24 26 24",),
        ),
        EmotionProfile(
            # slow, low, narrow range, breathy, dark, quiet, longer pauses
            name="sad",
            code="sad",
            arousal=-0.6,
            valence=-0.7,
            rate_factor=0.8,
            pitch_shift=-2.0,
            range_factor=0.5,
            volume_db=-4.0,
            word_gap=2.0,
            formant_shift=-0.03,
            tilt=-0.9,
            breathiness=0.5,
            flutter=4,
        ),
        EmotionProfile(
            # high, fast, narrow-ish range, tremor (flutter), breathy
            name="fear",
            code="fea",
            arousal=0.7,
            valence=-0.7,
            rate_factor=1.15,
            pitch_shift=4.0,
            range_factor=0.8,
            volume_db=-1.0,
            formant_shift=0.02,
            tilt=0.2,
            breathiness=0.35,
            flutter=14,
        ),
        EmotionProfile(
            # slightly slow, low, narrow range, soft and dark, relaxed
            name="calm",
            code="cal",
            arousal=-0.6,
            valence=0.4,
            rate_factor=0.9,
            pitch_shift=-1.0,
            range_factor=0.75,
            volume_db=-3.0,
            word_gap=1.0,
            formant_shift=-0.01,
            tilt=-0.35,
            breathiness=0.15,
        ),
        EmotionProfile(
            # slow, low, creaky, dark-ish, moderately wide range
            name="disgust",
            code="dis",
            arousal=0.2,
            valence=-0.7,
            rate_factor=0.85,
            pitch_shift=-1.5,
            range_factor=1.1,
            volume_db=0.0,
            word_gap=1.0,
            formant_shift=-0.02,
            tilt=-0.2,
            roughness=2,
        ),
        EmotionProfile(
            # very high and wide pitch, bright, a little louder
            name="surprise",
            code="sur",
            arousal=0.7,
            valence=0.2,
            rate_factor=1.0,
            pitch_shift=5.0,
            range_factor=1.8,
            volume_db=2.0,
            formant_shift=0.04,
            tilt=0.4,
        ),
    )
}

#: All emotion names, in canonical order.
ALL_EMOTIONS: tuple[str, ...] = tuple(EMOTIONS)

#: The four-class protocol generated by default (label order of the manifest).
DEFAULT_EMOTIONS: tuple[str, ...] = ("neutral", "happy", "angry", "sad")


def resolve_emotions(emotions: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validate an emotion list (``None`` means :data:`DEFAULT_EMOTIONS`).

    Args:
        emotions: Emotion names in label order, or a comma-separated string, or ``None``.

    Returns:
        The emotion names as a tuple, in the given order.

    Raises:
        ValueError: If a name is unknown or repeated, or fewer than two emotions are given.
    """
    if emotions is None:
        return DEFAULT_EMOTIONS
    if isinstance(emotions, str):
        emotions = [e for e in emotions.split(",") if e.strip()]
    names = tuple(e.strip().lower() for e in emotions)
    unknown = [e for e in names if e not in EMOTIONS]
    if unknown:
        raise ValueError(f"unknown emotion(s) {unknown}; choose from {list(ALL_EMOTIONS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"repeated emotion in {list(names)}")
    if len(names) < 2:
        raise ValueError("at least two emotions are needed")
    return names


def emotions_key(emotions: Sequence[str]) -> str:
    """Return the short key of an emotion list used in corpus folder names, e.g. ``"neu-hap-ang-sad"``."""
    return "-".join(EMOTIONS[e].code for e in resolve_emotions(emotions))


# --------------------------------------------------------------------------------------------------------------
# English voice set (default corpus)
# --------------------------------------------------------------------------------------------------------------

_EN_SENTENCES: tuple[str, ...] = (
    "The meeting is scheduled for Thursday afternoon.",
    "Please put the blue folder on the second shelf.",
    "The train to the city leaves every twenty minutes.",
    "I will send you the report by the end of the week.",
    "The kitchen window faces the garden behind the house.",
    "There are seven chairs in the conference room.",
    "We usually buy our vegetables at the market on Saturday.",
    "The library closes at six o'clock in the evening.",
    "He parked the car next to the old bakery.",
    "The new printer is on the table near the door.",
    "She wrote the address on the back of the envelope.",
    "The bus stops in front of the post office.",
    "My brother lives in a small town by the river.",
    "The package arrived on Monday morning.",
    "They painted the fence in the spring.",
    "The instructions are printed on the side of the box.",
    "We walked along the road to the station.",
    "The museum is open from ten until five.",
    "I left my umbrella in the office yesterday.",
    "The lamp on the desk needs a new bulb.",
)

# Columns: id, gender, session, accent, base variant, pitch (semitones), rate (wpm), range (0-99), gain (dB),
# word gap (10 ms), formant shift, tilt, breathiness, roughness, flutter.
_EN_SPEAKER_TABLE: tuple[tuple, ...] = (
    ("spk01", "F", "ses01", "en-us", "f1", 0.5, 170, 55, 2.5, 0, 0.00, 0.10, 0.00, 4, 8),
    ("spk02", "M", "ses01", "en-us", "m1", -1.0, 165, 48, -3.4, 0, -0.01, -0.10, 0.05, 4, 5),
    ("spk03", "F", "ses02", "en", "f2", 1.5, 180, 60, -1.7, 0, 0.00, 0.20, 0.10, 3, 2),
    ("spk04", "M", "ses02", "en", "m2", 1.0, 185, 62, 4.2, 0, 0.02, 0.15, 0.00, 2, 2),
    ("spk05", "F", "ses03", "en-gb-scotland", "f3", -1.5, 160, 45, 0.0, 1, -0.02, -0.20, 0.05, 4, 3),
    ("spk06", "M", "ses03", "en-gb-scotland", "m3", 2.0, 175, 58, -5.1, 0, -0.02, 0.05, 0.00, 2, 2),
    ("spk07", "F", "ses04", "en-029", "f4", 1.0, 190, 66, 5.1, 0, 0.01, 0.30, 0.00, 2, 4),
    ("spk08", "M", "ses04", "en-029", "m4", -2.0, 155, 42, 1.7, 1, -0.02, -0.30, 0.10, 3, 2),
    ("spk09", "F", "ses05", "en-gb-x-rp", "f5", -0.5, 168, 52, -4.2, 0, 0.00, 0.00, 0.15, 1, 2),
    ("spk10", "M", "ses05", "en-gb-x-rp", "m5", 0.5, 178, 56, 0.8, 0, 0.02, 0.25, 0.00, 2, 3),
    ("spk11", "F", "ses06", "en-us-nyc", "shelby", -2.5, 182, 50, 3.4, 0, -0.02, 0.10, 0.00, 1, 2),
    ("spk12", "M", "ses06", "en-us-nyc", "m6", 1.5, 192, 64, -2.5, 0, 0.01, 0.20, 0.05, 3, 2),
    ("spk13", "F", "ses07", "en-gb-x-gbclan", "aunty", -1.0, 165, 60, -0.8, 0, -0.01, -0.15, 0.10, 2, 3),
    ("spk14", "M", "ses07", "en-gb-x-gbclan", "m7", -0.5, 160, 46, 6.0, 1, -0.02, -0.20, 0.00, 3, 2),
    ("spk15", "F", "ses08", "en-gb-x-gbcwmd", "belinda", -2.0, 172, 48, 1.7, 0, -0.02, -0.05, 0.05, 2, 3),
    ("spk16", "M", "ses08", "en-gb-x-gbcwmd", "m8", 2.5, 170, 60, -4.2, 0, 0.00, 0.10, 0.10, 2, 2),
    ("spk17", "F", "ses09", "en-us", "linda", -1.5, 186, 62, -6.0, 0, 0.00, 0.05, 0.00, 2, 2),
    ("spk18", "M", "ses09", "en", "Andy", 1.0, 158, 50, 0.0, 1, -0.02, -0.10, 0.00, 3, 2),
    ("spk19", "F", "ses10", "en-gb-scotland", "steph", 1.0, 176, 54, 4.2, 0, -0.01, 0.15, 0.05, 2, 2),
    ("spk20", "M", "ses10", "en-us", "robert", 0.0, 182, 52, -1.7, 0, -0.02, -0.05, 0.05, 2, 4),
    ("spk21", "F", "ses11", "en-029", "Annie", 2.0, 164, 58, 0.8, 0, 0.01, 0.00, 0.10, 2, 4),
    ("spk22", "M", "ses11", "en-gb-x-rp", "Denis", -1.5, 172, 44, 3.4, 0, 0.00, 0.10, 0.00, 2, 2),
    ("spk23", "F", "ses12", "en-us-nyc", "grandma", 0.0, 158, 56, -3.4, 1, -0.02, -0.25, 0.05, 2, 6),
    ("spk24", "M", "ses12", "en-gb-scotland", "Henrique", 0.5, 188, 60, 2.5, 0, 0.02, 0.20, 0.00, 2, 2),
    ("spk25", "F", "ses13", "en", "Alicia", 1.5, 178, 64, -1.7, 0, -0.02, 0.25, 0.00, 1, 2),
    ("spk26", "M", "ses13", "en-029", "travis", -0.5, 166, 50, -5.1, 0, -0.01, -0.15, 0.10, 3, 3),
    ("spk27", "F", "ses14", "en-gb-x-gbclan", "Andrea", -3.0, 184, 46, 5.1, 0, 0.02, 0.05, 0.00, 2, 2),
    ("spk28", "M", "ses14", "en-us-nyc", "victor", 2.0, 176, 54, 0.0, 0, 0.02, 0.00, 0.05, 2, 2),
    ("spk29", "F", "ses15", "en-gb-x-rp", "anika", -3.0, 170, 52, -2.5, 0, 0.02, -0.10, 0.05, 1, 3),
    ("spk30", "M", "ses15", "en-gb-x-gbcwmd", "michel", 0.0, 162, 58, 3.4, 1, -0.02, 0.05, 0.05, 2, 2),
)

# Recording noise floor of each session (RMS, dBFS): quiet studio-like rooms that differ a little.
_EN_SESSION_NOISE_DB: dict[str, float] = {
    f"ses{i + 1:02d}": v
    for i, v in enumerate((-64, -70, -60, -67, -72, -62, -66, -69, -58, -65, -71, -63, -68, -61, -66))
}


def _speakers(table: tuple[tuple, ...], noise_floors: dict[str, float]) -> tuple[Speaker, ...]:
    return tuple(
        Speaker(
            speaker_id=row[0],
            gender=row[1],
            session=row[2],
            voice=row[3],
            variant=row[4],
            pitch=float(row[5]),
            rate=float(row[6]),
            pitch_range=float(row[7]),
            gain_db=float(row[8]),
            word_gap=float(row[9]),
            formant_shift=float(row[10]),
            tilt=float(row[11]),
            breathiness=float(row[12]),
            roughness=int(row[13]),
            flutter=int(row[14]),
            noise_floor_db=noise_floors[row[2]],
        )
        for row in table
    )


_EN = VoiceSet(
    name="en",
    language="en",
    speakers=_speakers(_EN_SPEAKER_TABLE, _EN_SESSION_NOISE_DB),
    sentences=_EN_SENTENCES,
    sizes={
        "tiny": CorpusSize("tiny", n_speakers=8, n_sentences=3),
        "default": CorpusSize("default", n_speakers=20, n_sentences=10),
        "large": CorpusSize("large", n_speakers=30, n_sentences=20),
    },
    description="English: 30 speakers (15 sessions), 8 accents, 20 neutral sentences",
)

# --------------------------------------------------------------------------------------------------------------
# German voice set (second corpus for cross-corpus experiments)
# --------------------------------------------------------------------------------------------------------------

_DE_SENTENCES: tuple[str, ...] = (
    "Die Besprechung findet am Donnerstagnachmittag statt.",
    "Bitte leg die blaue Mappe in das zweite Regal.",
    "Der Zug in die Stadt fährt alle zwanzig Minuten.",
    "Ich schicke dir den Bericht bis zum Ende der Woche.",
    "Das Küchenfenster zeigt auf den Garten hinter dem Haus.",
    "Im Konferenzraum stehen sieben Stühle.",
    "Wir kaufen unser Gemüse meistens samstags auf dem Markt.",
    "Die Bibliothek schließt um sechs Uhr abends.",
    "Er hat das Auto neben der alten Bäckerei geparkt.",
    "Der neue Drucker steht auf dem Tisch neben der Tür.",
    "Sie schrieb die Adresse auf die Rückseite des Umschlags.",
    "Der Bus hält vor der Post.",
)

_DE_SPEAKER_TABLE: tuple[tuple, ...] = (
    ("despk01", "F", "deses01", "de", "f2", 0.0, 165, 52, 0.8, 0, 0.02, 0.05, 0.05, 3, 2),
    ("despk02", "M", "deses01", "de", "m3", 1.0, 172, 56, -2.5, 0, 0.02, 0.10, 0.00, 2, 2),
    ("despk03", "F", "deses02", "de", "linda", -1.5, 178, 58, 3.4, 0, 0.00, 0.15, 0.00, 2, 3),
    ("despk04", "M", "deses02", "de", "m6", -1.0, 160, 46, 1.7, 1, -0.02, -0.15, 0.05, 3, 2),
    ("despk05", "F", "deses03", "de", "f4", 1.5, 170, 62, -3.4, 0, -0.01, 0.20, 0.00, 2, 4),
    ("despk06", "M", "deses03", "de", "Denis", 0.5, 182, 60, 5.1, 0, -0.02, 0.00, 0.05, 2, 3),
    ("despk07", "F", "deses04", "de", "steph", -0.5, 158, 48, -1.7, 1, 0.01, -0.20, 0.10, 2, 2),
    ("despk08", "M", "deses04", "de", "m2", -2.0, 176, 50, 0.0, 0, -0.01, 0.05, 0.00, 2, 2),
    ("despk09", "F", "deses05", "de", "Alicia", -2.0, 174, 54, 2.5, 0, -0.00, 0.00, 0.00, 1, 2),
    ("despk10", "M", "deses05", "de", "victor", 1.5, 166, 58, -4.2, 0, 0.00, 0.15, 0.05, 2, 2),
    ("despk11", "F", "deses06", "de", "f1", 1.0, 184, 56, -0.8, 0, -0.01, 0.10, 0.05, 4, 6),
    ("despk12", "M", "deses06", "de", "m7", 0.0, 168, 52, 4.2, 1, 0.01, -0.05, 0.00, 3, 2),
)

_DE_SESSION_NOISE_DB: dict[str, float] = {f"deses{i + 1:02d}": v for i, v in enumerate((-63, -68, -60, -70, -65, -62))}

_DE = VoiceSet(
    name="de",
    language="de",
    speakers=_speakers(_DE_SPEAKER_TABLE, _DE_SESSION_NOISE_DB),
    sentences=_DE_SENTENCES,
    sizes={
        "tiny": CorpusSize("tiny", n_speakers=8, n_sentences=3),
        "default": CorpusSize("default", n_speakers=12, n_sentences=10),
        "large": CorpusSize("large", n_speakers=12, n_sentences=12),
    },
    description="German: 12 speakers (6 sessions), 12 neutral sentences",
)

# --------------------------------------------------------------------------------------------------------------
# Babble voice set: talkers for the noise banks' multi-talker babble, never a corpus
# --------------------------------------------------------------------------------------------------------------

_BABBLE_SENTENCES: tuple[str, ...] = (
    "La reunión empieza a las diez de la mañana.",
    "Deja la carpeta azul en el segundo estante.",
    "El autobús pasa cada veinte minutos por la plaza.",
    "Te mando el informe antes del viernes.",
    "La ventana de la cocina da al jardín.",
    "En la sala hay siete sillas y una mesa larga.",
)

# Spanish voices with eSpeak variants that neither the en nor the de corpus uses, so the noise banks' babble
# (:class:`~ser_lightning.augment.noise.ProceduralNoiseBank`) never contains a voice being tested, nor the
# cross-corpus test corpus.
_BABBLE_SPEAKER_TABLE: tuple[tuple, ...] = (
    ("bbspk01", "F", "bbses01", "es", "steph2", 0.5, 172, 54, 0.0, 0, 0.01, 0.05, 0.05, 2, 2),
    ("bbspk02", "M", "bbses01", "es", "adam", -0.5, 168, 50, -1.7, 0, -0.01, 0.00, 0.00, 2, 2),
    ("bbspk03", "F", "bbses02", "es", "steph3", 1.0, 180, 58, 1.7, 0, 0.00, 0.10, 0.00, 2, 3),
    ("bbspk04", "M", "bbses02", "es", "boris", -1.5, 160, 46, 0.8, 1, -0.02, -0.10, 0.05, 3, 2),
    ("bbspk05", "F", "bbses03", "es", "whisperf", -1.0, 176, 60, -0.8, 0, 0.01, 0.15, 0.10, 1, 2),
    ("bbspk06", "M", "bbses03", "es", "caleb", 1.0, 186, 56, 2.5, 0, 0.02, 0.05, 0.00, 2, 2),
    ("bbspk07", "F", "bbses04", "es", "Jacky", 0.0, 164, 52, -2.5, 0, -0.01, -0.05, 0.05, 2, 2),
    ("bbspk08", "M", "bbses04", "es", "norbert", -2.0, 170, 48, 3.4, 0, -0.02, 0.00, 0.00, 3, 2),
)

_BABBLE_SESSION_NOISE_DB: dict[str, float] = {f"bbses{i + 1:02d}": v for i, v in enumerate((-66, -62, -68, -64))}

_BABBLE = VoiceSet(
    name="babble",
    language="es",
    speakers=_speakers(_BABBLE_SPEAKER_TABLE, _BABBLE_SESSION_NOISE_DB),
    sentences=_BABBLE_SENTENCES,
    sizes={"tiny": CorpusSize("tiny", n_speakers=8, n_sentences=3)},
    description="Babble talkers (Spanish): 8 speakers (4 sessions) whose voices no corpus voice set uses",
)

# --------------------------------------------------------------------------------------------------------------
# Enhancement voice set: clean speech for training the speech enhancer, never an SER corpus
# --------------------------------------------------------------------------------------------------------------

_ENHANCE_SENTENCES: tuple[str, ...] = (
    "The gardener planted a row of tulips along the fence.",
    "Our flight leaves from the second terminal at noon.",
    "Please return the ladder to the shed behind the garage.",
    "The museum opens its new wing next month.",
    "A small boat was tied to the end of the pier.",
    "He painted the kitchen walls a pale shade of green.",
    "The recipe needs two cups of flour and some butter.",
    "Most of the shops close early on public holidays.",
    "She keeps her bicycle in the hallway during winter.",
    "The printer on the third floor is out of paper.",
)

# English talkers whose eSpeak variants no other voice set uses, reading sentences no SER corpus reads: the
# enhancer never hears a voice or a sentence of the corpora it is evaluated in front of (as the SER corpora of
# Triantafyllopoulos et al. 2019 were never seen by their enhancer). SyntheticDataModule cannot select it.
_ENHANCE_SPEAKER_TABLE: tuple[tuple, ...] = (
    ("enspk01", "F", "enses01", "en-us", "iven", 5.0, 170, 56, 0.8, 0, 0.02, 0.10, 0.05, 2, 2),
    ("enspk02", "M", "enses01", "en-gb-x-rp", "Gene", -1.0, 166, 50, -1.7, 0, -0.01, 0.00, 0.00, 2, 2),
    ("enspk03", "F", "enses02", "en-gb-scotland", "iven2", 6.0, 178, 60, 2.5, 0, 0.01, 0.15, 0.00, 2, 3),
    ("enspk04", "M", "enses02", "en-029", "Hugo", 0.5, 160, 48, 0.0, 1, -0.02, -0.10, 0.05, 3, 2),
    ("enspk05", "F", "enses03", "en", "iven3", 4.0, 174, 58, -2.5, 0, 0.00, 0.05, 0.10, 1, 2),
    ("enspk06", "M", "enses03", "en-us-nyc", "Lee", -0.5, 182, 54, 1.7, 0, 0.02, 0.05, 0.00, 2, 2),
    ("enspk07", "F", "enses04", "en-gb-x-gbclan", "iven4", 5.5, 168, 52, -0.8, 0, -0.01, -0.05, 0.05, 2, 2),
    ("enspk08", "M", "enses04", "en-us", "Mario", -1.5, 172, 50, 3.4, 0, -0.02, 0.00, 0.00, 3, 2),
    ("enspk09", "F", "enses05", "en-gb-x-gbcwmd", "Nguyen", 3.0, 176, 62, 0.0, 0, 0.01, 0.10, 0.05, 2, 3),
    ("enspk10", "M", "enses05", "en-gb-x-rp", "john", 1.0, 164, 46, -3.4, 1, -0.01, -0.15, 0.00, 2, 2),
    ("enspk11", "F", "enses06", "en-029", "Gene2", 4.5, 180, 56, 1.7, 0, 0.02, 0.05, 0.00, 2, 2),
    ("enspk12", "M", "enses06", "en-us-nyc", "paul", 0.0, 170, 52, -1.7, 0, 0.00, 0.10, 0.05, 2, 4),
)

_ENHANCE_SESSION_NOISE_DB: dict[str, float] = {
    f"enses{i + 1:02d}": v for i, v in enumerate((-70, -66, -72, -68, -71, -67))
}

_ENHANCE = VoiceSet(
    name="enhance",
    language="en",
    speakers=_speakers(_ENHANCE_SPEAKER_TABLE, _ENHANCE_SESSION_NOISE_DB),
    sentences=_ENHANCE_SENTENCES,
    sizes={
        "tiny": CorpusSize("tiny", n_speakers=6, n_sentences=3),
        "default": CorpusSize("default", n_speakers=12, n_sentences=10),
    },
    description="Enhancement-training talkers (English): 12 speakers (6 sessions) whose voices no SER voice set uses",
)

#: All voice sets, by name.
VOICE_SETS: dict[str, VoiceSet] = {_EN.name: _EN, _DE.name: _DE, _BABBLE.name: _BABBLE, _ENHANCE.name: _ENHANCE}

#: Sizes of the default (``en``) voice set, by name.
SIZES: dict[str, CorpusSize] = dict(_EN.sizes)


def get_voice_set(name: str) -> VoiceSet:
    """Return the :class:`VoiceSet` called ``name``.

    Raises:
        ValueError: If no such voice set is defined.
    """
    try:
        return VOICE_SETS[name]
    except KeyError:
        raise ValueError(f"unknown voice set {name!r}; choose from {sorted(VOICE_SETS)}") from None
