"""A sandbox world that replays CDNOW's real purchases (``lifecycle sandbox serve --world
cdnow``).

``CDNOW_master.txt`` (shipped in the ``lifetimes`` wheel, a dev dependency; read by path,
never committed) holds every purchase of the 23,570 customers who first bought at CDNOW
in the first quarter of 1997, through June 1998. Each customer becomes a contact with a
generated name and email, created in the CRM at their first purchase (HubSpot puts them
under an automatically created company of their email domain); each purchase becomes an
``Order Completed`` Segment event with its amount, and each customer's first purchase
also a closed-won HubSpot deal, exactly as the simulated world's orders do, so the same
connectors and the same dbt models read them. A quarterly newsletter gives Mailchimp a
little activity. Times of day, names and email behaviour are drawn from
``default_rng([seed, STREAM])``; the purchases themselves are CDNOW's.

The calendar is CDNOW's moved forward :data:`SHIFT_YEARS` = 28 years (1997-01-01 becomes
2025-01-01): 28 years keep every weekday and leap day, so every interval is CDNOW's, and
the replay's last night, 2026-07-01 (the day after the last purchase), is one the
nightly DAG (start date 2026) can run. The papers' 39-week calibration period ends on
day 273: with ``calibration_holdout_days`` = 273 that night's calibration is theirs
(weeks 40-78 held out).
"""

from __future__ import annotations

import logging
from datetime import date

import numpy as np
import pandas as pd

from lifecycle.sandbox import world as sim

log = logging.getLogger(__name__)

STREAM = 12_002
SHIFT_YEARS = 28
START = date(1997 + SHIFT_YEARS, 1, 1)
NOW = date(1998 + SHIFT_YEARS, 7, 1)
#: The papers' calibration: 39 of the 78 weeks.
HOLDOUT_DAYS = 273
DOMAINS = np.array([f"mail{i}.example" for i in range(1, 11)])
EMAIL_SUBSCRIBED_SHARE = 0.4


def config(seed: int = 42, now: date | None = None) -> sim.WorldConfig:
    return sim.WorldConfig(
        contacts=23_570,
        seed=seed,
        start=START,
        now=now or NOW,
        horizon_days=0,
        campaign_every_days=91,
        anonymous_visitors_ratio=0.0,
    )


