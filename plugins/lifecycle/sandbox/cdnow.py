"""A sandbox world that replays CDNOW's real purchases (``lifecycle sandbox serve --world
cdnow``).

``CDNOW_master.txt`` (shipped in the ``lifetimes`` wheel, a dev dependency; read by path,
never committed) holds every purchase of the 23,570 customers who first bought at CDNOW
in the first quarter of 1997, through June 1998. Each customer becomes a contact with a
generated name and email who signs up at their first checkout; each purchase becomes an
``Order Completed`` Segment event with its amount and a closed-won HubSpot deal, so the
same connectors and the same dbt models read them. A quarterly newsletter gives
Mailchimp a little activity. Times of day, names and email behaviour are drawn from
``default_rng([seed, STREAM])``; the purchases themselves are CDNOW's.

What the vendors record is the ``clean`` noise profile's (:data:`PROFILE`), built with
the world's own helpers (``noise.crm_records`` for the CRM records and their noise log,
``world._email`` for the email activity, the world's event categories): that is what a
real e-commerce shop's CRM holds of these customers, no cleaner and no messier.

- A shop's integration writes the CRM: the contact at sign-up (the first checkout), the
  customer stage when the order closes, and one deal per order ("Typically, one customer
  order in a store will map to one HubSpot Deal", HubSpot developer docs, Ecommerce
  Bridge overview), created and closed won at the purchase. Machine-written records are
  not late, missing, hand-set wrong or frozen, so none of the realistic profile's CRM
  date noise applies; CDNOW's customer ids are already one per customer, so there are no
  duplicates; every order is in both systems.
- There is no sales process (no lead, MQL, SQL or opportunity in the truth) and no web
  behaviour beyond the purchases (one device per customer, no crawlers: CDNOW recorded
  none of it, and inventing it would mix the simulator's assumptions into a check on
  real data). Privacy-proxy opens stay at the clean profile's share: mail clients do
  that to every list.

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
from types import SimpleNamespace

import numpy as np
import pandas as pd

from lifecycle.sandbox import world as sim
from lifecycle.sandbox.noise import crm_records, load_profile

log = logging.getLogger(__name__)

STREAM = 12_002
SHIFT_YEARS = 28
START = date(1997 + SHIFT_YEARS, 1, 1)
NOW = date(1998 + SHIFT_YEARS, 7, 1)
#: Customers in CDNOW_master.txt (the 1997 Q1 cohort).
CUSTOMERS = 23_570
#: The papers' calibration: 39 of the 78 weeks.
HOLDOUT_DAYS = 273
#: What the vendors record of the replay: a shop's machine-written CRM (see above).
PROFILE = "clean"
DOMAINS = np.array([f"mail{i}.example" for i in range(1, 11)])
EMAIL_SUBSCRIBED_SHARE = 0.4


def config(seed: int = 42, now: date | None = None, customers: int = CUSTOMERS) -> sim.WorldConfig:
    """The replay's config; ``customers`` < 23,570 keeps the first ones by CDNOW id."""
    return sim.WorldConfig(
        contacts=customers,
        seed=seed,
        start=START,
        now=now or NOW,
        horizon_days=0,
        campaign_every_days=91,
        anonymous_visitors_ratio=0.0,
        profile=PROFILE,
    )


def build(seed: int = 42, now: date | None = None, customers: int | None = None) -> sim.World:
    """The CDNOW world (all purchases of its customers; vendors serve those before ``now``).

    ``customers`` keeps the first customers by CDNOW id (tests); default all 23,570.
    """
    from lifecycle.predict.literature import cdnow_master  # noqa: PLC0415 - reads the wheel

    cfg = config(seed, now, customers or CUSTOMERS)
    profile = load_profile(cfg.profile)
    rng = np.random.default_rng([cfg.seed, STREAM])
    nrng = np.random.default_rng([cfg.seed, STREAM, sim.NOISE_STREAM])
    tx = cdnow_master().sort_values(["customer_id", "date"], kind="stable").reset_index(drop=True)
    if customers is not None:
        keep = np.sort(tx.customer_id.unique())[:customers]
        tx = tx[tx.customer_id.isin(keep)].reset_index(drop=True)
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
    t0 = sim._epoch(cfg.start)
    # the world holds the whole replay whatever the night; vendors serve what is before it
    t_end = max(sim._epoch(cfg.now), sim._epoch(NOW))

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
    ).astype({"industry": "str", "size_band": "str"})
    contacts = _contacts(rng, nrng, cfg, profile, cust, first_ts, companies)
    orders = _orders(nrng, cfg, profile, tx, contacts)
    deals, deal_stages = _deals(nrng, profile, orders, contacts, t_end)
    crm, crm_log = crm_records(nrng, contacts, profile, t_end, 0)
    noise = pd.concat([crm_log, sim._identity_log(contacts, orders)], ignore_index=True)
    # text columns stay text when empty, as simulate() stacks its tables
    crm, noise = sim._concat([crm]), sim._concat([noise])
    campaigns = sim._campaigns(cfg, t0, t_end)
    events = _events(cfg, contacts, orders, campaigns)
    activity = sim._email(rng, nrng, contacts, campaigns, t_end, profile)
    world = sim.World(
        config=cfg,
        companies=companies,
        contacts=contacts,
        orders=orders,
        deals=deals,
        events=events,
        campaigns=campaigns,
        email_activity=activity,
        crm=crm,
        deal_stages=deal_stages,
        noise=noise,
    )
    log.info("CDNOW world: %d customers, %d purchases", n, len(orders))
    # the vendor accounts behave as real ones do here too (issue 10: lists, opaque
    # permission ids, imported members, consent banner events), from their own random
    # stream, but no portal or list removes anyone: each of the 23,570 real customers
    # stays a contact, so every real purchase can be counted through the pipeline
    from lifecycle.sandbox.accounts import with_account_events  # noqa: PLC0415

    return with_account_events(world, removals=False)


