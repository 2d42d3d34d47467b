"""IEMOCAP (Busso et al., 2008): ten actors in five dyadic sessions, improvised and scripted dialogs."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from ser_lightning.data.corpus import CorpusDataModule
from ser_lightning.data.manifest import ParseReport, Utterance
from ser_lightning.errors import CorpusNotFoundError, ManifestError

log = logging.getLogger(__name__)

SESSIONS: tuple[str, ...] = tuple(f"Session{i}" for i in range(1, 6))
LABEL_CODES: tuple[str, ...] = ("neu", "hap", "exc", "ang", "sad", "fru", "sur", "fea", "dis", "oth", "xxx")
"""Every category code of the consensus label files (``xxx``: no majority among the evaluators)."""

LABEL_SETS: dict[str, dict[str, str]] = {
    "4class": {"ang": "angry", "hap": "happy", "exc": "happy", "neu": "neutral", "sad": "sad"},
    "7class": {
        "ang": "angry",
        "hap": "happy",
        "exc": "happy",
        "neu": "neutral",
        "sad": "sad",
        "fea": "fearful",
        "dis": "disgust",
        "sur": "surprised",
    },
}
"""Label code -> class name of each label set (codes not listed are dropped and counted)."""

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "4class": ("angry", "happy", "neutral", "sad"),
    "7class": ("angry", "happy", "neutral", "sad", "fearful", "disgust", "surprised"),
}
"""Class names of each label set, in label order (the 7-class set starts with the 4 classes, in the same order)."""

LAYOUT = (
    "the IEMOCAP_full_release folder: Session1..Session5, each with dialog/EmoEvaluation/<dialog>.txt "
    "(consensus labels) and sentences/wav/<dialog>/<utterance>.wav"
)

# A block's first line: "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]".
_TURN_LINE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<turn>\S+)\s+(?P<code>\S+)\s+\[(?P<vad>[^\]]*)\]\s*$"
)
# "Ses01F_impro01_M003", "Ses05M_script01_1b_F012": session, the dialog, and the F/M letter of the *turn*.
_TURN_NAME = re.compile(r"^(?P<session>Ses\d{2})[FM]_(?P<kind>impro|script)\w*_(?P<gender>[FM])\d{3}$")
_SCRIPT_ID = re.compile(r"(script\d+_\d+)")
_EXTRA = ("gender", "dialog", "dialog_type", "code", "start", "end", "valence", "activation", "dominance")


class IEMOCAPDataModule(CorpusDataModule):
    """IEMOCAP: 12 hours of dyadic improvisations and scripted plays by ten actors (two per session).

    ``root`` is the ``IEMOCAP_full_release`` folder. Labels are the consensus categories of the first line of
    each block of ``Session<k>/dialog/EmoEvaluation/<dialog>.txt``; the evaluators' lines that follow, the
    ``Categorical/``, ``Attribute/`` and ``Self-evaluation/`` subfolders and other files there (e.g. macOS
    ``._*`` copies) are ignored. Audio is ``Session<k>/sentences/wav/<dialog>/<utterance>.wav``.

    * Speaker = session + the F/M letter of the turn (``Ses01F_impro01_M003`` is ``Ses01M``: the letter in the
      dialog name says who wore the motion-capture markers, not who speaks); session = ``Ses01`` .. ``Ses05``.
      10 speakers, 2 per session, so ``loso`` (10 folds) validates on the session partner and ``lsso`` has 5
      folds; the E-transformer paper's random 5-fold is ``kfold`` with ``speaker_dependent: true`` (so stamped).
    * ``sentence`` is the script (``script01_1``) of scripted turns and empty for improvised ones: the five
      sessions perform the same scripts, and the run's stamp says so (``shared_sentences``).
    * ``4class`` (default): angry, happy (``hap`` + ``exc`` merged), neutral, sad. ``7class``: those plus
      fearful, disgust, surprised: the seven emotions of Paul et al. 2025 (EmoAugNet: "neutral, surprise, disgust,
      fear, sad, happy, and angry"; it does not say whether excited was merged into happy; as in the
      4-class set, it is here). Other codes (``fru``, ``oth``, ``xxx``, ...) are dropped and counted in
      :attr:`dropped` (``describe()["dropped_labels"]``).
    * A labelled turn whose wav is missing is skipped with a warning and counted (``describe()["skipped"]``);
      a wav without a label is not part of the corpus and is ignored.

    Real corpus (10,039 labelled turns: neu 1708, fru 1849, ang 1103, sad 1084, exc 1041, hap 595, sur 107,
    fea 40, oth 3, dis 2, xxx 2507): the 4-class set has **5,531** utterances (angry 1103, happy 1636,
    neutral 1708, sad 1084), per session 1085 / 1023 / 1151 / 1031 / 1241. The 7-class set adds 149
    (surprised 107, fearful 40, disgust 2): disgust is too rare for a fold to contain it reliably.


    Of the inherited arguments: ``root`` is the ``IEMOCAP_full_release`` folder; IEMOCAP is 16 kHz; ``loso`` has
    10 folds and ``lsso`` 5; ``strict`` also fails on labelled turns whose audio is missing.

    Args:
        label_set: ``4class`` (angry, happy+excited, neutral, sad) or ``7class`` (plus fearful, disgust,
            surprised).
        dialog_type: ``all``, ``improvised`` (``Ses01F_impro01`` ...) or ``scripted`` (``Ses01F_script01_1`` ...)
            dialogs.
    """

    corpus_name = "iemocap"
    manifest_args = ("label_set", "dialog_type")

    def __init__(
        self,
        label_set: Literal["4class", "7class"] = "4class",
        dialog_type: Literal["all", "improvised", "scripted"] = "all",
        **kwargs: Any,
    ) -> None:
        if label_set not in LABEL_SETS:
            raise ValueError(f"label_set must be one of {sorted(LABEL_SETS)}, got {label_set!r}")
        if dialog_type not in ("all", "improvised", "scripted"):
            raise ValueError(f"dialog_type must be 'all', 'improvised' or 'scripted', got {dialog_type!r}")
        super().__init__(**kwargs)
        self.label_set = label_set
        self.dialog_type = dialog_type
        self.dropped: dict[str, int] = {}

    @property
    def class_names(self) -> list[str]:
        """The label set's classes, in label order."""
        return list(CLASS_NAMES[self.label_set])

    @property
    def label_map(self) -> dict[str, str]:
        """Label code -> class name of the selected label set (other codes are dropped)."""
        return dict(LABEL_SETS[self.label_set])

    def load_records(self) -> list[Utterance]:
        """Parses the consensus label files of every session and pairs each labelled turn with its wav."""
        report = self.parse_report()
        records = parse_iemocap(self.require_root(LAYOUT), label_set=self.label_set, dialog_type=self.dialog_type,
                                corpus=self.corpus_name, report=report)  # fmt: skip
        self.dropped = report.dropped
        if self.dropped:
            log.info("IEMOCAP %s: dropped labels outside the set: %s", self.label_set, self.dropped)
        return records


