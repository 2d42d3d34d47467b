"""Residual-BLSTM + time pooling + E-transformer network of the E-transformer paper, as a pure ``nn.Module``.

"Learning emotion-salient features with multiple enhancements" (the E-transformer paper): a 3-Conv-Layers
module, two residual-BLSTM modules, time pooling, three E-transformer modules, statistics pooling and a softmax
layer, on 40-band log mel spectrograms. Switches reproduce the component ablations Base1-Base7 of its Table 2.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

BLSTMBlock = Literal["residual", "plain"]
TransformerKind = Literal["e_transformer", "transformer", "none"]
TimePoolingMode = Literal["max", "avg"]


class ConvBlock(nn.Sequential):
    """One block of the 3-Conv-Layers module (§2.1): Conv1d (stride 1, "same" padding) -> BN -> ReLU.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size (5 for the first block, 3 for the others).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=1, padding=kernel_size // 2),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )


class ConvModule(nn.Module):
    """The 3-Conv-Layers module (the E-transformer paper §2.1, Fig. 1).

    Three Conv1d -> BN -> ReLU blocks over time, kernels 5, 3, 3, stride 1, 128 output channels, with a residual
    connection "between the last one-dimensional convolution block and its input": ``y = block3(h2) + h2`` where
    ``h2`` is the output of the second block. The paper leaves open whether the sum comes before or after the
    last ReLU; we add the block's full output (after its ReLU) to its input, as the sentence reads. The
    convolutions keep their biases (the paper does not say otherwise). "Same" padding keeps the frame count.

    Args:
        in_channels: feature dimension of the input (40 mel bands).
        channels: output channels of every block (128).
    """

    def __init__(self, in_channels: int, channels: int = 128) -> None:
        super().__init__()
        self.block1 = ConvBlock(in_channels, channels, 5)
        self.block2 = ConvBlock(channels, channels, 3)
        self.block3 = ConvBlock(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, T]`` -> ``[B, channels, T]``."""
        h = self.block2(self.block1(x))
        return self.block3(h) + h


class PositionwiseFFN(nn.Sequential):
    """The FFN of Eq. (3): ``max(0, x W1 + b1) W2 + b2`` (the E-transformer paper §2.2: 256 -> 512 -> 128).

    Args:
        in_features: input width (the BLSTM output, 2 x hidden).
        hidden: middle width (512).
        out_features: output width (128).
    """

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))


class PlainBLSTM(nn.Module):
    """A BLSTM followed by the FFN, without the residual connection (the "BLSTM" of Base1, Base3, Base6, Base7).

    the E-transformer paper §3.3 describes Base5 (Conv-residual-BLSTM) and Base6 (Conv-BLSTM) as differing
    only in "whether
    there is a connection between the residual module and the FFN module. Except for this difference, the other
    parameters are the same", so the "BLSTM" of the ablations keeps the FFN (and the parameter count) and drops
    the skip: ``H = FFN(Dropout(BLSTM(X)))``.

    Args:
        input_size: feature dimension of X.
        hidden: LSTM units per direction (128).
        ffn_hidden: FFN middle width (512).
        out_features: FFN output width (128).
        dropout: dropout on the BLSTM output (0.2).
    """

    def __init__(
        self, input_size: int, hidden: int = 128, ffn_hidden: int = 512, out_features: int = 128, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.ffn = PositionwiseFFN(2 * hidden, ffn_hidden, out_features)

    def transform(self, x: Tensor) -> Tensor:
        """``FFN(Dropout(BLSTM(x)))`` on ``[B, T, input_size]``."""
        return self.ffn(self.dropout(self.lstm(x)[0]))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, input_size]`` -> ``[B, T, out_features]``."""
        return self.transform(x)


