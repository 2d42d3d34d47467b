"""EmoAugNet's hybrid Conv1D-LSTM network (Paul et al. 2025 §IV, Table I), as a pure ``nn.Module``."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Activation = Literal["relu", "elu"]

# Keras' BatchNormalization defaults: momentum 0.99 (PyTorch's momentum is 1 - Keras'), epsilon 1e-3.
KERAS_BN = {"eps": 1e-3, "momentum": 0.01}


def make_activation(name: str) -> nn.Module:
    """The activation module named ``relu`` or ``elu`` (Keras' ELU has alpha 1, as PyTorch's)."""
    if name == "relu":
        return nn.ReLU()
    if name == "elu":
        return nn.ELU()
    raise ValueError(f"activation must be 'relu' or 'elu', got {name!r}")


def keras_parameter_count(module: nn.Module, exclude: tuple[str, ...] = ("input_norm",)) -> int:
    """The parameter count Keras' ``model.summary()`` prints for the same layers.

    Keras counts every weight of a layer, trainable or not: ``trainable parameters + BatchNorm moving mean and
    variance`` (``num_batches_tracked`` has no Keras counterpart). A Keras LSTM has one bias vector of ``4 * units``
    where PyTorch's has two, ``bias_ih`` and ``bias_hh``, whose sum plays that role; the ``bias_hh`` vectors are
    therefore subtracted.

    Args:
        module: the network.
        exclude: names of submodules left out (the optional input standardisation, not a layer of the paper's
            table: it stands for the scaling of the feature vectors before the model).

    Returns:
        The Keras-equivalent number of parameters.
    """
    excluded = [getattr(module, name, None) for name in exclude]
    skipped = {id(p) for sub in excluded if isinstance(sub, nn.Module) for p in sub.parameters()}
    total = sum(p.numel() for p in module.parameters() if p.requires_grad and id(p) not in skipped)
    for name, sub in module.named_modules():
        if any(name == e or name.startswith(e + ".") for e in exclude):
            continue
        if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
            total += sub.running_mean.numel() + sub.running_var.numel()
        if isinstance(sub, nn.LSTM) and sub.bias:
            total -= sum(getattr(sub, n).numel() for n in sub._flat_weights_names if n.startswith("bias_hh"))
    return total


class EmoAugConvLSTMNet(nn.Module):
    """The Conv1D-LSTM classifier of EmoAugNet (Table I of Paul et al. 2025), on frame-major flattened ZCR/RMS/MFCC.

    Input ``[N, 1, F, T]`` features (``F = 22``: ZCR, RMS, 20 MFCCs) are flattened frame by frame into one
    channel, ``[N, 1, T * F]`` — the paper's "features stacked sequentially to maintain the temporal structure";
    ``T = 108`` frames give its 2376 values. Then, layer by layer as in Table I (Keras layer semantics):

    1. ``Conv1D(256, k=5, 'same') -> MaxPool1D(2) -> BN -> Dropout``: 2376 -> 1188 steps.
    2. ``Conv1D(512, k=3, 'same') -> BN -> MaxPool1D(2) -> Dropout``: -> 594 steps.
    3. ``Conv1D(256, k=3, 'same') -> BN -> MaxPool1D(2)``: -> 297 steps.
    4. ``LSTM(128, return_sequences) -> Dropout -> LSTM(128) -> Dropout`` (the last LSTM's final state).
    5. ``Dense(128) -> BN -> Dense(64) -> BN -> Dense(32) -> BN -> Dropout -> Dense(num_classes)`` (logits; the
       softmax is in the loss / the task).

    Choices, from the paper where it speaks: kernel sizes 5 then 3 and stride 1 (§IV text; the parameter
    counts 1,536 = 5*1*256+256 and 393,728 = 3*256*512+512 confirm them); max pooling after each convolution
    with stride 2 (§IV) and pool size 2 (Keras' default; the table's halvings 2376 -> 1188 -> 594 -> 297 need
    'valid' pooling of size 2); 'same' convolution padding (the table keeps 2376 steps after the first
    convolution). The activation of the convolutions is the switch studied in §IV/§V (ReLU best on RAVDESS,
    ELU on IEMOCAP); the fully connected layers use ELU (§IV: "fully connected layers with ELU activation
    functions"). Left open by the paper: the dropout rates (``dropout``, one rate for the five Dropout layers);
    the activation's place (inside the Conv1D/Dense layer, i.e. before the BN that follows, as Keras'
    ``activation=`` argument puts it); initialisation and BN hyperparameters — Keras defaults are used (Glorot
    uniform kernels, orthogonal recurrent kernels, zero biases with LSTM forget-gate bias 1, BN momentum 0.99
    and epsilon 1e-3). Whether features were standardised before the network is not said; ``input_norm`` adds a
    per-feature standardisation (non-affine BatchNorm over the F rows with a cumulative running average, i.e. a
    scaler fitted on the training data) so MFCC_0 (hundreds) does not swamp ZCR and RMS (below 1) inside each
    convolution window. It has no trainable weights and is not part of the Table I count.

    Parameter count: :func:`keras_parameter_count` gives 1,149,511 for 7 classes, Table I's total.

    Args:
        num_classes: emotion classes (7 in the paper).
        n_features: feature rows F per frame.
        activation: activation of the three convolutions (``relu`` or ``elu``).
        dense_activation: activation of the three hidden Dense layers (ELU in the paper).
        dropout: rate of every Dropout layer.
        input_norm: standardise each feature row before flattening.
        conv_channels: filters of the three convolutions.
        kernel_sizes: kernel sizes of the three convolutions.
        lstm_hidden: units of each LSTM.
        dense_units: widths of the hidden Dense layers.
    """

    def __init__(
        self,
        num_classes: int,
        n_features: int = 22,
        activation: Activation = "relu",
        dense_activation: Activation = "elu",
        dropout: float = 0.2,
        input_norm: bool = True,
        conv_channels: tuple[int, int, int] = (256, 512, 256),
        kernel_sizes: tuple[int, int, int] = (5, 3, 3),
        lstm_hidden: int = 128,
        dense_units: tuple[int, ...] = (128, 64, 32),
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if n_features < 1:
            raise ValueError(f"n_features must be positive, got {n_features}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if len(conv_channels) != 3 or len(kernel_sizes) != 3:
            raise ValueError("conv_channels and kernel_sizes need three values (three convolution blocks)")
        if min(conv_channels) < 1 or min(kernel_sizes) < 1 or lstm_hidden < 1 or not dense_units:
            raise ValueError("channels, kernel sizes, lstm_hidden and dense_units must be positive and non-empty")
        make_activation(activation), make_activation(dense_activation)  # validate both names
        self.n_features = n_features
        self.input_norm = nn.BatchNorm1d(n_features, affine=False, momentum=None) if input_norm else None
        c1, c2, c3 = conv_channels
        k1, k2, k3 = kernel_sizes
        self.conv = nn.Sequential(
            nn.Conv1d(1, c1, k1, padding="same"),
            make_activation(activation),
            nn.MaxPool1d(2),
            nn.BatchNorm1d(c1, **KERAS_BN),
            nn.Dropout(dropout),
            nn.Conv1d(c1, c2, k2, padding="same"),
            make_activation(activation),
            nn.BatchNorm1d(c2, **KERAS_BN),
            nn.MaxPool1d(2),
            nn.Dropout(dropout),
            nn.Conv1d(c2, c3, k3, padding="same"),
            make_activation(activation),
            nn.BatchNorm1d(c3, **KERAS_BN),
            nn.MaxPool1d(2),
        )
        self.lstm1 = nn.LSTM(c3, lstm_hidden, batch_first=True)
        self.lstm_dropout1 = nn.Dropout(dropout)
        self.lstm2 = nn.LSTM(lstm_hidden, lstm_hidden, batch_first=True)
        self.lstm_dropout2 = nn.Dropout(dropout)
        layers: list[nn.Module] = []
        width = lstm_hidden
        for units in dense_units:
            layers += [nn.Linear(width, units), make_activation(dense_activation), nn.BatchNorm1d(units, **KERAS_BN)]
            width = units
        layers += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.classifier = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras' default initialisation.

        Glorot-uniform kernels, orthogonal recurrent kernels, zero biases and a forget-gate bias of 1
        (``unit_forget_bias``) in the LSTMs.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LSTM):
                hidden = module.hidden_size
                nn.init.xavier_uniform_(module.weight_ih_l0)
                nn.init.orthogonal_(module.weight_hh_l0)
                nn.init.zeros_(module.bias_ih_l0)
                nn.init.zeros_(module.bias_hh_l0)
                with torch.no_grad():
                    module.bias_ih_l0[hidden : 2 * hidden] = 1.0  # PyTorch gate order: input, forget, cell, output

    def forward(self, x: Tensor) -> Tensor:
        """Classifies feature segments.

        Args:
            x: ``[N, 1, n_features, T]`` features; any ``T`` with ``T * n_features >= 8``.

        Returns:
            ``[N, num_classes]`` logits.
        """
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_features:
            raise ValueError(f"expected [batch, 1, {self.n_features}, frames] features, got {tuple(x.shape)}")
        if x.shape[2] * x.shape[3] < 8:
            raise ValueError(f"need at least 8 values per segment (three poolings), got {x.shape[2] * x.shape[3]}")
        rows = x[:, 0]
        if self.input_norm is not None:
            rows = self.input_norm(rows)
        seq = rows.transpose(1, 2).reshape(x.shape[0], 1, -1)  # frame-major: [zcr, rms, mfcc..] of frame 0, 1, ...
        h = self.conv(seq).transpose(1, 2)  # [N, steps, channels]
        h, _ = self.lstm1(h)
        _, (last, _) = self.lstm2(self.lstm_dropout1(h))
        return self.classifier(self.lstm_dropout2(last[-1]))
