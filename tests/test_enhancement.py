"""Speech enhancement (Triantafyllopoulos et al. 2019): network, whole-utterance enhancement, training data,
speech-quality evaluation, the frozen front-end stage and the derived corpus."""

from __future__ import annotations

import csv
import json
import math
from functools import partial
from pathlib import Path

import lightning
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

from ser_lightning.audio import read_audio
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.data import EnhancementDataModule, ManifestDataModule, SyntheticDataModule
from ser_lightning.metrics import SpeechQualitySkipError, pesq_build, speech_quality
from ser_lightning.models import CNN, EnhancedFrontEnd, SpeechEnhancer
from ser_lightning.models.derive import derive_corpus
from ser_lightning.models.enhancement import constant_lr
from ser_lightning.models.networks import ResidualEnhancerNet, SpectralEnhancer
from ser_lightning.synth import VOICE_SETS


def _block_params(cin: int, cout: int, k: int, stride: int) -> int:
    convs = cin * cout * k * k + cout * cout * k * k + 4 * cout
    return convs + (cin * cout + 2 * cout if stride != 1 or cin != cout else 0)


def test_paper_network_shapes_parameters_and_cost() -> None:
    """The paper's network: 35x201 contexts, 8 blocks 64..512 maps, one 201-bin frame out, ~10 GFLOP a frame."""
    enhancer = SpectralEnhancer(base_channels=64).eval()
    net = enhancer.net
    assert (enhancer.n_freq, enhancer.win_length, enhancer.hop_length) == (201, 400, 160)
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    kernels = [4, 4, 4, 4, 3, 3, 3, 3]
    strides = [1, 1, 2, 1, 2, 1, 2, 1]
    assert [b.bn1.num_features for b in net.blocks] == widths
    assert [b.conv1[1].kernel_size[0] for b in net.blocks] == kernels
    assert [b.conv1[1].stride[0] for b in net.blocks] == strides
    expected = sum(_block_params(cin, cout, k, s) for cin, cout, k, s
                   in zip([1, *widths[:-1]], widths, kernels, strides, strict=True))  # fmt: skip
    assert net.output_shape == (32, 26, 5)  # 201x35 halved (ceil) three times
    expected += 512 * 32 + 2 * 32 + 32 * 26 * 5 * 201 + 201
    assert sum(p.numel() for p in net.parameters()) == expected
    with torch.no_grad():
        out = net(torch.randn(1, 1, 201, 35))
    assert out.shape == (1, 201)
    assert 9.5e9 < enhancer.flops_per_frame() < 11e9
    with pytest.raises(ValueError, match="expected contexts"):
        net(torch.randn(2, 1, 201, 33))


def test_mask_is_added_to_the_centre_frame() -> None:
    """Output = centre frame of the input + mask; a zero mask returns the centre frame exactly."""
    net = ResidualEnhancerNet(n_freq=33, context_frames=7, base_channels=2, reduce_channels=2).eval()
    contexts = torch.randn(5, 1, 33, 7)
    with torch.no_grad():
        assert torch.equal(net(contexts), contexts[:, 0, :, 3])  # zero-initialised output layer: identity
        torch.nn.init.normal_(net.fc.weight)
        mask = net.mask(contexts)
        assert mask.abs().sum() > 0
        torch.testing.assert_close(net(contexts), contexts[:, 0, :, 3] + mask)
        changed = contexts.clone()
        changed[:, 0, :, 3] += 1.0  # the centre frame passes straight through the addition
        torch.testing.assert_close(net(changed) - net.mask(changed), contexts[:, 0, :, 3] + 1.0)


