"""RECOLA's AVEC 2016 partition (protocol ``official``) and Trigeorgis et al.'s (2016) post-processing chain."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from ser_lightning.data.recola import RECOLADataModule
from ser_lightning.data.splits import make_split, num_folds
from ser_lightning.errors import ProtocolError
from ser_lightning.models.end_to_end import EndToEndRegressor
from ser_lightning.models.postprocess import PostProcessing, delay, fit_postprocessing, pooled_ccc

from .test_recola import REPLICA, copy_replica


def with_test_ratings(tmp_path: Path) -> Path:
    """The replica plus gold-standard ratings for its test recording (as the full AVEC 2016 release has them)."""
    root = copy_replica(tmp_path)
    spec = importlib.util.spec_from_file_location("recola_replica", REPLICA / "data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    arousal, valence = generator.ratings(7, 7)  # test_1 is 0.25 s: frames 0.00 ... 0.24 s
    for name, values in (("arousal", arousal), ("valence", valence)):
        generator.write_arff(root / "ratings_gold_standard" / name / "test_1.arff", "test_1", values, name.upper())
    return root


# ------------------------------------------------------------------------------------ AVEC partition
def test_official_protocol_is_the_avec_partition(tmp_path: Path) -> None:
    module = RECOLADataModule(root=str(with_test_ratings(tmp_path)), protocol="official", cache_manifest=False)
    module.setup("fit")
    parts = {name: sorted(r.utt_id for r in part) for name, part in module.split.parts().items()}
    assert parts == {"train": ["train_1", "train_2"], "val": ["dev_1", "dev_2"], "test": ["test_1"]}
    stamp = module.describe()
    assert stamp["protocol"] == "official" and stamp["partition"] == "official" and stamp["protocol_folds"] == 1
    assert stamp["speaker_independent"] is True and stamp["test_speakers"] == ["test_1"]
    assert num_folds(module.records(), "official") == 1
    with pytest.raises(ProtocolError, match="fold 1 is out of range"):
        make_split(module.records(), protocol="official", fold=1)


def test_official_protocol_without_test_ratings_says_why(tmp_path: Path) -> None:
    # The public release (and the replica) has no test ratings: the test part would be empty.
    module = RECOLADataModule(root=str(copy_replica(tmp_path)), protocol="official", cache_manifest=False)
    with pytest.raises(ProtocolError, match=r"leaves test empty.*test ratings|test_<n>.arff.*public release"):
        module.setup("fit")


def test_official_protocol_needs_a_partition_on_every_record() -> None:
    from ser_lightning.data.manifest import Utterance

    records = [Utterance(f"/a/{i}.wav", "x", f"s{i}", utt_id=f"u{i}", extra={"partition": p})
               for i, p in enumerate(["train", "devel", "test"])]  # fmt: skip
    split = make_split(records, protocol="official")
    assert [r.utt_id for r in split.val] == ["u1"]
    with pytest.raises(ProtocolError, match="no official partition"):
        make_split([*records, Utterance("/a/x.wav", "x", "s9", utt_id="u9")], protocol="official")


# ---------------------------------------------------------------------------------- post-processing
def smooth_signal(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A slowly varying arousal-like curve."""
    steps = rng.standard_normal(frames)
    kernel = np.hanning(51) / np.hanning(51).sum()
    return np.convolve(steps, kernel, mode="same") * 3.0


def test_a_known_delay_is_recovered() -> None:
    rng = np.random.default_rng(0)
    preds = [smooth_signal(rng, 600) for _ in range(3)]
    gold = [delay(p, 12) for p in preds]  # the annotators lag the audio by 12 frames (0.48 s)
    chain = fit_postprocessing(preds, gold, steps=["shift"], max_shift_frames=30)
    assert chain.shift_frames == 12
    assert chain.dev_ccc["shift"] == pytest.approx(1.0, abs=1e-6) and chain.dev_ccc["raw"] < 0.99
    assert delay(np.arange(5.0), 2).tolist() == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_median_centring_scaling_raise_the_ccc_of_noisy_smooth_predictions() -> None:
    rng = np.random.default_rng(1)
    gold = [smooth_signal(rng, 800) for _ in range(4)]
    # Predictions: half the amplitude, offset, with frame-level noise; the same model on other recordings (test).
    noisy = lambda g: 0.5 * g - 0.4 + 0.3 * rng.standard_normal(g.size)  # noqa: E731
    dev_preds, test_gold = [noisy(g) for g in gold], [smooth_signal(rng, 800) for _ in range(4)]
    test_preds = [noisy(g) for g in test_gold]
    chain = fit_postprocessing(dev_preds, gold, steps=["median", "centre", "scale"])
    assert chain.median_window > 1 and chain.offset == pytest.approx(0.4, abs=0.1)
    assert chain.scale is not None and chain.scale > 1.2
    dev_values = [chain.dev_ccc[k] for k in ("raw", "median", "centre", "scale")]
    assert dev_values == sorted(dev_values) and dev_values[-1] > dev_values[0] + 0.2
    # Fitted on development data only, the chain also helps on unseen recordings.
    before, after = pooled_ccc(test_preds, test_gold), pooled_ccc(chain.apply(test_preds), test_gold)
    assert after > before + 0.2, (before, after)
    assert [len(x) for x in chain.apply(test_preds)] == [800] * 4


