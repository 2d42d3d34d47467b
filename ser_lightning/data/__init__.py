"""DataModules (one per corpus, over two bases), native-layout parsers, manifests, protocols and datasets."""

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.crema_d import CREMADDataModule
from ser_lightning.data.cross_corpus import CrossCorpusDataModule
from ser_lightning.data.emodb import EMODBDataModule
from ser_lightning.data.enhancement import EnhancementDataModule
from ser_lightning.data.enterface import ENTERFACEDataModule
from ser_lightning.data.generic import ManifestDataModule
from ser_lightning.data.iemocap import IEMOCAPDataModule
from ser_lightning.data.manifest import ParseReport, Utterance, read_manifest_csv
from ser_lightning.data.msp_improv import MSPImprovDataModule
from ser_lightning.data.ravdess import RAVDESSDataModule
from ser_lightning.data.recola import RECOLADataModule
from ser_lightning.data.splits import PROTOCOLS, Split, check_split, make_split
from ser_lightning.data.synthetic import SyntheticDataModule
from ser_lightning.data.synthetic_continuous import SyntheticContinuousDataModule

__all__ = [
    "PROTOCOLS",
    "CREMADDataModule",
    "CorpusDataModule",
    "CrossCorpusDataModule",
    "EMODBDataModule",
    "ENTERFACEDataModule",
    "EnhancementDataModule",
    "IEMOCAPDataModule",
    "MSPImprovDataModule",
    "ManifestDataModule",
    "ParseReport",
    "RAVDESSDataModule",
    "RECOLADataModule",
    "SERDataModule",
    "Split",
    "SyntheticContinuousDataModule",
    "SyntheticDataModule",
    "Utterance",
    "check_split",
    "make_split",
    "read_manifest_csv",
]
