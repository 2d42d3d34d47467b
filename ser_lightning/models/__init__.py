"""LightningModules (architectures on the shared classification base), front-ends and pure networks."""

from ser_lightning.models.base import HalveLROnPlateau, SERClassificationTask, mixup
from ser_lightning.models.dense_highway import DenseHighway

__all__ = ["DenseHighway", "HalveLROnPlateau", "SERClassificationTask", "mixup"]
