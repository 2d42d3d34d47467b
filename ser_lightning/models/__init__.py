"""LightningModules (architectures on the shared task bases), front-ends and pure networks."""

from ser_lightning.models.base import HalveLROnPlateau, SERTask
from ser_lightning.models.baselines import CNN, CNNLSTM, DenseNet, DenseNetLSTM
from ser_lightning.models.classification import SERClassificationTask, mixup, segment_starts
from ser_lightning.models.cnn_bilstm_mlp import CNNBiLSTMMLP
from ser_lightning.models.dense_highway import DenseHighway, SpectrogramClassifier
from ser_lightning.models.emoaugnet import EmoAugNet
from ser_lightning.models.end_to_end import EndToEndRegressor
from ser_lightning.models.enhancement import SpeechEnhancer
from ser_lightning.models.frontends_enhancement import EnhancedFrontEnd
from ser_lightning.models.rblstm_etransformer import RBLSTMETransformer
from ser_lightning.models.regression import CCCLoss, SERRegressionTask, masked_ccc
from ser_lightning.models.svm import OpenSmileSVM

__all__ = [
    "CNN",
    "CNNLSTM",
    "CCCLoss",
    "CNNBiLSTMMLP",
    "DenseHighway",
    "DenseNet",
    "DenseNetLSTM",
    "EmoAugNet",
    "EndToEndRegressor",
    "EnhancedFrontEnd",
    "HalveLROnPlateau",
    "OpenSmileSVM",
    "RBLSTMETransformer",
    "SERClassificationTask",
    "SERRegressionTask",
    "SERTask",
    "SpectrogramClassifier",
    "SpeechEnhancer",
    "masked_ccc",
    "mixup",
    "segment_starts",
]
