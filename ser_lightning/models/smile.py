"""openSMILE functionals (eGeMAPSv02, ComParE_2016) as a front-end, with a per-waveform feature cache.

The `opensmile` Python package (audEERING; Eyben et al. 2010, 2016) ships its binary and runs offline. Its licence
is research-only, so it is an optional extra: ``pip install 'ser_lightning[opensmile]'``.

:class:`OpenSmileExtractor` is a plain, picklable callable (an
:class:`~ser_lightning.data.dataset.ItemFeatures`), so that the DataLoader's worker processes extract and cache the
features of each item; :class:`OpenSmileFeatures` is the same extraction as the model's ``frontend`` module, for
waveforms that do not come through a loader (noisy copies in :class:`~ser_lightning.callbacks.NoiseRobustness`,
another corpus in :class:`~ser_lightning.callbacks.CrossCorpusEvaluation`).

The cache key is the content hash (BLAKE2b) of the exact waveform the features are computed from (after reading,
resampling, preprocessing and any augmentation: a changed waveform is a new key, never a stale hit), the feature set,
the opensmile version and the sample rate. Files live under
``<ser_lightning.audio.cache_root()>/features/opensmile-<version>/<feature set>-<rate>hz/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ser_lightning.audio import cache_root

log = logging.getLogger(__name__)

FeatureSet = Literal["eGeMAPSv02", "ComParE_2016"]
FEATURE_SETS: tuple[str, ...] = ("eGeMAPSv02", "ComParE_2016")
EXTRA_HINT = (
    "install the optional extra: pip install 'ser_lightning[opensmile]' (the opensmile package's licence is "
    "research-only, so it is not a core dependency)"
)


def import_opensmile() -> Any:
    """Imports ``opensmile``, or raises an ``ImportError`` that names the extra to install."""
    try:
        import opensmile
    except ImportError as err:  # pragma: no cover - exercised by monkeypatching in the tests
        raise ImportError(f"openSMILE features need the `opensmile` package: {EXTRA_HINT}") from err
    return opensmile


def opensmile_version() -> str:
    """The installed opensmile package's version (part of the feature cache key)."""
    return str(import_opensmile().__version__)


class OpenSmileExtractor:
    """openSMILE functionals of one waveform, cached by its content hash.

    Picklable: the ``opensmile.Smile`` object is built lazily in each process that calls it.

    Args:
        feature_set: ``eGeMAPSv02`` (88 functionals; Eyben et al. 2016) or ``ComParE_2016`` (6373; Schuller et
            al. 2016).
        cache: read and write the feature cache.
        cache_dir: the cache's root folder (default ``<cache_root()>/features``); the files of one key live in
            ``<cache_dir>/opensmile-<version>/<set>-<rate>hz/``.
    """

    def __init__(self, feature_set: FeatureSet = "eGeMAPSv02", cache: bool = True, cache_dir: str | None = None):
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
        self.feature_set = feature_set
        self.cache = cache
        self.cache_dir = cache_dir
        self.version = opensmile_version()
        self._smile: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_smile"] = None
        return state

    @property
    def smile(self) -> Any:
        """The ``opensmile.Smile`` functionals extractor of this process."""
        if self._smile is None:
            opensmile = import_opensmile()
            self._smile = opensmile.Smile(
                feature_set=getattr(opensmile.FeatureSet, self.feature_set),
                feature_level=opensmile.FeatureLevel.Functionals,
            )
        return self._smile

    @property
    def num_features(self) -> int:
        """Length of the feature vector (88 for eGeMAPSv02, 6373 for ComParE_2016)."""
        return len(self.smile.feature_names)

    def folder(self, sample_rate: int) -> Path:
        """The cache folder of this feature set, opensmile version and sample rate."""
        root = Path(self.cache_dir).expanduser() if self.cache_dir is not None else cache_root() / "features"
        return root / f"opensmile-{self.version}" / f"{self.feature_set}-{sample_rate}hz"

    def cache_path(self, waveform: np.ndarray, sample_rate: int) -> Path:
        """Where the features of ``waveform`` are cached: keyed by its content hash (and the folder's key)."""
        samples = np.ascontiguousarray(waveform, dtype=np.float32)
        digest = hashlib.blake2b(samples.tobytes(), digest_size=20).hexdigest()
        return self.folder(sample_rate) / digest[:2] / f"{digest}.npy"

    def extract(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """The functionals of one mono waveform, without the cache.

        Raises:
            ValueError: the waveform is too short for the feature set (openSMILE returns NaN) or not 1-D.
        """
        samples = np.ascontiguousarray(waveform, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected a mono waveform, got shape {samples.shape}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Segment too short")
            values = self.smile.process_signal(samples, sample_rate).to_numpy(dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"openSMILE {self.feature_set} returned non-finite functionals for {samples.size} samples "
                f"({samples.size / sample_rate:.3f} s at {sample_rate} Hz): too short for the feature set"
            )
        return values

    def __call__(self, waveform: np.ndarray, sample_rate: int) -> tuple[np.ndarray, bool]:
        """The functionals of ``waveform`` and whether they were read from the cache (see the module docstring)."""
        if not self.cache:
            return self.extract(waveform, sample_rate), False
        path = self.cache_path(waveform, sample_rate)
        if path.is_file():
            try:
                values = np.load(path)
                if values.ndim == 1 and np.all(np.isfinite(values)):
                    return values.astype(np.float32, copy=False), True
            except (OSError, ValueError) as err:
                log.warning("re-extracting features: unreadable cache file %s (%s)", path, err)
        values = self.extract(waveform, sample_rate)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file and renamed: workers writing the same key never leave a torn file.
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.save(out, values)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        return values, False


class OpenSmileFeatures(nn.Module):
    """The model's front-end: openSMILE functionals of each utterance of a padded batch (no parameters).

    Args:
        feature_set: ``eGeMAPSv02`` or ``ComParE_2016``.
        sample_rate: sample rate of the input waveforms.
        cache: cache the features of the loaders' items (:attr:`extractor`); waveforms given to :meth:`forward`
            (noisy or other-corpus copies) are extracted without caching.
        cache_dir: the feature cache's root folder (default ``<cache_root()>/features``).
    """

    def __init__(self, feature_set: FeatureSet, sample_rate: int, cache: bool = True, cache_dir: str | None = None):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.extractor = OpenSmileExtractor(feature_set, cache=cache, cache_dir=cache_dir)
        """The per-item extractor handed to the DataModule (runs in the loader workers)."""
        self.num_features = self.extractor.num_features

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Functionals of every utterance.

        Args:
            waveform: ``[B, T]`` zero-padded waveforms at :attr:`sample_rate`.
            lengths: ``[B]`` valid samples (default: all).

        Returns:
            ``[B, D]`` float32 features on the waveform's device.
        """
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1])
        audio = waveform.detach().float().cpu().numpy()
        rows = [self.extractor.extract(audio[i, : int(n)], self.sample_rate) for i, n in enumerate(lengths.tolist())]
        if not rows:
            return torch.zeros(0, self.num_features, device=waveform.device)
        return torch.from_numpy(np.stack(rows)).to(waveform.device)
