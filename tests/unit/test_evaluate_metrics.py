"""The evaluation's metrics on hand-made inputs whose answers are known."""

from __future__ import annotations

import pandas as pd
import pytest

from lifecycle.evaluate import identity_scores, roc_auc, stage_agreement


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


def test_identity_precision_and_recall():
    true = pd.DataFrame({"event_id": ["e1", "e2", "e3", "e4"], "contact_id": ["1", "1", "2", "2"]})
    model = pd.DataFrame(
        {"event_id": ["e1", "e2", "e3", "e4", "e9"], "contact_id": ["1", "2", "2", None, "5"]}
    )
    got = identity_scores(model, true)
    # e1, e3 right; e2 wrong; e4 unattributed; e9 is not an identified person's event
    assert got["identity_precision"] == pytest.approx(2 / 3)
    assert got["identity_recall"] == 0.5
    assert got["identity_wrong"] == 1
