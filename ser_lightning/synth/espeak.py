"""A small ctypes binding to the eSpeak NG library shipped by the ``espeakng-loader`` wheel.

The wheel bundles ``libespeak-ng`` (1.52) and its ``espeak-ng-data`` folder, so speech can be synthesised
fully offline without any system package. This module wraps the handful of C calls needed to render text to
a waveform:

* the library is initialised once per process in synchronous mode, with a callback that collects the
  16-bit sample chunks;
* the data folder is mirrored (symlinks, or copies where symlinks are unavailable) into a private temporary
  folder, so that custom voice variants can be added under ``voices/!v/`` without touching site-packages;
* unknown voices and variants raise :class:`SynthesisError` instead of silently falling back to the default
  voice, as eSpeak itself would;
* the engine's random generators (``espeak_ng_SetRandSeed`` and libc ``srand``) are seeded before every
  utterance.

Reproducibility note: besides its random generators, eSpeak keeps a little synthesis state between
utterances (pitch-flutter phase, automatic gain control, echo buffer), so the *same sequence of calls in a
fresh process* gives byte-identical audio, but calling :meth:`ESpeakSynthesizer.synthesize` twice with the
same arguments in one process does not. Corpus generation therefore runs in a fresh subprocess, in a fixed
order.

eSpeak NG is GPL-3.0 licensed; it is used as a separate, unmodified dependency (the PyPI wheel).

The module stays whole (~520 lines): the ctypes declarations, the data-folder mirror and
:class:`ESpeakSynthesizer` all act on one process-wide engine (its callback buffer, its lock, its private data
folder and its utterance count); splitting them would spread that private state across modules.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "NATIVE_SAMPLE_RATE",
    "VARIANT_KEYWORDS",
    "ESpeakSynthesizer",
    "SynthesisError",
    "espeak_version",
    "shutdown_engine",
    "utterances_in_process",
]

logger = logging.getLogger(__name__)

#: Sample rate of the eSpeak NG formant synthesiser (Hz).
NATIVE_SAMPLE_RATE = 22050

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7

#: Keywords accepted in the lines of a custom voice variant (voice-quality and prosody attributes of an
#: eSpeak voice file; language-level keywords are deliberately excluded).
VARIANT_KEYWORDS = frozenset(
    {
        "breath",
        "breathw",
        "clarity",
        "consonants",
        "echo",
        "flutter",
        "formant",
        "intonation",
        "pitch",
        "roughness",
        "speed",
        "stressAdd",
        "stressAmp",
        "stressLength",
        "tone",
        "voicing",
        "words",
    }
)

_VARIANT_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
# eSpeak copies "voice+variant" into a 40-byte buffer, and "!v/variant" into another 40-byte buffer.
_MAX_VOICE_SPEC_LEN = 39


class SynthesisError(RuntimeError):
    """Raised when eSpeak NG cannot synthesise the requested utterance (unknown voice, failed call, ...)."""


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _remove_if_owner(root: Path, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        shutil.rmtree(root, ignore_errors=True)


def _mirror_data_folder(source: Path, root: Path) -> Path:
    """Mirror the wheel's ``espeak-ng-data`` folder into ``root/espeak-ng-data``.

    Everything is linked (or copied where symlinks are not available) except ``voices/!v``, which is a real
    folder so that custom variant files can be added to it.

    Args:
        source: The wheel's ``espeak-ng-data`` folder.
        root: An empty folder that will contain the mirror.

    Returns:
        The mirrored ``espeak-ng-data`` folder.
    """

    def link(src: Path, dst: Path) -> None:
        try:
            dst.symlink_to(src, target_is_directory=src.is_dir())
        except OSError:
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)

    data = root / "espeak-ng-data"
    data.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != "voices":
            link(entry, data / entry.name)
    voices = data / "voices"
    voices.mkdir()
    src_voices = source / "voices"
    if src_voices.is_dir():
        for entry in sorted(src_voices.iterdir()):
            if entry.name != "!v":
                link(entry, voices / entry.name)
    variants = voices / "!v"
    variants.mkdir()
    src_variants = src_voices / "!v"
    if src_variants.is_dir():
        for entry in sorted(src_variants.iterdir()):
            if entry.is_file():
                link(entry, variants / entry.name)
    return data


@dataclass
class _Engine:
    """Process-wide state of the initialised library (eSpeak NG is a global singleton)."""

    lib: ctypes.CDLL
    libc: ctypes.CDLL
    callback: object
    chunks: list[np.ndarray]
    root: Path
    owner_pid: int
    data_dir: Path
    sample_rate: int
    version: str
    base_voices: frozenset[str]
    lock: threading.RLock


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()
# Utterances synthesised so far by this process (the library keeps state between utterances).
_UTTERANCES_IN_PROCESS = 0


def _load_engine() -> _Engine:
    """Initialise eSpeak NG once per process and return its state."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is not None:
            return _ENGINE
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - dependency is declared in pyproject
            raise SynthesisError("the 'espeakng-loader' package is required for speech synthesis") from exc

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        libc_name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(libc_name) if libc_name else ctypes.CDLL(None)

        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        libc.srand.restype = None
        libc.srand.argtypes = [ctypes.c_uint]

        root = Path(tempfile.mkdtemp(prefix="ser_lightning_espeak_"))
        owner_pid = os.getpid()
        atexit.register(_remove_if_owner, root, owner_pid)
        data_dir = _mirror_data_folder(Path(espeakng_loader.get_data_path()), root)

        sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(root).encode(), 0)
        if sample_rate <= 0:
            raise SynthesisError(f"espeak_Initialize failed (returned {sample_rate}) with data folder {data_dir}")

        chunks: list[np.ndarray] = []

        def _collect(wav: ctypes._Pointer, n_samples: int, _events: int) -> int:
            if wav and n_samples > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
            return 0

        callback = _SYNTH_CALLBACK(_collect)
        lib.espeak_SetSynthCallback(callback)

        version = (lib.espeak_Info(None) or b"unknown").decode("utf-8", "replace")
        base_voices: set[str] = set()
        voices = lib.espeak_ListVoices(None)
        i = 0
        while voices and voices[i]:
            entry = voices[i].contents
            if entry.name:
                base_voices.add(entry.name.decode("utf-8", "replace").lower())
            if entry.identifier:
                ident = entry.identifier.decode("utf-8", "replace").lower()
                base_voices.add(ident)
                base_voices.add(ident.rsplit("/", 1)[-1])
            i += 1

        logger.debug("eSpeak NG %s initialised at %d Hz, data mirrored in %s", version, sample_rate, data_dir)
        _ENGINE = _Engine(
            lib=lib,
            libc=libc,
            callback=callback,
            chunks=chunks,
            root=root,
            owner_pid=owner_pid,
            data_dir=data_dir,
            sample_rate=sample_rate,
            version=version,
            base_voices=frozenset(base_voices),
            lock=threading.RLock(),
        )
        return _ENGINE


