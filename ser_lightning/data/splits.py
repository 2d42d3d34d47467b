"""Evaluation protocols: speaker-independent folds and the checks that keep them honest.

Every protocol returns a :class:`Split` whose ``stamp`` records what was done (protocol, fold, the test and
validation speakers, whether the split is speaker-independent). :func:`check_split` raises
:class:`~ser_lightning.errors.LeakageError` when a speaker-independent split is not.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ser_lightning.data.manifest import Utterance, unique
from ser_lightning.errors import LeakageError, ProtocolError

log = logging.getLogger(__name__)

Protocol = Literal["loso", "lsso", "kfold", "holdout", "official"]
PROTOCOLS: tuple[str, ...] = ("loso", "lsso", "kfold", "holdout", "official")
"""``loso`` leave-one-speaker-out (validation on the session partner), ``lsso`` leave-one-session-out,
``kfold`` speaker-grouped k-fold, ``holdout`` seeded train/validation/test hold-out, ``official`` the corpus'
own partition (each record's ``extra["partition"]``, e.g. RECOLA's AVEC 2016 train/development/test sets)."""
OFFICIAL_PARTS: dict[str, str] = {"train": "train", "dev": "val", "devel": "val", "development": "val",
                                  "val": "val", "validation": "val", "test": "test"}  # fmt: skip
"""The names an official partition may give its parts (``extra["partition"]``), and the split part each is."""


@dataclass
class Split:
    """Train, validation and test records of one fold, with a description of how they were made."""

    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    stamp: dict[str, object] = field(default_factory=dict)

    def parts(self) -> dict[str, list[Utterance]]:
        """The three parts by name."""
        return {"train": self.train, "val": self.val, "test": self.test}


def num_folds(records: Sequence[Utterance], protocol: str, k: int = 5) -> int:
    """Number of folds a protocol has on these records.

    Args:
        records: the corpus' utterances.
        protocol: one of :data:`PROTOCOLS`.
        k: folds of ``kfold``.

    Returns:
        The number of valid ``fold`` values.
    """
    if protocol == "loso":
        return len(unique(records, "speaker"))
    if protocol == "lsso":
        return len(unique(records, "session"))
    if protocol == "kfold":
        return k
    if protocol in ("holdout", "official"):
        return 1
    raise ProtocolError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


def _partner(speaker: str, records: Sequence[Utterance], speakers: list[str]) -> str:
    """The validation speaker for a held-out speaker: the other speaker of its session, else the next one."""
    session = next((r.session for r in records if r.speaker == speaker), "")
    if session:
        mates = sorted({r.speaker for r in records if r.session == session} - {speaker})
        if mates:
            return mates[0]
    return speakers[(speakers.index(speaker) + 1) % len(speakers)]


def _by(records: Sequence[Utterance], key: str, values: set[str]) -> list[Utterance]:
    return [r for r in records if str(getattr(r, key)) in values]


def _group_partition(groups: list[str], k: int, seed: int) -> list[list[str]]:
    """Shuffles groups with a seed and deals them into k near-equal folds."""
    shuffled = sorted(groups)
    random.Random(seed).shuffle(shuffled)
    return [sorted(shuffled[i::k]) for i in range(k)]


def _stratified_item_folds(records: Sequence[Utterance], k: int, seed: int) -> list[list[int]]:
    """Speaker-dependent folds: utterance indices stratified by label."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_label[r.label].append(i)
    folds: list[list[int]] = [[] for _ in range(k)]
    rng = random.Random(seed)
    offset = 0
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[(j + offset) % k].append(i)
        offset += len(idx)
    return [sorted(f) for f in folds]


