"""Subscription customers of a simulated world: a monthly plan, renewals, cancellations.

Some known contacts take a paid plan after they sign up. Each renews every
:data:`PERIOD_DAYS` days until they cancel; at each renewal a subscriber cancels with
their own probability θ, drawn once from Beta(:data:`ALPHA`, :data:`BETA`) (the shifted
beta-geometric story of Fader & Hardie 2007, so the retention model has a known truth).

What a vendor holds is only the web tracking of it, as a billing page would send it to
Segment: ``Subscription Started`` / ``Subscription Renewed`` track events carrying the
invoice id and amount (``order_id``, ``revenue``) and ``Subscription Cancelled`` when the
subscriber cancels. θ and the plan's true lifetime stay in :attr:`World.subscriptions`,
ground truth that no vendor payload carries.

Drawn from an independent random stream (``default_rng([seed, STREAM])``), so changes to
the world's own streams do not move these draws, and vice versa.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

DAY = 86_400
#: Tag of this module's random stream (issue 12).
STREAM = 12_001
#: Share of known contacts who subscribe, and the plans they choose (USD per period).
SUBSCRIBE_SHARE = 0.25
PLANS_USD = np.array([19.0, 49.0, 99.0])
PLANS_P = np.array([0.5, 0.35, 0.15])
PERIOD_DAYS = 30
#: Heterogeneity of the per-period cancel probability θ ~ Beta(ALPHA, BETA): mean 14%.
ALPHA, BETA = 0.8, 5.0
#: The billing page's track events and its path: the world's fixed event categories
#: include them (``world.EVENT_NAMES``, ``world.TRACK_PATHS``).
STARTED, RENEWED, CANCELLED = (
    "Subscription Started",
    "Subscription Renewed",
    "Subscription Cancelled",
)
EVENT_NAMES = (STARTED, RENEWED, CANCELLED)
BILLING_PATH = "/account/billing"


def draw(world) -> pd.DataFrame:
    """One row per subscriber: person, start, plan price, θ, periods paid, cancel time."""
    cfg = world.config
    rng = np.random.default_rng([cfg.seed, STREAM])
    c = world.contacts
    t_end = world.now_ts + cfg.horizon_days * DAY
    sub_at = c.subscriber_at.to_numpy()
    known = ~np.isnan(sub_at)
    n = len(c)
    takes = known & (rng.random(n) < SUBSCRIBE_SHARE)
    start = sub_at + rng.exponential(20.0, n) * DAY
    takes &= start < t_end
    who = np.flatnonzero(takes)
    theta = rng.beta(ALPHA, BETA, len(who))
    periods = rng.geometric(theta)  # periods paid before cancelling (>= 1)
    price = rng.choice(PLANS_USD, len(who), p=PLANS_P)
    # the cancellation comes during the last paid period, before the renewal it prevents
    cancel_at = start[who] + (periods - rng.uniform(0.05, 0.95, len(who))) * PERIOD_DAYS * DAY
    return pd.DataFrame(
        {
            "person": c.person.to_numpy()[who],
            "started_at": start[who],
            "price_usd": price,
            "theta": theta,
            "periods": periods,
            "cancelled_at": np.where(cancel_at < t_end, cancel_at, np.nan),
        }
    )


def events(world, subs: pd.DataFrame) -> pd.DataFrame:
    """The Segment track events of the subscriptions, in the columns and column types of
    ``world.events`` (its categoricals with their fixed categories: a value outside them
    raises). The billing page is visited on the subscriber's first device (desktop)."""
    # world imports this module
    from lifecycle.sandbox.world import (  # noqa: PLC0415
        DESKTOP_AGENTS,
        _categorical,
        _ids,
    )

    cfg = world.config
    t_end = world.now_ts + cfg.horizon_days * DAY
    # only the periods that begin before the end of the simulated calendar leave events
    due = np.ceil((t_end - subs.started_at.to_numpy()) / (PERIOD_DAYS * DAY)).astype(np.int64)
    k = np.minimum(subs.periods.to_numpy(), np.maximum(due, 0))
    # payments: the start (k = 0) and each renewal k = 1 .. periods - 1
    p_row = np.repeat(np.arange(len(subs)), k)
    p_k = np.arange(len(p_row)) - np.repeat(np.cumsum(k) - k, k)
    p_ts = subs.started_at.to_numpy()[p_row] + p_k * PERIOD_DAYS * DAY
    keep = p_ts < t_end
    p_row, p_k, p_ts = p_row[keep], p_k[keep], p_ts[keep]
    c_row = np.flatnonzero(~np.isnan(subs.cancelled_at.to_numpy()))
    rows = np.concatenate([p_row, c_row])
    ts = np.concatenate([p_ts, subs.cancelled_at.to_numpy()[c_row]])
    name = np.concatenate(
        [
            np.where(p_k == 0, STARTED, RENEWED).astype(object),
            np.full(len(c_row), CANCELLED, dtype=object),
        ]
    )
    paid = np.r_[np.ones(len(p_row), bool), np.zeros(len(c_row), bool)]
    person = subs.person.to_numpy()[rows]
    contacts = world.contacts.set_index("person")
    invoice = _ids("inv_", len(rows), cfg.seed, start=0)
    n = len(rows)
    none = np.full(n, None, dtype=object)
    cols = {
        "message_id": _ids("sub-", n, cfg.seed, start=0),
        "type": np.full(n, "track", dtype=object),
        "event": name,
        "anonymous_id": contacts.anonymous_id.reindex(person).to_numpy(dtype=object),
        "user_id": contacts.user_id.reindex(person).to_numpy(dtype=object),
        "person": person.astype(np.int64),
        "ts": ts.astype(float),
        "path": np.full(n, BILLING_PATH, dtype=object),
        "utm_source": none,
        "utm_medium": none,
        "utm_campaign": none,
        "email": none,
        "revenue": np.where(paid, subs.price_usd.to_numpy()[rows], np.nan),
        "order_id": np.where(paid, invoice, None).astype(object),
        "detail": none,
        "ua": (person % len(DESKTOP_AGENTS)).astype(np.int8),
        "device": np.ones(n, dtype=np.int8),
    }
    like = world.events
    missing = set(like.columns) ^ set(cols)
    if missing:
        raise ValueError(f"subscription events and world.events differ in {sorted(missing)}")
    dtypes = like.dtypes.to_dict()
    for c, dtype in dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            cols[c] = _categorical(c, cols[c], list(dtype.categories))
    frame = pd.DataFrame({c: cols[c] for c in like.columns}).astype(dtypes)
    return frame.sort_values(["ts", "message_id"], kind="stable").reset_index(drop=True)


def add_subscriptions(world):
    """The world with its subscribers (``world.subscriptions``) and their web events
    appended to ``world.events``: the one call ``simulate()`` makes (issue 12)."""
    subs = draw(world)
    ev = events(world, subs)
    merged = pd.concat([world.events, ev], ignore_index=True)
    return replace(world, events=merged, subscriptions=subs)
