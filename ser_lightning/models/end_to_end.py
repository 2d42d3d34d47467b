"""EndToEndRegressor: Triantafyllopoulos et al.'s raw-waveform CNN-LSTM predicting arousal (and valence) every 40 ms."""

from __future__ import annotations

from typing import Any

from torch import nn

from ser_lightning.models.frontends import FrontEnd, RawWaveform
from ser_lightning.models.networks.end_to_end import EndToEndNet
from ser_lightning.models.regression import SERRegressionTask


class EndToEndRegressor(SERRegressionTask):
    """The end-to-end model of Triantafyllopoulos et al. §3.2.2 (after Trigeorgis et al., 2016) on the regression base.

    Input: the raw 16 kHz waveform (:class:`~ser_lightning.models.frontends.RawWaveform`), cut by the network
    into 40 ms chunks, one per target frame (``sample_rate / target_rate_hz`` samples); two convolutions (20 and
    40 filters, max-pooling strides 2 and 10, dropout 0.5), two LSTMs of 256 units, a fully connected layer with
    tanh: one value per target per 40 ms. Trained with ``1 - CCC``. See
    :class:`~ser_lightning.models.networks.end_to_end.EndToEndNet` for the choices the paper leaves open.

    Mapping of the paper's training set-up: its "6 s audio sample" inputs are the DataModule's training crops
    (``segment_seconds: 6.0``, waveform and targets cropped together on a 40 ms boundary); evaluation runs on
    whole recordings. The paper trains 50 epochs, batch 25, learning rate 1e-4 (``configs/models/end_to_end.yaml``
    sets Adam's rate; the classification default is 1e-3) and keeps the model with the best validation CCC.

    Args:
        conv_channels: filters of the two convolutions (20, 40).
        kernel_sizes: kernel sizes of the two convolutions in samples (20, 40; Trigeorgis et al.'s code).
        pool_sizes: max-pooling sizes = strides (2, 10).
        lstm_hidden: units per LSTM layer (256).
        lstm_layers: LSTM layers (2).
        dropout: dropout after each convolution (0.5).
        eval_max_chunks: chunks per call of the convolutions outside training (memory bound).
        **kwargs: the arguments of the regression base (``num_targets``, ``target_names``, ``target_rate_hz``)
            and of the task base.
    """

    def __init__(
        self,
        conv_channels: tuple[int, int] = (20, 40),
        kernel_sizes: tuple[int, int] = (20, 40),
        pool_sizes: tuple[int, int] = (2, 10),
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        dropout: float = 0.5,
        eval_max_chunks: int = 2048,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_task(self) -> None:
        """The regression base's settings; a target frame must be a whole number of samples."""
        super().configure_task()
        rate = self.hparams["sample_rate"]
        chunk = rate / self.target_rate_hz
        if abs(chunk - round(chunk)) > 1e-6:
            raise ValueError(
                f"a target frame (1/{self.target_rate_hz} s) must be a whole number of samples at {rate} Hz"
            )

    def configure_frontend(self) -> FrontEnd:
        """The raw waveform (no features)."""
        return RawWaveform(self.hparams["sample_rate"])

    def configure_network(self) -> nn.Module:
        """The pure end-to-end network, chunking the waveform into target frames."""
        a = self.hparams
        return self.build_network(
            EndToEndNet, num_outputs=self.num_targets, chunk_samples=round(a["sample_rate"] / a["target_rate_hz"])
        )
