"""Command line of the synthetic corpus generator: ``python -m ser_lightning.synth``.

Generates one corpus into an empty folder (the cache calls it in a fresh subprocess; see
:func:`ser_lightning.synth.cache.ensure_corpus`)::

    python -m ser_lightning.synth --out DIR --size tiny --seed 0 [--voice-set en]
        [--emotions neutral,happy,angry,sad] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ser_lightning.synth.design import ALL_EMOTIONS, resolve_emotions
from ser_lightning.synth.render import generate_corpus

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: generate a corpus into ``--out``.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="python -m ser_lightning.synth",
        description="Generate the synthetic (eSpeak NG) emotional speech corpus.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument("--size", default="default", help="corpus size: tiny, default or large")
    parser.add_argument("--seed", default=0, type=int, help="corpus seed")
    parser.add_argument("--voice-set", default="en", help="voice set: en or de")
    parser.add_argument(
        "--emotions",
        default=",".join(resolve_emotions(None)),
        help=f"comma-separated emotions in label order (available: {','.join(ALL_EMOTIONS)})",
    )
    parser.add_argument("--workers", default=None, type=int, help="worker processes (default: CPUs, max 8)")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generate_corpus(
        args.out,
        size=args.size,
        seed=args.seed,
        voice_set=args.voice_set,
        emotions=resolve_emotions(args.emotions),
        workers=args.workers,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