def _contacts(rng, nrng, cfg, profile, cust, first_ts, companies) -> pd.DataFrame:
    """One known contact per CDNOW customer, in the simulated world's columns."""
    n = len(cust)
    dom = rng.integers(0, len(DOMAINS), n)
    first = sim.FIRST_NAMES[rng.integers(0, len(sim.FIRST_NAMES), n)]
    last = sim.LAST_NAMES[rng.integers(0, len(sim.LAST_NAMES), n)]
    email = np.char.add(
        np.char.add(np.char.add(np.char.lower(first.astype(str)), "."), cust.astype(str)),
        np.char.add("@", DOMAINS[dom]),
    ).astype(object)
    signup = first_ts - rng.uniform(60, 1800, n)  # they register at the first checkout
    nan = np.full(n, np.nan)
    none = np.full(n, None, dtype=object)
    unsub = np.where(
        rng.random(n) < EMAIL_SUBSCRIBED_SHARE, np.nan, signup + rng.exponential(3, n) * sim.DAY
    )
    # one number per customer (random numbers would collide, and the CRM-conflicts mart
    # would rightly list people sharing a phone as duplicates)
    phone = np.char.add("+1555", (1_000_000 + rng.permutation(9_000_000)[:n]).astype(str))
    ad_consent = rng.random(n) < 0.8
    machine = nrng.random(n) < profile.email.machine_open_recipients
    scanned = nrng.random(n) < profile.bots.link_scanned_recipients
    return pd.DataFrame(
        {
            "person": np.arange(n),
            "is_known": True,
            "hubspot_id": (np.arange(n) + 1_000_001).astype(str),
            "user_id": np.char.add("usr_", sim._ids("", n, cfg.seed, start=0).astype(str)),
            "anonymous_id": sim._ids("a1-", n, cfg.seed, start=0),
            "anonymous_id_2": none,  # one device: CDNOW recorded only the purchases
            "email": email,
            "email_typed": email,
            "email_changed_at": nan,
            "email_new": none,
            "unique_email_id": sim._ids("", n, cfg.seed + 1, start=0),
            "referral_code": none,  # no referral programme
            "referred_by": np.full(n, -1, dtype=np.int64),
            "firstname": first,
            "lastname": last,
            "phone": phone,
            "country": "US",
            "jobtitle": none,
            "company_id": companies.company_id.to_numpy()[dom],
            "channel": "direct",
            "fit_z": 0.0,
            "eng_z": 0.0,
            "first_seen_at": signup - 600,
            "subscriber_at": signup,
            "lead_at": nan,  # a shop has no sales process: no lead, MQL, SQL or opportunity
            "mql_at": nan,
            "sql_at": nan,
            "opportunity_at": nan,
            "customer_at": first_ts,
            "advocate_at": nan,
            "unsubscribed_at": unsub,
            "cleaned_at": nan,
            "is_machine_opener": machine,
            "is_link_scanned": scanned,
            "second_device_identifies": False,
            "role_email": none,
            "role_shared_at": nan,
            "ad_consent": ad_consent,
        }
    ).astype(
        {
            c: "str"
            for c in (
                "anonymous_id_2",
                "email",
                "email_typed",
                "email_new",
                "referral_code",
                "jobtitle",
                "role_email",
            )
        }
    )


def _orders(nrng, cfg, profile, tx: pd.DataFrame, contacts: pd.DataFrame) -> pd.DataFrame:
    """Every CDNOW purchase; which systems record it is the profile's rule (clean: both)."""
    order_n = tx.groupby("person").cumcount().to_numpy() + 1
    u = nrng.random(len(tx))
    on = profile.orders
    recorded_in = np.where(
        u < on.deal_only, "deal", np.where(u < on.deal_only + on.web_only, "web", "both")
    )
    orders = pd.DataFrame(
        {
            "person": tx.person.to_numpy(),
            "order_n": order_n,
            "ordered_at": tx.ts.to_numpy(),
            "revenue_usd": tx.dollars.round(2).to_numpy(),
            "order_id": sim._ids("ord_", len(tx), cfg.seed, start=0),
            "recorded_in": recorded_in,
        }
    ).astype({"order_id": "str", "recorded_in": "str"})
    return orders.merge(contacts[["person", "user_id"]], on="person")


