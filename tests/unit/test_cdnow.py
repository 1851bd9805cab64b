"""The CDNOW replay world: CDNOW's real purchases in the simulated world's tables.

The oracle for the purchases is ``CDNOW_master.txt`` parsed here line by line (not with
the replay's reader); the oracle for the shape is a simulated world.
"""

from __future__ import annotations

import importlib.util
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.sandbox import cdnow
from lifecycle.sandbox.accounts import MAIN_LIST, accounts
from lifecycle.sandbox.hubspot import records as hubspot
from lifecycle.sandbox.mailchimp import records as mailchimp
from lifecycle.sandbox.segment.landing import segment_frame
from lifecycle.sandbox.world import DAY, WorldConfig, simulate

TABLES = (
    "companies",
    "contacts",
    "orders",
    "deals",
    "deal_stages",
    "events",
    "campaigns",
    "email_activity",
    "crm",
    "noise",
)


@pytest.fixture(scope="module")
def replay():
    return cdnow.build(seed=42)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    spec = importlib.util.find_spec("lifetimes")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    rows = [r.split() for r in path.read_text().splitlines() if r.strip()]
    rows = [r for r in rows if r[0].isdigit()]
    df = pd.DataFrame(rows, columns=["customer_id", "day", "cds", "dollars"])
    return df.astype({"customer_id": int, "dollars": float})


def test_the_replay_has_the_simulated_worlds_tables_columns_and_types(replay):
    sim = simulate(WorldConfig(contacts=200, seed=1))
    for name in TABLES:
        want, got = getattr(sim, name), getattr(replay, name)
        assert list(got.columns) == list(want.columns), name
        for col in want.columns:
            w, g = want[col].dtype, got[col].dtype
            if isinstance(w, pd.CategoricalDtype):
                assert isinstance(g, pd.CategoricalDtype), (name, col)
                if col not in ("utm_campaign", "campaign_id"):  # each world has its own
                    assert list(g.categories) == list(w.categories), (name, col)
            else:
                assert g == w, (name, col, g, w)
    assert replay.subscriptions is None
    ev = replay.events
    assert ev.type.notna().all() and ev.path.notna().all()
    assert (ev.event.isna() == (ev.type != "track")).all()


def test_every_real_purchase_is_a_web_order_and_a_won_deal(replay, raw):
    o = replay.orders
    assert len(o) == len(raw) == 69_659 and replay.contacts.shape[0] == 23_570
    assert (o.recorded_in == "both").all() and o.order_id.is_unique
    np.testing.assert_allclose(o.revenue_usd.sum(), raw.dollars.sum(), atol=0.01 * len(raw))
    per = o.groupby("person").size().sort_values().to_numpy()
    np.testing.assert_array_equal(per, raw.groupby("customer_id").size().sort_values().to_numpy())
    # the calendar moved 28 years keeps every weekday
    first = pd.to_datetime(raw.day, format="%Y%m%d").min().date()
    moved = pd.to_datetime(o.ordered_at.min(), unit="s").date()
    assert moved == date(first.year + 28, first.month, first.day)
    assert moved.weekday() == first.weekday()
    web = replay.events[(replay.events.event == "Order Completed").to_numpy()]
    assert sorted(web.order_id) == sorted(o.order_id)
    # one deal per order, closed won at the purchase with its amount
    d = replay.deals.set_index("order_id").reindex(o.order_id)
    assert len(replay.deals) == len(o)
    np.testing.assert_array_equal(d.amount.to_numpy(), o.revenue_usd.to_numpy())
    np.testing.assert_array_equal(d.won_at.to_numpy(), o.ordered_at.to_numpy())
    assert (replay.deal_stages.stage == "closedwon").all()
    assert set(replay.deal_stages.deal_id) == set(replay.deals.deal_id)


def test_the_crm_is_the_clean_profiles_record_of_a_shop(replay):
    c, crm = replay.contacts, replay.crm
    assert replay.config.profile == "clean" and replay.noise.empty
    assert len(crm) == len(c) and not crm.is_duplicate.any() and (crm.crm_kind == "exact").all()
    first = replay.orders.groupby("person").ordered_at.min().reindex(c.person).to_numpy()
    np.testing.assert_array_equal(crm.crm_customer_at.to_numpy(), first)
    np.testing.assert_array_equal(crm.crm_subscriber_at.to_numpy(), c.subscriber_at.to_numpy())
    for stage in ("lead", "mql", "sql", "opportunity", "advocate"):
        assert crm[f"crm_{stage}_at"].isna().all(), stage
    # the contact signs up at the first checkout, minutes before the purchase
    gap = first - c.subscriber_at.to_numpy()
    assert (gap > 0).all() and (gap < 3600).all()
    assert c.email.is_unique and c.phone.is_unique


def test_the_vendors_serve_it_as_of_the_night(replay):
    now = replay.now_ts
    contacts = hubspot.contacts(replay, now)
    assert len(contacts) == 23_570
    props = contacts[0]["properties"]
    assert props["lifecyclestage"] == "customer" and props["hs_lifecyclestage_customer_date"]
    assert not {"fit_z", "eng_z", "customer_at"} & set(props)
    deals = hubspot.deals(replay, now)
    assert len(deals) == 69_659 and {d["properties"]["dealstage"] for d in deals} == {"closedwon"}
    members = mailchimp.members(replay, now)
    # every customer is on the main list; the account's second list holds some of them
    main = [m for m in members if m["list_id"] == MAIN_LIST]
    assert len(main) == 23_570 and {m["status"] for m in main} <= {
        "subscribed",
        "unsubscribed",
        "cleaned",
    }
    second = accounts(replay).members
    second = second[(second.list_id != MAIN_LIST).to_numpy() & (second.joined_at < now).to_numpy()]
    assert 0 < len(members) - len(main) == len(second)
    # a night in the middle of the replay serves only what happened before it
    mid = replay.start_ts + 273 * DAY
    assert len(hubspot.deals(replay, mid)) == int((replay.orders.ordered_at < mid).sum())
    seg = segment_frame(replay, now)
    assert len(seg) == len(replay.events) and seg.user_agent.notna().all()
    assert cdnow.config().now == date(2026, 7, 1)
    assert cdnow.NOW - timedelta(days=1) == date(2026, 6, 30)
