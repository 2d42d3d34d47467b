"""The experiment's result card: ``card.json``, ``card.md``, ``card.html`` (with ``card_*.png``) and ``cells.csv``.

Built from the cells' ``results.json`` files only (no training, no corpus): a per-cell table; per variant the mean
and sample standard deviation (``ddof=1``) over all finished cells of test UA, WA and macro-F1 (CCC for regression
runs), a 95 % percentile-bootstrap interval of the mean over folds (each fold's cells first averaged over seeds;
``scipy.stats.bootstrap``, seeded), the pooled confusion matrix and, when every test split is one speaker (LOSO),
the UA per test speaker; paired comparisons of each variant with the first (the baseline) over the same
(fold, seed) pairs, with the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided) and the paired t-test
(``scipy.stats.ttest_rel``, two-sided); and a protocol stamp.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
import re
import socket
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ser_lightning.experiment.local import CELL_LOG, RESULTS, read_cell_json
from ser_lightning.experiment.study import format_study, study_tables

__all__ = [
    "CONFIDENCE",
    "METRICS",
    "ROBUSTNESS",
    "aggregate_robustness",
    "bootstrap_interval",
    "collect",
    "paired_tests",
    "pooled_predictions",
    "utterance_bootstrap",
]

log = logging.getLogger(__name__)

METRICS = ("test_ua", "test_wa", "test_f1", "test_ccc", "test_ccc_postprocessed")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
_CELL = re.compile(r"^fold(\d+)-seed(-?\d+)$")
#: results.json tables aggregated per variant: name -> the row keys that identify a row.
ROBUSTNESS = {
    "noise_robustness": ("noise", "snr_db"),
    "noise_robustness_enhanced": ("noise", "snr_db"),
    "adversarial_robustness": ("attack",),
    "adversarial_robustness_waveform": ("attack",),
}
ROBUSTNESS_SCORES = ("ua", "wa", "f1")


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def bootstrap_interval(values: list[float], seed: int = BOOTSTRAP_SEED) -> dict[str, Any] | None:
    """95 % percentile-bootstrap interval of the mean (``scipy.stats.bootstrap``, 9999 resamples, seeded).

    Args:
        values: one value per fold.
        seed: the generator's seed.

    Returns:
        ``{"low", "high", "n", "method"}``, or ``None`` with fewer than two values.
    """
    if len(values) < 2:
        return None
    return _percentile_bootstrap((np.asarray(values, dtype=float),), np.mean, "folds", seed)


def _percentile_bootstrap(data: tuple, statistic: Any, over: str, seed: int, **options: Any) -> dict[str, Any]:
    """``scipy.stats.bootstrap`` (percentile, :data:`BOOTSTRAP_RESAMPLES` resamples, 95 %) as the card's interval."""
    from scipy.stats import bootstrap

    result = bootstrap(
        data,
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
        **options,
    )
    low, high = result.confidence_interval
    return {
        "low": float(low),
        "high": float(high),
        "n": len(data[0]),
        "method": f"percentile bootstrap over {over}, {BOOTSTRAP_RESAMPLES} resamples, seed {seed}",
    }


def paired_tests(baseline: list[float], other: list[float]) -> dict[str, Any]:
    """Wilcoxon signed-rank and paired t-test of ``other - baseline`` (two-sided).

    Args:
        baseline: the baseline's values, one per (fold, seed) pair.
        other: the variant's values on the same pairs, in the same order.

    Returns:
        ``n``, ``mean_difference`` and, with at least two pairs, ``wilcoxon`` and ``ttest_rel`` as
        ``{"statistic", "pvalue"}`` (or ``{"skipped": why}``).
    """
    from scipy.stats import ttest_rel, wilcoxon

    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    out: dict[str, Any] = {"n": len(a), "mean_difference": float(np.mean(b - a)) if len(a) else None}
    if len(a) < 2:
        why = f"{len(a)} pair(s): a paired test needs at least 2"
        return {**out, "wilcoxon": {"skipped": why}, "ttest_rel": {"skipped": why}}
    if np.allclose(b - a, 0.0):
        out["wilcoxon"] = {"skipped": "every difference is zero"}
    else:
        try:
            res = wilcoxon(b, a)
            out["wilcoxon"] = {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}
        except ValueError as err:
            out["wilcoxon"] = {"skipped": str(err)}
    res = ttest_rel(b, a)
    stat, pvalue = float(res.statistic), float(res.pvalue)
    out["ttest_rel"] = (
        {"statistic": stat, "pvalue": pvalue}
        if math.isfinite(pvalue)
        else {"skipped": "the differences have zero variance"}
    )
    return out


