"""The disjoint ``train`` / ``eval`` parts of the noise banks (see ``docs/noise.md``)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from ser_lightning.augment.noise import NoiseBank

NoisePart = Literal["train", "eval", "all"]
"""The part of a noise bank: ``train`` and ``eval`` are disjoint; ``all`` is the whole bank (overlaps both)."""

PARTS: tuple[str, ...] = ("train", "eval", "all")

DEFAULT_EVAL_FRACTION = 0.2
"""The fraction of a folder bank's units (files; DEMAND environments) held out for the ``eval`` part."""


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


def parts_overlap(a: str | None, b: str | None) -> bool:
    """Whether two parts of one bank may hold the same noise: the same part, or one of them the whole bank.

    Args:
        a: a part (``None``: not chosen, the whole bank).
        b: another part.
    """
    a, b = a or "all", b or "all"
    return a == b or "all" in (a, b)
