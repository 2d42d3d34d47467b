"""The toolkit's errors about files on disk: each one names the file or folder and the problem.

A leaf module: every package may import it.
"""

from __future__ import annotations


class CorpusError(Exception):
    """Base class of every error about a corpus on disk."""


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """A corpus root is missing or does not have the expected layout."""


class ManifestError(CorpusError, ValueError):
    """A manifest or label file is malformed (the message names the file and line)."""


class AudioReadError(CorpusError, OSError):
    """An audio file is unreadable, empty or corrupt (the message names the file).

    Args:
        message: what is wrong, naming the file.
        kind: a short category for counting: ``unreadable``, ``empty``, ``non_finite``, ``too_short`` or
            ``silent``.
    """

    def __init__(self, message: str, kind: str = "unreadable") -> None:
        super().__init__(message)
        self.kind = kind


class LeakageError(CorpusError, AssertionError):
    """A split shares speakers, sessions or recordings between train, validation and test."""


class ProtocolError(CorpusError, ValueError):
    """A protocol or fold argument does not fit the corpus."""
