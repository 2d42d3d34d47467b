"""Seed 000's benchmark models (Latif et al. §4.4): CNN, CNN-LSTM, DenseNet and DenseNet-LSTM.

All four use DenseHighway's front-end and protocol: a log-power spectrogram (Hamming 25 ms / 10 ms, 128 rows),
training on segments of 256 frames, utterance decisions by averaging the segments' posteriors (§4.2). The
networks are in :mod:`ser_lightning.models.networks.baselines`; each pair differs only in the layer the paper
names (CNN vs CNN-LSTM: a fully connected layer vs an LSTM; DenseNet vs DenseNet-LSTM: global average pooling vs
an LSTM).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ser_lightning.models.base import HalveLROnPlateau, SERClassificationTask
from ser_lightning.models.frontends import FrontEnd, LogSpectrogram
from ser_lightning.models.networks.baselines import SpectrogramCNN, SpectrogramDenseNet


class _SpectrogramTask(SERClassificationTask):
    """DenseHighway's spectrogram front-end, shared by the four benchmarks."""

    def configure_frontend(self) -> FrontEnd:
        """Log-power spectrogram, 128 rows, Hamming 25 ms / 10 ms (§4.2)."""
        a = self.hparams
        return LogSpectrogram(a["sample_rate"], a["win_ms"], a["hop_ms"], n_bins=a["n_bins"])


class _CNNTask(_SpectrogramTask):
    """The CNN / CNN-LSTM task; subclasses fix :attr:`temporal`.

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
        n_bins: spectrogram rows (128 in the paper).
        win_ms: analysis window in milliseconds.
        hop_ms: frame shift in milliseconds.
        conv_channels: maps of each conv block (conv 3x3, BN, ReLU, 2x2 max pooling).
        hidden_size: LSTM units (CNN-LSTM) or units of the fully connected layer replacing it (CNN).
        dense_units: units of the dense layer before the classifier.
        dropout: dropout after the LSTM / its fully connected replacement.
    """

    temporal: ClassVar[Literal["lstm", "fc"]] = "lstm"

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
        conv_channels: tuple[int, ...] = (32, 64, 128, 128),
        hidden_size: int = 128,
        dense_units: int = 128,
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

    def configure_network(self) -> nn.Module:
        """The spectrogram CNN with this class's temporal layer."""
        a = self.hparams
        a["conv_channels"] = [int(c) for c in a["conv_channels"]]  # a list keeps hparams.yaml plain YAML
        return SpectrogramCNN(
            self.num_classes,
            n_freq=a["n_bins"],
            conv_channels=a["conv_channels"],
            temporal=self.temporal,
            hidden_size=a["hidden_size"],
            dense_units=a["dense_units"],
            dropout=a["dropout"],
        )


class CNNLSTM(_CNNTask):
    """Spectrogram CNN-LSTM benchmark of seed 000 (§4.4, after its reference [36]).

    Four conv blocks (3x3 conv, BN, ReLU, 2x2 max pooling; 32/64/128/128 maps), the maps reshaped into 16 steps
    per 256-frame segment, an LSTM of 128 units, dropout 0.5, a dense layer of 128 units, softmax. See
    :class:`~ser_lightning.models.networks.baselines.SpectrogramCNN` for why these sizes. Arguments as
    :class:`CNN`'s.
    """

    temporal = "lstm"


class CNN(_CNNTask):
    """Spectrogram CNN benchmark of seed 000 (§4.4): the CNN-LSTM with a fully connected layer instead of the LSTM.

    The fully connected layer (128 units, BN, ReLU) is applied to every step of the reshaped maps and averaged
    over the steps; the conv stack and the layers after it are those of :class:`CNNLSTM`.

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
        n_bins: spectrogram rows (128 in the paper).
        win_ms: analysis window in milliseconds.
        hop_ms: frame shift in milliseconds.
        conv_channels: maps of each conv block (conv 3x3, BN, ReLU, 2x2 max pooling).
        hidden_size: units of the fully connected layer (CNN) or of the LSTM (CNN-LSTM).
        dense_units: units of the dense layer before the classifier.
        dropout: dropout after the fully connected layer / the LSTM.
    """

    temporal = "fc"


class _DenseNetTask(_SpectrogramTask):
    """The DenseNet / DenseNet-LSTM task; subclasses fix :attr:`pooling`.

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
        n_bins: spectrogram rows (128 in the paper).
        win_ms: analysis window in milliseconds.
        hop_ms: frame shift in milliseconds.
        growth_rate: DenseNet growth rate G (16).
        block_layers: layers L per DenseBlock (6).
        num_blocks: DenseBlocks (3).
        lstm_hidden: LSTM units (DenseNet-LSTM only).
        fc_units: units of the fully connected layer (1000).
        dropout: dropout before the fully connected layer.
    """

    pooling: ClassVar[Literal["average", "lstm"]] = "average"

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
        growth_rate: int = 16,
        block_layers: int = 6,
        num_blocks: int = 3,
        lstm_hidden: int = 128,
        fc_units: int = 1000,
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

    def configure_network(self) -> nn.Module:
        """The spectrogram DenseNet with this class's pooling."""
        a = self.hparams
        return SpectrogramDenseNet(
            self.num_classes,
            n_freq=a["n_bins"],
            growth_rate=a["growth_rate"],
            block_layers=a["block_layers"],
            num_blocks=a["num_blocks"],
            pooling=self.pooling,
            lstm_hidden=a["lstm_hidden"],
            fc_units=a["fc_units"],
            dropout=a["dropout"],
        )


class DenseNet(_DenseNetTask):
    """DenseNet benchmark of seed 000 (§4.4): three DenseBlocks (L = 6, G = 16), global average pooling, FC 1000.

    A fully connected layer of 1000 units, then softmax; DenseHighway's stem and transitions; see
    :class:`~ser_lightning.models.networks.baselines.SpectrogramDenseNet`. Arguments as :class:`DenseNetLSTM`'s.
    """

    pooling = "average"


class DenseNetLSTM(_DenseNetTask):
    """DenseNet-LSTM benchmark of seed 000 (§4.4): the :class:`DenseNet` with an LSTM instead of global pooling.

    The maps are reshaped into a time sequence, as DenseHighway does, and the LSTM's final hidden state replaces
    the global average pooling; everything else is the DenseNet's.

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
        n_bins: spectrogram rows (128 in the paper).
        win_ms: analysis window in milliseconds.
        hop_ms: frame shift in milliseconds.
        growth_rate: DenseNet growth rate G (16).
        block_layers: layers L per DenseBlock (6).
        num_blocks: DenseBlocks (3).
        lstm_hidden: LSTM units (DenseNet-LSTM only; 128, DenseHighway's width).
        fc_units: units of the fully connected layer (1000).
        dropout: dropout before the fully connected layer.
    """

    pooling = "lstm"
