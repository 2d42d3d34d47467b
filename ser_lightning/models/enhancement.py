"""SpeechEnhancer: the residual enhancement network of Triantafyllopoulos et al. (2019) as a LightningModule.

Training (§2.2): a random centre frame of the noisy log-magnitude STFT with its context of 35 frames goes in,
the mask the network outputs is added to the centre frame, and the MSE against the clean centre frame is the
loss; SGD, learning rate 0.01, 64 frames a batch (``configs/enhancement.yaml``). Test: every held-out utterance
of the DataModule's test grid (held-out speakers x held-out noise x SNR -5..20 dB) is enhanced whole, and PESQ
(wide band), STOI and SI-SDR (:func:`~ser_lightning.metrics.speech_quality`) of the noisy and the enhanced audio
are tabulated per SNR (``enhancement_quality.{json,csv,png}`` and ``results.json``).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ser_lightning.metrics import SPEECH_QUALITY_NAMES, SpeechQualitySkipError, pesq_build, speech_quality
from ser_lightning.models.base import SERTask
from ser_lightning.models.frontends import FrontEnd, RawWaveform
from ser_lightning.models.networks.enhancement import SpectralEnhancer
from ser_lightning.results import run_dir

log = logging.getLogger(__name__)


def constant_lr(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """A constant learning rate (the paper states no schedule)."""
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def quality_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-SNR means of the per-utterance speech-quality rows (``snr_db``, ``noisy_<m>``, ``enhanced_<m>``).

    Returns:
        One row per SNR, ascending: ``snr_db``, ``count``, and for each measure the noisy and enhanced means and
        their difference (``<m>_gain``).
    """
    table = []
    for snr in sorted({r["snr_db"] for r in rows}):
        cell = [r for r in rows if r["snr_db"] == snr]
        out: dict[str, Any] = {"snr_db": snr, "count": len(cell)}
        for name in SPEECH_QUALITY_NAMES:
            noisy = float(np.mean([r[f"noisy_{name}"] for r in cell]))
            enhanced = float(np.mean([r[f"enhanced_{name}"] for r in cell]))
            out.update({f"noisy_{name}": noisy, f"enhanced_{name}": enhanced, f"{name}_gain": enhanced - noisy})
        table.append(out)
    return table


