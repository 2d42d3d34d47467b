"""Latif et al.'s benchmark networks (Latif et al. §4.4): CNN, CNN-LSTM, DenseNet and DenseNet-LSTM, as pure modules.

All four read the same input as :class:`~ser_lightning.models.networks.dense_highway.DenseHighwayNet`: a
``[N, 1, F, T]`` log-power spectrogram segment (F = 128 rows, T = 256 frames of 10 ms in the paper). Batch
normalisation precedes every non-linearity and the non-linearity is ReLU (§4.4); the softmax of the paper is left
to the loss and to the task's posterior averaging, so the networks return logits.

* :class:`SpectrogramCNN` is the CNN-LSTM (``temporal="lstm"``) and, with the LSTM swapped for a fully connected
  layer (``temporal="fc"``), the CNN (§4.4: "we choose a fully connected layer instead of an LSTM layer in the
  above CNN-LSTM model"). Nothing else differs.
* :class:`SpectrogramDenseNet` is the DenseNet (``pooling="average"``) and, with an LSTM in place of the global
  average pooling (``pooling="lstm"``), the DenseNet-LSTM. Nothing else differs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ser_lightning.models.networks.dense_highway import DenseBlock, Transition


def _check_input(x: Tensor, n_freq: int, min_frames: int) -> None:
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != n_freq:
        raise ValueError(f"expected [batch, 1, {n_freq}, time] features, got {tuple(x.shape)}")
    if x.shape[3] < min_frames:
        raise ValueError(f"segments must have at least {min_frames} frames, got {x.shape[3]}")


class ConvBlock(nn.Sequential):
    """One convolutional block of the CNN / CNN-LSTM: 3x3 conv -> BN -> ReLU -> 2x2 max pooling (stride 2).

    The convolution has no bias (the batch normalisation that follows has one). Pooling uses ``ceil_mode`` so a
    block never produces an empty map: an odd size ``n`` becomes ``ceil(n / 2)``.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
        )


class LastStateLSTM(nn.Module):
    """Sequence summary by an LSTM: ``[N, steps, features]`` -> its final hidden state ``[N, hidden]``.

    Args:
        input_size: features per step.
        hidden_size: LSTM units.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.out_features = hidden_size

    def forward(self, seq: Tensor) -> Tensor:
        """Returns the last layer's hidden state after the last step."""
        _, (hidden, _) = self.lstm(seq)
        return hidden[-1]


