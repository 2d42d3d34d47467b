"""Noise from user-supplied folders: DEMAND, MUSAN or plain folders, split into disjoint train/eval parts."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ser_lightning.audio import AUDIO_SUFFIXES, read_audio
from ser_lightning.augment.mixing import fit_length
from ser_lightning.augment.noise import NoiseBank
from ser_lightning.augment.parts import DEFAULT_EVAL_FRACTION, NoisePart, check_part

log = logging.getLogger(__name__)

_LAYOUT_HELP = {
    "demand": "DEMAND layout: <root>/<ENV>/ch01.wav ... ch16.wav (e.g. <root>/DKITCHEN/ch01.wav)",
    "musan": "MUSAN layout: <root>/noise/, <root>/music/, <root>/speech/ with audio files (searched recursively)",
    "folder": "folder layout: audio files in <root> (category 'noise') or in its immediate subfolders "
    "(category = subfolder name)",
}


class FolderNoiseBank(NoiseBank):
    """Noise read from a user-supplied folder (DEMAND, MUSAN or a plain folder of audio files).

    Layouts:

    * ``demand``: ``<root>/<ENV>/ch01.wav ... ch16.wav``; category = environment name (e.g. ``DKITCHEN``),
      one channel (``channel``, default 1).
    * ``musan``: ``<root>/noise/``, ``music/``, ``speech/``; category = subfolder, files searched recursively.
    * ``folder``: category = each immediate subfolder (files searched recursively), or ``noise`` for audio
      files directly in ``root``.

    Parts: the folder's units are split deterministically into ``train`` and ``eval``. A unit is a file, named
    by its path relative to ``root`` (``noise/free-sound/noise-0001.wav``), or, for DEMAND, an environment
    folder (``DKITCHEN``): its 16 channels are one recording and are never on both sides. A unit is ``eval``
    when ``sha256(f"{split_seed}/{unit}")`` read as a fraction of 2**64 is below ``eval_fraction``; then, per
    category (DEMAND: over all environments) of at least two units, if no unit fell in a part that should have
    one, the unit of lowest (for ``eval``) or highest (for ``train``) hash is moved there. ``eval_units`` names
    the ``eval`` units instead (e.g. the five DEMAND environments of Latif et al. (2020)). The bank's
    :attr:`categories` are those with files in its part; ``all`` is the whole folder.

    Files are read with :func:`ser_lightning.audio.read_audio` (mono, resampled); the last
    ``max_cached_files`` files read are kept in memory.

    Args:
        root: The noise folder.
        sample_rate: Default sample rate.
        layout: ``"demand"``, ``"musan"`` or ``"folder"``.
        channel: DEMAND channel (1-16).
        max_cached_files: Number of decoded files kept in memory.
        part: ``"train"``, ``"eval"``, ``"all"`` or ``None`` (not chosen: ``BankNoise`` takes ``train``,
            ``NoiseRobustness`` ``eval``; used directly, ``all``).
        eval_fraction: Fraction of the units held out for ``eval`` (0 to 1).
        split_seed: Seed of the split hash.
        eval_units: The ``eval`` units by name (relative file paths; DEMAND: environment names), instead of the
            hash split; every other unit is ``train``.

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no category in the expected layout (or none in
            the bank's part).
    """

    def __init__(
        self,
        root: str | Path,
        sample_rate: int = 16000,
        layout: Literal["demand", "musan", "folder"] = "folder",
        channel: int = 1,
        max_cached_files: int = 16,
        part: NoisePart | None = None,
        eval_fraction: float = DEFAULT_EVAL_FRACTION,
        split_seed: int = 0,
        eval_units: Sequence[str] | None = None,
    ) -> None:
        self._init_args = {
            "root": root,
            "sample_rate": sample_rate,
            "layout": layout,
            "channel": channel,
            "max_cached_files": max_cached_files,
            "part": part,
            "eval_fraction": eval_fraction,
            "split_seed": split_seed,
            "eval_units": eval_units,
        }
        if layout not in _LAYOUT_HELP:
            raise ValueError(f"unknown layout {layout!r}; expected one of {sorted(_LAYOUT_HELP)}")
        if not 0.0 <= float(eval_fraction) <= 1.0:
            raise ValueError(f"eval_fraction must be in [0, 1], got {eval_fraction}")
        self.root = Path(root).expanduser()
        self.sample_rate = int(sample_rate)
        self.layout = layout
        self.channel = int(channel)
        self.max_cached_files = int(max_cached_files)
        self.part = check_part(part, "FolderNoiseBank")
        self.eval_fraction = float(eval_fraction)
        self.split_seed = int(split_seed)
        self.eval_units = None if eval_units is None else [str(u) for u in eval_units]
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        if not self.root.is_dir():
            raise FileNotFoundError(f"noise folder {self.root} does not exist; expected the {_LAYOUT_HELP[layout]}")
        self._all_files = {name: files for name, files in self._scan().items() if files}
        if not self._all_files:
            raise FileNotFoundError(f"no noise files found in {self.root}; expected the {_LAYOUT_HELP[layout]}")
        self._split = self._make_split()
        wanted = ("train", "eval") if self.effective_part == "all" else (self.effective_part,)
        in_part = {c: [f for f in fs if self._split[self.unit_of(f)] in wanted] for c, fs in self._all_files.items()}
        self._files = {c: fs for c, fs in in_part.items() if fs}
        if not self._files:
            raise FileNotFoundError(
                f"the {self.effective_part!r} part of the noise folder {self.root} holds no file "
                f"(eval_fraction={self.eval_fraction}, eval_units={self.eval_units}); split: {self.split()}"
            )
        self.categories = sorted(self._files)

    def _scan(self) -> dict[str, list[Path]]:
        """Maps each category to its sorted audio files."""
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        if self.layout == "demand":
            name = f"ch{self.channel:02d}.wav"
            return {d.name: [d / name] for d in subdirs if (d / name).is_file()}
        if self.layout == "musan":
            return {d.name: _audio_files(d) for d in subdirs if d.name in ("noise", "music", "speech")}
        found = {d.name: _audio_files(d) for d in subdirs}
        top = sorted(p for p in self.root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if top:
            found.setdefault("noise", []).extend(top)
        return found

    def unit_of(self, path: Path) -> str:
        """The split unit of a file: its path relative to the root; for DEMAND, its environment folder.

        Args:
            path: a file of the bank.
        """
        target = path.parent if self.layout == "demand" else path
        return target.relative_to(self.root).as_posix()

    def _score(self, unit: str) -> float:
        """The unit's split hash as a fraction in [0, 1)."""
        digest = hashlib.sha256(f"{self.split_seed}/{unit}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def _make_split(self) -> dict[str, str]:
        """Maps every unit of the folder to ``"train"`` or ``"eval"`` (see the class docstring)."""
        groups: dict[str, list[str]] = {}
        for category, files in self._all_files.items():
            group = "" if self.layout == "demand" else category
            groups.setdefault(group, []).extend(self.unit_of(f) for f in files)
        units = sorted({u for members in groups.values() for u in members})
        if self.eval_units is not None:
            unknown = sorted(set(self.eval_units) - set(units))
            if unknown:
                raise ValueError(f"eval_units {unknown} are not units of the noise folder {self.root}; units: {units}")
            return {u: "eval" if u in self.eval_units else "train" for u in units}
        split = {u: "eval" if self._score(u) < self.eval_fraction else "train" for u in units}
        for members in groups.values():
            members = sorted(set(members))
            if len(members) < 2:
                continue
            if self.eval_fraction > 0.0 and all(split[u] == "train" for u in members):
                split[min(members, key=self._score)] = "eval"
            if self.eval_fraction < 1.0 and all(split[u] == "eval" for u in members):
                split[max(members, key=self._score)] = "train"
        return split

    def split(self) -> dict[str, str]:
        """The split of the whole folder: unit -> ``"train"`` or ``"eval"`` (see the class docstring)."""
        return dict(sorted(self._split.items()))

    def files(self, category: str) -> list[Path]:
        """The audio files of ``category`` in the bank's part.

        Raises:
            FileNotFoundError: If the category has no files in the bank's part (the message names the expected
                path, or says that the category's files are in the other part).
        """
        if category not in self._files:
            if category in self._all_files:
                raise FileNotFoundError(
                    f"noise category {category!r} has no file in the {self.effective_part!r} part of "
                    f"{self.root}: its units are in the other part (split: {self.split()}); choose another part, "
                    f"eval_fraction or eval_units; available here: {self.categories}"
                )
            where = (
                self.root / category if self.layout != "demand" else self.root / category / f"ch{self.channel:02d}.wav"
            )
            raise FileNotFoundError(
                f"noise category {category!r} not found: {where} is missing or holds no audio files; "
                f"available: {self.categories}; expected the {_LAYOUT_HELP[self.layout]}"
            )
        return self._files[category]

    def recordings(self, category: str) -> set[str]:
        """The resolved audio files ``category`` may draw from; for DEMAND every channel of its recordings.

        Args:
            category: the category (a category without files in the bank's part has none).
        """
        if category not in self._files:
            return set()
        if self.layout == "demand":
            return {str(p.resolve()) for f in self._files[category] for p in _audio_files(f.parent)}
        return {str(f.resolve()) for f in self._files[category]}

    def may_share_samples(self, other: NoiseBank, category: str) -> bool:
        """Whether ``other`` may draw samples of ``category`` from a recording this bank draws from."""
        if not isinstance(other, FolderNoiseBank):
            return False
        return bool(self.recordings(category) & other.recordings(category))

    def sample(
        self,
        category: str,
        num_samples: int,
        sample_rate: int | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Returns ``num_samples`` samples from a random file of ``category`` (see :class:`NoiseBank`).

        The file is chosen with ``rng`` among the category's files in the bank's part, then randomly cropped or
        tiled to ``num_samples``.
        """
        files = self.files(category)
        if num_samples <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        rng = np.random.default_rng() if rng is None else rng
        path = files[int(rng.integers(0, len(files)))]
        audio = self._read(path, rate)
        return np.ascontiguousarray(fit_length(audio, num_samples, rng), dtype=np.float32)

    def _read(self, path: Path, rate: int) -> np.ndarray:
        """Reads a file through the small in-memory cache."""
        key = (str(path), rate)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        audio = read_audio(str(path), rate)
        self._cache[key] = audio
        while len(self._cache) > self.max_cached_files:
            self._cache.popitem(last=False)
        return audio


def _audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder``, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
