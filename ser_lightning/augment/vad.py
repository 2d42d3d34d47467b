"""Voice-activity trimming with the WebRTC VAD (Pankratz et al.: "reduce noise and silence within the data").

:class:`VoiceActivityTrimmer` is preprocessing, not augmentation: it is deterministic and a DataModule applies it
(``vad_mode``) to every utterance of every split, right after reading and before augmentation and cropping.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ser_lightning.audio import resample

log = logging.getLogger(__name__)

VAD_RATES = (8000, 16000, 32000, 48000)
"""Sample rates the WebRTC VAD accepts; audio at another rate is resampled to 16 kHz for the decisions only."""

VAD_FRAME_MS = (10, 20, 30)
"""Frame lengths (ms) the WebRTC VAD accepts."""


def _runs(mask: np.ndarray, value: bool) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of the runs of ``value`` in a boolean mask."""
    padded = np.concatenate([[False], mask == value, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


class VoiceActivityTrimmer:
    """Trims leading and trailing non-speech (and optionally shortens long pauses) with the WebRTC VAD.

    The audio is cut into ``frame_ms`` frames of 16-bit PCM (at the audio's rate when the VAD accepts it, else
    resampled to 16 kHz for the decisions only; the output is always cut from the original samples). Frames
    classified as speech are widened by ``padding_ms`` on both sides; everything before the first and after the
    last such frame is dropped. With ``max_pause_ms``, every inner non-speech stretch (after the widening) longer
    than that is shortened to ``max_pause_ms`` (its first and last halves are kept). If no frame is speech, the input
    is returned unchanged (never empty audio) and a debug message is logged. The result depends only on the input.

    Args:
        mode: WebRTC VAD aggressiveness, 0 (least) to 3 (most aggressive in calling audio non-speech).
        frame_ms: decision frame length: 10, 20 (Pankratz et al.) or 30 ms.
        padding_ms: non-speech kept on each side of the speech (>= 0).
        max_pause_ms: longest inner pause kept, in ms (``None``: inner pauses are kept whole).
    """

    def __init__(
        self, mode: int = 2, frame_ms: int = 20, padding_ms: int = 200, max_pause_ms: int | None = None
    ) -> None:
        if isinstance(mode, bool) or mode not in (0, 1, 2, 3):
            raise ValueError(f"VoiceActivityTrimmer: mode must be a WebRTC VAD aggressiveness 0-3, got {mode!r}")
        if frame_ms not in VAD_FRAME_MS:
            raise ValueError(f"VoiceActivityTrimmer: frame_ms must be one of {VAD_FRAME_MS}, got {frame_ms!r}")
        if padding_ms < 0:
            raise ValueError(f"VoiceActivityTrimmer: padding_ms must be >= 0, got {padding_ms}")
        if max_pause_ms is not None and max_pause_ms < 0:
            raise ValueError(f"VoiceActivityTrimmer: max_pause_ms must be >= 0 or None, got {max_pause_ms}")
        self.mode = int(mode)
        self.frame_ms = int(frame_ms)
        self.padding_ms = int(padding_ms)
        self.max_pause_ms = None if max_pause_ms is None else int(max_pause_ms)

    def __repr__(self) -> str:
        return (
            f"VoiceActivityTrimmer(mode={self.mode}, frame_ms={self.frame_ms}, padding_ms={self.padding_ms}, "
            f"max_pause_ms={self.max_pause_ms})"
        )

    def speech_frames(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The VAD's decision for every whole ``frame_ms`` frame.

        Args:
            samples: 1-D float waveform (full scale = 1.0).
            sample_rate: its sample rate.

        Returns:
            A boolean array, one entry per whole frame (a trailing partial frame is not classified).
        """
        import webrtcvad

        x = np.asarray(samples, dtype=np.float32)
        rate = int(sample_rate)
        if rate not in VAD_RATES:
            x = resample(np.ascontiguousarray(x), rate, 16000)
            rate = 16000
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
        size = rate * self.frame_ms // 1000
        vad = webrtcvad.Vad(self.mode)
        count = len(pcm) // size
        return np.array([vad.is_speech(pcm[i * size : (i + 1) * size].tobytes(), rate) for i in range(count)],
                        dtype=bool)  # fmt: skip

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Trims non-speech from one waveform.

        Args:
            samples: 1-D float32 waveform.
            sample_rate: its sample rate (Hz).

        Returns:
            The trimmed float32 waveform (the input itself when no speech is found).
        """
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"VoiceActivityTrimmer: expected a 1-D waveform, got shape {x.shape}")
        speech = self.speech_frames(x, sample_rate)
        if not speech.any():
            log.debug("VAD (mode %d) found no speech in %d samples; keeping the utterance whole", self.mode, len(x))
            return x
        pad = math.ceil(self.padding_ms / self.frame_ms)
        keep = speech.copy()
        for start, stop in _runs(speech, True):
            keep[max(0, start - pad) : stop + pad] = True
        first, last = int(np.argmax(keep)), len(keep) - 1 - int(np.argmax(keep[::-1]))
        frames = [(first, last + 1)]
        if self.max_pause_ms is not None:
            longest = math.floor(self.max_pause_ms / self.frame_ms)
            frames = []
            begin = first
            for start, stop in _runs(keep[first : last + 1], False):
                start, stop = start + first, stop + first
                if stop - start > longest:
                    frames.append((begin, start + math.ceil(longest / 2)))
                    begin = stop - longest // 2
            frames.append((begin, last + 1))
        seconds = self.frame_ms / 1000.0
        pieces = []
        for index, (start, stop) in enumerate(frames):
            a = round(start * seconds * sample_rate)
            b = len(x) if index == len(frames) - 1 and stop == len(keep) else round(stop * seconds * sample_rate)
            pieces.append(x[a : min(b, len(x))])
        out = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        return np.ascontiguousarray(out) if out.size else x
