"""The study's conditions (Triantafyllopoulos et al. 2019, §4) end to end: training audio from derived corpora
(noisy / enhanced, fixed or mixed SNR), test-time enhancement in the noise callback, and the SVM behind an
enhancement stage."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score

from ser_lightning.audio import read_audio
from ser_lightning.augment import ProceduralNoiseBank
from ser_lightning.callbacks import NoiseRobustness
from ser_lightning.callbacks.noise import _read_training_noise, noise_stamp
from ser_lightning.cli import main
from ser_lightning.data import SyntheticDataModule
from ser_lightning.data.derived import DerivedAudio
from ser_lightning.models import CNN, OpenSmileSVM
from ser_lightning.models.derive import DerivedCorpus
from ser_lightning.models.frontends_enhancement import EnhancedFrontEnd, enhance_waveforms, load_enhancer
from ser_lightning.synth.render import sha256_file

from .conftest import CONFIGS, REPO
from .test_enhancement import _enhancer_checkpoint
from .test_models_svm import results_of, svm_args

pytest.importorskip("opensmile")


def _snr(clean: np.ndarray, mixture: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(clean.astype(float) ** 2) / np.mean((mixture - clean).astype(float) ** 2)))


def _data(tiny_corpus: Path, derived: DerivedAudio | None = None) -> SyntheticDataModule:
    return SyntheticDataModule(root=str(tiny_corpus.parent), size="tiny", derived=derived, cache_manifest=False)


# --- derived training audio ---------------------------------------------------------------------------------


def test_derived_splits_read_the_mixtures_and_the_test_split_stays_clean(tiny_corpus: Path, tmp_path: Path) -> None:
    plain = _data(tiny_corpus)
    plain.setup("fit")
    derived = DerivedCorpus(snr_db=5, categories=["pink"], cache_dir=str(tmp_path))
    data = _data(tiny_corpus, derived)
    data.setup("fit")
    folder = derived.folder
    assert folder is not None and folder.name.startswith("synthetic-noisy-snr5-")
    for name in ("train", "val", "test"):
        before, after = plain.split.parts()[name], data.split.parts()[name]
        assert [r.utt_id for r in before] == [r.utt_id for r in after]  # the split is the source corpus'
        assert [r.speaker for r in before] == [r.speaker for r in after]
        if name == "test":
            assert [r.path for r in after] == [r.path for r in before]  # clean, for the test-time callbacks
        else:
            assert all(Path(r.path).parent == folder / "audio" for r in after)
    source = plain.split.train[0]
    mixture = read_audio(data.split.train[0].path, 16000)
    assert abs(_snr(read_audio(source.path, 16000), mixture) - 5.0) < 1e-3
    assert data.datasets["train"].records[0].path == data.split.train[0].path  # the loaders read the mixtures
    stamp = data.describe()["derived"]
    assert stamp["snr_db"] == 5.0 and stamp["output"] == "noisy" and stamp["part"] == "train"
    assert stamp["folder"] == str(folder) and stamp["categories"] == ["pink"] and stamp["splits"] == ["train", "val"]
    assert data.hparams["derived"]["snr_db"] == 5.0 and data.split.stamp["derived_splits"] == ["train", "val"]
    # The training noise is the derivation's: the held-out eval part of the same noise is matched-category.
    sources = _read_training_noise(SimpleNamespace(datamodule=data))
    assert [(s.source, s.categories, s.part) for s in sources] == [("DerivedCorpus", ["pink"], "train")]
    eval_bank = ProceduralNoiseBank().with_part("eval")
    assert noise_stamp("pink", eval_bank, sources) == "matched-category"
    assert noise_stamp("white", eval_bank, sources) == "mismatched"


def test_mixed_snr_derivation_draws_each_utterance_in_the_range(tiny_corpus: Path, tmp_path: Path) -> None:
    derived = DerivedCorpus(snr_db=[-5, 20], cache_dir=str(tmp_path))
    paths = derived.paths(_data(tiny_corpus))
    assert derived.folder is not None and "-snr-5to20-" in derived.folder.name
    rows = list(csv.DictReader((derived.folder / "manifest.csv").read_text().splitlines()))
    levels = [float(r["snr_db"]) for r in rows]
    assert len(rows) == len(paths) == 96 and all(-5.0 <= s <= 20.0 for s in levels)
    assert len(set(levels)) > 50 and np.std(levels) > 4  # one draw per utterance, spread over the range
    row = rows[7]
    achieved = _snr(read_audio(row["source_path"], 16000), read_audio(derived.folder / row["path"], 16000))
    assert abs(achieved - float(row["snr_db"])) < 1e-2
    again = DerivedCorpus(snr_db=(-5.0, 20.0), cache_dir=str(tmp_path))
    assert again.paths(_data(tiny_corpus)) == paths  # cached: the same folder, nothing rewritten
    assert len(list((tmp_path / "derived").iterdir())) == 2  # the folder and its lock, no temporary folder


class _Partial(DerivedAudio):
    """Derived audio for every utterance but one (as when a mixture failed)."""

    def __init__(self, missing: str) -> None:
        self.missing = missing

    def paths(self, data: Any) -> dict[str, str]:
        return {r.utt_id: r.path for r in data.records() if r.utt_id != self.missing}

    def describe(self) -> dict[str, Any]:
        return {"class": "partial"}


def test_an_utterance_without_derived_audio_is_a_counted_skip(tiny_corpus: Path) -> None:
    plain = _data(tiny_corpus)
    plain.setup("fit")
    missing = plain.split.train[3]
    data = _data(tiny_corpus, _Partial(missing.utt_id))
    data.setup("fit")
    assert len(data.split.train) == len(plain.split.train) - 1
    assert missing.utt_id not in {r.utt_id for r in data.split.train}
    skipped = data.describe()["skipped"]
    assert skipped["count"] == 1 and skipped["files"][0]["path"] == missing.path
    assert skipped["files"][0]["kind"] == "derive" and data.describe()["skipped_by_kind"] == {"derive": 1}


def test_bad_derivations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="low <= high"):
        DerivedCorpus(snr_db=[20, -5])
    with pytest.raises(ValueError, match="one SNR or a \\[low, high\\]"):
        DerivedCorpus(snr_db=[0, 5, 10])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs `enhancer`"):
        DerivedCorpus(snr_db=0, output="enhanced")
    with pytest.raises(ValueError, match="output='noisy'"):
        DerivedCorpus(snr_db=0, enhancer=str(tmp_path / "x.ckpt"))
    with pytest.raises(FileNotFoundError, match="enhancement_cpu.yaml"):
        DerivedCorpus(snr_db=0, output="enhanced", enhancer=str(tmp_path / "missing.ckpt"))
    with pytest.raises(ValueError, match="derived splits"):
        DerivedCorpus(snr_db=0, splits=("train", "bogus"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="derived must be a DerivedAudio"):
        SyntheticDataModule(size="tiny", derived="noisy")  # type: ignore[arg-type]


def test_concurrent_derivations_share_one_folder(tiny_corpus: Path, tmp_path: Path) -> None:
    """Two processes deriving the same corpus at once (two cells of an experiment): one writes, both read it."""
    script = (
        "import sys; from ser_lightning.data import SyntheticDataModule; "
        "from ser_lightning.models.derive import derive_corpus; "
        f"data = SyntheticDataModule(root={str(tiny_corpus.parent)!r}, size='tiny', cache_manifest=False); "
        f"print(derive_corpus(data, 0.0, categories=['white'], cache_dir={str(tmp_path)!r}))"
    )
    env = {"PYTHONPATH": str(REPO), "SER_LIGHTNING_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    manifests = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(manifests) == 1
    folders = sorted(p.name for p in (tmp_path / "derived").iterdir())
    assert len(folders) == 2 and folders[1] == folders[0] + ".lock"  # no temporary folder left behind
    assert len(list(csv.DictReader(Path(manifests.pop()).read_text().splitlines()))) == 96


# --- test-time enhancement ----------------------------------------------------------------------------------


def test_enhanced_callback_refuses_double_enhancement_and_another_rate(tmp_path: Path) -> None:
    ckpt = _enhancer_checkpoint(tmp_path / "enhancer.ckpt")
    callback = NoiseRobustness(snr_db=[0], enhancer=str(ckpt))
    assert callback.name == "noise_robustness_enhanced" and callback.key("ua", "noise_snr0db") == (
        "test_ua_enhanced_noise_snr0db")  # fmt: skip
    assert NoiseRobustness(snr_db=[0]).name == "noise_robustness"  # the class attribute is untouched
    with pytest.raises(ValueError, match="enhanced twice"):
        callback.check_enhancement(CNN(num_classes=4, enhancer=str(ckpt)), 16000)
    with pytest.raises(ValueError, match="works at 16000 Hz, the model at 8000 Hz"):
        callback.check_enhancement(CNN(num_classes=4), 8000)
    with pytest.raises(FileNotFoundError, match="enhancer checkpoint"):
        NoiseRobustness(enhancer=str(tmp_path / "missing.ckpt"))


def _configs(tmp: Path, ckpt: Path, derived_output: str) -> list[str]:
    """The study's shipped derived-audio and evaluation configs, pointed at a test enhancer, small."""
    derived = yaml.safe_load((CONFIGS / "derived" / f"{derived_output}.yaml").read_text())
    init = derived["data"]["init_args"]["derived"]["init_args"]
    init.update(categories=["pink"], cache_dir=str(tmp / "derived_cache"))
    if derived_output == "enhanced":
        init["enhancer"] = str(ckpt)
    evaluation = yaml.safe_load((CONFIGS / "evaluation" / "study_noise_both.yaml").read_text())
    for callback in evaluation["evaluation"]:
        callback["init_args"].update(snr_db=[0], categories=["pink"])
        if callback["init_args"].get("enhancer"):
            callback["init_args"]["enhancer"] = str(ckpt)
    (tmp / "derived.yaml").write_text(yaml.safe_dump(derived))
    (tmp / "evaluation.yaml").write_text(yaml.safe_dump(evaluation))
    return ["--config", str(tmp / "derived.yaml"), "--config", str(tmp / "evaluation.yaml")]


