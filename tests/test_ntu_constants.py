"""The embedded NTU constants equal the official lists (fixtures from shahroudy/NTURGB-D@ac2ebc8)."""

from pathlib import Path

import pytest

from actionfusion.datasets.ntu import constants, splits
from actionfusion.datasets.ntu.missing_skeletons import (
    MISSING_SKELETONS_NTU60,
    MISSING_SKELETONS_NTU120,
    has_missing_skeleton,
)
from actionfusion.datasets.ntu.names import parse_sample_name

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
LISTS = FIXTURES / "ntu-lists"


def _lists_dir() -> Path:
    if not LISTS.is_dir():
        pytest.skip(f"NTU fixtures not found at {LISTS}: they live in ../shared beside the repo")
    return LISTS


def _official_names(file_name: str) -> list[str]:
    lines = (_lists_dir() / file_name).read_text().splitlines()
    return [line.strip() for line in lines[3:] if line.strip()]


def test_missing_lists_equal_official_files():
    ntu60 = _official_names("NTU_RGBD_samples_with_missing_skeletons.txt")
    ntu120 = _official_names("NTU_RGBD120_samples_with_missing_skeletons.txt")
    assert len(ntu60) == len(set(ntu60)) == 302
    assert len(ntu120) == len(set(ntu120)) == 535
    assert MISSING_SKELETONS_NTU60 == frozenset(ntu60)
    assert MISSING_SKELETONS_NTU120 == frozenset(ntu120)


def test_missing_list_properties():
    assert len(MISSING_SKELETONS_NTU60) == 302
    assert len(MISSING_SKELETONS_NTU120) == 535
    assert MISSING_SKELETONS_NTU60 < MISSING_SKELETONS_NTU120
    assert all(parse_sample_name(n).setup <= 17 for n in MISSING_SKELETONS_NTU60)
    assert all(parse_sample_name(n).setup > 17 for n in MISSING_SKELETONS_NTU120 - MISSING_SKELETONS_NTU60)
    # 56,880 - 302 and 114,480 - 535: the sizes of CTR-GCN/MAMP's skes_available_name.txt
    assert constants.NUM_SAMPLES_NTU60 - len(MISSING_SKELETONS_NTU60) == 56_578
    assert constants.NUM_SAMPLES_NTU120 - len(MISSING_SKELETONS_NTU120) == 113_945
    assert has_missing_skeleton("S001C002P005R002A008")
    assert not has_missing_skeleton("S001C001P001R001A001")


def test_class_names_equal_official_tsv():
    rows = [line.split("\t") for line in (_lists_dir() / "ntu120_class_names.tsv").read_text().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(1, 121))
    assert constants.NTU120_CLASS_NAMES == tuple(r[1] for r in rows)
    assert constants.NTU60_CLASS_NAMES == tuple(r[1] for r in rows[:60])
    assert constants.class_names(60) == constants.NTU60_CLASS_NAMES
    assert constants.class_names(120)[57] == "handshaking"
    with pytest.raises(ValueError):
        constants.class_names(51)


def test_counts_and_two_person_actions():
    assert len(constants.NTU120_CLASS_NAMES) == 120 and len(constants.NTU60_CLASS_NAMES) == 60
    assert len(constants.TWO_PERSON_ACTIONS) == 11 + 15
    assert constants.is_two_person_action(50) and constants.is_two_person_action(60)
    assert constants.is_two_person_action(106) and constants.is_two_person_action(120)
    assert not constants.is_two_person_action(49) and not constants.is_two_person_action(61)
    assert not constants.is_two_person_action(105)
    # every two-person class name mentions another person or a partner action
    assert "other person" in constants.NTU120_CLASS_NAMES[50 - 1]


def test_joints_and_parents():
    assert len(constants.JOINT_NAMES) == 25 == constants.NUM_JOINTS
    assert constants.JOINT_NAMES[1] == "SpineMid" and constants.JOINT_NAMES[20] == "SpineShoulder"
    assert constants.JOINT_PARENTS_1BASED == (
        2, 1, 21, 3, 21, 5, 6, 7, 21, 9, 10, 11, 1, 13, 14, 15, 1, 17, 18, 19, 2, 8, 8, 12, 12)
    assert all(0 <= p < 25 for p in constants.JOINT_PARENTS)
    # left/right limbs mirror each other: parent names match after swapping Left/Right
    for j, name in enumerate(constants.JOINT_NAMES):
        if "Left" in name:
            mirror = constants.JOINT_NAMES.index(name.replace("Left", "Right"))
            parent, mirror_parent = (constants.JOINT_NAMES[constants.JOINT_PARENTS[k]] for k in (j, mirror))
            assert parent.replace("Left", "Right") == mirror_parent


def test_xsub_subject_lists():
    assert len(splits.XSUB_TRAIN_SUBJECTS_NTU60) == 20
    assert len(splits.XSUB_TRAIN_SUBJECTS_NTU120) == 53
    assert splits.XSUB_TRAIN_SUBJECTS_NTU60 < splits.XSUB_TRAIN_SUBJECTS_NTU120
    assert max(splits.XSUB_TRAIN_SUBJECTS_NTU60) == 38 and max(splits.XSUB_TRAIN_SUBJECTS_NTU120) == 103


def test_one_shot_protocol():
    assert len(constants.ONE_SHOT_EVAL_ACTIONS) == 20
    assert constants.ONE_SHOT_EVAL_ACTIONS[-1] == 115
    exemplars = [parse_sample_name(n) for n in constants.ONE_SHOT_EXEMPLARS]
    assert [e.action for e in exemplars] == list(constants.ONE_SHOT_EVAL_ACTIONS)
    assert {e.setup for e in exemplars} == {1, 18}
