"""int_orders_numbered counts every purchase once, whichever systems recorded it.

A purchase can reach the warehouse as a web ``Order Completed`` event, a closed-won
deal, or both; the model pairs the two records of one purchase. A pairing that misses
shows as a purchase counted twice (the web order and the deal both kept), one that
pairs wrongly as a purchase lost. Each world is served, ingested over HTTP and built up
to ``int_orders_numbered``; the counts per person are checked against what happened:

- the CDNOW replay (every purchase a web order and a won deal, amounts that repeat),
  against ``CDNOW_master.txt`` read here on its own;
- a realistic simulated world (orders in one system or both, deals closing hours late,
  duplicates), against the world's own orders.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_dbt_model import dbt

from lifecycle.sandbox.accounts import gone_at_first_load
from lifecycle.sandbox.world import WorldConfig

CDNOW_CUSTOMERS = 400


def _load(data, config, kind: str):
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
    from lifecycle.tasks import SOURCES, ingest

    env = {
        "LIFECYCLE_DATA_DIR": str(data),
        "DLT_DATA_DIR": str(data / "dlt"),
        "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        world = prepare(config, data / "landing", world=kind)
        with SandboxServer(world) as srv:
            conn = connection_env(srv.base_url, data / "landing")
            saved.update({k: os.environ.get(k) for k in conn})
            os.environ.update(conn)
            for source in SOURCES:
                ingest(source)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    warehouse = data / "warehouse.duckdb"
    night = config.now.isoformat()
    dbt(
        warehouse,
        "build",
        "-s",
        "+int_orders_numbered",
        "--exclude",
        "test_type:unit",
        "--indirect-selection",
        "cautious",
        as_of=night,
    )
    return world, warehouse


def _orders(warehouse) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "select o.order_id, o.contact_id, o.revenue_usd, o.order_source, c.email "
            "from intermediate.int_orders_numbered o "
            "left join staging.stg_hubspot__contacts c using (contact_id)"
        ).df()
    finally:
        con.close()


def _cdnow_raw(customers: int) -> pd.DataFrame:
    """CDNOW_master.txt as published: customer id, yyyymmdd, CDs, dollars per line."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("lifetimes")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r[0].isdigit()]
    df = pd.DataFrame(rows, columns=["customer_id", "day", "cds", "dollars"])
    df = df.astype({"customer_id": int, "dollars": float})
    first = sorted(df.customer_id.unique())[:customers]
    return df[df.customer_id.isin(first)]


@pytest.fixture(scope="module")
def cdnow_replay(tmp_path_factory):
    from lifecycle.sandbox import cdnow

    config = cdnow.config(seed=42, customers=CDNOW_CUSTOMERS)
    return _load(tmp_path_factory.mktemp("cdnow"), config, "cdnow")


def test_the_cdnow_replay_counts_each_real_purchase_once(cdnow_replay):
    _, warehouse = cdnow_replay
    raw = _cdnow_raw(CDNOW_CUSTOMERS)
    # every purchase is before the replay's night (CDNOW ends 1998-06-30)
    assert datetime.strptime(raw.day.max(), "%Y%m%d").date() < date(1998, 7, 1)
    got = _orders(warehouse)
    assert got.email.notna().all()
    # the replay's addresses carry the CDNOW customer id: first.<id>@mailN.example
    got["customer_id"] = got.email.str.split("@").str[0].str.split(".").str[1].astype(int)
    assert len(got) == len(raw) and got.order_id.is_unique
    # each purchase reached both systems: one web order and one deal, paired
    assert (got.order_source == "web_and_deal").all()
    assert Counter(got.customer_id) == Counter(raw.customer_id)
    want = raw.groupby("customer_id").dollars.sum().round(2)
    have = got.groupby("customer_id").revenue_usd.sum().astype(float).round(2)
    pd.testing.assert_series_equal(have.sort_index(), want.sort_index(), check_names=False)
    # repeated amounts are common in CDNOW (the same CD price), so the pairing was tested
    same = raw.groupby(["customer_id", "dollars"]).size()
    assert (same > 1).sum() > 20


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    config = WorldConfig(contacts=1500, seed=7, profile="realistic")
    return _load(tmp_path_factory.mktemp("realistic"), config, "simulated")


def test_a_realistic_world_counts_each_purchase_at_most_once(realistic):
    world, warehouse = realistic
    now = world.now_ts
    o = world.orders
    won = world.deals.dropna(subset=["order_id"]).set_index("order_id").won_at
    deal_won = won.reindex(o.order_id).to_numpy() < now
    web_seen = (o.recorded_in != "deal").to_numpy() & (o.ordered_at.to_numpy() < now)
    # what the warehouse can know on the night: the web order, or the won deal, or both
    known = o[web_seen | ((o.recorded_in == "deal").to_numpy() & deal_won)]
    want = Counter(known.person)
    got = _orders(warehouse)
    # a contact id is a CRM record of one person (a duplicate not merged yet is another)
    person_of = dict(zip(world.crm.hubspot_id, world.crm.person, strict=True))
    have = Counter(person_of[c] for c in got.contact_id)
    # Until sales merges a duplicate record, a deal sales put on it belongs to another
    # contact than the buyer's web orders: nothing the vendors serve says they are one
    # person (the CRM-conflicts mart lists the pair by phone), so the purchase counts
    # for both until the merge. Those people are left out here; everyone else's web
    # order and deal of one purchase must be paired.
    d = world.deals
    on_dup = d[
        d.dup_contact_id.notna().to_numpy()
        & (d.createdate.to_numpy() < now)
        & ~(d.dup_merged_at.to_numpy() < now)
    ]
    unmerged = set(on_dup.person)
    assert 0 < len(unmerged) < 0.02 * len(want)
    over = {p: (have[p], want[p]) for p in have if have[p] > want[p] and p not in unmerged}
    assert not over, f"purchases counted more than once (person: (counted, made)): {over}"
    # and none lost, but for what identity noise hides: the web orders of a shared role
    # address's owner stay unattributed (docs/model.md, Identity); and for people the
    # portal archived or deleted before the load (erased: nothing of theirs is kept)
    hidden = set(world.noise.person[world.noise.kind == "role_address_owner"])
    erased = set(gone_at_first_load(world, now).tolist())
    assert erased & set(want)
    hidden |= erased
    lost = {p: (have[p], n) for p, n in want.items() if have[p] < n and p not in hidden}
    assert not lost, f"purchases lost (person: (counted, made)): {lost}"
    assert sum(have.values()) > 300
    assert set(got.order_source) == {"web", "deal", "web_and_deal"}
    assert np.isfinite(got.revenue_usd.astype(float)).all()