def test_a_step_that_does_not_help_is_left_off() -> None:
    rng = np.random.default_rng(2)
    gold = [smooth_signal(rng, 300)]
    chain = fit_postprocessing([g.copy() for g in gold], gold)  # perfect predictions: nothing can help
    assert chain.median_window == 1 and chain.offset is None and chain.scale is None and chain.shift_frames == 0
    assert chain.apply(gold)[0] == pytest.approx(gold[0])
    assert PostProcessing().describe()["median_window"] == 1
    with pytest.raises(ValueError, match="unknown post-processing step"):
        fit_postprocessing(gold, gold, steps=["smooth"])
    with pytest.raises(ValueError, match="odd numbers"):
        fit_postprocessing(gold, gold, median_windows=[4])
    with pytest.raises(ValueError, match="as many predicted frames"):
        fit_postprocessing(gold, [gold[0][:-1]])
    assert math.isclose(pooled_ccc([np.ones(4)], [np.arange(4.0)]), 0.0)


def test_regressor_fits_on_development_and_states_it_in_results(tmp_path: Path) -> None:
    """One epoch on the replica's AVEC partition; post-processing fitted on dev, reported on test."""
    pl.seed_everything(0)
    root = with_test_ratings(tmp_path)
    dm = RECOLADataModule(root=str(root), protocol="official", targets=["arousal"], batch_size=2,
                          segment_seconds=1.0, cache_manifest=False)  # fmt: skip
    model = EndToEndRegressor(num_targets=1, target_names=["arousal"], conv_channels=(4, 8), lstm_hidden=16,
                              postprocess=["median", "centre", "scale", "shift"], max_shift_seconds=0.4)  # fmt: skip
    fitted_on: list[list[str]] = []
    original = EndToEndRegressor.fit_postprocessing

    def spy(self: EndToEndRegressor) -> list[PostProcessing]:
        fitted_on.append(sorted(r.utt_id for r in self.trainer.datamodule.datasets["val"].records))
        return original(self)

    model.fit_postprocessing = spy.__get__(model)  # type: ignore[method-assign]
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert fitted_on == [["dev_1", "dev_2"]]
    results = json.loads((tmp_path / "results.json").read_text())
    post = results["postprocessing"]
    assert post["steps"] == ["median", "centre", "scale", "shift"] and "validation" in post["fitted_on"]
    assert post["max_shift_frames"] == 10 and set(post["per_target"]) == {"arousal"}
    chain = post["per_target"]["arousal"]
    assert set(chain) >= {"median_window", "offset", "scale", "shift_frames", "dev_ccc"}
    assert chain["dev_ccc"]["raw"] <= max(chain["dev_ccc"].values())
    assert math.isfinite(results["test_ccc_postprocessed"]) and "test_ccc" in results
    assert results["test_ccc_postprocessed_arousal"] == pytest.approx(metrics["test_ccc_postprocessed"], abs=1e-6)
    with pytest.raises(ValueError, match="distinct steps"):
        EndToEndRegressor(num_targets=1, postprocess=["median", "median"])
    with pytest.raises(ValueError, match="median_windows"):
        EndToEndRegressor(num_targets=1, median_windows=(2,))
    assert torch.is_grad_enabled()