class TimeDistributedFC(nn.Module):
    """The CNN's replacement for the LSTM: a fully connected layer applied to every step, BN, ReLU, time average.

    ``[N, steps, features]`` -> ``[N, hidden]``. The layer has the LSTM's width, so everything after it is the
    same as in the CNN-LSTM; averaging over steps (rather than flattening them) keeps the network valid for
    any segment length, as the LSTM is.

    Args:
        input_size: features per step.
        hidden_size: units of the fully connected layer.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_size, hidden_size, bias=False)
        self.norm = nn.BatchNorm1d(hidden_size)
        self.out_features = hidden_size

    def forward(self, seq: Tensor) -> Tensor:
        """Applies the layer step-wise and averages over the steps."""
        h = self.norm(self.linear(seq).transpose(1, 2))  # [N, hidden, steps]
        return torch.relu(h).mean(dim=2)


class SpectrogramCNN(nn.Module):
    """Spectrogram CNN-LSTM (Latif et al. 2020 §4.4, after its reference [36]) and the CNN derived from it.

    The seed's text does not list reference [36]'s layer sizes (nor its reference list). We implement the
    spectrogram CNN-LSTM of that line of work (Satt et al., Interspeech 2017; Etienne et al., 2018, whose
    spectrogram CNN+LSTM reaches 61.7 % UA on IEMOCAP, next to the 62.0 % the seed lists for [36]):
    convolutional blocks over the spectrogram, the maps reshaped into a time sequence, an LSTM, dense layers,
    softmax. The sizes are our choices, VGG-style and sized for the 128 x 256 segment:

    1. **Four conv blocks** (:class:`ConvBlock`: 3x3 conv, BN, ReLU, 2x2 max pooling) with 32, 64, 128 and
       128 maps: 128 x 256 -> 8 x 16, i.e. 16 steps of 160 ms, each seeing a receptive field of ~0.3 s.
       Doubling the maps while halving the resolution keeps the cost per block similar; the last block stays
       at 128 maps so the LSTM input (128 maps x 8 rows = 1024 values per step) stays moderate.
    2. **Reshape** ``[N, C, F', T']`` -> ``[N, T', C * F']`` (as DenseHighway does).
    3. **Temporal layer**: ``temporal="lstm"`` — an LSTM of 128 units, its final hidden state (128 is the LSTM
       width DenseHighway uses, §4.4); ``temporal="fc"`` — the CNN: a fully connected layer of the same
       128 units (:class:`TimeDistributedFC`: per step, BN, ReLU, then averaged over the steps).
    4. **Dropout** 0.5 (the value §4.4 puts after DenseHighway's LSTM), a **dense layer** of 128 units
       (linear, BN, ReLU) and the linear **classifier** (the softmax is applied by the loss / the task).

    Args:
        num_classes: number of emotion classes.
        n_freq: frequency rows F of the input.
        conv_channels: maps of each conv block (one block per entry).
        temporal: ``"lstm"`` (CNN-LSTM) or ``"fc"`` (CNN).
        hidden_size: LSTM units, or units of the fully connected layer replacing it.
        dense_units: units of the dense layer before the classifier.
        dropout: dropout after the temporal layer.
    """

    def __init__(
        self,
        num_classes: int,
        n_freq: int = 128,
        conv_channels: Sequence[int] = (32, 64, 128, 128),
        temporal: Literal["lstm", "fc"] = "lstm",
        hidden_size: int = 128,
        dense_units: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if n_freq < 1:
            raise ValueError(f"n_freq must be positive, got {n_freq}")
        if not conv_channels or any(c < 1 for c in conv_channels):
            raise ValueError(f"conv_channels must be a non-empty list of positive sizes, got {list(conv_channels)}")
        if temporal not in ("lstm", "fc"):
            raise ValueError(f"temporal must be 'lstm' or 'fc', got {temporal!r}")
        if hidden_size < 1 or dense_units < 1:
            raise ValueError("hidden_size and dense_units must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        channels = [1, *conv_channels]
        self.features = nn.Sequential(*(ConvBlock(a, b) for a, b in itertools.pairwise(channels)))
        rows = n_freq
        for _ in conv_channels:
            rows = math.ceil(rows / 2)
        step_size = channels[-1] * rows
        self.temporal: nn.Module = (
            LastStateLSTM(step_size, hidden_size) if temporal == "lstm" else TimeDistributedFC(step_size, hidden_size)
        )
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Sequential(
            nn.Linear(hidden_size, dense_units, bias=False), nn.BatchNorm1d(dense_units), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(dense_units, num_classes)
        self.n_freq = n_freq
        self.step_size = step_size

    def forward(self, x: Tensor) -> Tensor:
        """Classifies spectrogram segments.

        Args:
            x: ``[N, 1, n_freq, T]`` features; any T >= 1.

        Returns:
            ``[N, num_classes]`` logits.
        """
        _check_input(x, self.n_freq, 1)
        maps = self.features(x)
        seq = maps.flatten(1, 2).transpose(1, 2)  # [N, T', C * F']
        return self.classifier(self.dense(self.dropout(self.temporal(seq))))


class GlobalAveragePool(nn.Module):
    """DenseNet's global average pooling: ``[N, C, F, T]`` -> ``[N, C]``.

    Args:
        channels: C (recorded as ``out_features``).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.out_features = channels

    def forward(self, maps: Tensor) -> Tensor:
        """Averages over frequency and time."""
        return maps.mean(dim=(2, 3))


class SequenceLSTM(LastStateLSTM):
    """DenseNet-LSTM's replacement for the pooling: maps to a time sequence, an LSTM, its final hidden state.

    ``[N, C, F, T]`` maps are reshaped into ``T`` steps of ``C * F`` values, as DenseHighway does.

    Args:
        input_size: ``C * F`` of the maps.
        hidden_size: LSTM units.
    """

    def forward(self, maps: Tensor) -> Tensor:  # type: ignore[override]
        """Reshapes the maps into a time sequence and summarises it."""
        return super().forward(maps.flatten(1, 2).transpose(1, 2))


def _dense_size(size: int, transitions: int) -> int:
    """Size of one axis after the stem (two ceil halvings) and ``transitions`` 2x2 average poolings (floor)."""
    size = math.ceil(math.ceil(size / 2) / 2)
    for _ in range(transitions):
        size //= 2
    return size


class SpectrogramDenseNet(nn.Module):
    """The DenseNet and DenseNet-LSTM benchmarks of Latif et al. 2020 §4.4.

    Layout, on a ``[N, 1, F, T]`` spectrogram segment:

    1. **Initial convolution** — DenseHighway's stem (the paper does not specify it): 7x7 conv with stride 2 and
       ``2G`` maps, BN, ReLU, 3x3 max pooling with stride 2 (-> ``F/4 x T/4``).
    2. **Three DenseBlocks** (L = 6 layers, growth G = 16 each, §4.4), the :class:`DenseBlock` of DenseHighway
       (BN, ReLU, 3x3 conv per layer), with a DenseHighway :class:`Transition` (BN, ReLU, 1x1 conv with
       DenseNet-BC compression 0.5, 2x2 average pooling, stride 2) between consecutive blocks, then DenseNet's
       final BN + ReLU. With the defaults: 32 -> 128 | 64 -> 160 | 80 -> 176 maps of ``F/16 x T/16``.
    3. **Pooling**: ``pooling="average"`` — the DenseNet: global average pooling over the maps (§4.4 writes
       "3x3 global average pooling"; a global pooling has no window, we average over the whole map as
       DenseNet does); ``pooling="lstm"`` — the DenseNet-LSTM: the maps reshaped into ``T/16`` steps of
       ``C * F/16`` values and an LSTM (128 units, DenseHighway's width), its final hidden state.
    4. **Dropout** (default 0.5, the value §4.4 puts after DenseHighway's LSTM), a **fully connected layer of
       1000 units** (linear, BN, ReLU) and the linear **classifier** (softmax applied by the loss / the task).

    Args:
        num_classes: number of emotion classes.
        n_freq: frequency rows F of the input.
        growth_rate: G.
        block_layers: L of each DenseBlock.
        num_blocks: DenseBlocks (transitions between consecutive ones).
        pooling: ``"average"`` (DenseNet) or ``"lstm"`` (DenseNet-LSTM).
        lstm_hidden: LSTM units (DenseNet-LSTM only).
        fc_units: units of the fully connected layer.
        dropout: dropout before the fully connected layer.
    """

    def __init__(
        self,
        num_classes: int,
        n_freq: int = 128,
        growth_rate: int = 16,
        block_layers: int = 6,
        num_blocks: int = 3,
        pooling: Literal["average", "lstm"] = "average",
        lstm_hidden: int = 128,
        fc_units: int = 1000,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if min(growth_rate, block_layers, num_blocks, lstm_hidden, fc_units) < 1:
            raise ValueError("growth_rate, block_layers, num_blocks, lstm_hidden and fc_units must be positive")
        if pooling not in ("average", "lstm"):
            raise ValueError(f"pooling must be 'average' or 'lstm', got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        # Smallest segment length that leaves at least one frame after the stem and the transitions.
        self.min_frames = next(t for t in range(1, 1 << 20) if _dense_size(t, num_blocks - 1) >= 1)
        if n_freq < self.min_frames:
            raise ValueError(f"n_freq must be at least {self.min_frames} for {num_blocks} DenseBlocks, got {n_freq}")
        stem = 2 * growth_rate
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        layers: list[nn.Module] = []
        channels = stem
        for index in range(num_blocks):
            block = DenseBlock(channels, block_layers, growth_rate)
            layers.append(block)
            channels = block.out_channels
            if index < num_blocks - 1:
                layers.append(Transition(channels, channels // 2))
                channels //= 2
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        rows = _dense_size(n_freq, num_blocks - 1)
        self.pool: nn.Module = (
            GlobalAveragePool(channels) if pooling == "average" else SequenceLSTM(channels * rows, lstm_hidden)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(
            nn.Linear(self.pool.out_features, fc_units, bias=False), nn.BatchNorm1d(fc_units), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(fc_units, num_classes)
        self.n_freq = n_freq
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        """Classifies spectrogram segments.

        Args:
            x: ``[N, 1, n_freq, T]`` features; T at least :attr:`min_frames` (13 with three DenseBlocks).

        Returns:
            ``[N, num_classes]`` logits.
        """
        _check_input(x, self.n_freq, self.min_frames)
        return self.classifier(self.fc(self.dropout(self.pool(self.features(self.stem(x))))))
