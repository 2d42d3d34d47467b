"""The robust-SER study of Triantafyllopoulos et al. (2019): its conditions as variants, its tables from the cells.

The paper trains emotion models in three conditions and tests them at SNRs from -5 to 20 dB (Tables 2-6):

* **mismatched**: trained on clean audio, tested on noisy audio (and on enhanced noisy audio);
* **matched**: trained and tested at the same fixed SNR (noisy, or enhanced on both sides);
* **multi-SNR**: trained on mixed SNRs, tested per SNR (noisy, or enhanced on both sides).

An experiment spec states which of its variants fill which column in an optional ``study`` section::

    study:
      metric: ua                      # the score: ua (UAR) for classification; ccc for regression
      snr_db: [-5, 0, 5, 10, 15, 20]
      clean: clean                    # trained and tested clean: the "Clean" column (its test_<metric>)
      conditions:
        mismatched: {noisy: clean}    # one variant: every SNR from its noise_robustness rows
        matched:                      # per SNR: the variant trained at that SNR, its row at that SNR
          noisy: {-5: matched_snr-5, 0: matched_snr0, 5: matched_snr5, 10: matched_snr10, 15: matched_snr15,
                  20: matched_snr20}
        multi_snr: {noisy: multi_snr}

Each condition has a ``noisy`` and optionally an ``enhanced`` side. The noisy side reads a cell's
``noise_robustness`` table (``NoiseRobustness``: noisy test inputs), the enhanced side its
``noise_robustness_enhanced`` table (``NoiseRobustness(enhancer=...)``: the noisy test inputs enhanced first),
so one clean-trained cell can fill both mismatched columns. A side that is not named has no column: no column is
ever filled with something else. A cell's score at an SNR is that table's row ``noise: mean`` (the mean over the
noise categories) at that SNR; for ``ccc`` its ``ccc_postprocessed`` where the model post-processes, as the paper
reports (:class:`~ser_lightning.callbacks.noise_regression.RegressionNoiseRobustness` writes such rows). The
``average`` row is each (fold, seed)'s mean over the SNRs. Every entry is mean ± sample std (``ddof=1``) **over
folds**, each fold's seeds averaged first, as the paper reports cross-validated figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["SIDES", "STUDY_KEYS", "format_stat", "format_study", "parse_study", "study_tables", "study_unit"]

STUDY_KEYS = ("metric", "snr_db", "clean", "conditions", "corpus_note")
SIDES = ("noisy", "enhanced")
CONDITIONS = ("matched", "mismatched", "multi_snr")
PAPER_SNR_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
"""Triantafyllopoulos et al. 2019 §4: -5 to 20 dB in 5 dB steps."""
SYNTHETIC_NOTE = (
    "the embedded synthetic corpus (eSpeak NG) stands in for EMO-DB / eNTERFACE / RECOLA: these figures show the "
    "pipeline, not the paper's results"
)


class StudyError(ValueError):
    """A malformed ``study`` section; the message names the key."""


def _snr(value: Any, where: str) -> float:
    try:
        snr = float(value)
    except (TypeError, ValueError) as err:
        raise StudyError(f"{where}: an SNR must be a number of dB, got {value!r}") from err
    if not np.isfinite(snr):
        raise StudyError(f"{where}: an SNR must be finite, got {value!r}")
    return snr


def parse_study(data: Any, variants: Mapping[str, Any], where: str = "study") -> dict[str, Any]:
    """Checks a spec's ``study`` section against its variants and returns it as plain, normalised data.

    Args:
        data: the section (a mapping, see the module docstring).
        variants: the spec's variants (names are checked against them).
        where: the prefix of error messages (the spec file and key).

    Returns:
        ``{"metric", "snr_db", "clean", "conditions": {condition: {side: variant | {snr: variant}}},
        "corpus_note"}`` with SNRs as floats (as strings in the per-SNR mappings, for JSON).

    Raises:
        StudyError: an unknown key, condition or side, a variant that is not in ``variants``, an SNR outside
            ``snr_db``.
    """
    if not isinstance(data, dict):
        raise StudyError(f"{where} must be a mapping of {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(data) - set(STUDY_KEYS))
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {unknown}; expected {list(STUDY_KEYS)}")
    metric = data.get("metric", "ua")
    if metric not in ("ua", "wa", "f1", "ccc"):
        raise StudyError(f"{where}.metric must be ua, wa, f1 or ccc, got {metric!r}")
    raw_snrs = data.get("snr_db", list(PAPER_SNR_DB))
    if not isinstance(raw_snrs, list) or not raw_snrs:
        raise StudyError(f"{where}.snr_db must be a non-empty list of SNRs in dB, got {raw_snrs!r}")
    snrs = [_snr(s, f"{where}.snr_db") for s in raw_snrs]
    if len(set(snrs)) != len(snrs):
        raise StudyError(f"{where}.snr_db has duplicates: {raw_snrs!r}")

    def variant(name: Any, key: str) -> str:
        if not isinstance(name, str) or name not in variants:
            raise StudyError(f"{where}.{key}: {name!r} is not a variant of this experiment ({list(variants)})")
        return name

    clean = variant(data["clean"], "clean") if data.get("clean") is not None else None
    conditions_raw = data.get("conditions") or {}
    if not isinstance(conditions_raw, dict) or not conditions_raw:
        raise StudyError(f"{where}.conditions must map some of {list(CONDITIONS)} to their sides")
    conditions: dict[str, dict[str, Any]] = {}
    for condition, sides in conditions_raw.items():
        key = f"conditions.{condition}"
        if condition not in CONDITIONS:
            raise StudyError(f"{where}.{key}: unknown condition; expected some of {list(CONDITIONS)}")
        if not isinstance(sides, dict) or not sides:
            raise StudyError(f"{where}.{key} must map {' and/or '.join(SIDES)} to a variant or to {{snr: variant}}")
        conditions[condition] = {}
        for side, value in sides.items():
            if side not in SIDES:
                raise StudyError(f"{where}.{key}.{side}: unknown side; expected {list(SIDES)}")
            if isinstance(value, dict):
                per_snr = {}
                for snr, name in value.items():
                    level = _snr(snr, f"{where}.{key}.{side}")
                    if level not in snrs:
                        raise StudyError(f"{where}.{key}.{side}: SNR {snr} is not in snr_db {snrs}")
                    per_snr[repr(level)] = variant(name, f"{key}.{side}.{snr}")
                conditions[condition][side] = per_snr
            else:
                conditions[condition][side] = variant(value, f"{key}.{side}")
    note = data.get("corpus_note")
    if note is not None and not isinstance(note, str):
        raise StudyError(f"{where}.corpus_note must be text, got {note!r}")
    return {"metric": metric, "snr_db": snrs, "clean": clean, "conditions": conditions, "corpus_note": note}


NOISY_TABLE = "noise_robustness"
"""The per-SNR table of the noisy side (``NoiseRobustness``)."""
ENHANCED_TABLE = "noise_robustness_enhanced"
"""The per-SNR table of the enhanced side (``NoiseRobustness(enhancer=...)``: test inputs enhanced)."""
SIDE_TABLES = {"noisy": NOISY_TABLE, "enhanced": ENHANCED_TABLE}


def _row_score(results: Mapping[str, Any], snr: float, metric: str, table_name: str = NOISY_TABLE) -> float | None:
    """A cell's score at an SNR: its ``table_name`` row ``noise: mean`` (mean over the noise categories)."""
    table = results.get(table_name)
    for row in (table or {}).get("rows", []) if isinstance(table, dict) else []:
        if row.get("noise") == "mean" and row.get("snr_db") is not None and float(row["snr_db"]) == snr:
            return _score(row, metric)
    return None


