"""The experiment spec: a YAML file naming base run configs, folds, seeds and variants.

An experiment is ``base configs (+ extra args)`` x ``folds`` x ``seeds`` x ``variants``::

    name: latif2020_table2
    description: DenseHighway x {baseline, sp, mixup, sp_mixup}, LOSO, 10 seeds
    base: [configs/latif2020.yaml, configs/robustness.yaml]   # composed in order (--config each)
    args: [--trainer.enable_progress_bar, "false"]           # extra CLI args of every cell
    folds: all                                               # or a list: [0, 1, 2]
    seeds: [0, 1]                                            # or: repeats: 10 (and base_seed: 0)
    variants:                                                # the first one is the baseline of the comparisons
      baseline: []
      sp: [configs/augment/sp.yaml]                          # a config file: composed with --config
      no_dropout: [--model, configs/models/cnn_bilstm_mlp_no_dropout.yaml]
      lr: [--model.init_args.optimizer.init_args.lr, "1e-4"]
    output_root: runs                                        # the experiment folder is <output_root>/<name>
    study: {...}                                             # optional: which variants fill the study's tables
                                                             # (ser_lightning.experiment.study)

Relative config paths are looked up in the working directory, then next to the spec file and in the folders
above it (so ``configs/augment/sp.yaml`` works from ``configs/experiments/``). Every error names the file and
the bad key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ser_lightning.experiment.study import StudyError, parse_study

__all__ = ["ExperimentSpec", "ExperimentSpecError", "load_spec", "parse_spec"]

KEYS = ("name", "description", "base", "args", "folds", "seeds", "repeats", "base_seed", "variants", "output_root",
        "study")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_YAML = (".yaml", ".yml")


class ExperimentSpecError(ValueError):
    """An experiment spec is malformed; the message names the file and the key."""


@dataclass
class ExperimentSpec:
    """A parsed, checked experiment spec (config paths resolved to absolute paths).

    Args:
        name: experiment name (the folder under ``output_root``).
        base: the base run configs, composed in order with ``--config``.
        variants: variant name -> extra CLI arguments (config files already turned into ``--config PATH``);
            the first variant is the baseline of the paired comparisons.
        folds: ``"all"`` (every fold of the base config's protocol) or a list of fold indices.
        seeds: the seeds (``--seed_everything``) each fold is run with.
        args: extra CLI arguments given to every cell (before the variant's).
        output_root: the folder that holds the experiment folder.
        description: free text for the card.
        source: the spec file (for messages and the card).
        study: the optional ``study`` section, checked by :func:`ser_lightning.experiment.study.parse_study`
            (which variants fill the robust-SER study's tables on the card).
    """

    name: str
    base: list[str]
    variants: dict[str, list[str]]
    folds: str | list[int] = "all"
    seeds: list[int] = field(default_factory=lambda: [0])
    args: list[str] = field(default_factory=list)
    output_root: str = "runs"
    description: str = ""
    source: str = ""
    study: dict[str, Any] | None = None

    @property
    def directory(self) -> Path:
        """The experiment folder, ``<output_root>/<name>``."""
        return Path(self.output_root) / self.name

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (for ``experiment.json`` and the card)."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "base": list(self.base),
            "args": list(self.args),
            "folds": self.folds if isinstance(self.folds, str) else list(self.folds),
            "seeds": list(self.seeds),
            "variants": {k: list(v) for k, v in self.variants.items()},
            "output_root": self.output_root,
            **({"study": self.study} if self.study else {}),
        }


def _search_dirs(spec_file: Path | None) -> list[Path]:
    dirs = [Path.cwd()]
    if spec_file is not None:
        here = spec_file.resolve().parent
        dirs += [here, *here.parents]
    return [*dirs, Path(__file__).resolve().parents[2]]  # the checkout that holds this package (its configs/)


def _resolve(path: str, where: str, spec_file: Path | None) -> str:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        if not candidate.is_file():
            raise ExperimentSpecError(f"{where}: config file {path} does not exist")
        return str(candidate)
    for folder in _search_dirs(spec_file):
        if (folder / candidate).is_file():
            return str((folder / candidate).resolve())
    raise ExperimentSpecError(
        f"{where}: config file {path} not found (looked in the working directory and next to the spec file and "
        "in the folders above it)"
    )


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ExperimentSpecError(f"{where} must be a list of strings, got {type(value).__name__} {value!r}")
    out = []
    for item in value:
        if isinstance(item, bool):
            out.append(str(item).lower())
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise ExperimentSpecError(f"{where} must be a list of strings, got item {item!r}")
    return out


def _cli_args(tokens: list[str], where: str, spec_file: Path | None) -> list[str]:
    """Turns a variant's (or ``args``') tokens into CLI arguments: a bare YAML file becomes ``--config FILE``."""
    out: list[str] = []
    for i, token in enumerate(tokens):
        previous = tokens[i - 1] if i else ""
        is_value = previous.startswith("--") and "=" not in previous
        if token.lower().endswith(_YAML):
            resolved = _resolve(token, where, spec_file)
            out += [resolved] if is_value else ["--config", resolved]
        else:
            out.append(token)
    return out


def _ints(value: Any, where: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ExperimentSpecError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise ExperimentSpecError(f"{where} has duplicates: {value!r}")
    return list(value)


def parse_spec(data: Any, source: str | Path = "<spec>") -> ExperimentSpec:
    """Checks and parses an experiment spec given as data.

    Args:
        data: the YAML document (a mapping).
        source: the spec file (named in errors; relative config paths are looked up next to it).

    Returns:
        The spec.

    Raises:
        ExperimentSpecError: a key is unknown, missing or of the wrong type, or a config file does not exist.
    """
    spec_file = Path(source) if str(source) != "<spec>" else None
    if not isinstance(data, dict):
        raise ExperimentSpecError(f"{source}: an experiment spec is a mapping of {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ExperimentSpecError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(KEYS)}"
        )
    for key in ("name", "base", "variants"):
        if key not in data:
            raise ExperimentSpecError(f"{source}: missing required key {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExperimentSpecError(f"{source}: 'name' must be a folder name (letters, digits, _ . -), got {name!r}")
    base = [_resolve(p, f"{source}: 'base'", spec_file) for p in _strings(data["base"], f"{source}: 'base'")]
    if not base:
        raise ExperimentSpecError(f"{source}: 'base' must name at least one run config")
    args = _cli_args(_strings(data.get("args"), f"{source}: 'args'"), f"{source}: 'args'", spec_file)

    folds: str | list[int] = data.get("folds", "all")
    if folds != "all":
        folds = _ints(folds, f"{source}: 'folds'")
        if any(f < 0 for f in folds):
            raise ExperimentSpecError(f"{source}: 'folds' must be >= 0, got {folds!r}")

    if "seeds" in data and ("repeats" in data or "base_seed" in data):
        raise ExperimentSpecError(f"{source}: give either 'seeds' or 'repeats' (with 'base_seed'), not both")
    if "seeds" in data:
        seeds = _ints(data["seeds"], f"{source}: 'seeds'")
    else:
        repeats, base_seed = data.get("repeats", 1), data.get("base_seed", 0)
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise ExperimentSpecError(f"{source}: 'repeats' must be a positive integer, got {repeats!r}")
        if not isinstance(base_seed, int) or isinstance(base_seed, bool):
            raise ExperimentSpecError(f"{source}: 'base_seed' must be an integer, got {base_seed!r}")
        seeds = list(range(base_seed, base_seed + repeats))

    variants_raw = data["variants"]
    if not isinstance(variants_raw, dict) or not variants_raw:
        raise ExperimentSpecError(
            f"{source}: 'variants' must be a non-empty mapping of name -> list of CLI args or config files"
        )
    variants: dict[str, list[str]] = {}
    for key, value in variants_raw.items():
        where = f"{source}: 'variants.{key}'"
        if not isinstance(key, str) or not _NAME.match(key):
            raise ExperimentSpecError(f"{where}: a variant name must be a folder name (letters, digits, _ . -)")
        variants[key] = _cli_args(_strings(value, where), where, spec_file)

    output_root = data.get("output_root", "runs")
    if not isinstance(output_root, str) or not output_root:
        raise ExperimentSpecError(f"{source}: 'output_root' must be a folder path, got {output_root!r}")
    description = data.get("description", "") or ""
    if not isinstance(description, str):
        raise ExperimentSpecError(f"{source}: 'description' must be text, got {description!r}")
    study = None
    if data.get("study") is not None:
        try:
            study = parse_study(data["study"], variants, where=f"{source}: 'study'")
        except StudyError as err:
            raise ExperimentSpecError(str(err)) from err
    return ExperimentSpec(
        name=name,
        base=base,
        variants=variants,
        folds=folds,
        seeds=seeds,
        args=args,
        output_root=output_root,
        description=description.strip(),
        source=str(source),
        study=study,
    )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Reads and checks an experiment spec file.

    Args:
        path: the YAML file.

    Returns:
        The spec.

    Raises:
        ExperimentSpecError: the file is missing, not YAML, or malformed (the message names the file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise ExperimentSpecError(f"experiment spec {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ExperimentSpecError(f"{path}: not valid YAML: {err}") from err
    return parse_spec(data, path)
