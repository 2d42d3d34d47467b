"""``card.html``: the result card as one self-contained page (inline CSS, PNGs as base64 data URIs, no script).

Shows what ``card.json`` holds, in the order a reader wants it: the headline (cells finished, baseline), the
per-variant table (mean ± std, 95 % interval, n), the paired comparisons with the tests named, the robustness
tables, the failed and pending cells, the figures of :mod:`ser_lightning.experiment.plots`, and the protocol stamp.
"""

from __future__ import annotations

import base64
import json
import logging
from html import escape
from pathlib import Path
from typing import Any

from ser_lightning.experiment.study import format_stat, study_unit

__all__ = ["render_html", "write_html"]

DASH = "\u2013"  # an en dash: no value

log = logging.getLogger(__name__)

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.baseline td:first-child { font-weight: bold; }
.muted { color: #666; font-size: .9em; } .bad { color: #a40000; } .ok { color: #176f2c; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: .85em; color: #555; }
code { background: #f5f5f5; padding: 0 .2em; font-size: .9em; word-break: break-all; }
dl.stamp dt { font-weight: bold; margin-top: .3em; } dl.stamp dd { margin-left: 1.5em; }
"""


def _num(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _cell(text: str, cls: str = "num") -> str:
    return f'<td class="{cls}">{text}</td>'


def _p(test: dict[str, Any]) -> str:
    if "pvalue" in test:
        return f"statistic {test['statistic']:.4g}, p = {test['pvalue']:.4g}"
    return f'<span class="muted">skipped: {escape(str(test.get("skipped", "")))}</span>'


def _variant_table(card: dict[str, Any]) -> list[str]:
    metrics = card["metrics"]
    out = ["<table>", "<tr><th>variant</th><th>cells</th>"]
    out += [
        f"<th>{escape(m)}<br><span class='muted'>mean ± std</span></th><th>95 % interval</th><th>n</th>"
        for m in metrics
    ]
    out.append("</tr>")
    for variant in card["variants"]:
        entry = card["per_variant"].get(variant, {})
        cls = ' class="baseline"' if variant == card["baseline"] else ""
        row = [f"<tr{cls}><td>{escape(variant)}</td>", _cell(f"{entry.get('cells', 0)}/{entry.get('planned', 0)}")]
        for metric in metrics:
            stat = entry.get(metric)
            if not stat:
                row += [_cell(DASH), _cell(DASH), _cell("0")]
                continue
            std = f" ± {stat['std']:.4f}" if stat.get("std") is not None else ""
            ci = stat.get("ci95")
            interval = f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci else DASH
            row += [_cell(f"{stat['mean']:.4f}{std}"), _cell(interval), _cell(str(stat["n"]))]
        out.append("".join(row) + "</tr>")
    out.append("</table>")
    return out


def _pooled(card: dict[str, Any]) -> list[str]:
    rows = [(v, card["per_variant"].get(v, {}).get("pooled")) for v in card["variants"]]
    rows = [(v, p) for v, p in rows if p]
    if not rows:
        return []
    out = [
        "<h2>Pooled test predictions</h2>",
        f"<p class='muted'>{escape(card['statistics'].get('pooled', ''))}.</p>",
        "<table><tr><th>variant</th><th>UA</th><th>95 % interval (utterances)</th><th>utterances</th>"
        "<th>cells</th></tr>",
    ]
    for variant, p in rows:
        ci = p.get("ci95")
        interval = f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci else DASH
        ua = f"{p['ua']:.4f}"
        out.append(
            f"<tr><td>{escape(variant)}</td>{_cell(ua)}{_cell(interval)}"
            f"{_cell(str(p['utterances']))}{_cell(str(p['cells']))}</tr>"
        )
    out.append("</table>")
    return out


def _comparisons(card: dict[str, Any]) -> list[str]:
    if not card["comparisons"]:
        return []
    out = [
        f"<h2>Paired comparisons with the baseline <code>{escape(str(card['baseline']))}</code></h2>",
        f"<p class='muted'>{escape(card['statistics']['paired'])}.</p>",
        "<table><tr><th>variant</th><th>metric</th><th>pairs</th><th>mean difference</th>"
        "<th>Wilcoxon signed-rank (two-sided)</th><th>paired t-test (two-sided)</th></tr>",
    ]
    for variant, by_metric in card["comparisons"].items():
        for metric, test in by_metric.items():
            diff = test["mean_difference"]
            text = DASH if diff is None else f"{diff:+.4f}"
            out.append(
                f"<tr><td>{escape(variant)}</td><td>{escape(metric)}</td>{_cell(str(test['n']))}{_cell(text)}"
                f"{_cell(_p(test['wilcoxon']), '')}{_cell(_p(test['ttest_rel']), '')}</tr>"
            )
    out.append("</table>")
    return out


def _score(row: dict[str, Any], score: str = "ua") -> str:
    stat = row.get(score)
    if not stat:
        return DASH
    std = f" ± {stat['std']:.4f}" if stat.get("std") is not None else ""
    return f"{stat['mean']:.4f}{std} (n={stat['n']})"


def _robustness(card: dict[str, Any]) -> list[str]:
    tables: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for variant in card["variants"]:
        for name, table in (card["per_variant"].get(variant, {}).get("robustness") or {}).items():
            tables.setdefault(name, []).append((variant, table))
    if not tables:
        return []
    out = ["<h2>Robustness (test UA, mean ± sample std over cells)</h2>"]
    for name, per_variant in tables.items():
        out.append(f"<h3>{escape(name)}</h3><table>")
        if name == "cross_corpus":
            out.append("<tr><th>variant</th><th>target corpus</th><th>UA</th><th>WA</th><th>F1</th></tr>")
            for variant, table in per_variant:
                for corpus, scores in table["corpora"].items():
                    out.append(
                        f"<tr><td>{escape(variant)}</td><td>{escape(corpus)}</td>"
                        + "".join(_cell(_score(scores, s)) for s in ("ua", "wa", "f1"))
                        + "</tr>"
                    )
        else:
            keys = [k for k in per_variant[0][1]["rows"][0] if k not in ("ua", "wa", "f1")]
            out.append(
                "<tr><th>variant</th>" + "".join(f"<th>{escape(k)}</th>" for k in keys) + "<th>UA</th><th>WA</th></tr>"
            )
            for variant, table in per_variant:
                for row in table["rows"]:
                    labels = "".join(f"<td>{escape(DASH if row.get(k) is None else str(row[k]))}</td>" for k in keys)
                    scores = _cell(_score(row, "ua")) + _cell(_score(row, "wa"))
                    out.append(f"<tr><td>{escape(variant)}</td>{labels}{scores}</tr>")
        out.append("</table>")
    return out


def _study(card: dict[str, Any]) -> list[str]:
    """The study's tables (``card["study"]``, :mod:`ser_lightning.experiment.study`), as the paper lays them out."""
    study = card.get("study")
    if not study:
        return []
    metric, unit = study["metric"], study_unit(study["metric"])[1]
    fmt = lambda stat: format_stat(stat, metric)  # noqa: E731

    out = ["<h2>Study: Triantafyllopoulos et al. 2019, Tables 2-5 layout</h2>"]
    if study.get("corpus_note"):
        out.append(f"<p class='bad'>Corpus {escape(str(study['corpus']))}: {escape(study['corpus_note'])}.</p>")
    if study.get("clean"):
        out.append(f"<p>Clean (<code>{escape(study['clean']['variant'])}</code>): {fmt(study['clean'])} ({unit})</p>")
    for condition, table in study["conditions"].items():
        out.append(f"<h3>{escape(condition)} ({escape(unit)}, mean ± std over folds)</h3><table>")
        out.append("<tr><th>SNR (dB)</th>" + "".join(f"<th>{escape(c)}</th>" for c in table["columns"]) + "</tr>")
        for row in table["rows"]:
            snr = row["snr_db"] if isinstance(row["snr_db"], str) else f"{row['snr_db']:g}"
            out.append(f"<tr><td>{escape(snr)}</td>" + "".join(_cell(fmt(row[c])) for c in table["columns"]) + "</tr>")
        out.append("</table>")
    out.append(f"<p class='muted'>{escape(study['statistics'])}</p>")
    return out


def _cells(card: dict[str, Any]) -> list[str]:
    out = []
    if card["cells_failed"]:
        out += [f"<h2 class='bad'>Failed cells ({len(card['cells_failed'])})</h2>", "<ul>"]
        out += [
            f"<li><code>{escape(f['cell'])}</code>: log <code>{escape(f['log'])}</code></li>"
            for f in card["cells_failed"]
        ]
        out.append("</ul>")
    if card["cells_pending"]:
        out += [f"<h2>Pending cells ({len(card['cells_pending'])})</h2>", "<p>"]
        out.append(", ".join(f"<code>{escape(c)}</code>" for c in card["cells_pending"]) + "</p>")
    return out


def _figures(directory: Path, names: list[str]) -> list[str]:
    if not names:
        return []
    out = ["<h2>Figures</h2>"]
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        out.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(name)}">'
            f"<figcaption>{escape(name)}</figcaption></figure>"
        )
    return out