@pytest.fixture(scope="module")
def enhanced_svm_cell(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Any]:
    """An eGeMAPS SVM cell trained on the derived enhanced corpus at 0 dB, tested noisy and enhanced at 0 dB."""
    tmp = tmp_path_factory.mktemp("enhanced_cell")
    ckpt = _enhancer_checkpoint(tmp / "enhancer.ckpt")
    args = svm_args(tmp / "runs", tiny_corpus.parent, "--model.init_args.c_grid", "[1.0, 10.0]",
                    "--model.init_args.gamma_scales", "[1.0]", *_configs(tmp, ckpt, "enhanced"),
                    "--data.init_args.derived.init_args.snr_db", "0")  # fmt: skip
    main(["fit", *args])
    run, results = results_of(tmp / "runs")
    return {"run": run, "results": results, "ckpt": ckpt, "tmp": tmp}


def test_svm_cell_trains_on_the_enhanced_corpus_and_writes_both_tables(enhanced_svm_cell: dict) -> None:
    results, run, ckpt = enhanced_svm_cell["results"], enhanced_svm_cell["run"], enhanced_svm_cell["ckpt"]
    derived = results["derived"]
    assert derived["output"] == "enhanced" and derived["snr_db"] == 0.0 and derived["enhancer"] == str(ckpt)
    folder = Path(derived["folder"])
    assert json.loads((folder / "derivation.json").read_text())["enhancer"]["sha256"] == sha256_file(ckpt)
    sizes = results["sizes"]
    assert results["feature_cache"]["fit"]["extracted"] + results["feature_cache"]["fit"]["cached"] == (
        sizes["train"] + sizes["val"])  # fmt: skip
    noisy, enhanced = results["noise_robustness"], results["noise_robustness_enhanced"]
    assert noisy["enhancer"] is None and enhanced["enhancer"]["sha256"] == sha256_file(ckpt)
    assert "enhanced by" in enhanced["condition"] and "noisy test inputs only" in noisy["condition"]
    for table in (noisy, enhanced):
        assert table["snr_db"] == [0.0] and table["categories"] == ["pink"] and table["part"] == "eval"
        assert table["stamps"] == {"pink": "matched-category"}  # trained on pink from the train part
    for name in ("noise_robustness_enhanced.csv", "noise_robustness_enhanced.json", "noise_robustness_enhanced.png",
                 "noise_robustness.csv"):  # fmt: skip
        assert (run / name).is_file(), name
    metrics = {row["noise"]: row for row in enhanced["rows"]}
    assert 0.0 <= metrics["mean"]["ua"] <= 1.0 and metrics["mean"]["ua"] == pytest.approx(metrics["pink"]["ua"])


