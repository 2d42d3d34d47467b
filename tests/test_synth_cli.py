"""Tests of the synthetic corpus generator's command line (``python -m ser_lightning.synth``) and package exports."""

from __future__ import annotations

import importlib
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

#: Names other packages import from ``ser_lightning.synth``, with the module that defines them.
PUBLIC_NAMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("design", ("ALL_EMOTIONS", "DEFAULT_EMOTIONS", "EMOTIONS", "SIZES", "VOICE_SETS", "CorpusSize", "VoiceSet")),
    ("design", ("EmotionProfile", "Speaker", "emotions_key", "get_voice_set", "resolve_emotions")),
    ("espeak", ("NATIVE_SAMPLE_RATE", "ESpeakSynthesizer", "SynthesisError", "espeak_version")),
    ("plan", ("GENERATOR_VERSION", "MANIFEST_COLUMNS", "SAMPLE_RATE", "CorpusGenerationError")),
    ("plan", ("UtterancePlan", "plan_corpus")),
    ("render", ("generate_corpus",)),
    ("cache", ("corpus_dir_name", "ensure_corpus", "read_manifest", "verify_corpus")),
)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "ser_lightning.synth", *args], capture_output=True, text=True, env=env, check=False
    )


def test_package_exports_its_names_eagerly() -> None:
    for module_name, names in PUBLIC_NAMES:
        module = importlib.import_module(f"ser_lightning.synth.{module_name}")
        for name in names:
            assert name in synth.__all__, name
            assert vars(synth)[name] is getattr(module, name), name  # bound at import, no module __getattr__
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
