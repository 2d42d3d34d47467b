"""Describe a protocol before training: ``python -m ser_lightning.describe --data <data yaml> [...]``.

Prints JSON: utterances per split and class, speakers per split, the label map, dropped labels, skipped files
with reasons, and the leakage verdict. Exits 1 when the split leaks (or the corpus cannot be read).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from jsonargparse import ArgumentParser

import ser_lightning.data  # noqa: F401  (registers the corpus DataModules)
from ser_lightning.data.base import SERDataModule
from ser_lightning.errors import CorpusError, LeakageError

log = logging.getLogger("ser_lightning")


def describe(data: SERDataModule) -> dict[str, Any]:
    """Sets up a DataModule's split and returns its description with a leakage verdict.

    Args:
        data: the DataModule (not set up yet).

    Returns:
        A JSON-serialisable dict; ``leakage.ok`` is False (with the error) when the split leaks.
    """
    try:
        data.setup("fit")
    except CorpusError as err:
        leak = isinstance(err, LeakageError)
        return {
            "corpus": data.corpus_name,
            "protocol": data.protocol,
            "fold": data.fold,
            data.label_kind: data.label_names,
            "skipped": {"count": len(data.skipped), "files": data.skipped},
            "error": f"{type(err).__name__}: {err}",
            "leakage": {"ok": False, "error": str(err)} if leak else {"ok": None, "error": "not checked"},
        }
    out = data.describe()
    assert data.split is not None
    out["speakers"] = {name: sorted({r.speaker for r in part}) for name, part in data.split.parts().items()}
    label_map = getattr(data, "label_map", None)
    if label_map:
        out["label_map"] = dict(label_map)
    speakers = "speakers" if out.get("speaker_independent", True) else "speakers (speaker-dependent: not enforced)"
    sessions = "sessions (shared allowed: group_by=speaker)" if out.get("sessions_shared_allowed") else "sessions"
    out["leakage"] = {
        "ok": True,
        "checked": [speakers, sessions, "duplicated files and recordings (content hash)"],
        "shared_sentences": out.get("shared_sentences", False),
    }
    return out


def main(args: list[str] | None = None) -> int:
    """Parses ``--data`` (a data YAML and overrides) and prints the description as JSON.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        0 when the protocol is clean, 1 when it leaks or the corpus cannot be read.
    """
    parser = ArgumentParser(prog="python -m ser_lightning.describe", description=__doc__)
    parser.add_argument("-c", "--config", action="config", help="a YAML with a `data:` section")
    parser.add_subclass_arguments(SERDataModule, "data", required=True, help="the DataModule (a data YAML)")
    cfg = parser.parse_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    data = parser.instantiate(cfg).data
    out = describe(data)
    print(json.dumps(out, indent=2, default=str))
    return 0 if out["leakage"]["ok"] is True else 1


if __name__ == "__main__":
    sys.exit(main())