def make_split(
    records: Sequence[Utterance],
    protocol: str = "loso",
    fold: int = 0,
    k: int = 5,
    seed: int = 0,
    holdout_fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
    speaker_dependent: bool = False,
    group_by: str = "auto",
) -> Split:
    """Splits records into train/validation/test by a protocol.

    Args:
        records: the corpus' utterances.
        protocol: ``loso`` (test on speaker ``fold`` of the sorted speakers, validate on its session partner,
            or on the next speaker when the corpus has no sessions, train on the rest — Latif et al. 2020 §5),
            ``lsso`` (test on session ``fold``, validate on the next session), ``kfold`` (speakers or sessions
            dealt into ``k`` seeded groups; test on group ``fold``, validate on group ``fold + 1``),
            ``holdout`` (speakers or sessions assigned to train/validation/test by ``holdout_fractions`` of
            utterances, seeded) or ``official`` (the corpus' own partition, one fold: each record's
            ``extra["partition"]``, named as in :data:`OFFICIAL_PARTS`; every part must be non-empty).
        fold: which fold.
        k: number of folds for ``kfold``.
        seed: seed of the shuffles.
        holdout_fractions: train/validation/test fractions for ``holdout``.
        speaker_dependent: for ``kfold`` and ``holdout`` only: split utterances (stratified by label) instead
            of speakers. The stamp then says ``speaker_independent: False``.
        group_by: the unit ``kfold`` and ``holdout`` deal out: ``speaker``, ``session``, or ``auto`` (sessions
            when every utterance has one, so that no session is shared between training and test; else
            speakers). With an explicit ``speaker`` on a corpus with sessions, sessions may be shared and the
            stamp says so.

    Returns:
        The split, checked by :func:`check_split`. Its stamp says ``shared_sentences`` (whether train and test
        share a scripted sentence) and, on a corpus whose utterances have sentences, ``unknown_sentence`` (how
        many utterances have none, e.g. eNTERFACE files that cannot be attributed to a sentence). An unknown
        (empty) sentence matches no sentence, not even another unknown one: such utterances never make
        ``shared_sentences`` true, since nothing says that they share a text.

    Raises:
        ProtocolError: unknown protocol, fold out of range, or too few speakers/sessions.
        LeakageError: the split shares speakers between parts although it should not.
    """
    if not records:
        raise ProtocolError("cannot split an empty list of utterances")
    n = num_folds(records, protocol, k)
    if not 0 <= fold < n:
        raise ProtocolError(f"fold {fold} is out of range for protocol {protocol!r}: valid folds are 0..{n - 1}")
    speakers = unique(records, "speaker")
    has_sessions = all(r.session for r in records)
    if group_by not in ("auto", "speaker", "session"):
        raise ProtocolError(f"group_by must be 'auto', 'speaker' or 'session', got {group_by!r}")
    if group_by == "session" and not has_sessions:
        raise ProtocolError("group_by='session' needs a session for every utterance; this corpus has none")
    unit = "session" if group_by == "session" or (group_by == "auto" and has_sessions) else "speaker"
    stamp: dict[str, object] = {"protocol": protocol, "fold": fold, "protocol_folds": n, "seed": seed}
    if protocol in ("kfold", "holdout") and not speaker_dependent:
        stamp["group_by"] = unit
    if speaker_dependent and protocol in ("loso", "lsso"):
        raise ProtocolError(
            f"protocol {protocol!r} is speaker-independent by definition; "
            "speaker_dependent applies to 'kfold' and 'holdout' only"
        )

    if protocol == "loso":
        if len(speakers) < 3:
            raise ProtocolError(f"leave-one-speaker-out needs at least 3 speakers, found {len(speakers)}")
        test_spk = speakers[fold]
        val_spk = _partner(test_spk, records, speakers)
        train = [r for r in records if r.speaker not in (test_spk, val_spk)]
        split = Split(train, _by(records, "speaker", {val_spk}), _by(records, "speaker", {test_spk}))
    elif protocol == "lsso":
        sessions = unique(records, "session")
        if len(sessions) < 3 or sessions == [""]:
            raise ProtocolError(f"leave-one-session-out needs at least 3 sessions, found {sessions}")
        test_ses, val_ses = sessions[fold], sessions[(fold + 1) % len(sessions)]
        train = [r for r in records if r.session not in (test_ses, val_ses)]
        split = Split(train, _by(records, "session", {val_ses}), _by(records, "session", {test_ses}))
        stamp.update(test_sessions=[test_ses], val_sessions=[val_ses])
    elif protocol == "kfold":
        if k < 3:
            raise ProtocolError(f"kfold needs k >= 3 (one fold each for test and validation), got {k}")
        if speaker_dependent:
            folds = _stratified_item_folds(records, k, seed)
            pick = lambda ids: [records[i] for i in ids]  # noqa: E731
            test_ids, val_ids = set(folds[fold]), set(folds[(fold + 1) % k])
            train_ids = [i for i in range(len(records)) if i not in test_ids and i not in val_ids]
            split = Split(pick(train_ids), pick(sorted(val_ids)), pick(sorted(test_ids)))
        else:
            units = unique(records, unit)
            if len(units) < k:
                raise ProtocolError(f"{unit}-grouped {k}-fold needs at least {k} {unit}s, found {len(units)}")
            groups = _group_partition(units, k, seed)
            test_g, val_g = set(groups[fold]), set(groups[(fold + 1) % k])
            train = [r for r in records if getattr(r, unit) not in test_g and getattr(r, unit) not in val_g]
            split = Split(train, _by(records, unit, val_g), _by(records, unit, test_g))
    elif protocol == "holdout":
        if any(f <= 0 for f in holdout_fractions) or not math.isclose(sum(holdout_fractions), 1.0, abs_tol=1e-6):
            raise ProtocolError(
                f"holdout_fractions must be three positive numbers summing to 1, got {holdout_fractions}"
            )
        if speaker_dependent:
            folds = _stratified_item_folds(records, 20, seed)
            cut_train = round(holdout_fractions[0] * 20)
            cut_val = cut_train + max(1, round(holdout_fractions[1] * 20))
            take = lambda fs: sorted(i for f in fs for i in f)  # noqa: E731
            split = Split(
                *(
                    [records[i] for i in take(folds[a:b])]
                    for a, b in ((0, cut_train), (cut_train, cut_val), (cut_val, 20))
                )
            )
        else:
            units = unique(records, unit)
            if len(units) < 3:
                raise ProtocolError(f"a {unit}-grouped hold-out needs at least 3 {unit}s, found {len(units)}")
            split = _group_holdout(records, unit, units, holdout_fractions, seed)
    elif protocol == "official":
        if speaker_dependent:
            raise ProtocolError("protocol 'official' is the corpus' own partition; speaker_dependent does not apply")
        split = _official_split(records)
        stamp["partition"] = "official"
    else:
        raise ProtocolError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")

    stamp["speaker_independent"] = not speaker_dependent
    stamp["test_speakers"] = unique(split.test, "speaker")
    stamp["val_speakers"] = unique(split.val, "speaker")
    stamp["sizes"] = {name: len(part) for name, part in split.parts().items()}
    if has_sessions and protocol in ("kfold", "holdout") and unit == "speaker" and not speaker_dependent:
        stamp["sessions_shared_allowed"] = True
    # An unknown (empty) sentence matches none: only known sentences can be shared.
    sentences = {r.sentence for r in split.train if r.sentence} & {r.sentence for r in split.test if r.sentence}
    stamp["shared_sentences"] = bool(sentences)
    if any(r.sentence for r in records):
        stamp["unknown_sentence"] = sum(1 for part in split.parts().values() for r in part if not r.sentence)
    split.stamp = stamp
    check_split(split)
    if speaker_dependent:
        log.warning(
            "protocol %s fold %d is SPEAKER-DEPENDENT: the same speakers are in train and test; "
            "its figures are not comparable with speaker-independent results",
            protocol,
            fold,
        )
    return split


