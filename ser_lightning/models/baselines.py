"""The benchmark models of Latif et al. 2020 (§4.4): CNN, CNN-LSTM, DenseNet and DenseNet-LSTM.

All four use DenseHighway's front-end and protocol (:class:`~ser_lightning.models.dense_highway.SpectrogramClassifier`):
a log-power spectrogram (Hamming 25 ms / 10 ms, 128 rows), training on segments of 256 frames, utterance
decisions by averaging the segments' posteriors (§4.2). The networks are in
:mod:`ser_lightning.models.networks.baselines`; each pair differs only in the layer the paper names (CNN vs
CNN-LSTM: a fully connected layer vs an LSTM; DenseNet vs DenseNet-LSTM: global average pooling vs an LSTM).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from torch import nn

from ser_lightning.models.dense_highway import SpectrogramClassifier
from ser_lightning.models.networks.baselines import SpectrogramCNN, SpectrogramDenseNet


class _CNNTask(SpectrogramClassifier):
    """The CNN / CNN-LSTM task; subclasses fix :attr:`temporal`.

    Args:
        conv_channels: maps of each conv block (conv 3x3, BN, ReLU, 2x2 max pooling).
        hidden_size: LSTM units (CNN-LSTM) or units of the fully connected layer replacing it (CNN).
        dense_units: units of the dense layer before the classifier.
        dropout: dropout after the LSTM / its fully connected replacement.
        **kwargs: the arguments of :class:`~ser_lightning.models.dense_highway.SpectrogramClassifier` and of the
            classification base.
    """

    network_class = SpectrogramCNN
    temporal: ClassVar[Literal["lstm", "fc"]] = "lstm"

    def __init__(
        self,
        conv_channels: tuple[int, ...] = (32, 64, 128, 128),
        hidden_size: int = 128,
        dense_units: int = 128,
        dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_network(self) -> nn.Module:
        """The spectrogram CNN with this class's temporal layer."""
        self.hparams["conv_channels"] = [int(c) for c in self.hparams["conv_channels"]]  # plain YAML in hparams
        return self.build_network(self.network_class, n_freq=self.hparams["n_bins"], temporal=self.temporal)


class CNNLSTM(_CNNTask):
    """Spectrogram CNN-LSTM benchmark of Latif et al. 2020 (§4.4, after its reference [36]).

    Four conv blocks (3x3 conv, BN, ReLU, 2x2 max pooling; 32/64/128/128 maps), the maps reshaped into 16 steps
    per 256-frame segment, an LSTM of 128 units, dropout 0.5, a dense layer of 128 units, softmax. See
    :class:`~ser_lightning.models.networks.baselines.SpectrogramCNN` for why these sizes.

    Args:
        **kwargs: the arguments of the CNN task (``conv_channels``, ``hidden_size``, ``dense_units``,
            ``dropout``), of the spectrogram front-end and of the classification base.
    """

    temporal = "lstm"


class CNN(_CNNTask):
    """Spectrogram CNN benchmark of Latif et al. 2020 (§4.4): the CNN-LSTM with a fully connected layer for the LSTM.

    The fully connected layer (128 units, BN, ReLU) is applied to every step of the reshaped maps and averaged
    over the steps; the conv stack and the layers after it are those of :class:`CNNLSTM`.

    Args:
        **kwargs: the arguments of the CNN task (``conv_channels``, ``hidden_size``, ``dense_units``,
            ``dropout``), of the spectrogram front-end and of the classification base.
    """

    temporal = "fc"


class _DenseNetTask(SpectrogramClassifier):
    """The DenseNet / DenseNet-LSTM task; subclasses fix :attr:`pooling`.

    Args:
        growth_rate: DenseNet growth rate G (16).
        block_layers: layers L per DenseBlock (6).
        num_blocks: DenseBlocks (3).
        lstm_hidden: LSTM units (DenseNet-LSTM only; 128, DenseHighway's width).
        fc_units: units of the fully connected layer (1000).
        dropout: dropout before the fully connected layer.
        **kwargs: the arguments of :class:`~ser_lightning.models.dense_highway.SpectrogramClassifier` and of the
            classification base.
    """

    network_class = SpectrogramDenseNet
    pooling: ClassVar[Literal["average", "lstm"]] = "average"

    def __init__(
        self,
        growth_rate: int = 16,
        block_layers: int = 6,
        num_blocks: int = 3,
        lstm_hidden: int = 128,
        fc_units: int = 1000,
        dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_network(self) -> nn.Module:
        """The spectrogram DenseNet with this class's pooling."""
        return self.build_network(self.network_class, n_freq=self.hparams["n_bins"], pooling=self.pooling)


class DenseNet(_DenseNetTask):
    """DenseNet benchmark of Latif et al. 2020 (§4.4): three DenseBlocks (L = 6, G = 16), global average pooling.

    A fully connected layer of 1000 units, then softmax; DenseHighway's stem and transitions; see
    :class:`~ser_lightning.models.networks.baselines.SpectrogramDenseNet`.

    Args:
        **kwargs: the arguments of the DenseNet task, of the spectrogram front-end and of the classification base.
    """

    pooling = "average"


class DenseNetLSTM(_DenseNetTask):
    """DenseNet-LSTM benchmark of Latif et al. 2020 (§4.4): the :class:`DenseNet` with an LSTM for global pooling.

    The maps are reshaped into a time sequence, as DenseHighway does, and the LSTM's final hidden state replaces
    the global average pooling; everything else is the DenseNet's.

    Args:
        **kwargs: the arguments of the DenseNet task, of the spectrogram front-end and of the classification base.
    """

    pooling = "lstm"
