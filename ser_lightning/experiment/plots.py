"""The result card's figures (matplotlib, Agg backend), PNGs in the experiment folder, drawn from ``card.json`` only.

- ``card_<metric>.png``: per variant the mean with its 95 % bootstrap interval over folds (the sample std when
  there is no interval) and every finished cell as a point;
- ``card_confusion_<variant>.png``: the pooled confusion matrix (:func:`ser_lightning.results.confusion_figure`);
- ``card_noise_robustness.png``: UA versus SNR, one panel per noise (and their mean), one line per variant, mean ±
  std over cells as error bars, the clean UA dashed;
- ``card_adversarial_robustness[_waveform].png``: UA clean / FGSM / BIM per variant, mean ± std;
- ``card_cross_corpus.png``: UA per target corpus per variant, mean ± std.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PREFIX", "write_plots"]

log = logging.getLogger(__name__)

PREFIX = "card_"
DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(fig: Any, path: Path) -> str:
    plt = _pyplot()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path.name


def _colours(n: int) -> list[Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    return [cmap(i % 10) for i in range(n)]


def metric_figure(card: dict[str, Any], metric: str) -> Any:
    """Each variant's mean of ``metric`` with its 95 % interval (else ± std), and its cells as points.

    Args:
        card: the card (``card.json``).
        metric: e.g. ``test_ua``.

    Returns:
        The figure.
    """
    plt = _pyplot()
    variants = card["variants"]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(variants) + 2.0), 3.8))
    rng = np.random.default_rng(0)
    for i, (variant, colour) in enumerate(zip(variants, _colours(len(variants)), strict=True)):
        values = [c[metric] for c in card["cells"] if c["variant"] == variant and c.get(metric) is not None]
        stat = card["per_variant"].get(variant, {}).get(metric)
        if values:
            jitter = rng.uniform(-0.12, 0.12, len(values))
            ax.scatter(i + 0.2 + jitter, values, s=14, color=colour, alpha=0.55, linewidths=0, zorder=2)
        if not stat:
            continue
        ci = stat.get("ci95")
        if ci:
            low, high = stat["mean"] - ci["low"], ci["high"] - stat["mean"]
        else:
            low = high = stat["std"] or 0.0
        ax.errorbar(
            [i], [stat["mean"]], yerr=[[max(low, 0.0)], [max(high, 0.0)]], fmt="o", color=colour,
            markersize=8, capsize=6, linewidth=2, zorder=3,
        )  # fmt: skip
    ax.set_xticks(range(len(variants)), variants, rotation=20 if len(variants) > 4 else 0)
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: mean, 95 % bootstrap interval over folds (± std without one); dots: cells", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _stat(row: dict[str, Any] | None, score: str = "ua") -> tuple[float, float]:
    stat = (row or {}).get(score)
    if not stat:
        return float("nan"), 0.0
    return stat["mean"], stat["std"] or 0.0


def noise_figure(card: dict[str, Any]) -> Any | None:
    """UA versus SNR per noise (one panel each, the mean last), one line per variant with ± std error bars.

    Args:
        card: the card.

    Returns:
        The figure, or ``None`` when no variant has a noise table.
    """
    tables = {
        v: card["per_variant"][v]["robustness"]["noise_robustness"]
        for v in card["variants"]
        if "noise_robustness" in (card["per_variant"].get(v, {}).get("robustness") or {})
    }
    if not tables:
        return None
    noises: list[str] = []
    for table in tables.values():
        for row in table["rows"]:
            if row["snr_db"] is not None and row["noise"] not in noises:
                noises.append(row["noise"])
    noises = [n for n in noises if n != "mean"] + (["mean"] if "mean" in noises else [])
    plt = _pyplot()
    columns = min(3, len(noises))
    rows = -(-len(noises) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False, sharey=True)
    colours = dict(zip(card["variants"], _colours(len(card["variants"])), strict=True))
    for ax, noise in zip(axes.flat, noises, strict=False):
        for variant, table in tables.items():
            points = sorted((r["snr_db"], *_stat(r)) for r in table["rows"] if r["noise"] == noise)
            if points:
                snr, mean, std = zip(*points, strict=True)
                ax.errorbar(snr, mean, yerr=std, marker="o", capsize=3, color=colours[variant], label=variant)
            clean = next((r for r in table["rows"] if r["noise"] == "clean"), None)
            if clean:
                ax.axhline(_stat(clean)[0], color=colours[variant], linestyle="--", linewidth=0.9, alpha=0.7)
        ax.set_title(noise if noise != "mean" else "mean over noises", fontsize=10)
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(noises) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("UA (mean ± std over cells)")
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Test UA under additive noise (dashed: clean UA)", fontsize=11)
    fig.tight_layout()
    return fig


def _grouped_bars(
    card: dict[str, Any], groups: list[str], value: Any, title: str, xlabel: str
) -> Any:  # value(variant, group) -> (mean, std)
    plt = _pyplot()
    variants = card["variants"]
    width = 0.8 / max(len(variants), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(groups) * max(len(variants), 2) * 0.6 + 2.0), 3.6))
    x = np.arange(len(groups))
    for i, (variant, colour) in enumerate(zip(variants, _colours(len(variants)), strict=True)):
        stats = [value(variant, g) for g in groups]
        ax.bar(
            x + (i - (len(variants) - 1) / 2) * width, [s[0] for s in stats], width, yerr=[s[1] for s in stats],
            capsize=3, color=colour, label=variant,
        )  # fmt: skip
    ax.set_xticks(x, groups)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("UA (mean ± std over cells)")
    ax.set_ylim(0.0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def adversarial_figure(card: dict[str, Any], table: str) -> Any | None:
    """UA without attack, under FGSM and under BIM, per variant (mean ± std over cells).

    Args:
        card: the card.
        table: ``adversarial_robustness`` or ``adversarial_robustness_waveform``.

    Returns:
        The figure, or ``None`` when no variant has the table.
    """
    rows = {
        v: {r["attack"]: r for r in card["per_variant"][v]["robustness"][table]["rows"]}
        for v in card["variants"]
        if table in (card["per_variant"].get(v, {}).get("robustness") or {})
    }
    if not rows:
        return None
    attacks = list(dict.fromkeys(a for r in rows.values() for a in r))
    domain = "waveform" if table.endswith("_waveform") else "features"
    return _grouped_bars(
        card,
        attacks,
        lambda v, a: _stat(rows.get(v, {}).get(a)),
        f"Test UA under white-box attacks ({domain} domain; 'none': clean)",
        "attack",
    )


def cross_corpus_figure(card: dict[str, Any]) -> Any | None:
    """UA on each cross-corpus target per variant (mean ± std over cells).

    Args:
        card: the card.

    Returns:
        The figure, or ``None`` when no variant has cross-corpus results.
    """
    corpora = {
        v: card["per_variant"][v]["robustness"]["cross_corpus"]["corpora"]
        for v in card["variants"]
        if "cross_corpus" in (card["per_variant"].get(v, {}).get("robustness") or {})
    }
    if not corpora:
        return None
    names = list(dict.fromkeys(n for c in corpora.values() for n in c))
    return _grouped_bars(
        card, names, lambda v, n: _stat(corpora.get(v, {}).get(n)), "Cross-corpus test UA", "target corpus"
    )


def write_plots(directory: Path, card: dict[str, Any]) -> list[str]:
    """Draws every figure of the card into ``directory`` (old ``card_*.png`` removed first).

    Args:
        directory: the experiment folder.
        card: the card.

    Returns:
        The PNG file names, in the order the HTML card shows them.
    """
    from ser_lightning.results import confusion_figure

    for old in directory.glob(f"{PREFIX}*.png"):
        old.unlink()
    names: list[str] = []
    for metric in card["metrics"]:
        names.append(_save(metric_figure(card, metric), directory / f"{PREFIX}{metric}.png"))
    class_names = card["stamp"].get("class_names") or []
    for variant in card["variants"]:
        matrix = card["per_variant"].get(variant, {}).get("confusion_matrix")
        if matrix and class_names and len(class_names) == len(matrix):
            cells = card["per_variant"][variant]["cells"]
            fig = confusion_figure(np.asarray(matrix), list(class_names), f"{variant}: pooled over {cells} cells")
            names.append(_save(fig, directory / f"{PREFIX}confusion_{_slug(variant)}.png"))
    figures = [("noise_robustness", noise_figure(card))]
    figures += [(t, adversarial_figure(card, t)) for t in ("adversarial_robustness", "adversarial_robustness_waveform")]
    figures.append(("cross_corpus", cross_corpus_figure(card)))
    for stem, fig in figures:
        if fig is not None:
            names.append(_save(fig, directory / f"{PREFIX}{stem}.png"))
    log.info("card plots: %d PNGs in %s", len(names), directory)
    return names