def _official_split(records: Sequence[Utterance]) -> Split:
    """The corpus' own partition: each record's ``extra["partition"]`` (see :data:`OFFICIAL_PARTS`)."""
    parts: dict[str, list[Utterance]] = {"train": [], "val": [], "test": []}
    unassigned = []
    for r in records:
        name = str(r.extra.get("partition", "")).lower()
        if name not in OFFICIAL_PARTS:
            unassigned.append(r.utt_id or r.path)
            continue
        parts[OFFICIAL_PARTS[name]].append(r)
    if unassigned:
        raise ProtocolError(
            f"protocol 'official' needs every record's official partition (extra['partition'], one of "
            f"{sorted(OFFICIAL_PARTS)}); {len(unassigned)} record(s) have none, e.g. {unassigned[:3]}: this corpus "
            "has no official partition"
        )
    empty = [name for name, part in parts.items() if not part]
    if empty:
        raise ProtocolError(
            f"the official partition leaves {' and '.join(empty)} empty "
            f"(sizes {({k: len(v) for k, v in parts.items()})}): its records carry no such part"
        )
    return Split(parts["train"], parts["val"], parts["test"])


def _group_holdout(
    records: Sequence[Utterance], unit: str, groups: list[str], fractions: tuple[float, float, float], seed: int
) -> Split:
    """Assigns shuffled speakers/sessions to test, validation, then train until each part's share is met."""
    counts = {g: 0 for g in groups}
    for r in records:
        counts[getattr(r, unit)] += 1
    order = list(groups)
    random.Random(seed).shuffle(order)
    total = len(records)
    test, val = set(), set()
    need_test, need_val = fractions[2] * total, fractions[1] * total
    got = 0
    i = 0
    while i < len(order) - 2 and (got < need_test or not test):
        test.add(order[i])
        got += counts[order[i]]
        i += 1
    got = 0
    while i < len(order) - 1 and (got < need_val or not val):
        val.add(order[i])
        got += counts[order[i]]
        i += 1
    train = [r for r in records if getattr(r, unit) not in test and getattr(r, unit) not in val]
    return Split(train, _by(records, unit, val), _by(records, unit, test))


