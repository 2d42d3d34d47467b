"""CNN + BiLSTM + MLP classifier of Pankratz et al. ("Fully-connected and dropout layers in SER")."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class CNNBiLSTMMLPNet(nn.Module):
    """Two 1-D convolutions over the feature rows, a bidirectional LSTM, mean+max pooling, an MLP (Pankratz et al. §4).

    Layers, from the paper's §4 unless noted:

    * the ``[N, 1, F, T]`` stack is read as ``F = 162`` input channels over ``T`` frames;
    * ``Conv1d(162, 60, kernel 5, stride 1)`` -> ``MaxPool1d(5)``; ``Conv1d(60, 40, kernel 3, stride 1)`` ->
      ``MaxPool1d(5)``: §4 speaks of "max pool layers" with a pooling size of 5, so one follows each convolution,
      as in the authors' notebook. The paper gives neither the pooling stride nor padding; the notebook pools with
      stride 1 and no padding, which is the default here (``pool_stride``). The paper names no activation for the
      convolutions and the notebook has none (max-pooling is their only non-linearity), so none is added; the
      paper's "stride of one" is used for both convolutions, without padding. Dropout is kept out of the
      convolutional part, as §4 argues ("dropout layers with convolution layers only tends to not perform well").
    * a one-layer bidirectional LSTM with input 40 and "output size 80", whose mean and maximum over time are
      concatenated into "a vector of size 160": hence 40 hidden units per direction (``lstm_hidden``).
      (The authors' notebook uses 80 per direction and a 320-wide vector; the paper's numbers are followed.)
      Mean and maximum run over every time step of the segment, padding included, as the paper pools over the
      zero-padded batch.
    * ``BatchNorm1d(160)``, then fully connected layers 160 -> 60 -> 50 -> classes with ReLU and dropout (p =
      0.25) between them and nothing after the last one (§4). With ``dropout=False`` (the paper's comparison
      model, §4-5) the dropout modules are absent and everything else is identical.

    Segments shorter than the receptive field (15 frames with the defaults) are right-padded with zeros, the
    paper's padding value.

    Args:
        num_classes: number of output classes (8 on RAVDESS).
        in_features: feature rows F, used as input channels (162).
        conv_channels: output channels of the two convolutions (60, 40).
        conv_kernels: kernel sizes of the two convolutions (5, 3).
        pool_size: max-pooling window after each convolution (5).
        pool_stride: max-pooling stride (1, the authors' notebook; the paper leaves it open).
        lstm_hidden: LSTM units per direction (40, so that the pooled vector has 160 entries).
        fc_sizes: hidden fully connected widths (60, 50).
        dropout: put dropout between the fully connected layers (the paper's main model) or not.
        dropout_p: dropout probability (0.25).
    """

    def __init__(
        self,
        num_classes: int,
        in_features: int = 162,
        conv_channels: Sequence[int] = (60, 40),
        conv_kernels: Sequence[int] = (5, 3),
        pool_size: int = 5,
        pool_stride: int = 1,
        lstm_hidden: int = 40,
        fc_sizes: Sequence[int] = (60, 50),
        dropout: bool = True,
        dropout_p: float = 0.25,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if in_features < 1 or lstm_hidden < 1:
            raise ValueError("in_features and lstm_hidden must be positive")
        if len(conv_channels) != len(conv_kernels) or not conv_channels:
            raise ValueError("conv_channels and conv_kernels must be non-empty and of equal length")
        if any(c < 1 for c in conv_channels) or any(k < 1 for k in conv_kernels):
            raise ValueError("conv channels and kernels must be positive")
        if pool_size < 1 or pool_stride < 1:
            raise ValueError("pool_size and pool_stride must be positive")
        if any(s < 1 for s in fc_sizes):
            raise ValueError("fc_sizes must be positive")
        if not 0.0 <= dropout_p < 1.0:
            raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
        layers: dict[str, nn.Module] = {}
        channels = in_features
        for i, (out, kernel) in enumerate(zip(conv_channels, conv_kernels, strict=True), start=1):
            layers[f"conv{i}"] = nn.Conv1d(channels, out, kernel_size=kernel)
            layers[f"pool{i}"] = nn.MaxPool1d(pool_size, stride=pool_stride)
            channels = out
        self.features = nn.Sequential(OrderedDict(layers))
        self.lstm = nn.LSTM(channels, lstm_hidden, batch_first=True, bidirectional=True)
        pooled = 4 * lstm_hidden  # mean and max of 2 * lstm_hidden outputs
        # Named layers, so that both settings share parameter names and differ only by the dropout modules.
        head: dict[str, nn.Module] = {"norm": nn.BatchNorm1d(pooled)}
        width = pooled
        for i, size in enumerate(fc_sizes, start=1):
            head[f"fc{i}"] = nn.Linear(width, size)
            head[f"relu{i}"] = nn.ReLU()
            if dropout:
                head[f"dropout{i}"] = nn.Dropout(dropout_p)
            width = size
        head["out"] = nn.Linear(width, num_classes)
        self.classifier = nn.Sequential(OrderedDict(head))
        self.in_features = in_features
        # Frames the convolutional stack needs to produce one time step.
        need = 1
        for kernel in reversed(conv_kernels):
            need = (need - 1) * pool_stride + pool_size
            need = need + kernel - 1
        self.min_frames = need

    def forward(self, x: Tensor) -> Tensor:
        """Maps ``[N, 1, F, T]`` features to ``[N, num_classes]`` logits."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.in_features:
            raise ValueError(f"expected [N, 1, {self.in_features}, T] features, got shape {tuple(x.shape)}")
        x = x[:, 0]
        if x.shape[-1] < self.min_frames:
            x = nn.functional.pad(x, (0, self.min_frames - x.shape[-1]))
        h = self.features(x)  # [N, C, T']
        out, _ = self.lstm(h.transpose(1, 2))  # [N, T', 2 * hidden]
        pooled = torch.cat([out.mean(dim=1), out.amax(dim=1)], dim=-1)
        return self.classifier(pooled)
