"""The cohort retention table and subscriber summary, on events counted by hand."""

from __future__ import annotations

import pandas as pd

from lifecycle.predict import guards, retention

NIGHT = pd.Timestamp("2026-07-01")


def ev(cid, name, day):
    return (cid, name, NIGHT - pd.Timedelta(days=day), 10.0)


def subs():
    rows = [
        # a: started 100 days ago (3 renewals due), renewed 3 times, active
        ev("a", retention.STARTED, 100),
        ev("a", retention.RENEWED, 70),
        ev("a", retention.RENEWED, 40),
        ev("a", retention.RENEWED, 10),
        # b: started 100 days ago, renewed once, cancelled
        ev("b", retention.STARTED, 100),
        ev("b", retention.RENEWED, 70),
        ev("b", retention.CANCELLED, 50),
        # c: started 35 days ago (1 renewal due), cancelled before the first renewal
        ev("c", retention.STARTED, 35),
        ev("c", retention.CANCELLED, 33),
        # d: started 10 days ago, nothing due yet
        ev("d", retention.STARTED, 10),
    ]
    events = pd.DataFrame(rows, columns=["contact_id", "event_name", "event_at", "revenue_usd"])
    return retention.subscribers(events, NIGHT, 30)


def test_subscriber_summary():
    s = subs().set_index("contact_id")
    assert s.renewals.to_dict() == {"a": 3, "b": 1, "c": 0, "d": 0}
    assert s.is_active.to_dict() == {"a": True, "b": False, "c": False, "d": True}
    # censoring: a survives 3, d survives 0; b's lifetime is 2 periods, c's is 1
    assert s.known_through.to_dict() == {"a": 3, "b": 2, "c": 1, "d": 0}
    assert s.decided_through.to_dict() == {"a": 3, "b": 3, "c": 1, "d": 0}


def test_retention_table_counts_those_whose_renewal_came_due():
    s = subs().assign(cohort="x")
    fits = {
        "x": (None, guards.Verdict(guards.INSUFFICIENT, ("few",), {})),
        retention.POOLED: (None, guards.Verdict(guards.INSUFFICIENT, ("few",), {})),
    }
    t = retention.retention_table(s, fits, projection_periods=1)
    x = t[t.cohort == "x"].set_index("period")
    # period 1: a, b, c due -> a, b renewed; period 2: a, b due -> a; period 3: a, b -> a
    assert x.observable_subscribers.to_dict() == {0: 4, 1: 3, 2: 2, 3: 2, 4: 0}
    assert x.retained_subscribers.to_dict() == {0: 4, 1: 2, 2: 1, 3: 1, 4: 0}
    assert x.loc[4, "is_projection"] and not x.loc[3, "is_projection"]
    assert (t.prediction_status == guards.INSUFFICIENT).all()