def check_split(split: Split) -> None:
    """Raises if a split leaks: shared speakers, sessions or recordings between its parts, or an empty part.

    * Speakers: no speaker in two parts of a speaker-independent split.
    * Sessions (when the corpus has them): no session of the training part in validation or test, unless the
      stamp allows it (``sessions_shared_allowed``: a speaker-grouped split asked for explicitly). Validation
      and test may share a session (leave-one-speaker-out validates on the session partner).
    * Recordings: the same file, or the same audio content (``checksum``), never in two parts.

    Args:
        split: the split to check; its stamp says what to enforce.

    Raises:
        LeakageError: naming what is shared and where.
    """
    parts = split.parts()
    for name, part in parts.items():
        if not part:
            raise LeakageError(
                f"the {name} part of {split.stamp.get('protocol')} fold {split.stamp.get('fold')} is empty"
            )
    names = list(parts)
    if split.stamp.get("speaker_independent", True):
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = set(unique(parts[a], "speaker")) & set(unique(parts[b], "speaker"))
                if shared:
                    raise LeakageError(
                        f"speaker(s) {sorted(shared)} appear in both {a} and {b} of a split stamped speaker-independent"
                    )
        if not split.stamp.get("sessions_shared_allowed") and all(r.session for p in parts.values() for r in p):
            train_sessions = {r.session for r in split.train}
            for other in ("val", "test"):
                shared = train_sessions & {r.session for r in parts[other]}
                if shared:
                    raise LeakageError(f"session(s) {sorted(shared)} appear in both train and {other}")
    for key, what in (("path", "file"), ("checksum", "recording (same audio content)")):
        seen: dict[str, tuple[str, str]] = {}
        for name, part in parts.items():
            for r in part:
                value = getattr(r, key)
                if not value:
                    continue
                other_part, other_path = seen.setdefault(value, (name, r.path))
                if other_part != name:
                    detail = r.path if key == "path" else f"{other_path} and {r.path}"
                    raise LeakageError(f"the same {what} is in both {other_part} and {name}: {detail}")