def iemocap_sessions(root: Path) -> list[Path]:
    """The session folders present under root, each checked for its label and audio folders."""
    present = [root / s for s in SESSIONS if (root / s).is_dir()]
    if not present:
        hint = ""
        if (root / "IEMOCAP_full_release").is_dir():
            hint = f" (did you mean {root / 'IEMOCAP_full_release'}?)"
        raise CorpusNotFoundError(f"no Session1..Session5 folder in {root}{hint}; expected {LAYOUT}")
    for session in present:
        for sub in (Path("dialog") / "EmoEvaluation", Path("sentences") / "wav"):
            if not (session / sub).is_dir():
                raise CorpusNotFoundError(f"{session / sub} does not exist; expected {LAYOUT}")
    missing = [s for s in SESSIONS if not (root / s).is_dir()]
    if missing:
        log.warning("IEMOCAP at %s lacks %s: using the other sessions only", root, ", ".join(missing))
    return present


def parse_iemocap(
    root: Path,
    *,
    label_set: Literal["4class", "7class"] = "4class",
    dialog_type: Literal["all", "improvised", "scripted"] = "all",
    corpus: str = "iemocap",
    report: ParseReport | None = None,
) -> list[Utterance]:
    """Parses the consensus label files of every session and pairs each labelled turn with its wav.

    The rules are :class:`IEMOCAPDataModule`'s.

    Args:
        root: the ``IEMOCAP_full_release`` folder (``Session1`` ... ``Session5``).
        label_set: which codes are classes (others are dropped and counted in ``report.dropped``).
        dialog_type: ``all``, or only the ``improvised`` or ``scripted`` dialogs.
        corpus: the corpus name stored in every record.
        report: collects skipped files and dropped labels (default: a fresh
            :class:`~ser_lightning.data.manifest.ParseReport`).

    Returns:
        The labelled turns with an audio file, in session and label-file order.

    Raises:
        CorpusNotFoundError: no session folder, or one lacks its label or audio folder.
        ManifestError: a label file is malformed, a turn is labelled twice or in the wrong session, or no turn
            is left.
    """
    report = report if report is not None else ParseReport()
    mapping = LABEL_SETS[label_set]
    dropped: Counter[str] = Counter()
    records: list[Utterance] = []
    seen: dict[str, str] = {}
    for session_dir in iemocap_sessions(root):
        label_dir = session_dir / "dialog" / "EmoEvaluation"
        files = sorted(p for p in label_dir.iterdir() if p.is_file() and p.suffix == ".txt")
        for label_file in files:
            if label_file.name.startswith("."):  # macOS AppleDouble copies (._Ses01F_impro01.txt)
                continue
            for lineno, turn in parse_emo_evaluation(label_file):
                where = f"{label_file}:{lineno}"
                if turn["turn"] in seen:
                    raise ManifestError(
                        f"{where}: turn {turn['turn']} is labelled twice (also at {seen[turn['turn']]})"
                    )
                seen[turn["turn"]] = where
                if turn["session"] != f"Ses{int(session_dir.name[-1]):02d}":
                    raise ManifestError(f"{where}: turn {turn['turn']} does not belong to {session_dir.name}")
                if dialog_type != "all" and turn["dialog_type"] != dialog_type:
                    continue
                label = mapping.get(turn["code"])
                if label is None:
                    dropped[turn["code"]] += 1
                    continue
                wav = session_dir / "sentences" / "wav" / turn["dialog"] / f"{turn['turn']}.wav"
                if not wav.is_file():
                    report.skip(wav, f"labelled '{turn['code']}' in {where} but the audio file is missing")
                    continue
                script = _SCRIPT_ID.search(turn["dialog"]) if turn["dialog_type"] == "scripted" else None
                records.append(
                    Utterance(
                        path=str(wav.resolve()),
                        label=label,
                        speaker=turn["session"] + turn["gender"],
                        session=turn["session"],
                        sentence=script.group(1) if script else "",
                        corpus=corpus,
                        utt_id=turn["turn"],
                        extra={k: turn[k] for k in _EXTRA},
                    )
                )
    report.dropped.update(sorted(dropped.items()))
    if not records:
        raise ManifestError(
            f"{root}: no {dialog_type} turn with a label among {list(CLASS_NAMES[label_set])} and an audio file"
        )
    return records