def test_contexts_are_unfolded_frames_with_silent_edges() -> None:
    """``contexts`` equals slicing each frame's window by hand (silence beyond the edges); centres select."""
    enhancer = SpectralEnhancer(context_frames=5, base_channels=2)
    logmag = torch.randn(2, 201, 6)
    contexts = enhancer.contexts(logmag)
    assert contexts.shape == (2, 6, 1, 201, 5)
    padded = torch.nn.functional.pad(logmag, (2, 2), value=math.log(enhancer.floor))
    for n in range(6):
        torch.testing.assert_close(contexts[:, n, 0], padded[:, :, n : n + 5])
    picked = enhancer.contexts(logmag, torch.tensor([[0, 5], [3, 3]]))
    torch.testing.assert_close(picked[1, 0], contexts[1, 3])
    torch.testing.assert_close(picked[0, 1], contexts[0, 5])


def test_zero_mask_reproduces_the_waveform(tiny_corpus: Path) -> None:
    """Whole-utterance enhancement with a zero mask gives back the input (SI-SDR > 40 dB), any length."""
    speech = read_audio(next(tiny_corpus.rglob("*.wav")), 16000)[:8000]
    enhancer = SpectralEnhancer(base_channels=2, chunk_frames=128).eval()
    batch = torch.from_numpy(np.stack([speech, speech[::-1].copy()]))
    with torch.no_grad():
        out = enhancer(batch)
        short = enhancer(batch[:, :300])
    assert out.shape == batch.shape and short.shape == (2, 300)
    assert float(scale_invariant_signal_distortion_ratio(out, batch).min()) > 40.0


def test_voice_set_of_the_enhancer_is_used_by_no_ser_corpus() -> None:
    """The ``enhance`` talkers share no speaker id or eSpeak variant with any SER voice set, nor a sentence."""
    enhance = VOICE_SETS["enhance"]
    others = [v for name, v in VOICE_SETS.items() if name != "enhance"]
    variants = {s.variant for v in others for s in v.speakers}
    ids = {s.speaker_id for v in others for s in v.speakers}
    assert not variants & {s.variant for s in enhance.speakers}
    assert not ids & {s.speaker_id for s in enhance.speakers}
    assert not set(enhance.sentences) & {t for v in others for t in v.sentences}
    with pytest.raises(ValueError, match="an SER voice set"):
        SyntheticDataModule(voice_set="enhance")  # no SER split can select it (a typed Literal in the CLI too)


@pytest.fixture(scope="module")
def enhancement_data() -> EnhancementDataModule:
    data = EnhancementDataModule(size="tiny", protocol="holdout", batch_size=8, eval_batch_size=6,
                                 noise_categories=["white", "pink", "traffic"], max_test_utterances=2)  # fmt: skip
    data.setup("fit")
    return data


def test_training_pairs_are_seeded_mixtures(enhancement_data: EnhancementDataModule) -> None:
    """Training items: a crop, a category and an SNR from 0-25 dB in 5 dB steps, the same for the same key."""
    data = enhancement_data
    train = data.datasets["train"]
    assert not {r.speaker for r in train.records} & {r.speaker for r in data.datasets["test"].records}
    first, again = train[12345], train[12345]
    assert torch.equal(first["waveform"], again["waveform"]) and first["snr_db"] == again["snr_db"]
    assert first["waveform"].numel() == 16000 and first["snr_db"] in {0, 5, 10, 15, 20, 25}
    clean, noisy = first["clean"].double(), first["waveform"].double()
    achieved = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert abs(float(achieved) - first["snr_db"]) < 1e-3
    snrs = {train[k]["snr_db"] for k in range(40)}
    assert len(snrs) >= 4
    test = data.datasets["test"]
    assert len(test) == 2 * 6 and sorted({test[i]["snr_db"] for i in range(6)}) == [-5, 0, 5, 10, 15, 20]