def shutdown_engine() -> None:
    """Terminate the library and remove the private data folder (if initialised).

    The data folder is removed only by the process that created it (a forked child that inherited an
    initialised library leaves it to its parent). A later :class:`ESpeakSynthesizer` re-initialises the
    library, but not its internal state between utterances: prefer fresh processes for reproducibility.
    """
    global _ENGINE
    with _ENGINE_LOCK:
        engine, _ENGINE = _ENGINE, None
    if engine is None:
        return
    with engine.lock:
        try:
            engine.lib.espeak_Terminate()
        finally:
            _remove_if_owner(engine.root, engine.owner_pid)


def utterances_in_process() -> int:
    """Return how many utterances this process has synthesised (0 in a fresh process)."""
    return _UTTERANCES_IN_PROCESS


def espeak_version() -> str:
    """Return the version string of the bundled eSpeak NG library (e.g. ``"1.52.0"``)."""
    return _load_engine().version


class ESpeakSynthesizer:
    """Render text to float32 audio with eSpeak NG.

    All instances share the process-wide library state (the library is a global singleton); creating an
    instance is cheap.

    Example:
        >>> synth = ESpeakSynthesizer()
        >>> synth.add_variant("sad_f3", ["breath 0 6 8 8 6 4 2 1"], base="f3")
        'sad_f3'
        >>> audio = synth.synthesize("Hello there.", voice="en-us+sad_f3", rate=140, seed=1)
    """

    def __init__(self) -> None:
        self._engine = _load_engine()

    @property
    def sample_rate(self) -> int:
        """Native sample rate of the synthesiser in Hz (22050)."""
        return self._engine.sample_rate

    @property
    def version(self) -> str:
        """Version string of the eSpeak NG library."""
        return self._engine.version

    @property
    def data_dir(self) -> Path:
        """The private (mirrored) ``espeak-ng-data`` folder used by the library."""
        return self._engine.data_dir

    @property
    def variants_dir(self) -> Path:
        """The folder holding the voice variant files (``voices/!v``) of the private data folder."""
        return self._engine.data_dir / "voices" / "!v"

    def has_voice(self, name: str) -> bool:
        """Return whether ``name`` (a language voice such as ``"en-us"``, without variant) exists."""
        return name.lower() in self._engine.base_voices

    def has_variant(self, name: str) -> bool:
        """Return whether the voice variant ``name`` (e.g. ``"f3"`` or a custom variant) exists."""
        path = self._variant_path(name)
        return path is not None and path.is_file()

    def list_variants(self) -> list[str]:
        """Return the names of all available voice variants (built-in and custom), sorted."""
        return sorted(p.name for p in self.variants_dir.iterdir() if p.is_file())

    def read_variant(self, name: str) -> str:
        """Return the text of the variant file ``name``.

        Raises:
            SynthesisError: If the variant does not exist.
        """
        path = self._variant_path(name)
        if path is None or not path.is_file():
            raise SynthesisError(f"unknown eSpeak voice variant {name!r}")
        return path.read_text(encoding="utf-8", errors="replace")

    def add_variant(self, name: str, lines: list[str] | tuple[str, ...], base: str | None = None) -> str:
        """Create (or overwrite) a custom voice variant in the private data folder.

        The variant file is the text of ``base`` (if given) followed by ``lines``; for attributes given
        twice, eSpeak keeps the last value, so ``lines`` override the base variant.

        Args:
            name: Variant name (letters, digits, ``_`` and ``-``; at most 24 characters).
            lines: Voice-file lines such as ``"breath 0 6 8 8 6 4 2 1"``, ``"roughness 5"``,
                ``"tone 600 220 1200 140 2000 80 3000 60"``; the keyword must be in :data:`VARIANT_KEYWORDS`.
            base: Optional existing variant to start from (e.g. ``"f3"``).

        Returns:
            ``name``, for use as ``voice="en-us+" + name``.

        Raises:
            SynthesisError: If the name, a line keyword, or the base variant is invalid.
        """
        if not _VARIANT_NAME_RE.match(name):
            raise SynthesisError(f"invalid eSpeak variant name {name!r} (use [A-Za-z0-9_-], at most 24 chars)")
        if name.isdigit():
            raise SynthesisError(f"invalid eSpeak variant name {name!r}: numeric names are reserved")
        parts: list[str] = []
        if base is not None:
            parts.append(self.read_variant(base).rstrip("\n"))
        else:
            parts.append(f"language variant\nname {name}")
        for line in lines:
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            keyword = line.split()[0]
            if keyword not in VARIANT_KEYWORDS:
                raise SynthesisError(
                    f"unsupported keyword {keyword!r} in eSpeak variant {name!r}; allowed: {sorted(VARIANT_KEYWORDS)}"
                )
            parts.append(line)
        text = "\n".join(parts) + "\n"
        path = self.variants_dir / name
        with self._engine.lock:
            if path.is_symlink():
                path.unlink()
            tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        return name

    def synthesize(
        self,
        text: str,
        voice: str = "en-us",
        *,
        rate: int = 175,
        volume: int = 100,
        pitch: int = 50,
        pitch_range: int = 50,
        word_gap: int = 0,
        seed: int = 0,
    ) -> np.ndarray:
        """Synthesise ``text`` and return float32 mono audio in [-1, 1] at :attr:`sample_rate`.

        Args:
            text: UTF-8 text to speak (plain text, not SSML).
            voice: Voice name with optional variant, e.g. ``"en-us"``, ``"en-gb-scotland+m3"``,
                ``"de+my_custom_variant"``. Numeric variants (``+3`` male, ``+13`` female) are accepted.
            rate: Speaking rate in words per minute (80-450).
            volume: Amplitude, 0-200 (100 is the default; high values may be limited by eSpeak's gain control).
            pitch: Base pitch, 0-99 (50 is the voice's own pitch; +/-50 is one octave up/down).
            pitch_range: Pitch range, 0-99 (50 is the voice's own range, 0 is monotone).
            word_gap: Additional pause between words, in units of 10 ms.
            seed: Seed of eSpeak's random generators, set before the utterance.

        Returns:
            A 1-D float32 array.

        Raises:
            SynthesisError: If the voice or variant is unknown, a library call fails, or no audio is produced.
        """
        engine = self._engine
        spec = self._validate_voice(voice)
        params = {
            "rate": (_PARAM_RATE, rate, 80, 450),
            "volume": (_PARAM_VOLUME, volume, 0, 200),
            "pitch": (_PARAM_PITCH, pitch, 0, 99),
            "pitch_range": (_PARAM_RANGE, pitch_range, 0, 99),
            "word_gap": (_PARAM_WORDGAP, word_gap, 0, 100),
        }
        encoded = text.encode("utf-8") + b"\0"
        with engine.lock:
            status = engine.lib.espeak_SetVoiceByName(spec.encode("utf-8"))
            if status != _EE_OK:
                raise SynthesisError(f"eSpeak could not select voice {voice!r} (error code {status})")
            for label, (param_id, value, low, high) in params.items():
                value = round(value)
                if not low <= value <= high:
                    raise SynthesisError(f"eSpeak parameter {label}={value} outside [{low}, {high}]")
                status = engine.lib.espeak_SetParameter(param_id, value, 0)
                if status != _EE_OK:
                    raise SynthesisError(f"espeak_SetParameter({label}={value}) failed (error code {status})")
            seed32 = int(seed) & 0x7FFFFFFF
            engine.lib.espeak_ng_SetRandSeed(seed32)
            engine.libc.srand(seed32)
            engine.chunks.clear()
            status = engine.lib.espeak_Synth(
                encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise SynthesisError(f"espeak_Synth failed for voice {voice!r} (error code {status}): {text!r}")
            status = engine.lib.espeak_Synchronize()
            if status != _EE_OK:
                raise SynthesisError(f"espeak_Synchronize failed (error code {status})")
            chunks = list(engine.chunks)
            engine.chunks.clear()
            global _UTTERANCES_IN_PROCESS
            _UTTERANCES_IN_PROCESS += 1
        if not chunks:
            raise SynthesisError(f"eSpeak produced no audio for voice {voice!r}: {text!r}")
        audio = np.concatenate(chunks).astype(np.float32) / 32768.0
        if audio.size == 0 or not np.any(audio):
            raise SynthesisError(f"eSpeak produced silent audio for voice {voice!r}: {text!r}")
        return audio

    def _variant_path(self, name: str) -> Path | None:
        if name.isdigit():
            number = int(name)
            name = f"m{number}" if number < 10 else f"f{number - 10}"
        if not _VARIANT_NAME_RE.match(name):
            return None
        return self.variants_dir / name

    def _validate_voice(self, voice: str) -> str:
        """Check that the voice and its variant exist; return the spec to pass to eSpeak."""
        if not voice or len(voice) > _MAX_VOICE_SPEC_LEN:
            raise SynthesisError(f"invalid eSpeak voice name {voice!r} (empty or longer than 39 characters)")
        base, plus, variant = voice.partition("+")
        if plus and not variant:
            raise SynthesisError(f"empty eSpeak voice variant in {voice!r}")
        if not self.has_voice(base):
            raise SynthesisError(f"unknown eSpeak voice {base!r} (in {voice!r})")
        if variant and not self.has_variant(variant):
            raise SynthesisError(f"unknown eSpeak voice variant {variant!r} (in {voice!r})")
        return voice
