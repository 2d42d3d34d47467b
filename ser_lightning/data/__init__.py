"""DataModules (one per corpus, over one base), manifests, protocols and datasets."""

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.cross_corpus import CrossCorpusDataModule
from ser_lightning.data.enterface import ENTERFACEDataModule
from ser_lightning.data.generic import ManifestDataModule
from ser_lightning.data.manifest import Utterance, read_manifest_csv
from ser_lightning.data.recola import RECOLADataModule
from ser_lightning.data.splits import PROTOCOLS, Split, check_split, make_split
from ser_lightning.data.synthetic import SyntheticDataModule

__all__ = [
    "PROTOCOLS",
    "CrossCorpusDataModule",
    "ENTERFACEDataModule",
    "ManifestDataModule",
    "RECOLADataModule",
    "SERDataModule",
    "Split",
    "SyntheticDataModule",
    "Utterance",
    "check_split",
    "make_split",
    "read_manifest_csv",
]