def test_training_lowers_the_mse(enhancement_data: EnhancementDataModule, tmp_path: Path) -> None:
    """A short SGD training of a small enhancer lowers the validation MSE on the embedded corpus."""
    pl.seed_everything(0)  # a small geometry (16 ms window: 129 bins, 15-frame contexts) keeps the test short
    model = SpeechEnhancer(base_channels=4, win_ms=16.0, hop_ms=8.0, context_frames=15, frames_per_utterance=4,
                           chunk_frames=512, optimizer=partial(torch.optim.SGD, lr=0.1),
                           lr_scheduler=constant_lr)  # fmt: skip
    trainer = pl.Trainer(max_steps=30, limit_val_batches=2, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    before = trainer.validate(model, datamodule=enhancement_data, verbose=False)[0]["val_loss"]
    trainer.fit(model, datamodule=enhancement_data)
    after = trainer.validate(model, datamodule=enhancement_data, verbose=False)[0]["val_loss"]
    assert after < 0.9 * before, (before, after)


def test_speech_quality_measures_and_skips() -> None:
    """PESQ/STOI/SI-SDR rank clean above noisy; silent and too-short references are skips, not crashes."""
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    speech = (np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) * 0.1).astype(np.float32)
    noisy = mix_at_snr(speech, rng.standard_normal(32000), 0.0, rng)
    perfect, degraded = speech_quality(speech, speech), speech_quality(speech, noisy)
    assert perfect["pesq"] > degraded["pesq"] and perfect["stoi"] > degraded["stoi"]
    assert abs(degraded["si_sdr"]) < 0.5 and perfect["si_sdr"] > 60
    with pytest.raises(SpeechQualitySkipError, match="too short"):
        speech_quality(speech[:1000], noisy[:1000])
    with pytest.raises(SpeechQualitySkipError, match="silent"):
        speech_quality(np.zeros(16000), noisy[:16000])
    assert "pesq 0." in pesq_build()


def test_test_step_counts_skips_and_tabulates(tiny_corpus: Path) -> None:
    """The enhancer's test step scores noisy vs enhanced per utterance and counts an unscorable one."""
    model = SpeechEnhancer(base_channels=2, chunk_frames=512)
    speech = torch.from_numpy(read_audio(next(tiny_corpus.rglob("*.wav")), 16000)[:12000])
    n = speech.numel()
    clean = torch.stack([speech, torch.zeros(n)])
    noisy = clean + 0.01 * torch.randn(2, n)
    batch = {"waveform": noisy, "clean": clean, "length": torch.tensor([n, n]), "snr_db": torch.tensor([0.0, 0.0]),
             "utt_id": ["a", "b"], "speaker": ["s"] * 2, "noise": ["white"] * 2, "path": ["a", "b"]}  # fmt: skip
    model.test_step(batch, 0)
    assert len(model.quality_rows) == 1 and len(model.quality_skips) == 1
    assert model.quality_skips[0]["reason"] == "silent reference"
    row = model.quality_rows[0]  # an untrained enhancer is the identity: no gain, no loss
    assert abs(row["enhanced_pesq"] - row["noisy_pesq"]) < 0.05