def _score(values: Mapping[str, Any], metric: str, prefix: str = "") -> float | None:
    """``<prefix><metric>``; for the CCC its post-processed value first where it exists (the paper's figure)."""
    keys = [f"{prefix}{metric}_postprocessed", f"{prefix}{metric}"] if metric == "ccc" else [f"{prefix}{metric}"]
    for key in keys:
        value = values.get(key)
        if value is not None and np.isfinite(value):
            return float(value)
    return None


def over_folds(values: Mapping[tuple[int, int], float]) -> dict[str, Any] | None:
    """Mean ± sample std over folds of per-(fold, seed) values, each fold's seeds averaged first.

    Args:
        values: ``{(fold, seed): value}``.

    Returns:
        ``{"mean", "std" (None with one fold), "folds", "cells"}``, or ``None`` without values.
    """
    if not values:
        return None
    by_fold: dict[int, list[float]] = defaultdict(list)
    for (fold, _seed), value in values.items():
        by_fold[fold].append(value)
    means = np.asarray([np.mean(by_fold[f]) for f in sorted(by_fold)], dtype=float)
    return {"mean": float(means.mean()), "std": float(means.std(ddof=1)) if len(means) > 1 else None,
            "folds": len(means), "cells": len(values)}  # fmt: skip


def study_tables(study: Mapping[str, Any], cells: Mapping[str, Mapping[tuple[int, int], Mapping[str, Any]]],
                 corpus: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The study's tables (Triantafyllopoulos et al. 2019, Tables 2-5) from the finished cells' results.

    Args:
        study: a section checked by :func:`parse_study`.
        cells: ``{variant: {(fold, seed): results.json contents}}`` of the finished cells.
        corpus: the experiment's corpus (``synthetic`` adds :data:`SYNTHETIC_NOTE` unless the spec gives a note).

    Returns:
        ``{"metric", "snr_db", "clean": {variant, mean, std, folds, cells} | None, "conditions": {condition:
        {"columns": [sides], "rows": [{"snr_db": snr | "average", <side>: {mean, std, folds, cells} | None}]}},
        "corpus", "corpus_note", "statistics"}``; a side without finished cells has ``None`` entries.
    """
    metric, snrs = study["metric"], [float(s) for s in study["snr_db"]]

    def side_values(side: str, spec: str | Mapping[str, str], snr: float) -> dict[tuple[int, int], float]:
        name = spec if isinstance(spec, str) else spec.get(repr(snr))
        if name is None:
            return {}
        table = SIDE_TABLES[side]
        scores = {key: _row_score(results, snr, metric, table) for key, results in cells.get(name, {}).items()}
        return {key: value for key, value in scores.items() if value is not None}

    conditions: dict[str, Any] = {}
    for condition, sides in study["conditions"].items():
        columns = [s for s in SIDES if s in sides]
        rows: list[dict[str, Any]] = []
        per_snr = {side: {snr: side_values(side, sides[side], snr) for snr in snrs} for side in columns}
        for snr in snrs:
            rows.append({"snr_db": snr, **{side: over_folds(per_snr[side][snr]) for side in columns}})
        average: dict[str, Any] = {"snr_db": "average"}
        for side in columns:
            # A (fold, seed) enters the average only when it has a score at every SNR.
            keys = set.intersection(*(set(per_snr[side][snr]) for snr in snrs))
            average[side] = over_folds({k: float(np.mean([per_snr[side][snr][k] for snr in snrs])) for k in keys})
        rows.append(average)
        conditions[condition] = {"columns": columns, "rows": rows}
    clean = None
    if study.get("clean"):
        scores = {k: _score(r, metric, prefix="test_") for k, r in cells.get(study["clean"], {}).items()}
        stat = over_folds({k: v for k, v in scores.items() if v is not None})
        clean = {"variant": study["clean"], **stat} if stat else {"variant": study["clean"], "mean": None}
    note = study.get("corpus_note") or (SYNTHETIC_NOTE if corpus == "synthetic" else None)
    return {
        "metric": metric,
        "snr_db": snrs,
        "clean": clean,
        "conditions": conditions,
        "corpus": corpus,
        "corpus_note": note,
        "statistics": "mean ± sample std (ddof=1) over folds, each fold's seeds averaged first; a cell's score at an "
        "SNR is its noise_robustness row 'mean' (over the noise categories)"
        + (" for the noisy side and its noise_robustness_enhanced row 'mean' (test inputs enhanced) for the "
           "enhanced side" if any("enhanced" in t["columns"] for t in conditions.values()) else "")
        + "; 'average' is each (fold, seed)'s mean over the SNRs",
    }


def study_unit(metric: str) -> tuple[float, str]:
    """How the paper prints a metric: UAR and accuracies in %, the CCC as it is."""
    return (1.0, "CCC") if metric == "ccc" else (100.0, f"{metric.upper()} in %")


def format_stat(stat: Mapping[str, Any] | None, metric: str) -> str:
    """``mean ± std`` of a study entry in the metric's unit (``-`` for an empty entry)."""
    if not stat or stat.get("mean") is None:
        return "-"
    scale = study_unit(metric)[0]
    std = f" ± {stat['std'] * scale:.2f}" if stat.get("std") is not None else ""
    return f"{stat['mean'] * scale:.2f}{std}"


def format_study(tables: Mapping[str, Any]) -> list[str]:
    """The study's tables as Markdown lines, laid out as the paper's (UAR in %, CCC as it is).

    Args:
        tables: what :func:`study_tables` returns.
    """
    metric = tables["metric"]
    unit = study_unit(metric)[1]
    lines = ["## Study: Triantafyllopoulos et al. 2019, Tables 2-5 layout", ""]
    if tables.get("corpus_note"):
        lines += [f"**Corpus: {tables['corpus']}: {tables['corpus_note']}.**", ""]
    if tables.get("clean"):
        lines += [f"Clean (trained and tested clean, `{tables['clean']['variant']}`): "
                  f"{format_stat(tables['clean'], metric)} ({unit}).", ""]  # fmt: skip
    for condition, table in tables["conditions"].items():
        columns = table["columns"]
        lines += [f"### {condition} ({unit}, mean ± std over folds)", "",
                  "| SNR (dB) | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]  # fmt: skip
        for row in table["rows"]:
            snr = row["snr_db"] if isinstance(row["snr_db"], str) else f"{row['snr_db']:g}"
            lines.append(f"| {snr} | " + " | ".join(format_stat(row[c], metric) for c in columns) + " |")
        lines.append("")
    lines += [f"Statistics: {tables['statistics']}.", ""]
    return lines
