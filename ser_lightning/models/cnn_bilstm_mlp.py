"""CNNBiLSTMMLP: seed 002's CNN + BiLSTM + MLP on the 162-row librosa feature stack, with or without dropout."""

from __future__ import annotations

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from ser_lightning.models.base import HalveLROnPlateau, SERClassificationTask
from ser_lightning.models.frontends import FrontEnd
from ser_lightning.models.frontends_librosa import LibrosaFeatureStack
from ser_lightning.models.networks.cnn_bilstm_mlp import CNNBiLSTMMLPNet


class CNNBiLSTMMLP(SERClassificationTask):
    """CNN + BiLSTM + MLP classifier of Pankratz et al. (seed 002 §3-4) with its librosa feature front-end.

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
        num_classes: number of classes (linked from the DataModule).
        class_names: class names (linked from the DataModule).
        optimizer: optimizer factory (default Adam, lr 1e-3: the authors' learning rate).
        lr_scheduler: scheduler factory (default: halve the LR after 5 epochs without a better ``val_ua``).
        mixup_alpha: mixup on the feature segments; 0 disables it (the paper uses none).
        segment_frames: frames per segment (128, about 4.2 s: a whole RAVDESS utterance).
        eval_segment_hop: hop between evaluation segments (default: ``segment_frames``).
        eval_max_segments: segments per network call during evaluation.
        sample_rate: sample rate of the input audio (16 kHz in the paper; must match the DataModule's).
        n_fft: feature frame length and FFT size in samples (librosa's default 2048).
        hop_length: feature hop in samples (librosa's default 512).
        chroma_tuning: fixed chroma tuning in fractions of a bin (librosa estimates it per utterance; 0 = A440).
        lstm_hidden: LSTM units per direction (40: the paper's 80-wide output, pooled to 160).
        pool_stride: stride of the two max-poolings of size 5 (1, as in the authors' notebook).
        dropout: dropout layers between the fully connected layers (True) or none (the comparison model).
        dropout_p: dropout probability (0.25).
    """

    def __init__(
        self,
        num_classes: int = 4,
        class_names: list[str] | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable = HalveLROnPlateau,
        mixup_alpha: float = 0.0,
        segment_frames: int = 128,
        eval_segment_hop: int | None = None,
        eval_max_segments: int = 256,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        chroma_tuning: float = 0.0,
        lstm_hidden: int = 40,
        pool_stride: int = 1,
        dropout: bool = True,
        dropout_p: float = 0.25,
    ) -> None:
        super().__init__(
            num_classes,
            class_names,
            optimizer,
            lr_scheduler,
            mixup_alpha,
            segment_frames,
            eval_segment_hop,
            eval_max_segments,
        )

    def configure_frontend(self) -> FrontEnd:
        """The 162-row librosa feature stack."""
        a = self.hparams
        return LibrosaFeatureStack(
            a["sample_rate"], n_fft=a["n_fft"], hop_length=a["hop_length"], chroma_tuning=a["chroma_tuning"]
        )

    def configure_network(self) -> nn.Module:
        """The pure CNN + BiLSTM + MLP network."""
        a = self.hparams
        return CNNBiLSTMMLPNet(
            self.num_classes,
            in_features=self.frontend.num_features,
            lstm_hidden=a["lstm_hidden"],
            pool_stride=a["pool_stride"],
            dropout=a["dropout"],
            dropout_p=a["dropout_p"],
        )