def _enhancer_checkpoint(path: Path) -> Path:
    """A SpeechEnhancer checkpoint with a non-zero mask layer (so the stage changes the audio)."""
    torch.manual_seed(0)  # a small geometry (16 ms window, 15-frame contexts) keeps the tests short
    enhancer = SpeechEnhancer(base_channels=2, win_ms=16.0, hop_ms=8.0, context_frames=15, chunk_frames=1024)
    with torch.no_grad():
        enhancer.network.net.fc.bias.fill_(-0.5)  # attenuates every bin: a visible, deterministic change
    torch.save({"hyper_parameters": dict(enhancer.hparams), "state_dict": enhancer.state_dict(),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    return path


def test_frontend_stage_is_frozen_used_and_self_contained(tmp_path: Path) -> None:
    """An SER model with ``enhancer`` enhances before its features, never trains the stage, and its checkpoint
    loads without the enhancer's file."""
    ckpt = _enhancer_checkpoint(tmp_path / "enhancer.ckpt")
    model = CNN(num_classes=4, enhancer=str(ckpt), optimizer=partial(torch.optim.SGD, lr=0.1))
    stage = model.frontend
    assert isinstance(stage, EnhancedFrontEnd)
    assert stage.n_bins == 128 and stage.hop_length == 160  # the inner front-end's geometry
    assert not any(p.requires_grad for p in stage.enhancer.parameters())
    model.train()
    assert not stage.enhancer.training and model.network.training
    calls = []
    stage.enhancer.register_forward_hook(lambda *_: calls.append(1))
    waveform, lengths = torch.randn(2, 32000) * 0.1, torch.tensor([32000, 20000])
    features, frames = stage(waveform, lengths)
    plain, plain_frames = stage.inner(waveform, lengths)
    assert calls and torch.equal(frames, plain_frames) and not torch.allclose(features, plain)
    torch.testing.assert_close(features, stage.inner(stage.enhance(waveform, lengths), lengths)[0])
    before = {k: v.clone() for k, v in stage.enhancer.state_dict().items()}
    optimizer = model.configure_optimizers()["optimizer"]
    loss = model.training_step({"waveform": waveform, "length": lengths, "label": torch.tensor([0, 1])}, 0)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(v, stage.enhancer.state_dict()[k]) for k, v in before.items())
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": lightning.__version__}  # fmt: skip
    model.on_save_checkpoint(checkpoint)
    assert checkpoint["enhancer_stage"]["sha256"] == stage.stage_config["sha256"]
    torch.save(checkpoint, tmp_path / "ser.ckpt")
    ckpt.unlink()  # the SER checkpoint must not need the enhancer's file
    loaded = CNN.load_from_checkpoint(tmp_path / "ser.ckpt").eval()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(waveform, lengths), model(waveform, lengths))
    with pytest.raises(FileNotFoundError, match="enhancer checkpoint"):
        CNN(num_classes=4, enhancer=str(ckpt))


def test_derived_corpus_is_cached_deterministic_and_readable(tiny_corpus: Path, tmp_path: Path) -> None:
    """Noisy and noisy+enhanced derivations: keyed by their inputs, the same mixtures, readable by a DataModule."""
    ckpt = _enhancer_checkpoint(tmp_path / "enhancer.ckpt")
    rows = list(csv.DictReader((tiny_corpus / "manifest.csv").open()))
    rows = [{**r, "path": str(tiny_corpus / r["path"])} for r in rows if r["sentence"] == rows[0]["sentence"]][:16]
    subset = tmp_path / "subset.csv"  # 4 speakers x 4 emotions, one sentence: a small source corpus
    with subset.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    source = ManifestDataModule(manifest=str(subset), corpus="subset", protocol="loso")
    noisy = derive_corpus(source, snr_db=5.0, part="eval", categories=["pink"], cache_dir=str(tmp_path))
    again = derive_corpus(source, snr_db=5.0, part="eval", categories=["pink"], cache_dir=str(tmp_path))
    other = derive_corpus(source, snr_db=0.0, part="eval", categories=["pink"], cache_dir=str(tmp_path))
    enhanced = derive_corpus(source, snr_db=5.0, part="eval", categories=["pink"], output="enhanced",
                             enhancer=str(ckpt), cache_dir=str(tmp_path))  # fmt: skip
    assert noisy == again and len({noisy, other, enhanced}) == 3
    rows = list(csv.DictReader(noisy.open()))
    assert len(rows) == len(source.records()) and {r["snr_db"] for r in rows} == {"5"}
    first = rows[0]
    clean = read_audio(first["source_path"], 16000)
    mixture = read_audio(noisy.parent / first["path"], 16000)
    achieved = 10 * np.log10(np.mean(clean.astype(float) ** 2) / np.mean((mixture - clean).astype(float) ** 2))
    assert abs(achieved - 5.0) < 1e-3
    from ser_lightning.models.frontends_enhancement import load_enhancer

    model, _ = load_enhancer(ckpt)
    with torch.no_grad():
        expected = model(torch.from_numpy(mixture)[None]).numpy()[0]
    np.testing.assert_allclose(read_audio(enhanced.parent / first["path"], 16000), expected, atol=1e-5)
    data = ManifestDataModule(manifest=str(enhanced), classes=source.class_names, corpus="derived", protocol="loso")
    data.setup("fit")
    assert data.describe()["test_speakers"] == (source.setup("fit") or source.describe()["test_speakers"])
    with pytest.raises(ValueError, match="needs `enhancer`"):
        derive_corpus(source, snr_db=5.0, output="enhanced", cache_dir=str(tmp_path))