def build(seed: int = 42, now: date | None = None) -> sim.World:
    """The CDNOW world (all 69,659 purchases; vendors serve those before ``now``)."""
    from lifecycle.predict.literature import cdnow_master  # noqa: PLC0415 - reads the wheel

    cfg = config(seed, now)
    rng = np.random.default_rng([cfg.seed, STREAM])
    tx = cdnow_master().sort_values(["customer_id", "date"], kind="stable").reset_index(drop=True)
    tx["date"] = tx.date + pd.DateOffset(years=SHIFT_YEARS)
    day = (tx.date - pd.Timestamp(START)).dt.days.to_numpy()
    ts = sim._epoch(START) + day * sim.DAY + rng.uniform(8, 22, len(tx)) * 3600
    tx["ts"] = ts
    tx = tx.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    cust = np.sort(tx.customer_id.unique())
    n = len(cust)
    person_of = pd.Series(np.arange(n), index=cust)
    tx["person"] = person_of.reindex(tx.customer_id).to_numpy()
    first_ts = tx.groupby("person").ts.min().to_numpy()

    companies = pd.DataFrame(
        {
            "company_id": (np.arange(1, len(DOMAINS) + 1) + 5_000_000).astype(str),
            "name": [f"{d} (email domain)" for d in DOMAINS],
            "domain": DOMAINS,
            "industry": None,
            "size_band": None,
            "numberofemployees": 0,
            "country": "US",
        }
    )
    dom = rng.integers(0, len(DOMAINS), n)
    first = sim.FIRST_NAMES[rng.integers(0, len(sim.FIRST_NAMES), n)]
    last = sim.LAST_NAMES[rng.integers(0, len(sim.LAST_NAMES), n)]
    email = np.char.add(
        np.char.add(np.char.add(np.char.lower(first.astype(str)), "."), cust.astype(str)),
        np.char.add("@", DOMAINS[dom]),
    )
    signup = first_ts - rng.uniform(60, 1800, n)  # they register at the first checkout
    nan = np.full(n, np.nan)
    unsub = np.where(
        rng.random(n) < EMAIL_SUBSCRIBED_SHARE, np.nan, signup + rng.exponential(3, n) * sim.DAY
    )
    contacts = pd.DataFrame(
        {
            "person": np.arange(n),
            "is_known": True,
            "hubspot_id": (np.arange(n) + 1_000_001).astype(str),
            "user_id": np.char.add("usr_", sim._ids("", n, cfg.seed, start=0).astype(str)),
            "anonymous_id": sim._ids("a1-", n, cfg.seed, start=0),
            "anonymous_id_2": None,
            "email": email,
            "email_typed": email,
            "firstname": first,
            "lastname": last,
            "phone": np.char.add("+1555", rng.integers(1_000_000, 9_999_999, n).astype(str)),
            "country": "US",
            "jobtitle": None,
            "company_id": companies.company_id.to_numpy()[dom],
            "channel": "direct",
            "fit_z": 0.0,
            "eng_z": 0.0,
            "first_seen_at": signup - 600,
            "subscriber_at": signup,
            "lead_at": nan,
            "mql_at": nan,
            "sql_at": nan,
            "opportunity_at": first_ts - 1,
            "customer_at": first_ts,
            "advocate_at": nan,
            "unsubscribed_at": unsub,
            "cleaned_at": nan,
            "is_machine_opener": rng.random(n) < 0.15,
            "ad_consent": rng.random(n) < 0.8,
        }
    )
    tx["order_n"] = tx.groupby("person").cumcount() + 1
    orders = pd.DataFrame(
        {
            "person": tx.person.to_numpy(),
            "order_n": tx.order_n.to_numpy(),
            "ordered_at": tx.ts.to_numpy(),
            "revenue_usd": tx.dollars.round(2).to_numpy(),
            "order_id": sim._ids("ord_", len(tx), cfg.seed, start=0),
        }
    ).merge(contacts[["person", "user_id"]], on="person")
    firsts = orders[orders.order_n == 1]
    deals = pd.DataFrame(
        {
            "deal_id": (np.arange(len(firsts)) + 9_000_001).astype(str),
            "person": firsts.person.to_numpy(),
            "hubspot_contact_id": contacts.hubspot_id.to_numpy()[firsts.person.to_numpy()],
            "createdate": firsts.ordered_at.to_numpy() - 1,
            "closedate": firsts.ordered_at.to_numpy(),
            "won_at": firsts.ordered_at.to_numpy(),
            "lost_at": np.nan,
            "amount": firsts.revenue_usd.to_numpy(),
        }
    )
    events = _events(cfg, contacts, orders)
    t0, t_end = sim._epoch(cfg.start), sim._epoch(cfg.now)
    campaigns = sim._campaigns(cfg, t0, t_end)
    activity = sim._email(rng, contacts, campaigns, t_end)
    world = sim.World(cfg, companies, contacts, orders, deals, events, campaigns, activity)
    log.info("CDNOW world: %d customers, %d purchases", n, len(orders))
    return world


def _events(cfg, contacts: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    p = contacts.person.to_numpy()
    signup = contacts.subscriber_at.to_numpy()

    def frame(person, ts, kind, event, path, revenue=np.nan, order_id=None, email=None):
        return pd.DataFrame(
            {
                "type": kind,
                "event": event,
                "person": person,
                "ts": ts,
                "path": path,
                "revenue": revenue,
                "order_id": order_id,
                "email": email,
            }
        )

    ev = (
        pd.concat(
            [
                frame(p, contacts.first_seen_at.to_numpy(), "page", None, "/"),
                frame(p, signup, "track", "Signed Up", "/signup"),
                frame(p, signup + 1, "identify", None, "/signup", email=contacts.email.to_numpy()),
                frame(
                    orders.person.to_numpy(),
                    orders.ordered_at.to_numpy(),
                    "track",
                    "Order Completed",
                    "/checkout/complete",
                    orders.revenue_usd.to_numpy(),
                    orders.order_id.to_numpy(),
                ),
            ],
            ignore_index=True,
        )
        .sort_values(["ts", "person"], kind="stable")
        .reset_index(drop=True)
    )
    person = ev.person.to_numpy()
    identified = ev.ts.to_numpy() >= signup[person] + 1
    return pd.DataFrame(
        {
            "message_id": sim._ids("msg-", len(ev), cfg.seed, start=0),
            "type": ev.type.to_numpy(),
            "event": ev.event.to_numpy(),
            "anonymous_id": contacts.anonymous_id.to_numpy()[person],
            "user_id": np.where(identified, contacts.user_id.to_numpy()[person], None),
            "person": person,
            "ts": ev.ts.to_numpy(),
            "path": ev.path.to_numpy(),
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "email": ev.email.to_numpy(),
            "revenue": ev.revenue.to_numpy(),
            "order_id": ev.order_id.to_numpy(),
        }
    )