def _per_speaker(card: dict[str, Any]) -> list[str]:
    rows = [(v, card["per_variant"].get(v, {}).get("per_speaker_ua")) for v in card["variants"]]
    rows = [(v, s) for v, s in rows if s]
    if not rows:
        return []
    speakers = sorted({k for _, s in rows for k in s})
    notes = {card["per_variant"].get(v, {}).get("per_speaker_note") or "mean over seeds" for v, _ in rows}
    out = [f"<h2>UA per test speaker</h2><p class='muted'>{escape('; '.join(sorted(notes)))}</p>"]
    out.append("<table><tr><th>variant</th>")
    out.append("".join(f"<th>{escape(s)}</th>" for s in speakers) + "</tr>")
    for variant, per in rows:
        out.append(f"<tr><td>{escape(variant)}</td>" + "".join(_cell(_num(per.get(s), 3)) for s in speakers) + "</tr>")
    out.append("</table>")
    return out


def _stamp(card: dict[str, Any]) -> list[str]:
    out = ["<h2>Protocol stamp</h2>", '<dl class="stamp">']
    for key, value in card["stamp"].items():
        if value is None or key.endswith("_note"):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        note = card["stamp"].get(f"{key}_note")
        extra = f' <span class="muted">({escape(note)})</span>' if note else ""
        out.append(f"<dt>{escape(key)}</dt><dd><code>{escape(text)}</code>{extra}</dd>")
    out.append("</dl>")
    out.append("<p class='muted'>Statistics: " + escape("; ".join(f"{k}: {v}" for k, v in card["statistics"].items())))
    out.append(".</p>")
    return out


