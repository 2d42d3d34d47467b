"""Tests of the synthetic corpus generator's command line (``python -m ser_lightning.synth``) and package exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ser_lightning.synth as synth
from ser_lightning.synth import __main__ as cli
from ser_lightning.synth import verify_corpus

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Names other packages import from ``ser_lightning.synth``.
PUBLIC_NAMES = (
    "ALL_EMOTIONS",
    "DEFAULT_EMOTIONS",
    "EMOTIONS",
    "GENERATOR_VERSION",
    "MANIFEST_COLUMNS",
    "NATIVE_SAMPLE_RATE",
    "SAMPLE_RATE",
    "SIZES",
    "VOICE_SETS",
    "CorpusGenerationError",
    "CorpusSize",
    "ESpeakSynthesizer",
    "EmotionProfile",
    "Speaker",
    "SynthesisError",
    "UtterancePlan",
    "VoiceSet",
    "corpus_dir_name",
    "emotions_key",
    "ensure_corpus",
    "espeak_version",
    "generate_corpus",
    "get_voice_set",
    "plan_corpus",
    "read_manifest",
    "resolve_emotions",
    "verify_corpus",
)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "ser_lightning.synth", *args], capture_output=True, text=True, env=env, check=False
    )


def test_package_exports_its_names_eagerly() -> None:
    assert set(PUBLIC_NAMES) <= set(synth.__all__)
    assert all(name in vars(synth) for name in PUBLIC_NAMES)  # bound at import, no module __getattr__
    assert not hasattr(synth, "__getattr__")
    assert not hasattr(synth, "default_cache_dir")


def test_help_exits_zero() -> None:
    proc = _run("--help")
    assert proc.returncode == 0, proc.stderr
    assert "python -m ser_lightning.synth" in proc.stdout
    for option in ("--out", "--size", "--seed", "--voice-set", "--emotions", "--workers"):
        assert option in proc.stdout
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0


def test_unknown_emotion_and_missing_out_fail(tmp_path: Path) -> None:
    assert _run("--size", "tiny").returncode == 2  # --out is required
    proc = _run("--out", str(tmp_path / "x"), "--size", "tiny", "--emotions", "neutral,joy")
    assert proc.returncode != 0 and "joy" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_tiny_generation_with_an_emotion_subset(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    proc = _run("--out", str(out), "--size", "tiny", "--seed", "5", "--emotions", "neutral,angry", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "corpus.json").read_text())
    assert info["emotions"] == ["neutral", "angry"] and info["seed"] == 5
    assert info["counts"]["utterances"] == 8 * 2 * 3
    assert verify_corpus(out, mode="full", expected={"size": "tiny", "seed": 5}) == []
    # the output folder must be empty
    again = _run("--out", str(out), "--size", "tiny", "--seed", "5", "--emotions", "neutral,angry")
    assert again.returncode != 0 and "not empty" in again.stderr
