"""Cross-corpus protocol and the describe command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ser_lightning.cli import main as cli_main
from ser_lightning.data import CrossCorpusDataModule, SyntheticDataModule
from ser_lightning.describe import main as describe_main
from ser_lightning.errors import LeakageError, ProtocolError

from .conftest import CONFIGS
from .test_cli import MAIN, SMALL


def tiny(cache: Path, **kwargs: object) -> SyntheticDataModule:
    return SyntheticDataModule(root=str(cache), size="tiny", **kwargs)


def test_cross_corpus_trains_on_source_and_splits_target_30_70(_private_cache: Path) -> None:
    source = tiny(_private_cache, voice_set="en")
    target = tiny(_private_cache, voice_set="de", emotions=["neutral", "happy", "angry", "sad", "calm"])
    data = CrossCorpusDataModule(source=source, target=target, selection_fraction=0.3, seed=1)
    assert data.class_names == ["neutral", "happy", "angry", "sad"]
    data.setup("fit")
    split = data.split
    assert all(r.speaker.startswith("source:") for r in split.train)
    assert all(r.speaker.startswith("target:") for r in split.val + split.test)
    target_speakers = {r.speaker for r in split.val + split.test}
    assert len({r.speaker for r in split.val}) == round(0.3 * len(target_speakers))
    assert not {r.speaker for r in split.val} & {r.speaker for r in split.test}
    stamp = data.describe()
    assert stamp["protocol"] == "cross_corpus" and stamp["source"] == "synthetic"
    assert stamp["dropped_labels"] == {"synthetic:calm": sum(1 for r in target.records() if r.label == "calm")}
    assert {r.label for r in split.val + split.test} == set(data.class_names)
    other = CrossCorpusDataModule(source=tiny(_private_cache, voice_set="en"),
                                  target=tiny(_private_cache, voice_set="de"), seed=2)  # fmt: skip
    other.setup("fit")
    assert {r.speaker for r in other.split.val} != {r.speaker for r in split.val}  # the seed redraws


def test_cross_corpus_label_harmonisation(_private_cache: Path) -> None:
    source = tiny(_private_cache, emotions=["neutral", "happy", "angry", "sad"])
    target = tiny(_private_cache, voice_set="de", emotions=["neutral", "angry", "sad"])
    data = CrossCorpusDataModule(source=source, target=target)
    assert data.class_names == ["neutral", "angry", "sad"]
    assert data.harmonise("anger") == "angry" and data.harmonise("happiness") == "happy"
    mapped = CrossCorpusDataModule(source=source, target=target, label_map={"happy": "neutral"},
                                   classes=["neutral", "angry", "sad"])  # fmt: skip
    assert mapped.harmonise("happy") == "neutral"
    with pytest.raises(ProtocolError, match="share fewer than two classes"):
        CrossCorpusDataModule(source=tiny(_private_cache, emotions=["neutral", "happy"]),
                              target=tiny(_private_cache, voice_set="de", emotions=["angry", "sad"]))  # fmt: skip


def test_the_same_corpus_as_source_and_target_is_leakage(_private_cache: Path) -> None:
    data = CrossCorpusDataModule(source=tiny(_private_cache), target=tiny(_private_cache))
    with pytest.raises(LeakageError, match="the same (file|recording)"):
        data.setup("fit")


def test_cross_corpus_config_runs_through_the_cli(tmp_path: Path, _private_cache: Path) -> None:
    cli = cli_main(["fit", "--config", MAIN, "--data", str(CONFIGS / "data" / "cross_corpus_synthetic.yaml"),
                    "--data.init_args.source.init_args.size", "tiny", "--data.init_args.target.init_args.size", "tiny",
                    "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                    "--trainer.fast_dev_run", "true", *SMALL])  # fmt: skip
    assert cli.model.class_names == ["neutral", "happy", "angry", "sad"]


def run_describe(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = describe_main(args)
    return code, json.loads(capsys.readouterr().out)


def test_describe_prints_counts_speakers_and_a_clean_verdict(
    _private_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_describe(["--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"), "--data.root",
                              str(_private_cache), "--data.fold", "3"], capsys)  # fmt: skip
    assert code == 0
    assert out["leakage"]["ok"] is True and out["fold"] == 3
    assert out["class_counts"]["test"] == {"angry": 3, "happy": 3, "neutral": 3, "sad": 3}
    assert out["speakers"]["test"] == ["spk04"] and out["speakers"]["val"] == ["spk03"]
    assert out["skipped"] == {"count": 0, "files": []}
    assert out["shared_sentences"] is True  # every synthetic speaker reads the same sentences


def test_describe_fails_a_leaky_configuration(tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = (tiny_corpus / "manifest.csv").read_text().splitlines()
    header, rows = manifest[0], manifest[1:]
    # The same recording listed again under another speaker: a duplicate that crosses the split.
    first = rows[0].split(",")
    first[3], first[5] = "spk08", "ses04"  # columns: utt_id,path,label,speaker,gender,session,...
    leaky = tmp_path / "leaky.csv"
    leaky.write_text("\n".join([header, *rows, ",".join([first[0] + "_copy", *first[1:]])]) + "\n")
    text = leaky.read_text().replace("wav/", f"{tiny_corpus}/wav/")
    leaky.write_text(text)
    code, out = run_describe(["--data", "ser_lightning.data.ManifestDataModule", "--data.manifest", str(leaky),
                              "--data.protocol", "loso", "--data.fold", "7"], capsys)  # fmt: skip
    assert code == 1
    assert out["leakage"]["ok"] is False and "same" in out["leakage"]["error"]


REPLICAS = {
    "iemocap.yaml": "iemocap/IEMOCAP_full_release",
    "msp_improv.yaml": "msp_improv/MSP-IMPROV",
    "ravdess.yaml": "ravdess",
    "emodb.yaml": "emodb",
    "crema_d.yaml": "crema_d",
    "enterface.yaml": "enterface",
    "synthetic.yaml": None,  # the embedded corpus (its tiny size stands in)
    "synthetic_tiny.yaml": None,
}
NOT_CLASSIFICATION = {"recola.yaml", "synthetic_continuous.yaml"}  # regression targets (see the regression model)
CROSS = {"cross_corpus_synthetic.yaml", "cross_corpus_iemocap_msp.yaml"}


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (CONFIGS / "data").glob("*.yaml") if p.name not in NOT_CLASSIFICATION)
)
def test_every_data_yaml_composes_with_the_main_job_on_its_replica(
    name: str, tmp_path: Path, _private_cache: Path
) -> None:
    replicas = Path(__file__).parent / "data"
    args = ["fit", "--config", MAIN, "--data", str(CONFIGS / "data" / name)]
    if name == "cross_corpus_iemocap_msp.yaml":
        args += ["--data.init_args.source.init_args.root", str(replicas / REPLICAS["iemocap.yaml"]),
                 "--data.init_args.target.init_args.root", str(replicas / REPLICAS["msp_improv.yaml"])]  # fmt: skip
    elif name == "cross_corpus_synthetic.yaml":
        args += ["--data.init_args.source.init_args.size", "tiny", "--data.init_args.target.init_args.size", "tiny"]
    else:
        assert name in REPLICAS, f"configs/data/{name} has no replica: add one under tests/data/ and map it here"
        if REPLICAS[name] is None:
            args += ["--data.init_args.size", "tiny", "--data.init_args.root", str(_private_cache)]
        else:
            args += ["--data.init_args.root", str(replicas / REPLICAS[name])]
    cli = cli_main([*args, "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar",
                    "false", "--trainer.fast_dev_run", "true", *SMALL])  # fmt: skip
    assert cli.trainer.state.finished
    assert cli.model.num_classes == cli.datamodule.num_classes