class ResidualBLSTM(PlainBLSTM):
    """The residual-BLSTM module (the E-transformer paper §2.2, Eqs. 1-3): ``H = FFN(BLSTM(X)) + X``.

    BLSTM with 128 units per direction (the input dimension, 128), regularised by dropout 0.2 on its output
    (the paper says only that "BLSTM is regularized using dropout"; a single-layer ``nn.LSTM`` has no internal
    dropout, so it is applied to the BLSTM output, before the FFN), FFN 256 -> 512 -> 128 with a ReLU, and a
    residual connection from the BLSTM input to the FFN output.

    Args:
        input_size: feature dimension of X (must equal ``out_features`` for the residual sum).
        hidden: LSTM units per direction (128).
        ffn_hidden: FFN middle width (512).
        out_features: FFN output width (128).
        dropout: dropout on the BLSTM output (0.2).
    """

    def __init__(
        self, input_size: int, hidden: int = 128, ffn_hidden: int = 512, out_features: int = 128, dropout: float = 0.2
    ) -> None:
        if input_size != out_features:
            raise ValueError(f"a residual BLSTM needs input_size == out_features, got {input_size} != {out_features}")
        super().__init__(input_size, hidden, ffn_hidden, out_features, dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, D]`` -> ``[B, T, D]``."""
        return self.transform(x) + x


class ConvLayerNorm(nn.Module):
    """The Conv1d layer of the E-transformer (§2.4): Conv1d (kernel 3, stride 1) -> ReLU -> LayerNorm.

    Args:
        channels: input and output channels (128, the transformer's d_model).
        kernel_size: odd kernel size (3); "same" padding keeps the frame count.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, stride=1, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, C]`` -> ``[B, T, C]`` (the convolution runs over time)."""
        return self.norm(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))


def encoder_layer(d_model: int, num_heads: int, ffn: int, dropout: float) -> nn.TransformerEncoderLayer:
    """The transformer encoder layer (Fig. 2): MHSA and FFN sub-layers, each ``LayerNorm(x + f(x))``.

    Post-norm as drawn ("a residual connection is employed around two sub-layers, followed by layer
    normalization"), ReLU FFN. The FFN width and dropout are not given in the paper; the defaults follow PyTorch's
    ``nn.TransformerEncoderLayer`` (2048, 0.1), which the authors' PyTorch implementation most likely used.
    """
    return nn.TransformerEncoderLayer(
        d_model, num_heads, dim_feedforward=ffn, dropout=dropout, activation="relu", batch_first=True, norm_first=False
    )


class TransformerBlock(nn.Module):
    """A plain transformer encoder layer (the "transformer" of Base2 and Base3).

    Args:
        d_model: model width (128).
        num_heads: attention heads (8).
        ffn: encoder FFN width.
        dropout: encoder dropout.
    """

    def __init__(self, d_model: int = 128, num_heads: int = 8, ffn: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder_layer(d_model, num_heads, ffn, dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, d_model]`` -> ``[B, T, d_model]``."""
        return self.encoder(x)


class ETransformer(nn.Module):
    """The E-transformer module (the E-transformer paper §2.4, Eqs. 5-8): ``Y = Conv1d(Encoder(Conv1d(T))) + T``.

    Each Conv1d is Conv1d (kernel 3, 128 channels) -> ReLU -> LayerNorm; the encoder layer is
    :func:`encoder_layer` (8 heads, d_model 128). No positional encoding is mentioned in the paper and none is
    added: the convolutions (like the conformer's that motivate the module) supply the local order.

    Args:
        d_model: model width (128).
        num_heads: attention heads (8).
        ffn: encoder FFN width.
        dropout: encoder dropout.
        kernel_size: kernel of the two Conv1d layers (3).
    """

    def __init__(
        self, d_model: int = 128, num_heads: int = 8, ffn: int = 2048, dropout: float = 0.1, kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.conv_in = ConvLayerNorm(d_model, kernel_size)
        self.encoder = encoder_layer(d_model, num_heads, ffn, dropout)
        self.conv_out = ConvLayerNorm(d_model, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, d_model]`` -> ``[B, T, d_model]``."""
        return self.conv_out(self.encoder(self.conv_in(x))) + x


class StatisticsPooling(nn.Module):
    """Statistics pooling (the E-transformer paper §2.5, Eq. 9): ``concat(mean_t(Y), std_t(Y))`` over all frames.

    The standard deviation is the population one with a small variance floor, ``sqrt(var + eps)``, so that it
    is defined (and differentiable) for a single frame. All frames are pooled, padding included, as in the
    paper's zero-padded 4 s inputs.

    Args:
        eps: variance floor.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, D]`` -> ``[B, 2 D]``."""
        var, mean = torch.var_mean(x, dim=1, correction=0)
        return torch.cat([mean, torch.sqrt(var + self.eps)], dim=-1)


class RBLSTMETransformerNet(nn.Module):
    """3-Conv-Layers + residual-BLSTM + time pooling + E-transformer + statistics pooling (Fig. 1).

    On a ``[B, 1, n_mels, T]`` log mel segment (40 bands, 400 frames of 10 ms in the paper's 4 s inputs), the
    mel bands are the channels of one-dimensional convolutions over time:

    1. **3-Conv-Layers module** (§2.1, :class:`ConvModule`): Conv1d kernels 5, 3, 3, 128 channels, BN, ReLU,
       residual around the last block.
    2. **Two residual-BLSTM modules** (§2.2, :class:`ResidualBLSTM`): BLSTM 128 per direction, dropout 0.2,
       FFN 256 -> 512 -> 128, ``H = FFN(BLSTM(X)) + X``.
    3. **Dropout 0.2 and time pooling** (§2.3) over the last one's output: kernel 2, stride 2. The pooling type
       is not given (``time_pooling_mode``, max by default, "borrowing the idea of pooling operation in CNN");
       ``ceil_mode`` keeps an odd last frame, so any T >= 1 works (even T is unaffected).
    4. **Three E-transformer modules** (§2.4, :class:`ETransformer`), d_model 128, 8 heads.
    5. **Statistics pooling** (§2.5): mean and standard deviation over time (256 values).
    6. **Softmax layer** (§2): one linear layer to the classes (the softmax is in the loss / the task).

    Switches reproduce Table 2's ablations (see :class:`~ser_lightning.models.rblstm_etransformer.RBLSTMETransformer`
    for the Base k -> switches table): ``conv_module`` (3-Conv-Layers module present), ``blstm_block``
    (``residual`` or ``plain`` = :class:`PlainBLSTM`), ``time_pooling``, and ``transformer`` (``e_transformer``,
    ``transformer`` = plain :class:`TransformerBlock` layers, or ``none``).

    Args:
        num_classes: number of emotion classes.
        n_mels: mel bands of the input (40).
        conv_module: use the 3-Conv-Layers module; without it the BLSTM reads the mel bands directly (then the
            first BLSTM block cannot be residual, its input being ``n_mels`` wide: use ``blstm_block="plain"``).
        conv_channels: channels of the convolutions, the BLSTM input/output width and d_model (128).
        blstm_block: ``residual`` (residual-BLSTM) or ``plain`` (BLSTM + FFN without the skip connection).
        num_blstm_blocks: number of (residual-)BLSTM modules (2).
        blstm_hidden: LSTM units per direction (128).
        ffn_hidden: middle width of the BLSTM modules' FFN (512).
        dropout: dropout on the BLSTM outputs and before time pooling (0.2).
        time_pooling: pool time by 2 after the last BLSTM module.
        time_pooling_mode: ``max`` or ``avg`` pooling.
        transformer: ``e_transformer``, ``transformer`` (plain encoder layers) or ``none``.
        num_transformer_blocks: number of (E-)transformer modules (3).
        num_heads: attention heads (8; must divide ``conv_channels``).
        transformer_ffn: FFN width inside the encoder layers (not given; PyTorch's default 2048).
        transformer_dropout: dropout inside the encoder layers (not given; PyTorch's default 0.1).
    """

    def __init__(
        self,
        num_classes: int,
        n_mels: int = 40,
        conv_module: bool = True,
        conv_channels: int = 128,
        blstm_block: BLSTMBlock = "residual",
        num_blstm_blocks: int = 2,
        blstm_hidden: int = 128,
        ffn_hidden: int = 512,
        dropout: float = 0.2,
        time_pooling: bool = True,
        time_pooling_mode: TimePoolingMode = "max",
        transformer: TransformerKind = "e_transformer",
        num_transformer_blocks: int = 3,
        num_heads: int = 8,
        transformer_ffn: int = 2048,
        transformer_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        for name, value in (
            ("n_mels", n_mels),
            ("conv_channels", conv_channels),
            ("num_blstm_blocks", num_blstm_blocks),
            ("blstm_hidden", blstm_hidden),
            ("ffn_hidden", ffn_hidden),
            ("num_heads", num_heads),
            ("transformer_ffn", transformer_ffn),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if num_transformer_blocks < 0:
            raise ValueError(f"num_transformer_blocks must be >= 0, got {num_transformer_blocks}")
        if not (0.0 <= dropout < 1.0 and 0.0 <= transformer_dropout < 1.0):
            raise ValueError("dropout and transformer_dropout must be in [0, 1)")
        if blstm_block not in ("residual", "plain"):
            raise ValueError(f"blstm_block must be 'residual' or 'plain', got {blstm_block!r}")
        if transformer not in ("e_transformer", "transformer", "none"):
            raise ValueError(f"transformer must be 'e_transformer', 'transformer' or 'none', got {transformer!r}")
        if time_pooling_mode not in ("max", "avg"):
            raise ValueError(f"time_pooling_mode must be 'max' or 'avg', got {time_pooling_mode!r}")
        if transformer != "none" and conv_channels % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide conv_channels ({conv_channels})")
        if not conv_module and blstm_block == "residual" and n_mels != conv_channels:
            raise ValueError(
                f"without the conv module the first residual BLSTM would read {n_mels} features but output "
                f"{conv_channels}: use blstm_block='plain' (as Base7 does) or n_mels == conv_channels"
            )
        self.n_mels = n_mels
        self.conv = ConvModule(n_mels, conv_channels) if conv_module else None
        block = ResidualBLSTM if blstm_block == "residual" else PlainBLSTM
        width = conv_channels if conv_module else n_mels
        blocks = []
        for _ in range(num_blstm_blocks):
            blocks.append(block(width, blstm_hidden, ffn_hidden, conv_channels, dropout))
            width = conv_channels
        self.blstm = nn.ModuleList(blocks)
        self.pool_dropout = nn.Dropout(dropout)
        pool = nn.MaxPool1d if time_pooling_mode == "max" else nn.AvgPool1d
        self.time_pool = pool(kernel_size=2, stride=2, ceil_mode=True) if time_pooling else None
        if transformer == "none" or num_transformer_blocks == 0:
            self.transformer = None
        else:
            layer = ETransformer if transformer == "e_transformer" else TransformerBlock
            self.transformer = nn.ModuleList(
                layer(conv_channels, num_heads, transformer_ffn, transformer_dropout)
                for _ in range(num_transformer_blocks)
            )
        self.stats_pool = StatisticsPooling()
        self.classifier = nn.Linear(2 * conv_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Classifies log mel segments.

        Args:
            x: ``[B, 1, n_mels, T]`` features; any T >= 1.

        Returns:
            ``[B, num_classes]`` logits.
        """
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise ValueError(f"expected [batch, 1, {self.n_mels}, time] features, got {tuple(x.shape)}")
        h = x[:, 0]  # [B, n_mels, T]: mel bands as channels
        if self.conv is not None:
            h = self.conv(h)
        h = h.transpose(1, 2)  # [B, T, C]
        for block in self.blstm:
            h = block(h)
        h = self.pool_dropout(h)
        if self.time_pool is not None:
            h = self.time_pool(h.transpose(1, 2)).transpose(1, 2)
        if self.transformer is not None:
            for layer in self.transformer:
                h = layer(h)
        return self.classifier(self.stats_pool(h))