def render_html(card: dict[str, Any], directory: str | Path) -> str:
    """The card as a self-contained HTML page.

    Args:
        card: the card (``card.json``), with ``plots`` the PNG names in ``directory``.
        directory: the experiment folder (where the PNGs are).

    Returns:
        The page.
    """
    directory = Path(directory)
    title = f"Experiment {card['experiment']}"
    failed = len(card["cells_failed"])
    status = f"<span class='{'bad' if failed else 'ok'}'>{failed} failed</span>"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if card.get("description"):
        parts.append(f"<p>{escape(card['description'])}</p>")
    stamp = card["stamp"]
    parts.append(
        f"<p>{card['cells_done']}/{card['cells_total']} cells finished, {status}, {len(card['cells_pending'])} "
        f"pending; baseline <code>{escape(str(card['baseline']))}</code>; corpus "
        f"<code>{escape(str(stamp.get('corpus')))}</code>, protocol <code>{escape(str(stamp.get('protocol')))}</code>"
        f", folds {escape(json.dumps(stamp.get('folds')))}, seeds {escape(json.dumps(stamp.get('seeds')))}.</p>"
    )
    parts += ["<h2>Results per variant</h2>", f"<p class='muted'>std: {escape(card['statistics']['std'])}; "]
    parts.append(f"95 % interval: {escape(card['statistics']['ci95'])}; n: finished cells.</p>")
    parts += _variant_table(card)
    parts += _pooled(card)
    parts += _comparisons(card)
    parts += _study(card)
    parts += _robustness(card)
    parts += _per_speaker(card)
    parts += _cells(card)
    parts += _figures(directory, card.get("plots") or [])
    parts += _stamp(card)
    parts.append(f"<p class='muted'>Written by ser_lightning {escape(str(stamp.get('package_version')))} collect; "
                 f"the same numbers are in card.json.</p></body></html>")  # fmt: skip
    return "\n".join(parts) + "\n"


def write_html(directory: str | Path, card: dict[str, Any]) -> Path:
    """Writes ``card.html`` into the experiment folder.

    Args:
        directory: the experiment folder.
        card: the card.

    Returns:
        The path written.
    """
    path = Path(directory) / "card.html"
    path.write_text(render_html(card, directory), encoding="utf-8")
    return path