def parse_emo_evaluation(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Reads the turn lines of one ``EmoEvaluation/<dialog>.txt`` consensus label file.

    The file is a ``%`` header line and blank-line-separated blocks; only the first line of a block is a turn
    line (``[START - END]<TAB>TURN<TAB>code<TAB>[V, A, D]``); the evaluator lines that follow it (``C-E2:``,
    ``A-E3:``, self-evaluations ``C-F1:``, ``A-M1:``, free-text comments) are never read as turns, whatever
    they look like.

    Args:
        path: the label file.

    Returns:
        ``(line number, fields)`` per turn; fields: ``turn``, ``dialog``, ``dialog_type`` (``improvised`` or
        ``scripted``), ``session`` (``Ses01``), ``gender`` (of the turn's speaker), ``code``, ``start``,
        ``end``, ``valence``, ``activation``, ``dominance``.

    Raises:
        ManifestError: a block's first line is not a turn line, a turn name is malformed or a label code is
            unknown (naming file and line).
    """
    turns = []
    in_block = False
    for lineno, raw in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        line = raw.strip()
        if not line:
            in_block = False
            continue
        if in_block or line.startswith("%"):  # evaluator lines of the current block, or the header
            continue
        in_block = True
        match = _TURN_LINE.match(line)
        if match is None:
            raise ManifestError(
                f"{path}:{lineno}: expected a turn line '[START - END]<TAB>TURN_NAME<TAB>code<TAB>[V, A, D]' "
                f"at the start of a block, got {line[:80]!r}"
            )
        turn, code = match["turn"], match["code"]
        name = _TURN_NAME.match(turn)
        if name is None:
            raise ManifestError(
                f"{path}:{lineno}: malformed turn name {turn!r} (expected e.g. Ses01F_impro01_M003 or "
                "Ses01F_script01_1_F000)"
            )
        if code not in LABEL_CODES:
            raise ManifestError(
                f"{path}:{lineno}: unknown label code {code!r} (expected one of {', '.join(LABEL_CODES)})"
            )
        vad = [v.strip() for v in match["vad"].split(",")]
        vad = vad if len(vad) == 3 else ["", "", ""]
        turns.append(
            (
                lineno,
                {
                    "turn": turn,
                    "dialog": turn.rpartition("_")[0],
                    "dialog_type": "improvised" if name["kind"] == "impro" else "scripted",
                    "session": name["session"],
                    "gender": name["gender"],
                    "code": code,
                    "start": match["start"],
                    "end": match["end"],
                    "valence": vad[0],
                    "activation": vad[1],
                    "dominance": vad[2],
                },
            )
        )
    return turns
