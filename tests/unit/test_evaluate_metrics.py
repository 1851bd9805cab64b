"""The evaluation's metrics on hand-made inputs whose answers are known."""

from __future__ import annotations

import pandas as pd
import pytest

from lifecycle.evaluate import (
    TARGETS,
    binary_scores,
    identity_scores,
    median_abs_days,
    missed_targets,
    roc_auc,
    stage_agreement,
    stage_f1,
)


def test_auc_perfect_reversed_and_random_orderings():
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    # one positive above one of two negatives: 1/2
    assert roc_auc([1, 2, 3], [False, True, False]) == 0.5


def test_auc_counts_ties_as_one_half():
    # positive tied with one negative, above the other: (0.5 + 1) / 2
    assert roc_auc([5, 5, 1], [True, False, False]) == 0.75
    assert roc_auc([7, 7, 7, 7], [True, False, True, False]) == 0.5


def test_auc_is_undefined_without_both_classes():
    with pytest.raises(ValueError, match="positives and negatives"):
        roc_auc([1, 2], [True, True])
    with pytest.raises(ValueError, match="length"):
        roc_auc([1, 2, 3], [True, False])


def test_stage_agreement_counts_missing_contacts_as_wrong():
    truth = {"a": "lead", "b": "mql", "c": "customer", "d": "lapsed"}
    model = {"a": "lead", "b": "sql", "d": "lapsed", "x": "lead"}
    assert stage_agreement(model, truth) == 0.5


def test_identity_precision_counts_every_attributed_event_and_recall_only_eligible_ones():
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "b1", "u1"],
            "person": [1, 1, 2, 2, -1, 3],
            # u1: a device that never identified: not counted for recall
            "eligible": [True, True, True, True, False, False],
        }
    )
    model = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "b1", "u1"],
            "person": [1.0, 2.0, 2.0, None, 1.0, 3.0],
        }
    )
    got = identity_scores(model, events)
    # attributed: e1 right, e2 wrong, e3 right, b1 (a bot's) wrong, u1 right -> 3 of 5
    assert got["identity_precision"] == pytest.approx(3 / 5)
    # eligible: e1, e3 right; e2 wrong; e4 unattributed -> 2 of 4
    assert got["identity_recall"] == 0.5
    assert got["identity_wrong"] == 2
    assert got["identity_events"] == 4


def test_stage_f1_per_stage_and_missing_contacts():
    truth = {"a": "lead", "b": "lead", "c": "mql", "d": "customer"}
    model = {"a": "lead", "b": "mql", "c": "mql"}
    f1 = stage_f1(model, truth)
    # lead: tp 1, fn 1 -> 2/3; mql: tp 1, fp 1 -> 2/3; customer: never predicted -> 0
    assert f1 == {"customer": 0.0, "lead": pytest.approx(2 / 3), "mql": pytest.approx(2 / 3)}


def test_median_abs_days_over_pairs_both_have():
    truth = pd.DataFrame(
        {"key": ["a", "a", "b"], "stage": ["lead", "sql", "lead"], "at": [0, 86400, 0]}
    )
    model = pd.DataFrame(
        {"key": ["a", "a", "c"], "stage": ["lead", "sql", "lead"], "at": [43200, 86400 * 4, 0]}
    )
    # pairs: a/lead 0.5 days, a/sql 3 days (b and c are in one side only)
    assert median_abs_days(model, truth) == (1.75, 2)


def test_binary_scores_and_missed_targets():
    assert binary_scores([True, True, False, False], [True, False, True, False]) == (0.5, 0.5)
    assert binary_scores([False, False], [True, False]) == (0.0, 0.0)
    figures = dict.fromkeys(TARGETS, 1.0)
    figures["stage_entry_median_abs_days"] = 2.5
    figures["identity_recall"] = 0.9
    missed = missed_targets(figures)
    assert set(missed) == {"stage_entry_median_abs_days", "identity_recall"}
    assert "by 1.5000" in missed["stage_entry_median_abs_days"]