def test_enhancer_frontend_yaml_composes_with_any_model(capsys: pytest.CaptureFixture[str]) -> None:
    """``configs/frontend/enhancer.yaml`` composes on top of an experiment config (``--print_config``)."""
    import yaml

    from .conftest import CONFIGS
    from .test_cli import run_cli

    args = ["fit", "--config", str(CONFIGS / "cnn.yaml"), "--config", str(CONFIGS / "frontend" / "enhancer.yaml")]
    assert run_cli([*args, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["enhancer"].endswith("last.ckpt")


@pytest.mark.slow
def test_cli_trains_the_enhancer_then_an_ser_model_behind_it(tmp_path: Path) -> None:
    """Both enhancement configs train from YAML; an SER model then trains and tests with the enhancer in front."""
    from .conftest import CONFIGS
    from .test_cli import run_cli

    tiny = ["--data.init_args.size", "tiny", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"]  # fmt: skip
    narrow = ["--model.init_args.base_channels", "2"]  # the CPU enhancer narrowed further: it runs on every batch below
    for config in ("enhancement_cpu.yaml", "enhancement.yaml"):
        extra = ["--data.init_args.batch_size", "4"] if config == "enhancement.yaml" else narrow
        assert run_cli(["fit", "--config", str(CONFIGS / config), *tiny, *extra]) == 0
    ckpt = sorted((tmp_path / "runs" / "enhancement_cpu").rglob("last.ckpt"))[0]
    args = ["fit", "--config", str(CONFIGS / "cnn.yaml"), "--config", str(CONFIGS / "frontend" / "enhancer.yaml"),
            "--data", str(CONFIGS / "data" / "synthetic_tiny.yaml"), "--model.init_args.enhancer", str(ckpt),
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    assert run_cli(args) == 0
    results = sorted((tmp_path / "runs" / "cnn").rglob("results.json"))
    assert results and "test_ua" in results[0].read_text()
    ser_ckpt = sorted((tmp_path / "runs" / "cnn").rglob("last.ckpt"))[0]
    assert "enhancer_stage" in torch.load(ser_ckpt, map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_short_training_improves_pesq_and_stoi_at_0db(tmp_path: Path) -> None:
    """After a short training of a small enhancer, PESQ and STOI of enhanced audio beat the noisy input at 0 dB
    (held-out speakers, held-out stationary noise)."""
    pl.seed_everything(0)
    data = EnhancementDataModule(size="tiny", protocol="holdout", batch_size=16, eval_batch_size=4, test_snr_db=[0.0],
                                 noise_categories=["white", "pink"], max_test_utterances=8)  # fmt: skip
    model = SpeechEnhancer(base_channels=4, win_ms=16.0, hop_ms=8.0, context_frames=15, frames_per_utterance=4,
                           chunk_frames=1024, optimizer=partial(torch.optim.SGD, lr=0.1),
                           lr_scheduler=constant_lr)  # fmt: skip
    trainer = pl.Trainer(max_epochs=40, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    (row,) = [r for r in json.loads((tmp_path / "enhancement_quality.json").read_text())["enhancement_quality"]]
    assert row["snr_db"] == 0 and row["count"] == 8
    assert row["pesq_gain"] > 0 and row["stoi_gain"] > 0, row