def test_enhanced_table_is_the_model_on_enhanced_noisy_audio(enhanced_svm_cell: dict, tiny_corpus: Path) -> None:
    """Recomputed outside the callback: the fitted SVM on (held-out noise at 0 dB, then the enhancer)."""
    results, run, ckpt = enhanced_svm_cell["results"], enhanced_svm_cell["run"], enhanced_svm_cell["ckpt"]
    model = OpenSmileSVM.load_from_checkpoint(next((run / "checkpoints").glob("best-*.ckpt"))).eval()
    callback = NoiseRobustness(snr_db=[0], categories=["pink"], part="eval")
    enhancer, _ = load_enhancer(ckpt)
    data = _data(tiny_corpus)
    data.setup("test")
    loader = data.test_dataloader()
    scores: dict[str, list[int]] = {"noisy": [], "enhanced": [], "labels": []}
    with torch.no_grad():
        for batch in loader:
            noisy = callback.noisy_versions(batch["waveform"], batch["length"], batch["utt_id"], "pink", 16000)[0][0.0]
            scores["noisy"] += model(noisy, batch["length"]).argmax(1).tolist()
            enhanced = enhance_waveforms(enhancer, noisy, batch["length"])
            scores["enhanced"] += model(enhanced, batch["length"]).argmax(1).tolist()
            scores["labels"] += batch["label"].tolist()
    for side, table in (("noisy", "noise_robustness"), ("enhanced", "noise_robustness_enhanced")):
        row = next(r for r in results[table]["rows"] if r["noise"] == "pink")
        assert row["ua"] == pytest.approx(balanced_accuracy_score(scores["labels"], scores[side]), abs=1e-6), side


