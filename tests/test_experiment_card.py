"""The HTML card and its figures, on hand-written cells (no training)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ser_lightning.experiment import collect

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
SNRS = (0.0, 10.0)
NOISES = ("babble", "traffic")


def noise_table(ua: float, drop: dict[str, float]) -> dict:
    rows = [{"noise": "clean", "snr_db": None, "stamp": None, "ua": ua, "wa": ua, "f1": ua}]
    for noise in NOISES:
        for snr in SNRS:
            value = ua - drop[noise] * (20.0 - snr) / 20.0
            rows.append({"noise": noise, "snr_db": snr, "stamp": "mismatched", "ua": value, "wa": value, "f1": value})
    for snr in SNRS:
        value = float(np.mean([r["ua"] for r in rows if r["snr_db"] == snr]))
        rows.append({"noise": "mean", "snr_db": snr, "stamp": "mismatched", "ua": value, "wa": value, "f1": value})
    return {"rows": rows, "clean_ua": ua, "snr_db": list(SNRS), "categories": list(NOISES)}


def write_cell(root: Path, variant: str, fold: int, seed: int, ua: float, rng: np.random.Generator) -> dict:
    cell = root / variant / f"fold{fold}-seed{seed}"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"state": "done", "returncode": 0, "seconds": 2.0}))
    drop = {n: float(rng.uniform(0.05, 0.3)) for n in NOISES}
    fgsm, bim = ua - float(rng.uniform(0.1, 0.2)), ua - float(rng.uniform(0.2, 0.3))
    results = {
        "test_ua": ua,
        "test_wa": ua + 0.01,
        "test_f1": ua - 0.01,
        "confusion_matrix": [[3, 1, 0], [1, 2, 1], [0, 1, 3]],
        "corpus": "fake",
        "class_names": ["angry", "happy", "sad"],
        "protocol": "loso",
        "protocol_folds": 3,
        "speaker_independent": True,
        "test_speakers": [f"spk{fold}"],
        "augmentation": None,
        "noise_robustness": noise_table(ua, drop),
        "adversarial_robustness": {
            "rows": [
                {"attack": "none", "ua": ua, "wa": ua, "f1": ua},
                {"attack": "fgsm", "ua": fgsm, "wa": fgsm, "f1": fgsm},
                {"attack": "bim", "ua": bim, "wa": bim, "f1": bim},
            ],
            "clean_ua": ua,
        },
        "cross_corpus": {"emodb": {"ua": ua - 0.15, "wa": ua - 0.1, "f1": ua - 0.2, "num_utterances": 10}},
    }
    (cell / "results.json").write_text(json.dumps(results))
    return results


@pytest.fixture
def experiment(tmp_path: Path) -> tuple[Path, dict, dict]:
    root = tmp_path / "exp"
    rng = np.random.default_rng(3)
    written: dict[str, list[dict]] = {"baseline": [], "mixup": []}
    for fold in range(3):
        for seed in range(2):
            ua = float(rng.uniform(0.4, 0.6))
            written["baseline"].append(write_cell(root, "baseline", fold, seed, ua, rng))
            written["mixup"].append(write_cell(root, "mixup", fold, seed, ua + float(rng.uniform(0, 0.05)), rng))
    broken = root / "broken" / "fold0-seed0"
    broken.mkdir(parents=True)
    (broken / "cell.json").write_text(json.dumps({"state": "failed", "returncode": 2}))
    card = collect(root, variants=["baseline", "mixup", "broken"])
    return root, card, written


def test_html_card_is_self_contained_and_has_the_numbers(experiment: tuple[Path, dict, dict]) -> None:
    root, card, _ = experiment
    html = (root / "card.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    for variant in card["variants"]:
        assert f">{variant}<" in html
    for variant in ("baseline", "mixup"):
        for metric in card["metrics"]:
            stat = card["per_variant"][variant][metric]
            assert f"{stat['mean']:.4f} ± {stat['std']:.4f}" in html
            assert f"[{stat['ci95']['low']:.4f}, {stat['ci95']['high']:.4f}]" in html
    test = card["comparisons"]["mixup"]["test_ua"]
    assert "Wilcoxon signed-rank" in html and "paired t-test" in html
    assert f"p = {test['wilcoxon']['pvalue']:.4g}" in html and f"p = {test['ttest_rel']['pvalue']:.4g}" in html
    assert f"{test['mean_difference']:+.4f}" in html
    assert "Failed cells (2)" not in html and "Failed cells (1)" in html and "broken/fold0-seed0" in html
    assert "Protocol stamp" in html and "loso" in html and card["stamp"]["package_version"] in html

    # Every figure is a PNG in the folder and embedded, byte for byte, as a data URI.
    expected = {f"card_{m}.png" for m in card["metrics"]} | {
        "card_confusion_baseline.png",
        "card_confusion_mixup.png",
        "card_noise_robustness.png",
        "card_adversarial_robustness.png",
        "card_cross_corpus.png",
    }
    assert set(card["plots"]) == expected and "plots_error" not in card
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == len(expected)
    for name in card["plots"]:
        data = (root / name).read_bytes()
        assert data.startswith(b"\x89PNG") and base64.b64encode(data).decode() in embedded
    assert json.loads((root / "card.json").read_text())["plots"] == card["plots"]


def test_robustness_aggregation_equals_hand_computation(experiment: tuple[Path, dict, dict]) -> None:
    _, card, written = experiment
    for variant, cells in written.items():
        robustness = card["per_variant"][variant]["robustness"]
        noise = robustness["noise_robustness"]
        assert noise["cells"] == 6
        for noise_name in (*NOISES, "mean"):
            for snr in SNRS:
                values = [
                    next(
                        r["ua"] for r in c["noise_robustness"]["rows"] if (r["noise"], r["snr_db"]) == (noise_name, snr)
                    )
                    for c in cells
                ]
                row = next(r for r in noise["rows"] if r["noise"] == noise_name and r["snr_db"] == snr)
                assert row["ua"]["n"] == 6
                assert row["ua"]["mean"] == pytest.approx(np.mean(values))
                assert row["ua"]["std"] == pytest.approx(np.std(values, ddof=1))
        clean = next(r for r in noise["rows"] if r["noise"] == "clean")
        assert clean["snr_db"] is None and clean["ua"]["mean"] == pytest.approx(np.mean([c["test_ua"] for c in cells]))
        adversarial = {r["attack"]: r for r in robustness["adversarial_robustness"]["rows"]}
        for attack in ("none", "fgsm", "bim"):
            rows = [c["adversarial_robustness"]["rows"] for c in cells]
            values = [next(r["ua"] for r in table if r["attack"] == attack) for table in rows]
            assert adversarial[attack]["ua"]["mean"] == pytest.approx(np.mean(values))
            assert adversarial[attack]["ua"]["std"] == pytest.approx(np.std(values, ddof=1))
        cross = robustness["cross_corpus"]["corpora"]["emodb"]
        values = [c["cross_corpus"]["emodb"]["ua"] for c in cells]
        assert cross["ua"]["mean"] == pytest.approx(np.mean(values))
        assert cross["ua"]["std"] == pytest.approx(np.std(values, ddof=1))
        assert "adversarial_robustness_waveform" not in robustness
    assert "robustness" not in card["per_variant"]["broken"]


def test_card_without_robustness_or_intervals(tmp_path: Path) -> None:
    root = tmp_path / "exp"
    rng = np.random.default_rng(0)
    for variant in ("a", "b"):
        results = write_cell(root, variant, 0, 0, 0.5, rng)
        for key in ("noise_robustness", "adversarial_robustness", "cross_corpus"):
            results.pop(key)
        (root / variant / "fold0-seed0" / "results.json").write_text(json.dumps(results))
    card = collect(root)
    assert "robustness" not in card["per_variant"]["a"]
    assert set(card["plots"]) == {
        "card_test_ua.png",
        "card_test_wa.png",
        "card_test_f1.png",
        "card_confusion_a.png",
        "card_confusion_b.png",
    }
    html = (root / "card.html").read_text()
    assert "skipped: 1 pair(s)" in html and "Robustness" not in html


def _not_blank(png: Path) -> bool:
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    return float(pixels.min()) < 0.9 and float(np.std(pixels)) > 0.01


def test_card_renders_in_headless_chromium(experiment: tuple[Path, dict, dict], tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(f"Chromium is not installed (Debian/Ubuntu: `{CHROMIUM_INSTALL}`)")
    root, _, _ = experiment
    screenshot = tmp_path / "card_screenshot.png"
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={screenshot}",
        "--window-size=1280,2000",
        (root / "card.html").as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    (tmp_path / "chromium.log").write_text(done.stdout + done.stderr)
    assert screenshot.is_file(), done.stderr[-3000:]
    assert screenshot.stat().st_size > 10_000 and _not_blank(screenshot)
    console = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert not console, console
