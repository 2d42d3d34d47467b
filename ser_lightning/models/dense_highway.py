"""DenseHighway: seed 000's DenseNet + LSTM + Highway model on 128-row spectrogram segments."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ser_lightning.models.base import HalveLROnPlateau, SERClassificationTask
from ser_lightning.models.frontends import FrontEnd, LogSpectrogram
from ser_lightning.models.networks.dense_highway import DenseHighwayNet


class DenseHighway(SERClassificationTask):
    """DenseNet + LSTM + Highway network (Latif et al., seed 000 §3, §4.4) with its spectrogram front-end.

    Input features: log-power STFT spectrogram, Hamming window 25 ms, shift 10 ms, 128 rows; segments of 256
    frames; utterance decisions by averaging segment posteriors. See
    :class:`~ser_lightning.models.networks.DenseHighwayNet` for the layer-by-layer choices.

    Args:
        num_classes: number of classes (linked from the DataModule).
        class_names: class names (linked from the DataModule).
        optimizer: optimizer factory (default Adam, lr 1e-3).
        lr_scheduler: scheduler factory (default: halve the LR after 5 epochs without a better ``val_ua``).
        mixup_alpha: mixup on the spectrogram segments; 0 disables it.
        segment_frames: frames per segment (256 in the paper).
        eval_segment_hop: hop between evaluation segments (default: ``segment_frames``).
        eval_max_segments: segments per network call during evaluation.
        sample_rate: sample rate of the input audio (must match the DataModule's).
        n_bins: spectrogram rows (128 in the paper; a multiple of 8).
        win_ms: analysis window in milliseconds.
        hop_ms: frame shift in milliseconds.
        growth_rate: DenseNet growth rate G (24).
        block_layers: layers L per DenseBlock (6).
        lstm_hidden: LSTM units.
        highway_units: highway layer width (128).
        highway_layers: number of highway layers (3).
        dropout: dropout after the LSTM (0.5).
    """

    def __init__(
        self,
        num_classes: int = 4,
        class_names: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable = HalveLROnPlateau,
        mixup_alpha: float = 0.0,
        segment_frames: int = 256,
        eval_segment_hop: int | None = None,
        eval_max_segments: int = 256,
        sample_rate: int = 16000,
        n_bins: int = 128,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        growth_rate: int = 24,
        block_layers: int = 6,
        lstm_hidden: int = 128,
        highway_units: int = 128,
        highway_layers: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(
            num_classes,
            class_names,
            optimizer,
            lr_scheduler,
            mixup_alpha,
            segment_frames,
            eval_segment_hop,
            eval_max_segments,
        )

    def configure_frontend(self) -> FrontEnd:
        """Log-power spectrogram, 128 rows, Hamming 25 ms / 10 ms."""
        a = self.hparams
        return LogSpectrogram(a["sample_rate"], a["win_ms"], a["hop_ms"], n_bins=a["n_bins"])

    def configure_network(self) -> nn.Module:
        """The pure DenseHighway network."""
        a = self.hparams
        return DenseHighwayNet(
            self.num_classes,
            n_freq=a["n_bins"],
            growth_rate=a["growth_rate"],
            block_layers=a["block_layers"],
            lstm_hidden=a["lstm_hidden"],
            highway_units=a["highway_units"],
            highway_layers=a["highway_layers"],
            dropout=a["dropout"],
        )