def test_svm_behind_an_enhancer_stage_extracts_after_enhancement(tmp_path: Path, tiny_corpus: Path) -> None:
    """With ``enhancer`` on the SVM, the loader workers must not extract from the un-enhanced audio."""
    ckpt = _enhancer_checkpoint(tmp_path / "enhancer.ckpt")
    args = svm_args(tmp_path / "runs", tiny_corpus.parent, "--model.init_args.c_grid", "[1.0]",
                    "--model.init_args.gamma_scales", "[1.0]", "--model.init_args.enhancer", str(ckpt))  # fmt: skip
    cli = main(["fit", *args])
    _, results = results_of(tmp_path / "runs")
    sizes = results["sizes"]
    model = cli.model
    assert isinstance(model.frontend, EnhancedFrontEnd)
    assert cli.datamodule.item_features is None and cli.datamodule.keep_all_training
    # Every training and validation item extracted in the main process after the enhancer (none dropped).
    assert results["feature_cache"]["fit"] == {"cached": 0, "extracted": sizes["train"] + sizes["val"]}
    record = cli.datamodule.split.test[0]
    audio = torch.from_numpy(read_audio(record.path, 16000))[None]
    lengths = torch.tensor([audio.shape[1]])
    expected = model.frontend.inner.extractor.extract(enhance_waveforms(model.frontend.enhancer, audio, lengths)[0]
                                                      .numpy(), 16000)  # fmt: skip
    np.testing.assert_allclose(model.frontend(audio, lengths)[0].numpy(), expected, rtol=1e-5, atol=1e-5)
    plain = model.frontend.inner(audio, lengths)[0].numpy()
    assert not np.allclose(plain, expected)  # the stage changed the features
