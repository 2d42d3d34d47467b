"""Pure ``nn.Module`` networks: usable, testable and exportable without Lightning."""

from ser_lightning.models.networks.baselines import SpectrogramCNN, SpectrogramDenseNet
from ser_lightning.models.networks.cnn_bilstm_mlp import CNNBiLSTMMLPNet
from ser_lightning.models.networks.dense_highway import DenseBlock, DenseHighwayNet, HighwayLayer, Transition
from ser_lightning.models.networks.emoaugnet import EmoAugConvLSTMNet
from ser_lightning.models.networks.end_to_end import EndToEndNet
from ser_lightning.models.networks.enhancement import ResidualBlock, ResidualEnhancerNet, SpectralEnhancer
from ser_lightning.models.networks.rblstm_etransformer import RBLSTMETransformerNet
from ser_lightning.models.networks.svm import SklearnClassifier

__all__ = [
    "CNNBiLSTMMLPNet",
    "DenseBlock",
    "DenseHighwayNet",
    "EmoAugConvLSTMNet",
    "EndToEndNet",
    "HighwayLayer",
    "RBLSTMETransformerNet",
    "ResidualBlock",
    "ResidualEnhancerNet",
    "SklearnClassifier",
    "SpectralEnhancer",
    "SpectrogramCNN",
    "SpectrogramDenseNet",
    "Transition",
]
