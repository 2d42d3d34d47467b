"""DenseHighway (Latif et al. 2020): DenseNet + LSTM + Highway on 128-row spectrogram segments.

Also the spectrogram front-end task that DenseHighway and its four baselines (:mod:`ser_lightning.models.baselines`)
share.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.frontends import FrontEnd, LogSpectrogram
from ser_lightning.models.networks.dense_highway import DenseHighwayNet


class SpectrogramClassifier(SERClassificationTask):
    """A classifier on log-power spectrogram segments (Latif et al. 2020 §4.2): the front-end's arguments.

    Subclasses set :attr:`network_class` (a pure network taking ``num_classes`` and ``n_freq``) and declare
    the network's arguments; :meth:`configure_network` passes them on by name.

    Feature normalisation: Latif et al. 2020 (§4.2) say nothing about normalising the spectrogram, so the
    default is ``feature_norm="none"`` (the network's first BatchNorm sees log power as is); this keeps the
    calibrated main job unchanged. ``train`` or ``utterance`` are available (docs/normalisation.md).

    Args:
        n_bins: spectrogram rows (128 in the paper).
        win_ms: analysis window in milliseconds (Hamming, 25).
        hop_ms: frame shift in milliseconds (10).
        **kwargs: the arguments of :class:`~ser_lightning.models.classification.SERClassificationTask`.
    """

    network_class: type[nn.Module]
    default_feature_norm = "none"

    def __init__(self, n_bins: int = 128, win_ms: float = 25.0, hop_ms: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def configure_frontend(self) -> FrontEnd:
        """Log-power spectrogram, ``n_bins`` rows, Hamming ``win_ms`` / ``hop_ms``."""
        a = self.hparams
        return LogSpectrogram(a["sample_rate"], a["win_ms"], a["hop_ms"], n_bins=a["n_bins"])

    def configure_network(self) -> nn.Module:
        """:attr:`network_class` with the task's arguments and ``n_freq = n_bins``."""
        if not hasattr(self, "network_class"):
            raise TypeError(f"{type(self).__name__} must set network_class, the pure network it trains")
        return self.build_network(self.network_class, n_freq=self.hparams["n_bins"])


class DenseHighway(SpectrogramClassifier):
    """DenseNet + LSTM + Highway network (Latif et al. 2020 §3, §4.4) with its spectrogram front-end.

    Input features: log-power STFT spectrogram, Hamming window 25 ms, shift 10 ms, 128 rows; segments of 256
    frames; utterance decisions by averaging segment posteriors. See
    :class:`~ser_lightning.models.networks.DenseHighwayNet` for the layer-by-layer choices.

    Args:
        growth_rate: DenseNet growth rate G (24).
        block_layers: layers L per DenseBlock (6).
        lstm_hidden: LSTM units.
        highway_units: highway layer width (128).
        highway_layers: number of highway layers (3).
        dropout: dropout after the LSTM (0.5).
        **kwargs: the arguments of :class:`SpectrogramClassifier` and of the classification base.
    """

    network_class = DenseHighwayNet

    def __init__(
        self,
        growth_rate: int = 24,
        block_layers: int = 6,
        lstm_hidden: int = 128,
        highway_units: int = 128,
        highway_layers: int = 3,
        dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
