"""Triantafyllopoulos et al.'s end-to-end raw-audio CNN-LSTM for continuous arousal (after Trigeorgis et al., 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class EndToEndNet(nn.Module):
    """Raw waveform -> one prediction per target every 40 ms (Triantafyllopoulos et al. 2019 §3.2.2).

    The waveform is cut into non-overlapping chunks of ``chunk_samples`` (40 ms at 16 kHz = 640 samples, one
    per RECOLA annotation frame: chunk ``i`` covers ``[i * 40 ms, (i + 1) * 40 ms)``; the last, partial chunk is
    zero-padded). Each chunk goes through the convolutional feature extractor on its own, as in the reference
    implementation of Trigeorgis et al. ("Adieu features?", ICASSP 2016) that Triantafyllopoulos et al. 2019 builds
    on; the sequence of chunk features goes through the LSTMs, which carry the temporal context:

    1. ``Conv1d(1 -> conv_channels[0], kernel_sizes[0])`` + ReLU, dropout 0.5, max-pooling (size = stride
       = ``pool_sizes[0]`` = 2) over time (§3.2.2: "20 and 40 filter banks", "max pooling ... stride of 2 and 10",
       "dropout of 0.5 after each convolution layer").
    2. ``Conv1d(conv_channels[0] -> conv_channels[1], kernel_sizes[1])`` + ReLU, dropout 0.5, max-pooling
       (size = stride = ``pool_sizes[1]`` = 10) over time.
    3. The flattened chunk features (``40 * 640 / 2 / 10 = 1280`` per chunk) feed two unidirectional LSTM layers
       of 256 units (§3.2.2).
    4. A fully connected layer and tanh map each LSTM output to ``num_outputs`` values in ``[-1, 1]``.

    Choices the paper leaves open:

    * Filters: Triantafyllopoulos et al. 2019 says "two 1D convolution layers containing 20 and 40 filter banks", read
      here as 20
      and 40 output channels. Trigeorgis et al.'s released code has 40 channels in both layers with kernels of
      20 and 40 samples; Triantafyllopoulos et al. 2019's numbers match those kernels, so the kernel sizes are 20 and
      40 samples
      (1.25 and 2.5 ms at 16 kHz), and ``conv_channels=(40, 40)`` gives the reference's widths.
    * Convolutions are ``same``-padded with zeros at chunk edges, stride 1, ReLU-activated (as the reference).
    * Pooling is over time with size equal to stride. The reference pools its second stage over the channel
      axis (40 -> 4 maps); both give 1280 features per chunk with the default sizes.
    * Dropout is applied after the activation, before the pooling; no dropout between the LSTMs.
    * Trigeorgis et al.'s post-processing (median filtering, centring, scaling, time shift) is not part of the
      network.

    Args:
        num_outputs: targets predicted per chunk (e.g. 1 for arousal, 2 for arousal and valence).
        chunk_samples: samples per chunk (40 ms at the sample rate: 640 at 16 kHz).
        conv_channels: output channels of the two convolutions (20, 40).
        kernel_sizes: kernel sizes in samples of the two convolutions (20, 40).
        pool_sizes: max-pooling sizes (= strides) after each convolution (2, 10).
        lstm_hidden: units of each LSTM layer (256).
        lstm_layers: LSTM layers (2).
        dropout: dropout after each convolution (0.5).
        eval_max_chunks: outside training, chunks per call of the convolutional part (bounds the memory of
            whole 5-minute recordings: 7500 chunks).
    """

    def __init__(
        self,
        num_outputs: int,
        chunk_samples: int = 640,
        conv_channels: tuple[int, int] = (20, 40),
        kernel_sizes: tuple[int, int] = (20, 40),
        pool_sizes: tuple[int, int] = (2, 10),
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        dropout: float = 0.5,
        eval_max_chunks: int = 2048,
    ) -> None:
        super().__init__()
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be at least 1, got {num_outputs}")
        if len(conv_channels) != 2 or len(kernel_sizes) != 2 or len(pool_sizes) != 2:
            raise ValueError("conv_channels, kernel_sizes and pool_sizes must each have two values")
        if min(*conv_channels, *kernel_sizes, *pool_sizes) < 1:
            raise ValueError("conv_channels, kernel_sizes and pool_sizes must be positive")
        if lstm_hidden < 1 or lstm_layers < 1 or eval_max_chunks < 1:
            raise ValueError("lstm_hidden, lstm_layers and eval_max_chunks must be positive")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        pooled = chunk_samples // pool_sizes[0] // pool_sizes[1]
        if pooled < 1:
            raise ValueError(
                f"a chunk of {chunk_samples} samples is shorter than the pooling ({pool_sizes[0]} x {pool_sizes[1]})"
            )
        self.num_outputs = num_outputs
        self.chunk_samples = chunk_samples
        self.eval_max_chunks = eval_max_chunks
        self.features = nn.Sequential(
            nn.Conv1d(1, conv_channels[0], kernel_sizes[0], padding="same"),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.MaxPool1d(pool_sizes[0], pool_sizes[0]),
            nn.Conv1d(conv_channels[0], conv_channels[1], kernel_sizes[1], padding="same"),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.MaxPool1d(pool_sizes[1], pool_sizes[1]),
            nn.Flatten(1),
        )
        self.feature_size = conv_channels[1] * pooled
        self.lstm = nn.LSTM(self.feature_size, lstm_hidden, num_layers=lstm_layers, batch_first=True)
        self.output = nn.Linear(lstm_hidden, num_outputs)

    def num_chunks(self, samples: int) -> int:
        """Chunks (output frames) of a waveform of ``samples`` samples: those that overlap it."""
        return max(1, math.ceil(samples / self.chunk_samples))

    def forward(self, x: Tensor) -> Tensor:
        """Per-chunk predictions.

        Args:
            x: ``[B, 1, 1, T]`` (the :class:`~ser_lightning.models.frontends.RawWaveform` front-end's output) or
                ``[B, T]`` waveforms.

        Returns:
            ``[B, ceil(T / chunk_samples), num_outputs]`` predictions in ``[-1, 1]``.
        """
        waveform = x.reshape(x.shape[0], -1) if x.dim() != 2 else x
        batch, samples = waveform.shape
        chunks = self.num_chunks(samples)
        waveform = nn.functional.pad(waveform, (0, chunks * self.chunk_samples - samples))
        pieces = waveform.reshape(batch * chunks, 1, self.chunk_samples)
        if self.training or pieces.shape[0] <= self.eval_max_chunks:
            feats = self.features(pieces)
        else:
            feats = torch.cat([self.features(p) for p in pieces.split(self.eval_max_chunks)])
        hidden, _ = self.lstm(feats.reshape(batch, chunks, self.feature_size))
        return torch.tanh(self.output(hidden))
