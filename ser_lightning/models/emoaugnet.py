"""EmoAugNet: Paul et al. 2025's Conv1D-LSTM on frame-major ZCR/RMS/MFCC sequences."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.frontends import FrontEnd
from ser_lightning.models.frontends_emoaugnet import ZcrRmsMfcc
from ser_lightning.models.networks.emoaugnet import EmoAugConvLSTMNet


class EmoAugNet(SERClassificationTask):
    """EmoAugNet (Paul et al. 2025 §IV): ZCR + RMS + 20 MFCCs per frame, flattened, through a Conv1D-LSTM network.

    Front-end: :class:`~ser_lightning.models.frontends_emoaugnet.ZcrRmsMfcc` (librosa's defaults: frames of 2048
    samples every 512, centred, at 22.05 kHz). Network:
    :class:`~ser_lightning.models.networks.emoaugnet.EmoAugConvLSTMNet` (Table I, 1,149,511 parameters for 7
    classes in Keras' count).

    Input length: the paper classifies a fixed 2.5 s clip per file (108 frames, 2376 values), so
    ``segment_frames = 108``. The base pads shorter utterances with ``pad_value = 0`` features; longer ones are
    trained on random 108-frame crops and evaluated by averaging the posteriors of their 108-frame segments
    (the paper truncates them to one clip instead). The paper's waveform augmentation (noise, pitch shift,
    time stretch, shift — §III) belongs to the DataModule's training transform, not to this model.

    Training in the paper: Adam-style learning rate 1e-3, reduced when validation accuracy stalls, early
    stopping (§V) — the base's defaults (Adam 1e-3, halving on a ``val_ua`` plateau) and the config's
    EarlyStopping callback.

    Feature normalisation: the paper is silent; the network's ``input_norm`` (on by default) already
    standardises each row with running statistics, so the base's ``feature_norm`` defaults to ``none`` (no
    double normalisation). ``feature_norm="train"`` with ``input_norm=False`` is the explicit alternative.

    Args:
        frame_length: analysis frame in samples (librosa's 2048).
        hop_length: hop in samples (librosa's 512).
        n_mfcc: MFCCs per frame (20).
        activation: activation of the convolutions: ``relu`` (best on RAVDESS) or ``elu`` (best on IEMOCAP).
        dense_activation: activation of the hidden Dense layers (ELU in the paper).
        dropout: rate of every Dropout layer (not given in the paper).
        input_norm: standardise each feature row (running statistics) before the network.
        conv_channels: filters of the three Conv1D blocks (Table I: 256, 512, 256); narrower for a CPU budget.
        lstm_hidden: units of the LSTM (Table I: 128).
        **kwargs: the arguments of the classification base (``segment_frames`` defaults to 108 and
            ``sample_rate`` to 22050 here).
    """

    default_segment_frames = 108
    default_feature_norm = "none"
    default_sample_rate = 22050

    def __init__(
        self,
        frame_length: int = 2048,
        hop_length: int = 512,
        n_mfcc: int = 20,
        activation: Literal["relu", "elu"] = "relu",
        dense_activation: Literal["relu", "elu"] = "elu",
        dropout: float = 0.2,
        input_norm: bool = True,
        conv_channels: tuple[int, int, int] = (256, 512, 256),
        lstm_hidden: int = 128,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def configure_frontend(self) -> FrontEnd:
        """ZCR, RMS and MFCCs per centred frame (librosa semantics)."""
        a = self.hparams
        return ZcrRmsMfcc(a["sample_rate"], a["frame_length"], a["hop_length"], n_mfcc=a["n_mfcc"])

    def configure_network(self) -> nn.Module:
        """The pure Conv1D-LSTM network of Table I."""
        self.hparams["conv_channels"] = [int(c) for c in self.hparams["conv_channels"]]  # plain YAML in hparams
        return self.build_network(EmoAugConvLSTMNet, n_features=2 + self.hparams["n_mfcc"])
