from __future__ import annotations

import pytest

from ser_lightning.data.manifest import Utterance, unique
from ser_lightning.data.splits import Split, check_split, make_split, num_folds
from ser_lightning.errors import LeakageError, ProtocolError


def corpus(speakers: int = 8, per_speaker: int = 6, sessions: bool = True) -> list[Utterance]:
    labels = ["neutral", "happy", "angry", "sad"]
    out = []
    for s in range(speakers):
        for u in range(per_speaker):
            out.append(
                Utterance(
                    path=f"/c/spk{s:02d}/{u}.wav",
                    label=labels[u % 4],
                    speaker=f"spk{s:02d}",
                    session=f"ses{s // 2:02d}" if sessions else "",
                    sentence=f"s{u}",
                )
            )
    return out


def speakers(part: list[Utterance]) -> set[str]:
    return set(unique(part, "speaker"))


@pytest.mark.parametrize("fold", range(8))
def test_loso_tests_one_speaker_and_validates_on_session_partner(fold: int) -> None:
    records = corpus()
    split = make_split(records, "loso", fold)
    test_spk = f"spk{fold:02d}"
    partner = f"spk{fold ^ 1:02d}"  # spk00<->spk01, spk02<->spk03, ...
    assert speakers(split.test) == {test_spk}
    assert speakers(split.val) == {partner}
    assert speakers(split.train) == {f"spk{i:02d}" for i in range(8)} - {test_spk, partner}
    assert split.stamp["speaker_independent"] is True
    assert len(split.train) + len(split.val) + len(split.test) == len(records)


def test_loso_without_sessions_validates_on_next_speaker() -> None:
    split = make_split(corpus(sessions=False), "loso", 7)
    assert speakers(split.test) == {"spk07"} and speakers(split.val) == {"spk00"}


@pytest.mark.parametrize("fold", range(5))
def test_kfold_is_speaker_grouped_and_covers_every_speaker_once(fold: int) -> None:
    records = corpus(speakers=10)
    split = make_split(records, "kfold", fold, k=5, seed=3)
    assert not speakers(split.train) & speakers(split.test)
    assert not speakers(split.val) & speakers(split.test)
    assert not speakers(split.train) & speakers(split.val)
    tested = set()
    for f in range(5):
        tested |= speakers(make_split(records, "kfold", f, k=5, seed=3).test)
    assert tested == speakers(records)


def test_kfold_seed_changes_the_grouping() -> None:
    records = corpus(speakers=10)
    groups = {s: frozenset(speakers(make_split(records, "kfold", 0, k=5, seed=s).test)) for s in range(6)}
    assert len(set(groups.values())) > 1


def test_holdout_fractions_by_speaker() -> None:
    records = corpus(speakers=20)
    split = make_split(records, "holdout", 0, seed=1, holdout_fractions=(0.6, 0.15, 0.25))
    n = len(records)
    assert abs(len(split.test) / n - 0.25) <= 0.06
    assert abs(len(split.val) / n - 0.15) <= 0.06
    assert not speakers(split.train) & (speakers(split.test) | speakers(split.val))
    again = make_split(records, "holdout", 0, seed=1, holdout_fractions=(0.6, 0.15, 0.25))
    assert [r.path for r in again.test] == [r.path for r in split.test]


def test_lsso_holds_out_whole_sessions() -> None:
    split = make_split(corpus(), "lsso", 1)
    assert {r.session for r in split.test} == {"ses01"}
    assert {r.session for r in split.val} == {"ses02"}
    assert not {r.session for r in split.train} & {"ses01", "ses02"}


def test_speaker_dependent_only_when_asked_and_stamped() -> None:
    records = corpus()
    split = make_split(records, "kfold", 0, k=5, speaker_dependent=True)
    assert split.stamp["speaker_independent"] is False
    assert speakers(split.train) & speakers(split.test)  # it really is speaker-dependent
    with pytest.raises(ProtocolError, match="speaker-independent by definition"):
        make_split(records, "loso", 0, speaker_dependent=True)
    hold = make_split(records, "holdout", 0, speaker_dependent=True)
    assert hold.stamp["speaker_independent"] is False
    assert abs(len(hold.train) / len(records) - 0.6) < 0.1


def test_check_split_rejects_shared_speaker_and_shared_file() -> None:
    records = corpus()
    leaky = Split(records[:20], records[20:30], records[25:40], {"protocol": "x", "speaker_independent": True})
    with pytest.raises(LeakageError, match="appear in both"):
        check_split(leaky)
    same_file = Split(records[:6], records[6:12], [records[0]], {"speaker_independent": False})
    with pytest.raises(LeakageError, match="in both train and test"):
        check_split(same_file)


@pytest.mark.parametrize(
    ("protocol", "fold", "message"),
    [("loso", 8, "out of range"), ("kfold", 5, "out of range"), ("nope", 0, "unknown protocol")],
)
def test_bad_protocol_arguments(protocol: str, fold: int, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        make_split(corpus(), protocol, fold)


def test_num_folds() -> None:
    records = corpus()
    assert num_folds(records, "loso") == 8
    assert num_folds(records, "lsso") == 4
    assert num_folds(records, "kfold", 5) == 5
    assert num_folds(records, "holdout") == 1
