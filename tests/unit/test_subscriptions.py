"""The simulator's subscription customers: renewals and cancellations as web events."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lifecycle.predict import retention, sbg
from lifecycle.sandbox import subscriptions
from lifecycle.sandbox.world import DAY, WorldConfig, simulate


def test_events_follow_each_subscribers_truth_and_carry_none_of_it():
    w = simulate(WorldConfig(contacts=1500, seed=5))
    subs, ev = w.subscriptions, w.events
    mine = ev[ev.event.str.startswith("Subscription", na=False)]
    assert len(subs) > 200 and mine.message_id.is_unique and ev.message_id.is_unique
    t_end = w.now_ts + w.config.horizon_days * DAY
    per = mine.groupby(["person", "event"]).size().unstack(fill_value=0)
    s = subs.set_index("person")
    # renewals: one per paid period after the first that began before the calendar's end
    due = np.ceil((t_end - s.started_at) / (subscriptions.PERIOD_DAYS * DAY)).astype(int)
    want = np.minimum(s.periods, due) - 1
    assert (per["Subscription Renewed"].reindex(s.index, fill_value=0) == want).all()
    assert (per["Subscription Started"].reindex(s.index) == 1).all()
    cancelled = s.cancelled_at.notna()
    assert (per["Subscription Cancelled"].reindex(s.index, fill_value=0) == cancelled).all()
    # a cancellation comes before the renewal it prevents
    gap = (s.cancelled_at - s.started_at)[cancelled] / (subscriptions.PERIOD_DAYS * DAY)
    assert ((gap > s.periods[cancelled] - 1) & (gap < s.periods[cancelled])).all()
    assert set(mine.columns) == set(ev.columns)  # the world's event columns, no truth
    assert mine.user_id.notna().all()
    # the world's fixed categories hold the billing page's names (an unknown one would
    # have raised; a silent NaN would have dropped the rows from `mine`)
    assert isinstance(ev.event.dtype, pd.CategoricalDtype)
    assert len(mine) == len(subs) + per["Subscription Renewed"].sum() + cancelled.sum()
    assert (mine.type == "track").all() and (mine.path == "/account/billing").all()
    assert mine.detail.isna().all() and mine.email.isna().all()
    assert (mine.device == 1).all()  # the subscriber's own desktop browser, not a bot's
    paid = mine.event != "Subscription Cancelled"
    assert mine.order_id[paid].notna().all() and mine.order_id[~paid].isna().all()
    assert mine.revenue[paid].isin([19.0, 49.0, 99.0]).all()


def test_the_draws_leave_the_rest_of_the_world_as_it_was(monkeypatch):
    from lifecycle.sandbox import world as world_module

    a = simulate(WorldConfig(contacts=800, seed=3))
    b = simulate(WorldConfig(contacts=800, seed=3))
    pd.testing.assert_frame_equal(a.subscriptions, b.subscriptions)
    monkeypatch.setattr(world_module, "add_subscriptions", lambda w: w)
    bare = simulate(WorldConfig(contacts=800, seed=3))
    assert bare.subscriptions is None
    other = a.events[~a.events.event.str.startswith("Subscription", na=False)]
    pd.testing.assert_frame_equal(other.reset_index(drop=True), bare.events)
    assert a.events.dtypes.to_dict() == bare.events.dtypes.to_dict()
    for name in ("contacts", "orders", "deals", "email_activity"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(bare, name))


def test_the_truth_is_an_sbg_population():
    w = simulate(WorldConfig(contacts=8000, seed=9))
    s = w.subscriptions
    now = w.now_ts
    # observed by the night: cancelled before now -> lifetime; otherwise censored
    due = np.floor((now - s.started_at) / (subscriptions.PERIOD_DAYS * DAY)).astype(int)
    started = s.started_at < now
    s, due = s[started], due[started]
    churned = s.cancelled_at < now
    churn_t = s.periods[churned].to_numpy()
    alive_t = np.minimum(s.periods[~churned], due[~churned]).to_numpy()
    ct, cn = np.unique(churn_t, return_counts=True)
    at, an = np.unique(alive_t, return_counts=True)
    fit = sbg.fit(ct, cn, at, an)
    a, b = fit.params["alpha"], fit.params["beta"]
    mean = subscriptions.ALPHA / (subscriptions.ALPHA + subscriptions.BETA)
    assert abs(a / (a + b) - mean) < 0.02
    assert 0.5 * subscriptions.ALPHA < a < 1.6 * subscriptions.ALPHA
    assert retention.STARTED == "Subscription Started"