def _deals(nrng, profile, orders: pd.DataFrame, contacts: pd.DataFrame, t_end: float):
    """One closed-won deal per order that reaches the CRM, created and won at the
    purchase (plus the profile's close lag: clean, none), and its stage history: the
    world's ``repeat_order`` deals, here for every order, there being no sales pipeline
    before the first."""
    o = orders[orders.recorded_in.to_numpy() != "web"]
    lag_s = profile.orders.deal_close_lag_hours * 3600
    lag = nrng.exponential(lag_s, len(o)) if lag_s > 0 else np.zeros(len(o))
    won = o.ordered_at.to_numpy() + lag
    person = o.person.to_numpy()
    deals = pd.DataFrame(
        {
            "deal_id": (np.arange(len(o)) + 9_000_001).astype(str),
            "person": person,
            "hubspot_contact_id": contacts.hubspot_id.to_numpy()[person],
            "createdate": o.ordered_at.to_numpy(),
            "closedate": won,
            "won_at": won,
            "lost_at": np.nan,
            "amount": o.revenue_usd.to_numpy(),
            "order_id": o.order_id.to_numpy(),
            "kind": "order",
            "dup_contact_id": None,
            "dup_merged_at": np.nan,
        }
    ).astype({"dup_contact_id": "str", "kind": "str"})
    deals = deals[deals.won_at.to_numpy() <= t_end].reset_index(drop=True)
    stages = pd.DataFrame(
        {"deal_id": deals.deal_id.to_numpy(), "stage": "closedwon", "at": deals.won_at.to_numpy()}
    ).astype({"stage": "str"})
    return deals, stages.sort_values(["deal_id", "at"], kind="stable").reset_index(drop=True)


def _events(cfg, contacts: pd.DataFrame, orders: pd.DataFrame, campaigns) -> pd.DataFrame:
    """A landing page view, the sign-up (track + identify) and every order, on one
    desktop browser per customer, in the world's event columns and categories."""
    p = contacts.person.to_numpy()
    signup = contacts.subscriber_at.to_numpy()
    n, k = len(p), len(orders)
    none = np.full(n, None, dtype=object)
    parts = [
        dict(person=p, ts=contacts.first_seen_at.to_numpy(), type="page", event=none, path="/"),
        dict(person=p, ts=signup, type="track", event="Signed Up", path="/signup"),
        dict(
            person=p,
            ts=signup + 1,
            type="identify",
            event=none,
            path="/signup",
            email=contacts.email.to_numpy(dtype=object),
        ),
        dict(
            person=orders.person.to_numpy(),
            ts=orders.ordered_at.to_numpy(),
            type="track",
            event="Order Completed",
            path="/checkout/complete",
            revenue=orders.revenue_usd.to_numpy(),
            order_id=orders.order_id.to_numpy(dtype=object),
        ),
    ]
    rows = n * 3 + k

    def column(name, fill, dtype=object):
        out = []
        for part in parts:
            m = len(part["person"])
            v = part.get(name, fill)
            out.append(np.broadcast_to(np.asarray(v, dtype=dtype), (m,)))
        return np.concatenate(out)

    person = column("person", -1, np.int64)
    ts = column("ts", np.nan, float)
    order = np.lexsort((person, ts))
    person, ts = person[order], ts[order]
    identified = ts >= signup[person] + 1
    cols = {
        "message_id": sim._ids("msg-", rows, cfg.seed, start=0),
        "type": column("type", None)[order],
        "event": column("event", None)[order],
        "anonymous_id": contacts.anonymous_id.to_numpy(dtype=object)[person],
        "user_id": np.where(identified, contacts.user_id.to_numpy(dtype=object)[person], None),
        "person": person,
        "ts": ts,
        "path": column("path", None)[order],
        "utm_source": np.full(rows, None, dtype=object),
        "utm_medium": np.full(rows, None, dtype=object),
        "utm_campaign": np.full(rows, None, dtype=object),
        "email": column("email", None)[order],
        "revenue": column("revenue", np.nan, float)[order],
        "order_id": column("order_id", None)[order],
        "detail": np.full(rows, None, dtype=object),
        "ua": (person % len(sim.DESKTOP_AGENTS)).astype(np.int8),
        "device": np.ones(rows, dtype=np.int8),
    }
    # the world's fixed categories (a value outside them raises)
    for name, values in sim._categories(SimpleNamespace(campaigns=campaigns)).items():
        cols[name] = sim._categorical(name, cols[name], values)
    text = ("message_id", "anonymous_id", "user_id", "email", "order_id", "detail")
    return pd.DataFrame(cols).astype(dict.fromkeys(text, "str"))
