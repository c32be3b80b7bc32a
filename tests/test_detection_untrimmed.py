"""The untrimmed synthetic generator: PKU-MMD files that the readers take back, labels as generated, continuity."""

from __future__ import annotations

import numpy as np
import pytest

from actionfusion.datasets.ntu.splits import XSUB_TRAIN_SUBJECTS_NTU60
from actionfusion.datasets.pku_mmd import cut_clips, read_pku_labels, read_pku_skeleton
from actionfusion.datasets.synthetic import untrimmed
from actionfusion.datasets.synthetic.untrimmed import (UntrimmedConfig, generate_untrimmed, plan_actions,
                                                        render_sequence)
from actionfusion.datasets.synthetic.seeding import keyed_rng

TINY = UntrimmedConfig(seed=3, num_sequences=2, actions_per_sequence=(4, 5), action_frames=(12, 16),
                       gap_frames=(6, 10))


def test_files_read_back_with_the_pku_readers(tmp_path):
    summary = generate_untrimmed(tmp_path, TINY)
    assert len(summary.sequences) == 2 and (tmp_path / untrimmed.SUMMARY_FILE).is_file()
    for index, name in enumerate(summary.sequences):
        expected = render_sequence(TINY, index)
        assert expected.name == name and expected.performer not in XSUB_TRAIN_SUBJECTS_NTU60
        skeleton = read_pku_skeleton(tmp_path / "skeleton" / f"{name}.txt")
        assert skeleton.shape == expected.skeleton.shape == (2, summary.frames[index], 25, 3)
        np.testing.assert_allclose(skeleton, expected.skeleton, atol=1e-5)  # written with 5 decimals
        actions = read_pku_labels(tmp_path / "label" / f"{name}.txt", num_classes=60)
        assert [(a.action_id, a.start_frame, a.end_frame) for a in actions] == expected.labels
        assert TINY.actions_per_sequence[0] <= len(actions) <= TINY.actions_per_sequence[1] + 1  # +1: a sit/stand pair
        previous_end = 0
        for a in actions:  # ordered, disjoint, separated by a gap, inside the sequence
            assert a.start_frame - previous_end >= TINY.gap_frames[0]
            assert TINY.action_frames[0] <= a.end_frame - a.start_frame <= TINY.action_frames[1]
            previous_end = a.end_frame
        assert skeleton.shape[1] - previous_end >= TINY.gap_frames[0]
        clips = cut_clips(skeleton, actions, sequence=name)  # [start, end) clips, as the brief's convention
        assert [c.skeleton.shape[1] for c in clips] == [a.end_frame - a.start_frame for a in actions]


def test_deterministic_from_the_seed():
    a, b = render_sequence(TINY, 1), render_sequence(TINY, 1)
    np.testing.assert_array_equal(a.skeleton, b.skeleton)
    assert a.labels == b.labels
    other = render_sequence(UntrimmedConfig(**{**TINY.__dict__, "seed": 4}), 1)
    assert other.skeleton.shape != a.skeleton.shape or not np.array_equal(other.skeleton, a.skeleton)


def test_no_jumps_at_action_boundaries(monkeypatch):
    # Without sensor noise, the body moves smoothly across every start and end of an action.
    monkeypatch.setattr(untrimmed, "sensor_skeleton", lambda rng, joints: type("S", (), {"joints": joints}))
    config = UntrimmedConfig(seed=5, num_sequences=1, actions_per_sequence=(8, 8), action_frames=(36, 48),
                             gap_frames=(20, 30))
    seq = render_sequence(config, 0)
    step = np.linalg.norm(np.diff(seq.skeleton[0], axis=0), axis=-1)  # [T-1, 25] metres per frame
    for _, start, end in seq.labels:
        for boundary in (start, end):  # the steps into and out of the boundary frame
            assert step[boundary - 1].max() < 0.05 and step[boundary].max() < 0.05, (boundary, step[boundary - 1:boundary + 1].max())
    spine = np.linalg.norm(np.diff(seq.skeleton[0, :, 0], axis=0), axis=-1)
    gaps = np.ones(spine.size, bool)
    for _, start, end in seq.labels:
        gaps[start - 1:end] = False
    assert spine[gaps].max() < 0.03  # idle gaps: turning and swaying, no walking leap


def test_partner_present_exactly_during_interactions():
    config = UntrimmedConfig(seed=2, num_sequences=1, actions_per_sequence=(6, 6), action_frames=(12, 14),
                             gap_frames=(5, 6), classes=(23, 58))
    seq = next(s for s in (render_sequence(config, i) for i in range(10)) if {a for a, _, _ in s.labels} == {23, 58})
    expected = np.zeros(seq.skeleton.shape[1], bool)
    for action, start, end in seq.labels:
        if action == 58:
            expected[start:end] = True
    np.testing.assert_array_equal(np.any(seq.skeleton[1] != 0, axis=(1, 2)), expected)
    assert np.all(np.any(seq.skeleton[0] != 0, axis=(1, 2)))  # the performer never leaves


def test_class_options_and_sit_stand_pairing():
    no_objects = UntrimmedConfig(exclude_held_object=True)
    assert not {1, 3, 28} & {c.action for c in no_objects.class_list()}
    assert len(no_objects.class_list()) == 12
    for k in range(20):
        actions = plan_actions(UntrimmedConfig(classes=(8, 9, 10)), keyed_rng(0, "plan", k))
        for i, action in enumerate(actions):
            if action == 8:
                assert actions[i + 1] == 9
            if action == 9:
                assert actions[i - 1] == 8
    with pytest.raises(ValueError):
        UntrimmedConfig(classes=(2,)).class_list()  # A002 is not synthesised
    with pytest.raises(ValueError):
        UntrimmedConfig(classes=(1, 3), exclude_held_object=True).class_list()
