"""Pure ``nn.Module`` networks: usable, testable and exportable without Lightning."""

from ser_lightning.models.networks.dense_highway import DenseBlock, DenseHighwayNet, HighwayLayer, Transition

__all__ = ["DenseBlock", "DenseHighwayNet", "HighwayLayer", "Transition"]