def test_recola_config_trains_as_the_paper_on_the_replica(tmp_path: Path) -> None:
    """configs/end_to_end_recola.yaml end to end (one epoch, narrow network) on the replica's AVEC partition."""
    import yaml

    from ser_lightning.cli import main

    from .conftest import CONFIGS

    config = yaml.safe_load((CONFIGS / "end_to_end_recola.yaml").read_text())
    init = config["data"]["init_args"]
    assert (init["protocol"], init["segment_seconds"], init["sample_rate"], init["batch_size"]) == (
        "official", 6.0, 16000, 25)  # fmt: skip
    assert config["model"]["init_args"]["postprocess"] == ["median", "centre", "scale", "shift"]
    cli = main([
        "fit", "--config", str(CONFIGS / "end_to_end_recola.yaml"),
        "--data.init_args.root", str(with_test_ratings(tmp_path)),
        "--data.init_args.cache_manifest", "false",
        "--trainer.max_epochs", "1",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false",
        "--model.init_args.conv_channels", "[4, 8]",
        "--model.init_args.lstm_hidden", "16",
    ])  # fmt: skip
    results = json.loads((Path(cli.trainer.log_dir) / "results.json").read_text())
    assert results["protocol"] == "official" and results["target_names"] == ["arousal"]
    assert results["checkpoint"] and "best-" in results["checkpoint"]
    assert results["postprocessing"]["per_target"]["arousal"]["dev_ccc"]["raw"] is not None
    assert math.isfinite(results["test_ccc_postprocessed"])


def test_regression_noise_robustness_scores_ccc_per_snr(tmp_path: Path) -> None:
    """RegressionNoiseRobustness on the replica's AVEC test part: a CCC per SNR, post-processed as the clean test."""
    from ser_lightning.callbacks import RegressionNoiseRobustness
    from ser_lightning.experiment.study import parse_study, study_tables

    pl.seed_everything(0)
    dm = RECOLADataModule(root=str(with_test_ratings(tmp_path)), protocol="official", targets=["arousal"],
                          batch_size=2, cache_manifest=False)  # fmt: skip
    model = EndToEndRegressor(num_targets=1, target_names=["arousal"], conv_channels=(4, 8), lstm_hidden=16,
                              postprocess=["centre", "scale"])  # fmt: skip
    callback = RegressionNoiseRobustness(categories=["white"], snr_db=[-5.0, 60.0])
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[callback])  # fmt: skip
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {(r["noise"], r["snr_db"]): r for r in results["noise_robustness"]["rows"]}
    clean = rows[("clean", None)]
    assert clean["ccc"] == pytest.approx(results["test_ccc"], abs=1e-5)
    assert clean["ccc_postprocessed"] == pytest.approx(results["test_ccc_postprocessed"], abs=1e-5)
    # At 60 dB the noise is inaudible to the model; at -5 dB it is not.
    assert rows[("white", 60.0)]["ccc"] == pytest.approx(clean["ccc"], abs=1e-3)
    assert rows[("white", -5.0)]["ccc"] != pytest.approx(clean["ccc"], abs=1e-3)
    assert rows[("mean", -5.0)]["ccc_postprocessed"] == rows[("white", -5.0)]["ccc_postprocessed"]
    assert results["noise_robustness"]["part"] == "eval" and results["noise_robustness"]["postprocessed"] is True
    assert (tmp_path / "noise_robustness.csv").is_file()
    study = parse_study({"metric": "ccc", "snr_db": [-5, 60], "clean": "clean",
                         "conditions": {"mismatched": {"noisy": "clean"}}}, {"clean": []})  # fmt: skip
    tables = study_tables(study, {"clean": {(0, 0): results}}, corpus="recola")
    assert tables["clean"]["mean"] == pytest.approx(results["test_ccc_postprocessed"])  # the paper's figure
    row = tables["conditions"]["mismatched"]["rows"][0]
    assert row["noisy"]["mean"] == pytest.approx(rows[("mean", -5.0)]["ccc_postprocessed"])
    with pytest.raises(TypeError, match="SERRegressionTask"):
        callback.check_module(torch.nn.Linear(1, 1))  # type: ignore[arg-type]