class SpeechEnhancer(SERTask):
    """The residual speech enhancer (Triantafyllopoulos et al. 2019): waveforms in, enhanced waveforms out.

    The front-end is the raw waveform; the network, :class:`~ser_lightning.models.networks.SpectralEnhancer`,
    holds the STFT, the residual network and the inverse STFT, so the module (and a checkpoint of it) is
    self-contained. ``base_channels=64`` is the paper's network (about 10 GFLOP per frame); a smaller value keeps
    the topology and fits a CPU (``configs/enhancement_cpu.yaml``).

    Args:
        base_channels: feature maps of residual blocks 1-2 (64 in the paper), doubled every two blocks.
        context_frames: frames of context per enhanced frame (35).
        reduce_channels: feature maps of the reducing 1x1 convolution.
        win_ms: STFT window (25 ms).
        hop_ms: STFT hop (10 ms).
        floor: magnitude floor inside the logarithm.
        frames_per_utterance: centre frames drawn from each training crop (batch_size x this = frames a step).
        chunk_frames: contexts per network call when enhancing whole utterances.
        **kwargs: the arguments of :class:`~ser_lightning.models.base.SERTask` (``optimizer``, ``lr_scheduler``,
            ``sample_rate``, ...). The configs set the paper's SGD at 0.01 and a constant learning rate
            (:func:`constant_lr`); a plateau scheduler must say ``mode: min`` (the monitor is ``val_loss``).
    """

    monitor = "val_loss"

    def __init__(
        self,
        base_channels: int = 64,
        context_frames: int = 35,
        reduce_channels: int = 32,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        floor: float = 1e-5,
        frames_per_utterance: int = 8,
        chunk_frames: int = 64,
        **kwargs: Any,
    ) -> None:
        if frames_per_utterance < 1:
            raise ValueError(f"frames_per_utterance must be positive, got {frames_per_utterance}")
        super().__init__(**kwargs)
        self.quality_rows: list[dict[str, Any]] = []
        self.quality_skips: list[dict[str, Any]] = []

    def configure_frontend(self) -> FrontEnd:
        """The waveform itself: the enhancer's STFT is part of its network."""
        return RawWaveform(self.hparams["sample_rate"])

    def configure_network(self) -> nn.Module:
        """:class:`~ser_lightning.models.networks.SpectralEnhancer` with the task's arguments."""
        return self.build_network(SpectralEnhancer, sample_rate=self.hparams["sample_rate"])

    def configure_optimizers(self) -> dict[str, Any]:
        """The base's; a plateau scheduler must follow ``val_loss`` downwards (``mode: min``)."""
        config = super().configure_optimizers()
        scheduler = config["lr_scheduler"]["scheduler"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and scheduler.mode != "min":
            raise ValueError(
                "SpeechEnhancer monitors val_loss (lower is better): give the plateau scheduler mode: min, or use "
                "ser_lightning.models.enhancement.constant_lr (the configs' constant learning rate)"
            )
        return config

    def configure_enhancement(self, frontend: FrontEnd) -> FrontEnd:
        """An enhancer takes no enhancement stage in front of it."""
        if self.hparams.get("enhancer"):
            raise ValueError("SpeechEnhancer does not take an `enhancer` stage; that argument is for SER models")
        return frontend

    def configure_losses(self) -> None:
        """MSE between the enhanced and the clean log-magnitude centre frames."""
        self.criterion = nn.MSELoss()

    # ------------------------------------------------------------------------------------------ steps
    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Enhanced ``[B, T]`` waveforms (samples past each length are zero)."""
        enhanced = self.network(waveform)
        if lengths is not None:
            steps = torch.arange(waveform.shape[1], device=waveform.device)
            enhanced = enhanced * (steps[None, :] < lengths.to(waveform.device)[:, None])
        return enhanced

    def frame_loss(self, batch: dict[str, Any], random: bool) -> Tensor:
        """MSE of enhanced vs clean centre frames: ``frames_per_utterance`` per utterance (random or evenly spread)."""
        net: SpectralEnhancer = self.network
        noisy = net.log_magnitude(net.stft(batch["waveform"]))
        clean = net.log_magnitude(net.stft(batch["clean"]))
        valid = (batch["length"].to(noisy.device) // net.hop_length + 1).clamp(max=noisy.shape[-1])
        k = int(self.hparams["frames_per_utterance"])
        if random:
            draw = torch.rand(valid.shape[0], k, device=noisy.device)
        else:
            draw = (torch.arange(k, device=noisy.device)[None, :] + 0.5).expand(valid.shape[0], -1) / k
        centres = (draw * valid[:, None]).long().clamp(max=valid[:, None] - 1)
        contexts = net.contexts(noisy, centres).flatten(0, 1)
        target = clean.gather(2, centres[:, None, :].expand(-1, clean.shape[1], -1)).transpose(1, 2).flatten(0, 1)
        return self.criterion(net.net(contexts), target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss on random centre frames of the training crops."""
        loss = self.frame_loss(batch, random=True)
        self.log("train_loss", loss, batch_size=batch["waveform"].shape[0], prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss on evenly spread frames of the validation mixtures."""
        if batch["waveform"].shape[0]:
            loss = self.frame_loss(batch, random=False)
            self.log("val_loss", loss, batch_size=batch["waveform"].shape[0], prog_bar=True, sync_dist=True)

    def on_test_epoch_start(self) -> None:
        """Starts the clock and empties the per-utterance table."""
        super().on_test_epoch_start()
        self.quality_rows, self.quality_skips = [], []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Enhances each whole utterance; PESQ/STOI/SI-SDR of noisy and enhanced audio (or a counted skip)."""
        if not batch["waveform"].shape[0]:
            return
        enhanced = self(batch["waveform"], batch["length"]).detach().float().cpu().numpy()
        noisy = batch["waveform"].cpu().numpy()
        clean = batch["clean"].cpu().numpy()
        rate = int(self.hparams["sample_rate"])
        for row, n in enumerate(batch["length"].tolist()):
            base = {"utt_id": batch["utt_id"][row], "speaker": batch["speaker"][row],
                    "noise": batch["noise"][row], "snr_db": float(batch["snr_db"][row])}  # fmt: skip
            try:
                before = speech_quality(clean[row, :n], noisy[row, :n], rate)
                after = speech_quality(clean[row, :n], enhanced[row, :n], rate)
            except SpeechQualitySkipError as err:
                log.warning("speech quality of %s skipped: %s", batch["path"][row], err)
                self.quality_skips.append({**base, "path": batch["path"][row], "reason": str(err)})
                continue
            self.quality_rows.append({**base, **{f"noisy_{k}": v for k, v in before.items()},
                                      **{f"enhanced_{k}": v for k, v in after.items()}})  # fmt: skip
        self._test_finished = time.perf_counter()

    def on_test_epoch_end(self) -> None:
        """Writes the per-SNR table (JSON, CSV, plot) and ``results.json``; logs the mean gains."""
        table = quality_table(self.quality_rows)
        for row in table:
            snr = f"{row['snr_db']:g}".replace("-", "m")
            for name in SPEECH_QUALITY_NAMES:
                self.log(f"test_{name}_enhanced_snr{snr}db", row[f"enhanced_{name}"])
                self.log(f"test_{name}_noisy_snr{snr}db", row[f"noisy_{name}"])
        summary = {
            "enhancement_quality": table,
            "enhancement_skipped": {"count": len(self.quality_skips), "items": self.quality_skips},
            "num_test_mixtures": len(self.quality_rows),
            "metric_builds": pesq_build(),
            "network_gflop_per_frame": round(self.network.flops_per_frame() / 1e9, 4),
            "base_channels": int(self.hparams["base_channels"]),
        }
        path = self.write_test_results(summary)
        if path is None:
            return
        directory = Path(path).parent
        (directory / "enhancement_quality.json").write_text(json.dumps(summary, indent=2))
        if table:
            with (directory / "enhancement_quality.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
            quality_figure(table, f"{type(self).__name__} (base {self.hparams['base_channels']})").savefig(
                directory / "enhancement_quality.png", dpi=100
            )
        for row in table:
            log.info("SNR %5.1f dB: PESQ %.3f -> %.3f  STOI %.3f -> %.3f  SI-SDR %.2f -> %.2f dB (%d)",
                     row["snr_db"], row["noisy_pesq"], row["enhanced_pesq"], row["noisy_stoi"],
                     row["enhanced_stoi"], row["noisy_si_sdr"], row["enhanced_si_sdr"], row["count"])  # fmt: skip
        log.info("enhancement quality (%s) in %s; %d skipped", pesq_build(), run_dir(self.trainer),
                 len(self.quality_skips))  # fmt: skip


def quality_figure(table: list[dict[str, Any]], title: str) -> Any:
    """PESQ, STOI and SI-SDR of noisy and enhanced audio against the SNR (a matplotlib figure)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    snrs = [row["snr_db"] for row in table]
    for axis, name in zip(axes, SPEECH_QUALITY_NAMES, strict=True):
        axis.plot(snrs, [row[f"noisy_{name}"] for row in table], "o-", label="noisy")
        axis.plot(snrs, [row[f"enhanced_{name}"] for row in table], "s-", label="enhanced")
        axis.set_xlabel("SNR (dB)")
        axis.set_title(name.upper().replace("_", "-"))
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    plt.close(figure)
    return figure
