"""CNNBiLSTMMLP: Pankratz et al.' CNN + BiLSTM + MLP on the 162-row librosa feature stack, with or without dropout."""

from __future__ import annotations

from typing import Any

from torch import nn

from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.frontends import FrontEnd
from ser_lightning.models.frontends_librosa import LibrosaFeatureStack
from ser_lightning.models.networks.cnn_bilstm_mlp import CNNBiLSTMMLPNet


class CNNBiLSTMMLP(SERClassificationTask):
    """CNN + BiLSTM + MLP classifier of Pankratz et al. (§3-4) with its librosa feature front-end.

    Front-end: :class:`~ser_lightning.models.frontends_librosa.LibrosaFeatureStack`, 162 rows per frame (ZCR,
    chroma, 20 MFCCs, RMS, 128 mel powers) at 16 kHz with librosa's default 2048-sample frames and 512-sample
    hop. Network: :class:`~ser_lightning.models.networks.cnn_bilstm_mlp.CNNBiLSTMMLPNet`.

    Input length: the paper classifies whole, variable-length utterances, zero-padded to the longest one in the
    batch (§3). The toolkit trains on fixed segments, so ``segment_frames`` defaults to 128 frames (4.19 s at
    16 kHz), longer than almost every RAVDESS clip (about 3-5 s): such an utterance is one zero-padded segment,
    as in the paper; a longer one is trained on random 128-frame crops and evaluated by averaging the posteriors
    of its segments.

    ``dropout=False`` is the paper's comparison model (§4-5): the same network without the dropout layers.

    Args:
        n_fft: feature frame length and FFT size in samples (librosa's default 2048).
        hop_length: feature hop in samples (librosa's default 512).
        chroma_tuning: fixed chroma tuning in fractions of a bin (librosa estimates it per utterance; 0 = A440).
        lstm_hidden: LSTM units per direction (40: the paper's 80-wide output, pooled to 160).
        pool_stride: stride of the two max-poolings of size 5 (1, as in the authors' notebook).
        dropout: dropout layers between the fully connected layers (True) or none (the comparison model).
        dropout_p: dropout probability (0.25).
        **kwargs: the arguments of the classification base (``segment_frames`` defaults to 128 here).

    Feature normalisation: Pankratz et al. say nothing about scaling the 162 rows (their only normalisation is a
    BatchNorm after the BiLSTM), so the default is ``feature_norm="none"``, today's behaviour. The rows span
    very different scales (linear mel power, chroma in 0-1, MFCCs in dB); ``feature_norm="train"`` is the
    recommended alternative (docs/normalisation.md).
    """

    default_segment_frames = 128
    default_feature_norm = "none"

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int = 512,
        chroma_tuning: float = 0.0,
        lstm_hidden: int = 40,
        pool_stride: int = 1,
        dropout: bool = True,
        dropout_p: float = 0.25,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_frontend(self) -> FrontEnd:
        """The 162-row librosa feature stack."""
        a = self.hparams
        return LibrosaFeatureStack(
            a["sample_rate"], n_fft=a["n_fft"], hop_length=a["hop_length"], chroma_tuning=a["chroma_tuning"]
        )

    def configure_network(self) -> nn.Module:
        """The pure CNN + BiLSTM + MLP network on the front-end's rows."""
        return self.build_network(CNNBiLSTMMLPNet, in_features=self.frontend.num_features)