def test_regression_noise_robustness_with_an_enhancer_writes_its_own_table(tmp_path: Path) -> None:
    """RegressionNoiseRobustness(enhancer=...): the noisy inputs enhanced first, into noise_robustness_enhanced,
    which the study's enhanced side reads (the clean model's mismatched "enhanced" column)."""
    from ser_lightning.callbacks import RegressionNoiseRobustness
    from ser_lightning.experiment.study import parse_study, study_tables

    from .test_enhancement import _enhancer_checkpoint

    ckpt = _enhancer_checkpoint(tmp_path / "enhancer.ckpt")
    pl.seed_everything(0)
    dm = RECOLADataModule(root=str(with_test_ratings(tmp_path)), protocol="official", targets=["arousal"],
                          batch_size=2, cache_manifest=False)  # fmt: skip
    model = EndToEndRegressor(num_targets=1, target_names=["arousal"], conv_channels=(4, 8), lstm_hidden=16,
                              postprocess=["centre", "scale"])  # fmt: skip
    noisy = RegressionNoiseRobustness(categories=["white"], snr_db=[-5.0])
    enhanced = RegressionNoiseRobustness(categories=["white"], snr_db=[-5.0], enhancer=str(ckpt))
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[noisy, enhanced])  # fmt: skip
    trainer.fit(model, datamodule=dm)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    results = json.loads((tmp_path / "results.json").read_text())
    plain = {(r["noise"], r["snr_db"]): r for r in results["noise_robustness"]["rows"]}
    table = results["noise_robustness_enhanced"]
    rows = {(r["noise"], r["snr_db"]): r for r in table["rows"]}
    assert set(rows) == set(plain) and (tmp_path / "noise_robustness_enhanced.csv").is_file()
    assert table["enhancer"]["checkpoint"] == str(ckpt) and "enhanced by" in table["condition"]
    assert results["noise_robustness"]["enhancer"] is None
    assert metrics["test_ccc_enhanced_noise_snr-5db"] == pytest.approx(rows[("mean", -5.0)]["ccc"], abs=1e-6)
    assert rows[("white", -5.0)]["ccc"] != plain[("white", -5.0)]["ccc"]  # the enhancer changed the inputs
    study = parse_study({"metric": "ccc", "snr_db": [-5], "clean": "clean",
                         "conditions": {"mismatched": {"noisy": "clean", "enhanced": "clean"}}},
                        {"clean": []})  # fmt: skip
    row = study_tables(study, {"clean": {(0, 0): results}}, corpus="recola")["conditions"]["mismatched"]["rows"][0]
    assert row["noisy"]["mean"] == pytest.approx(plain[("mean", -5.0)]["ccc_postprocessed"])
    assert row["enhanced"]["mean"] == pytest.approx(rows[("mean", -5.0)]["ccc_postprocessed"])


def test_recola_trains_on_a_derived_noisy_corpus_with_its_ratings(tmp_path: Path) -> None:
    """The study's matched RECOLA cells: the AVEC training and development recordings read from a derived noisy
    corpus (made once, cached), with their gold-standard ratings, and the test recording stays clean."""
    from ser_lightning.audio import read_audio
    from ser_lightning.models.derive import DerivedCorpus

    root = with_test_ratings(tmp_path)
    plain = RECOLADataModule(root=str(root), protocol="official", targets=["arousal"], batch_size=2,
                             cache_manifest=False)  # fmt: skip
    plain.setup("fit")
    derived = DerivedCorpus(snr_db=0, categories=["white"], cache_dir=str(tmp_path / "cache"))
    dm = RECOLADataModule(root=str(root), protocol="official", targets=["arousal"], batch_size=2,
                          cache_manifest=False, derived=derived)  # fmt: skip
    dm.setup("fit")
    for name in ("train", "val"):
        before, after = plain.split.parts()[name], dm.split.parts()[name]
        assert [r.utt_id for r in after] == [r.utt_id for r in before]
        assert all(Path(r.path).is_relative_to(derived.folder) for r in after)
        assert [r.extra for r in after] == [r.extra for r in before]  # the ratings travel with the recording
    assert [r.path for r in dm.split.test] == [r.path for r in plain.split.test]
    clean = read_audio(plain.split.train[0].path, 16000)
    noisy = read_audio(dm.split.train[0].path, 16000)
    assert noisy.shape == clean.shape and not np.allclose(noisy, clean)
    first, again = plain.datasets["train"][0], dm.datasets["train"][0]
    torch.testing.assert_close(torch.as_tensor(first["targets"]), torch.as_tensor(again["targets"]))
    model = EndToEndRegressor(num_targets=1, target_names=["arousal"], conv_channels=(4, 8), lstm_hidden=16)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished and dm.describe()["derived"]["snr_db"] == 0.0
