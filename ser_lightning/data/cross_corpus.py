"""Cross-corpus protocol: train on one corpus, select on part of another, test on the rest (Latif et al. 2020 §5.4)."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from typing import Any

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.manifest import Utterance, unique
from ser_lightning.data.splits import Split, check_split
from ser_lightning.errors import ProtocolError

log = logging.getLogger(__name__)

CANONICAL_LABELS: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "happiness": "happy",
    "happy": "happy",
    "joy": "happy",
    "excited": "happy",
    "sadness": "sad",
    "sad": "sad",
    "neutral": "neutral",
    "fear": "fearful",
    "fearful": "fearful",
    "disgust": "disgust",
    "disgusted": "disgust",
    "surprise": "surprised",
    "surprised": "surprised",
    "calm": "calm",
    "boredom": "bored",
    "bored": "bored",
    "frustration": "frustrated",
    "frustrated": "frustrated",
}
"""Synonyms across the corpora's label vocabularies, mapped to one name each."""


def harmonise_label(label: str, label_map: dict[str, str] | None = None) -> str:
    """The shared-space name of a corpus label: ``label_map`` first, then the synonyms of :data:`CANONICAL_LABELS`.

    Args:
        label: a corpus' own label.
        label_map: extra ``label -> shared label`` entries.
    """
    label = (label_map or {}).get(label, label)
    return CANONICAL_LABELS.get(label.lower(), label)


def draw_selection_speakers(speakers: list[str], fraction: float, seed: int) -> set[str]:
    """Latif et al. 2020 §5.4's draw of a target corpus' speakers into a selection part (the rest is the test part).

    Args:
        speakers: the corpus' speakers (at least 2), in a deterministic order.
        fraction: share drawn for selection; at least one speaker is drawn and at least one is left.
        seed: seed of the draw.

    Returns:
        The selection speakers.
    """
    order = list(speakers)
    random.Random(seed).shuffle(order)
    n_select = min(len(order) - 1, max(1, round(fraction * len(order))))
    return set(order[:n_select])


class CrossCorpusDataModule(SERDataModule):
    """Trains on a source corpus and evaluates on a target corpus in a shared label space.

    Latif et al. 2020 §5.4: train on all of the source (e.g. IEMOCAP), use a random ``selection_fraction`` (30 %) of the
    target's speakers (e.g. MSP-IMPROV) for model selection (validation) and the remaining 70 % for test.
    Labels are harmonised through :data:`CANONICAL_LABELS` plus ``label_map``; the class set is ``classes``, or
    the labels both corpora share. Utterances whose label does not map into it are dropped and counted
    (``describe()["dropped_labels"]``). Speaker and session ids are prefixed with the role and corpus name
    (``source:iemocap:Ses01F``), so the same corpus can serve as both (e.g. two voice sets of the synthetic one).

    The two corpora are configured as nested DataModules (their own roots and label options; their loader
    arguments are not used). The protocol is this one, with no folds: ``protocol``, ``fold`` and the other
    arguments of a single corpus' split (:class:`~ser_lightning.data.corpus.CorpusDataModule`) are not accepted;
    ``seed`` seeds the draw of the target's selection and test speakers (repeat runs with other seeds).

    Args:
        source: the training corpus.
        target: the evaluation corpus.
        classes: the shared class set in label order (default: the harmonised labels both corpora have).
        label_map: extra ``original label -> shared label`` entries (applied before the synonyms).
        selection_fraction: share of the target's speakers used for validation; the rest is the test set.
    """

    corpus_name = "cross_corpus"
    protocol = "cross_corpus"

    def __init__(
        self,
        source: SERDataModule,
        target: SERDataModule,
        classes: list[str] | None = None,
        label_map: dict[str, str] | None = None,
        selection_fraction: float = 0.3,
        **kwargs: Any,
    ) -> None:
        if not 0 < selection_fraction < 1:
            raise ValueError(f"selection_fraction must be in (0, 1), got {selection_fraction}")
        super().__init__(**kwargs)
        self.source = source
        self.target = target
        self.label_map = dict(label_map or {})
        self.selection_fraction = selection_fraction
        self.corpus_name = f"{source.corpus_name}->{target.corpus_name}"
        shared = [c for c in self._harmonised(source.class_names) if c in set(self._harmonised(target.class_names))]
        self._classes = list(classes) if classes else shared
        if len(self._classes) < 2:
            raise ProtocolError(
                f"{source.corpus_name} {source.class_names} and {target.corpus_name} {target.class_names} share "
                f"fewer than two classes after harmonisation; give `classes` and/or `label_map`"
            )
        self.dropped: dict[str, int] = {}

    def harmonise(self, label: str) -> str:
        """The shared-space name of a corpus label."""
        return harmonise_label(label, self.label_map)

    def _harmonised(self, labels: list[str]) -> list[str]:
        out: list[str] = []
        for label in labels:
            name = self.harmonise(label)
            if name not in out:
                out.append(name)
        return out

    @property
    def class_names(self) -> list[str]:
        """The shared class set."""
        return list(self._classes)

    def _mapped(self, module: SERDataModule, role: str) -> list[Utterance]:
        module.strict = self.strict
        prefix = f"{role}:{module.corpus_name}"
        keep = set(self._classes)
        out = []
        for r in module.records():
            label = self.harmonise(r.label)
            if label not in keep:
                key = f"{module.corpus_name}:{r.label}"
                self.dropped[key] = self.dropped.get(key, 0) + 1
                continue
            out.append(
                replace(
                    r,
                    label=label,
                    speaker=f"{prefix}:{r.speaker}",
                    session=f"{prefix}:{r.session}" if r.session else "",
                    extra={**r.extra, "original_label": r.label},
                )
            )
        self.skipped.extend(module.skipped)
        self.quiet.extend(module.quiet)
        return out

    def load_records(self) -> list[Utterance]:
        """Both corpora's utterances in the shared label space (source first)."""
        self.dropped = {}
        return self._mapped(self.source, "source") + self._mapped(self.target, "target")

    def records(self) -> list[Utterance]:
        """The harmonised records (each corpus is probed and cached by its own module)."""
        self.skipped, self.quiet = [], []
        return self.load_records()

    def build_split(self) -> Split:
        """All of the source for training; the target's speakers drawn into selection and test."""
        self.skipped, self.dropped, self.quiet = [], {}, []
        source = self._mapped(self.source, "source")
        target = self._mapped(self.target, "target")
        speakers = unique(target, "speaker")
        if len(speakers) < 2:
            raise ProtocolError(f"the target corpus needs at least 2 speakers, found {speakers}")
        selection = draw_selection_speakers(speakers, self.selection_fraction, self.seed)
        split = Split(
            list(source),
            [r for r in target if r.speaker in selection],
            [r for r in target if r.speaker not in selection],
        )
        split.stamp = {
            "protocol": "cross_corpus",
            "fold": 0,
            "protocol_folds": 1,
            "seed": self.seed,
            "source": self.source.corpus_name,
            "target": self.target.corpus_name,
            "selection_fraction": self.selection_fraction,
            "speaker_independent": True,
            "test_speakers": unique(split.test, "speaker"),
            "val_speakers": unique(split.val, "speaker"),
            "sizes": {name: len(part) for name, part in split.parts().items()},
            "shared_sentences": False,
        }
        check_split(split)
        if self.dropped:
            log.info("cross-corpus: dropped labels outside %s: %s", self._classes, self.dropped)
        return split
