"""DenseNet + LSTM + Highway network of Latif et al. 2020 (Latif et al., robust SER), as a pure ``nn.Module``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DenseLayer(nn.Module):
    """DenseNet composite function H_{l,G}: BN -> ReLU -> 3x3 conv with G output maps, concatenated to the input.

    Args:
        in_channels: input feature maps.
        growth_rate: G, the maps this layer adds.
    """

    def __init__(self, in_channels: int, growth_rate: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Returns ``[x, H(x)]`` along channels."""
        return torch.cat([x, self.conv(torch.relu(self.norm(x)))], dim=1)


class DenseBlock(nn.Sequential):
    """DenseBlock(L, G): L dense layers, each seeing the maps of all the layers before it (Latif et al. 2020, Eq. 1).

    Args:
        in_channels: input feature maps.
        num_layers: L.
        growth_rate: G.
    """

    def __init__(self, in_channels: int, num_layers: int, growth_rate: int) -> None:
        super().__init__(*(DenseLayer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers)))
        self.out_channels = in_channels + num_layers * growth_rate


class Transition(nn.Sequential):
    """Transition layer: BN -> ReLU -> 1x1 conv -> 2x2 average pooling with stride 2.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps (DenseNet-BC compression: half the input).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class HighwayLayer(nn.Module):
    """Highway layer ``y = H(x) * T(x) + x * (1 - T(x))`` with ReLU H and sigmoid transform gate T.

    The carry gate is coupled, C = 1 - T, as in Srivastava et al. The transform-gate bias starts negative
    (-1) so that the layers initially carry their input, as the highway paper recommends.

    Args:
        features: width of input and output.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.transform = nn.Linear(features, features)
        self.gate = nn.Linear(features, features)
        nn.init.constant_(self.gate.bias, -1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Applies the gated transform."""
        t = torch.sigmoid(self.gate(x))
        return torch.relu(self.transform(x)) * t + x * (1.0 - t)


class DenseHighwayNet(nn.Module):
    """DenseNet + LSTM + Highway network for utterance-segment emotion classification (Latif et al. 2020 §3, §4.4).

    Layout, on a ``[B, 1, F, T]`` spectrogram segment (F = 128, T = 256 in the paper):

    1. **Initial convolution** — the paper does not specify it; as DenseNet does: a 7x7 convolution with
       stride 2 and ``2G`` maps, BN, ReLU, 3x3 max pooling with stride 2 (-> ``F/4 x T/4``).
    2. **DenseBlock 1** (L = 6, G = 24), then a **transition** (BN, ReLU, 1x1 conv with DenseNet-BC
       compression 0.5, 2x2 average pooling, stride 2), then **DenseBlock 2** (L = 6, G = 24) followed by
       DenseNet's final BN + ReLU.
    3. **Reshape** the ``[B, C, F/8, T/8]`` maps into a sequence of ``T/8`` steps of ``C * F/8`` values, an
       **LSTM**, and **dropout 0.5** on its final hidden state.
    4. **Skip connections**: each DenseBlock's output is global-average pooled (DenseNet's pooling) and
       projected to the highway width; the two are summed (the paper's "sum of features discovered by each
       DenseBlock") and concatenated with the LSTM features.
    5. A linear projection to the highway width with ReLU, **three highway layers** of 128 units (ReLU), and a
       linear classifier (softmax applied by the loss / the task).

    Args:
        num_classes: number of emotion classes.
        n_freq: frequency rows F of the input (must be divisible by 8).
        growth_rate: G.
        block_layers: L of each of the two DenseBlocks.
        lstm_hidden: LSTM hidden units (the paper does not give them; 128 matches the highway width).
        highway_units: width of the highway layers.
        highway_layers: number of highway layers.
        dropout: dropout after the LSTM.
    """

    def __init__(
        self,
        num_classes: int,
        n_freq: int = 128,
        growth_rate: int = 24,
        block_layers: int = 6,
        lstm_hidden: int = 128,
        highway_units: int = 128,
        highway_layers: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if n_freq % 8 or n_freq < 8:
            raise ValueError(f"n_freq must be a positive multiple of 8 (three halvings), got {n_freq}")
        stem = 2 * growth_rate
        self.stem = nn.Sequential(
            nn.Conv2d(1, stem, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        self.block1 = DenseBlock(stem, block_layers, growth_rate)
        mid = self.block1.out_channels // 2
        self.transition = Transition(self.block1.out_channels, mid)
        self.block2 = DenseBlock(mid, block_layers, growth_rate)
        out = self.block2.out_channels
        self.final_norm = nn.Sequential(nn.BatchNorm2d(out), nn.ReLU(inplace=True))
        self.lstm = nn.LSTM(out * (n_freq // 8), lstm_hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.skip1 = nn.Linear(self.block1.out_channels, highway_units)
        self.skip2 = nn.Linear(out, highway_units)
        self.project = nn.Sequential(nn.Linear(lstm_hidden + highway_units, highway_units), nn.ReLU(inplace=True))
        self.highway = nn.Sequential(*(HighwayLayer(highway_units) for _ in range(highway_layers)))
        self.classifier = nn.Linear(highway_units, num_classes)
        self.n_freq = n_freq

    def forward(self, x: Tensor) -> Tensor:
        """Classifies spectrogram segments.

        Args:
            x: ``[B, 1, n_freq, T]`` features; any T >= 8.

        Returns:
            ``[B, num_classes]`` logits.
        """
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_freq:
            raise ValueError(f"expected [batch, 1, {self.n_freq}, time] features, got {tuple(x.shape)}")
        b1 = self.block1(self.stem(x))
        b2 = self.final_norm(self.block2(self.transition(b1)))
        seq = b2.flatten(1, 2).transpose(1, 2)  # [B, T/8, C * F/8]
        _, (hidden, _) = self.lstm(seq)
        context = self.dropout(hidden[-1])
        skip = self.skip1(b1.mean(dim=(2, 3))) + self.skip2(b2.mean(dim=(2, 3)))
        return self.classifier(self.highway(self.project(torch.cat([context, skip], dim=1))))
