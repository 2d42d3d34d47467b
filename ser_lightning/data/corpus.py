"""The base of every single-corpus DataModule: a corpus root and a speaker-independent protocol."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.splits import Protocol, Split, make_split
from ser_lightning.errors import CorpusNotFoundError, ProtocolError

log = logging.getLogger(__name__)


class CorpusDataModule(SERDataModule):
    """Base of a single corpus' DataModule: its root folder and the protocol that splits it.

    A subclass declares only its own arguments (``def __init__(self, label_set=..., **kwargs)`` /
    ``super().__init__(**kwargs)``) and parses its native layout with a plain function
    (``parse_<corpus>(root, ...) -> list[Utterance]``, testable without Lightning) that :meth:`load_records`
    calls.

    Args:
        root: where the corpus is (a corpus subclass says what it expects there).
        protocol: ``loso`` leave-one-speaker-out (validation on the session partner), ``lsso``
            leave-one-session-out, ``kfold`` speaker-grouped k-fold, ``holdout`` seeded hold-out, ``official`` the
            corpus' own partition where it has one (RECOLA's AVEC 2016 sets).
        fold: which fold of the protocol (``loso``: index into the sorted speakers).
        num_folds: number of folds of ``kfold``.
        holdout_fractions: train/validation/test fractions of ``holdout``.
        speaker_dependent: split utterances instead of speakers (``kfold``/``holdout`` only). The run is then
            stamped ``speaker_independent: false`` in its hyperparameters and results.
        group_by: the unit ``kfold``/``holdout`` deal out: ``speaker``, ``session``, or ``auto`` (sessions when
            the corpus has them, so that no session is shared between training and test).
        **kwargs: the arguments of :class:`SERDataModule` (loaders, audio, augmentation, VAD, ...).
    """

    def __init__(
        self,
        root: str | None = None,
        protocol: Protocol = "loso",
        fold: int = 0,
        num_folds: int = 5,
        holdout_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
        speaker_dependent: bool = False,
        group_by: Literal["auto", "speaker", "session"] = "auto",
        **kwargs: Any,
    ) -> None:
        if fold < 0:
            raise ProtocolError(f"fold must be >= 0, got {fold}")
        super().__init__(**kwargs)
        self.root = root
        self.protocol = protocol
        self.fold = fold
        self.num_folds = num_folds
        self.holdout_fractions = tuple(holdout_fractions)
        self.speaker_dependent = speaker_dependent
        self.group_by = group_by

    def require_root(self, expected: str) -> Path:
        """Returns :attr:`root` as a Path, or raises an error naming it and the layout expected there.

        Args:
            expected: a description of the expected layout, for the error message.
        """
        if not self.root:
            raise CorpusNotFoundError(
                f"{type(self).__name__} needs `root` (--data.init_args.root PATH): the folder that holds {expected}"
            )
        root = Path(self.root).expanduser()
        if not root.is_dir():
            raise CorpusNotFoundError(f"corpus root {root} does not exist or is not a folder; expected {expected}")
        return root

    def corpus_root(self) -> Path | None:
        """The folder whose files make up the corpus (fingerprinted for the manifest cache)."""
        if self.root and Path(self.root).expanduser().is_dir():
            return Path(self.root).expanduser()
        return None

    def build_split(self) -> Split:
        """The protocol's split of :meth:`records`, checked for leakage."""
        return make_split(
            self.records(),
            protocol=self.protocol,
            fold=self.fold,
            k=self.num_folds,
            seed=self.seed,
            holdout_fractions=self.holdout_fractions,  # type: ignore[arg-type]
            speaker_dependent=self.speaker_dependent,
            group_by=self.group_by,
        )