def _read_predictions(cell: dict[str, Any]) -> list[dict[str, str]] | None:
    name = cell["_results"].get("test_predictions")
    if not name:
        return None
    path = Path(cell["directory"]) / name
    try:
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError as err:
        log.warning("%s: cannot read the test predictions (%s): the cell is left out of the pooled interval", path, err)
        return None


def utterance_bootstrap(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict[str, Any]:
    """95 % percentile-bootstrap interval of the UA of pooled predictions, resampling utterances.

    Args:
        labels: true class indices, one per utterance.
        predicted: predicted class indices, in the same order.
        num_classes: the number of classes.

    Returns:
        ``{"low", "high", "n", "method"}``.
    """
    import torch

    from ser_lightning.metrics import unweighted_accuracy

    def ua(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        codes = np.moveaxis(y, axis, -1) * num_classes + np.moveaxis(p, axis, -1)
        cells = num_classes * num_classes
        rows = codes.reshape(-1, codes.shape[-1])
        flat = rows + cells * np.arange(rows.shape[0])[:, None]  # one bincount for every resample's confusion
        counts = np.bincount(flat.ravel(), minlength=flat.shape[0] * cells)
        matrices = counts.reshape(*codes.shape[:-1], num_classes, num_classes)
        return unweighted_accuracy(torch.as_tensor(matrices)).numpy()

    batch = max(1, 4_000_000 // max(len(labels), 1))  # resamples per vectorised call: bounded memory
    return _percentile_bootstrap(
        (labels, predicted), ua, "the pooled utterances", BOOTSTRAP_SEED, paired=True, vectorized=True, batch=batch
    )


def pooled_predictions(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """UA of a variant's pooled per-utterance test predictions, its utterance-bootstrap interval and UA per speaker.

    Every finished cell's ``test_predictions.csv`` (all folds and seeds) is pooled; a cell without one is left out
    and counted.

    Args:
        cells: the variant's finished cells.

    Returns:
        ``{"ua", "ci95", "utterances", "cells", "cells_without_predictions", "per_speaker_ua"}``, or ``None`` when
        no cell has predictions.
    """
    from ser_lightning.metrics import unweighted_accuracy

    rows, used = [], 0
    for cell in cells:
        mine = _read_predictions(cell)
        if mine is not None:
            rows += mine
            used += 1
    if not rows:
        return None
    names = list(cells[0]["_results"].get("class_names") or sorted({r["label"] for r in rows}))
    index = {name: i for i, name in enumerate(names)}
    unknown = {r["label"] for r in rows} | {r["predicted"] for r in rows}
    if not unknown <= set(index):
        log.warning("test predictions name classes %s outside %s: no pooled UA", sorted(unknown - set(index)), names)
        return None
    labels = np.array([index[r["label"]] for r in rows])
    predicted = np.array([index[r["predicted"]] for r in rows])
    k = len(names)

    def ua_of(mask: np.ndarray) -> float:
        counts = np.bincount(labels[mask] * k + predicted[mask], minlength=k * k).reshape(k, k)
        return float(unweighted_accuracy(counts))

    everything = np.ones(len(rows), dtype=bool)
    speakers = np.array([r.get("speaker", "") for r in rows])
    per_speaker = {s: ua_of(speakers == s) for s in sorted(set(speakers.tolist())) if s}
    return {
        "ua": ua_of(everything),
        "ci95": utterance_bootstrap(labels, predicted, k) if len(rows) > 1 else None,
        "utterances": len(rows),
        "cells": used,
        "cells_without_predictions": len(cells) - used,
        "per_speaker_ua": per_speaker,
    }


def _cell_dirs(directory: Path) -> list[tuple[str, int, int, Path]]:
    plan_file = directory / "experiment.json"
    if plan_file.is_file():
        cells = json.loads(plan_file.read_text())["cells"]
        return [(c["variant"], int(c["fold"]), int(c["seed"]), Path(c["directory"])) for c in cells]
    out = []
    for path in sorted(directory.glob("*/*")):
        match = _CELL.match(path.name)
        if path.is_dir() and match:
            out.append((path.parent.name, int(match.group(1)), int(match.group(2)), path))
    return out


def _config_value(path: Path, *keys: str) -> Any:
    try:
        node: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _git_commit() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def _hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda_devices"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available()
            else []
        )
    except Exception as err:  # the card records hardware as far as it can
        info["torch"] = f"unavailable: {err}"
    return info


def _mean_std(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {
        "n": len(arr),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else None,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def _snr_text(snr: float) -> str:
    return str(int(snr)) if float(snr).is_integer() else repr(float(snr))


def robustness_scores(results: dict[str, Any]) -> dict[str, float]:
    """A cell's robustness UAs as named scores, for the card's per-variant statistics and paired tests.

    ``test_ua_noise_snr<k>db`` (the ``noise_robustness`` row ``mean`` over the noise types at k dB),
    ``test_ua_enhanced_noise_snr<k>db`` (the same of ``noise_robustness_enhanced``), ``test_ua_<attack>`` and
    ``test_ua_<attack>_waveform`` (the adversarial tables), ``test_ua_cross_<name>`` (each cross-corpus target):
    the keys the callbacks log. Scores that are missing or not finite are left out.

    Args:
        results: one cell's ``results.json`` contents.
    """
    scores: dict[str, float] = {}
    for table, infix in (("noise_robustness", ""), ("noise_robustness_enhanced", "enhanced_")):
        for row in (results.get(table) or {}).get("rows") or []:
            value = _finite(row.get("ua"))
            if row.get("noise") == "mean" and row.get("snr_db") is not None and value is not None:
                scores[f"test_ua_{infix}noise_snr{_snr_text(row['snr_db'])}db"] = value
    for table, suffix in (("adversarial_robustness", ""), ("adversarial_robustness_waveform", "_waveform")):
        for row in (results.get(table) or {}).get("rows") or []:
            value = _finite(row.get("ua"))
            if row.get("attack") not in (None, "none") and value is not None:
                scores[f"test_ua_{row['attack']}{suffix}"] = value
    for name, target in (results.get("cross_corpus") or {}).items():
        value = _finite(target.get("ua")) if isinstance(target, dict) else None
        if value is not None:
            scores[f"test_ua_cross_{name}"] = value
    return scores


def aggregate_robustness(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sample std over cells of the robustness tables the cells' ``results.json`` carry.

    ``noise_robustness`` rows are matched on (``noise``, ``snr_db``) (the ``clean`` row has ``snr_db`` null),
    ``adversarial_robustness`` and ``adversarial_robustness_waveform`` rows on ``attack`` (``none`` is the clean
    test), ``cross_corpus`` on the target corpus' name. A row missing from some cells is averaged over the cells
    that have it (its ``n`` says how many).

    Args:
        results: the finished cells' ``results.json`` contents of one variant.

    Returns:
        ``{table: {"cells": n, "rows": [{<row keys>, "ua": {n, mean, std, min, max}, "wa": ..., "f1": ...}]}}`` for
        the noise and adversarial tables and ``{"cross_corpus": {"cells": n, "corpora": {name: {"ua": ...}}}}``;
        only the tables some cell has.
    """
    out: dict[str, Any] = {}
    for table, keys in ROBUSTNESS.items():
        holders = [r[table] for r in results if isinstance(r.get(table), dict) and r[table].get("rows")]
        if not holders:
            continue
        grouped: dict[tuple, dict[str, list[float]]] = {}
        for summary in holders:
            for row in summary["rows"]:
                scores = grouped.setdefault(tuple(row.get(k) for k in keys), defaultdict(list))
                for score in ROBUSTNESS_SCORES:
                    value = _finite(row.get(score))
                    if value is not None:
                        scores[score].append(value)
        rows = [
            {**dict(zip(keys, key, strict=True)), **{s: _mean_std(v) for s, v in scores.items() if v}}
            for key, scores in grouped.items()
        ]
        out[table] = {"cells": len(holders), "rows": rows}
    corpora: dict[str, dict[str, list[float]]] = {}
    holders = [r["cross_corpus"] for r in results if isinstance(r.get("cross_corpus"), dict) and r["cross_corpus"]]
    for tables in holders:
        for name, table in tables.items():
            scores = corpora.setdefault(name, defaultdict(list))
            for score in ROBUSTNESS_SCORES:
                value = _finite((table or {}).get(score))
                if value is not None:
                    scores[score].append(value)
    if corpora:
        out["cross_corpus"] = {
            "cells": len(holders),
            "corpora": {n: {s: _mean_std(v) for s, v in scores.items() if v} for n, scores in sorted(corpora.items())},
        }
    return out


def collect(directory: str | Path, variants: list[str] | None = None, spec: dict[str, Any] | None = None) -> dict:
    """Aggregates an experiment folder into ``card.json``, ``card.md`` and ``cells.csv``.

    Args:
        directory: the experiment folder (``<output_root>/<name>``).
        variants: the variants in order (the first is the baseline); default: the spec's order saved in
            ``experiment.json``, else alphabetical.
        spec: the experiment spec as data (default: from ``experiment.json`` when present).

    Returns:
        The card (what ``card.json`` holds).
    """
    directory = Path(directory).resolve()
    plan_file = directory / "experiment.json"
    saved = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    spec = spec or saved.get("spec") or {"name": directory.name}
    cells = []
    for variant, fold, seed, path in _cell_dirs(directory):
        info = read_cell_json(path) or {}
        try:
            results = json.loads((path / RESULTS).read_text())
        except (OSError, json.JSONDecodeError):
            results = {}
        metrics = {m: _finite(results.get(m)) for m in METRICS}
        finished = any(v is not None for v in metrics.values())
        state = info.get("state") or ("done" if finished else "pending")
        if state == "done" and not finished:
            state = "failed"
        cells.append(
            {
                "variant": variant,
                "fold": fold,
                "seed": seed,
                "state": state,
                "directory": str(path),
                "log": str(path / CELL_LOG),
                "seconds": info.get("seconds"),
                "returncode": info.get("returncode"),
                **metrics,
                "_results": results if finished else None,
            }
        )
    order = variants or list((spec.get("variants") or {}).keys()) or sorted({c["variant"] for c in cells})
    order += sorted({c["variant"] for c in cells} - set(order))
    done = [c for c in cells if c["_results"] is not None]
    metrics = [m for m in METRICS if any(c[m] is not None for c in done)]
    for c in done:
        c["_scores"] = robustness_scores(c["_results"])
    scores = list(dict.fromkeys(name for c in done for name in c["_scores"]))

    per_variant: dict[str, Any] = {}
    for variant in order:
        mine = [c for c in done if c["variant"] == variant]
        entry: dict[str, Any] = {"cells": len(mine), "planned": sum(c["variant"] == variant for c in cells)}
        for metric in metrics:
            stat = _over_folds(mine, metric)
            if stat is not None:
                entry[metric] = stat
        matrices = [
            np.asarray(c["_results"]["confusion_matrix"]) for c in mine if c["_results"].get("confusion_matrix")
        ]
        if matrices and len({m.shape for m in matrices}) == 1:
            entry["confusion_matrix"] = np.sum(matrices, axis=0).astype(int).tolist()
        pooled = pooled_predictions(mine)
        if pooled is not None:
            entry["pooled"] = pooled
        speakers = [c["_results"].get("test_speakers") for c in mine]
        if pooled is not None and pooled.get("per_speaker_ua"):
            entry["per_speaker_ua"] = pooled.pop("per_speaker_ua")
            entry["per_speaker_note"] = "UA of each speaker's pooled test predictions over the variant's cells"
        elif mine and all(isinstance(s, list) and len(s) == 1 for s in speakers) and "test_ua" in metrics:
            per_speaker: dict[str, list[float]] = defaultdict(list)
            for c, s in zip(mine, speakers, strict=True):
                if c["test_ua"] is not None:
                    per_speaker[s[0]].append(c["test_ua"])
            entry["per_speaker_ua"] = {k: float(np.mean(v)) for k, v in sorted(per_speaker.items())}
        elif mine:
            entry["per_speaker_ua"] = None
            entry["per_speaker_note"] = (
                "skipped: a test split holds more than one speaker and results.json has no per-utterance predictions"
            )
        robustness = aggregate_robustness([c["_results"] for c in mine])
        if robustness:
            entry["robustness"] = robustness
        named = {name: stat for name in scores if (stat := _over_folds(mine, name)) is not None}
        if named:
            entry["robustness_scores"] = named
        per_variant[variant] = entry

    comparisons: dict[str, Any] = {}
    baseline = order[0] if order else None
    for variant in order[1:]:
        comparisons[variant] = {}
        for name in [*metrics, *scores]:
            base = _by_cell([c for c in done if c["variant"] == baseline], name)
            other = _by_cell([c for c in done if c["variant"] == variant], name)
            pairs = sorted(set(base) & set(other))
            if pairs or name in metrics:  # a robustness score only where both variants have it
                comparisons[variant][name] = paired_tests([base[p] for p in pairs], [other[p] for p in pairs])

    card = {
        "experiment": spec.get("name", directory.name),
        "description": spec.get("description", ""),
        "directory": str(directory),
        "baseline": baseline,
        "variants": order,
        "metrics": metrics,
        "robustness_scores": scores,
        "cells_total": len(cells),
        "cells_done": len(done),
        "cells_failed": [
            {"cell": f"{c['variant']}/fold{c['fold']}-seed{c['seed']}", "log": c["log"]}
            for c in cells
            if c["state"] == "failed"
        ],
        "cells_pending": [
            f"{c['variant']}/fold{c['fold']}-seed{c['seed']}" for c in cells if c["state"] not in ("done", "failed")
        ],
        "statistics": {
            "std": "sample standard deviation (ddof=1) over all finished cells",
            "ci95": "percentile bootstrap of the mean over folds (each fold averaged over its seeds), "
            f"scipy.stats.bootstrap, {BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}",
            "pooled": "UA of the variant's per-utterance test predictions pooled over all its cells (folds x seeds), "
            "with a percentile bootstrap over those utterances (paired resampling of truth and prediction, "
            f"{BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED})",
            "paired": f"each variant minus the baseline ({baseline}) over the same (fold, seed) pairs: "
            "scipy.stats.wilcoxon (signed-rank, two-sided) and scipy.stats.ttest_rel "
            "(two-sided)",
        },
        "per_variant": per_variant,
        "comparisons": comparisons,
        "stamp": _stamp(spec, saved, cells, done, order),
        "cells": [{k: v for k, v in c.items() if not k.startswith("_")} for c in cells],
    }
    if spec.get("study"):
        by_variant: dict[str, dict[tuple[int, int], dict[str, Any]]] = defaultdict(dict)
        for c in done:
            by_variant[c["variant"]][(c["fold"], c["seed"])] = c["_results"]
        card["study"] = study_tables(spec["study"], by_variant, corpus=card["stamp"].get("corpus"))
    _write(directory, card)
    return card


def _derived_text(derived: dict[str, Any] | None) -> str:
    """A cell's derived training audio (``results.json`` ``derived``) in a few words: ``source`` without one."""
    if not derived:
        return "source"
    snr = derived.get("snr_db")
    level = f"{snr[0]:g} to {snr[1]:g} dB" if isinstance(snr, list) else f"{snr:g} dB"
    noises = ", ".join(derived.get("categories") or [])
    text = f"{derived.get('output')} at {level} ({derived.get('part')} noise: {noises})"
    return text + (f", enhancer {derived['enhancer']}" if derived.get("enhancer") else "")


def _value(cell: dict[str, Any], name: str) -> float | None:
    """A finished cell's metric (``test_ua``...) or robustness score (:func:`robustness_scores`), if it has it."""
    return cell[name] if name in METRICS else cell["_scores"].get(name)


def _by_cell(cells: list[dict[str, Any]], name: str) -> dict[tuple[int, int], float]:
    """``{(fold, seed): value}`` of ``name`` over the cells that have it."""
    return {(c["fold"], c["seed"]): v for c in cells if (v := _value(c, name)) is not None}


def _over_folds(cells: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Mean ± std of ``name`` over the cells that have it, and the bootstrap interval over folds (seeds averaged)."""
    by_fold: dict[int, list[float]] = defaultdict(list)
    for c in cells:
        value = _value(c, name)
        if value is not None:
            by_fold[c["fold"]].append(value)
    if not by_fold:
        return None
    values = [v for f in sorted(by_fold) for v in by_fold[f]]
    fold_means = [float(np.mean(by_fold[f])) for f in sorted(by_fold)]
    return {**_mean_std(values), "folds": len(fold_means), "ci95": bootstrap_interval(fold_means)}


def _variant_table(card: dict[str, Any], names: list[str], section: str | None = None) -> list[str]:
    """A Markdown table: one row per variant, a ``_fmt`` cell per name (from ``per_variant[v][section]``)."""
    lines = ["| variant | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for variant in card["variants"]:
        entry = card["per_variant"].get(variant, {})
        entry = (entry.get(section) or {}) if section else entry
        lines.append(f"| {variant} | " + " | ".join(_fmt(entry.get(m)) for m in names) + " |")
    return lines


def _stamp(
    spec: dict[str, Any], saved: dict[str, Any], cells: list[dict], done: list[dict], order: list[str]
) -> dict[str, Any]:
    import ser_lightning

    first = done[0]["_results"] if done else {}
    counts = first.get("class_counts") or {}
    totals: dict[str, int] = defaultdict(int)
    for part in counts.values():
        for label, n in (part or {}).items():
            totals[label] += int(n)
    augmentation, mixup, derived = {}, {}, {}
    for variant in order:
        mine = [c for c in done if c["variant"] == variant]
        augmentation[variant] = sorted({str(c["_results"].get("augmentation")) for c in mine})
        derived[variant] = sorted({_derived_text(c["_results"].get("derived")) for c in mine})
        mixup[variant] = sorted(
            {
                str(_config_value(Path(c["directory"]) / "config.yaml", "model", "init_args", "mixup_alpha"))
                for c in mine
            }
        )
    hosts = sorted({str((read_cell_json(Path(c["directory"])) or {}).get("host")) for c in done})
    return {
        "corpus": first.get("corpus"),
        "task": first.get("task", "classification"),
        "class_names": first.get("class_names") or first.get("target_names"),
        "class_counts": dict(totals) or None,
        "class_counts_note": "the whole corpus (train + validation + test of one fold)" if totals else None,
        "protocol": first.get("protocol"),
        "protocol_folds": first.get("protocol_folds"),
        "folds": sorted({c["fold"] for c in cells}),
        "fold_source": saved.get("fold_source"),
        "speaker_independent": all(c["_results"].get("speaker_independent") is True for c in done) if done else None,
        "seeds": sorted({c["seed"] for c in cells}),
        "augmentation": augmentation,
        "derived_training_audio": derived,
        "mixup_alpha": mixup,
        "model": sorted({str(c["_results"].get("model")) for c in done}),
        "base_configs": spec.get("base"),
        "args": spec.get("args"),
        "variant_args": spec.get("variants"),
        "package_version": ser_lightning.__version__,
        "git": _git_commit(),
        "hosts": hosts,
        "hardware": _hardware(),
        "hardware_note": "of the machine that ran collect (the local executor runs cells on the same machine)",
    }


def _fmt(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    std = f" ± {stat['std']:.4f}" if stat.get("std") is not None else ""
    ci = stat.get("ci95")
    interval = f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else ""
    return f"{stat['mean']:.4f}{std}{interval} (n={stat['n']})"


def _p(test: dict[str, Any]) -> str:
    return f"p={test['pvalue']:.4g}" if "pvalue" in test else f"- ({test.get('skipped', '')})"


def _write(directory: Path, card: dict[str, Any]) -> None:
    from ser_lightning.experiment.card import write_html
    from ser_lightning.experiment.plots import write_plots

    try:
        card["plots"] = write_plots(directory, card)
    except Exception as err:  # a figure that cannot be drawn must not cost the card its numbers
        log.exception("card plots failed")
        card["plots"] = []
        card["plots_error"] = f"{type(err).__name__}: {err}"
    (directory / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    metrics = card["metrics"]
    with (directory / "cells.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["variant", "fold", "seed", "state", *metrics, "seconds", "directory", "log"])
        for c in card["cells"]:
            writer.writerow(
                [
                    c["variant"],
                    c["fold"],
                    c["seed"],
                    c["state"],
                    *("" if c[m] is None else f"{c[m]:.6f}" for m in metrics),
                    c["seconds"] or "",
                    c["directory"],
                    c["log"],
                ]
            )
    stamp = card["stamp"]
    lines = [f"# Experiment `{card['experiment']}`", ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += [
        f"{card['cells_done']}/{card['cells_total']} cells finished; baseline `{card['baseline']}`.",
        "",
        "## Results (mean ± sample std [95 % bootstrap interval over folds] (cells))",
        "",
        *_variant_table(card, metrics),
    ]
    scores = card.get("robustness_scores") or []
    if scores:
        lines += ["", "## Robustness scores (UA; mean ± sample std [95 % bootstrap interval over folds] (cells))", "",
                  *_variant_table(card, scores, "robustness_scores")]  # fmt: skip
    pooled = [(v, card["per_variant"].get(v, {}).get("pooled")) for v in card["variants"]]
    if any(p for _, p in pooled):
        lines += [
            "",
            "## Pooled test predictions (UA [95 % bootstrap interval over utterances])",
            "",
            "| variant | UA | utterances | cells |",
            "|---|---|---|---|",
        ]
        for variant, p in pooled:
            if p:
                ci = p.get("ci95")
                interval = f" [{ci['low']:.4f}, {ci['high']:.4f}]" if ci else ""
                lines.append(f"| {variant} | {p['ua']:.4f}{interval} | {p['utterances']} | {p['cells']} |")
    if card["comparisons"]:
        lines += [
            "",
            f"## Paired comparisons with `{card['baseline']}` (same folds and seeds; two-sided)",
            "",
            "| variant | metric | pairs | mean difference | Wilcoxon signed-rank | paired t-test |",
            "|---|---|---|---|---|---|",
        ]
        for variant, by_metric in card["comparisons"].items():
            for metric, test in by_metric.items():
                diff = "-" if test["mean_difference"] is None else f"{test['mean_difference']:+.4f}"
                lines.append(
                    f"| {variant} | {metric} | {test['n']} | {diff} | {_p(test['wilcoxon'])} | "
                    f"{_p(test['ttest_rel'])} |"
                )
    names = stamp.get("class_names") or []
    for variant in card["variants"]:
        entry = card["per_variant"].get(variant, {})
        if entry.get("confusion_matrix") and names:
            lines += [
                "",
                f"### Pooled confusion matrix: `{variant}` (rows true, columns predicted)",
                "",
                "| | " + " | ".join(names) + " |",
                "|---" * (len(names) + 1) + "|",
            ]
            lines += [
                f"| {n} | " + " | ".join(map(str, row)) + " |"
                for n, row in zip(names, entry["confusion_matrix"], strict=False)
            ]
        if entry.get("per_speaker_ua"):
            lines += [
                "",
                f"UA per test speaker (`{variant}`; {entry.get('per_speaker_note') or 'mean over seeds'}): "
                + ", ".join(f"{k} {v:.3f}" for k, v in entry["per_speaker_ua"].items()),
            ]
        elif entry.get("per_speaker_note"):
            lines += ["", f"UA per test speaker (`{variant}`): {entry['per_speaker_note']}"]
    if card.get("study"):
        lines += ["", *format_study(card["study"])]
    if card["cells_failed"]:
        lines += ["", "## Failed cells", ""] + [f"- `{f['cell']}`: log `{f['log']}`" for f in card["cells_failed"]]
    lines += ["", "## Protocol stamp", ""]
    for key in (
        "corpus",
        "task",
        "class_names",
        "class_counts",
        "protocol",
        "protocol_folds",
        "folds",
        "fold_source",
        "speaker_independent",
        "seeds",
        "augmentation",
        "derived_training_audio",
        "mixup_alpha",
        "model",
        "base_configs",
        "args",
        "variant_args",
        "package_version",
        "git",
        "hosts",
        "hardware",
    ):
        lines.append(f"- **{key}**: `{json.dumps(stamp.get(key))}`")
    lines += ["", "Statistics: " + "; ".join(f"{k}: {v}" for k, v in card["statistics"].items()) + ".", ""]
    (directory / "card.md").write_text("\n".join(lines))
    html = write_html(directory, card)
    log.info("card: %s, %s, %s, %s", directory / "card.json", directory / "card.md", html, directory / "cells.csv")
