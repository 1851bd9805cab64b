"""The learned lead score uses point-in-time features only.

The leakage check: features computed at a snapshot date s from the full warehouse must be
identical to features computed at s from a copy where every fact at or after s has been
removed (signals, orders, deals, contacts created later, CRM stage dates reached later).
Any feature that reads the future differs between the two. The label is "sales-ready
(first deal or first order) within the window", checked against its own oracle here.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from lifecycle.predict import lead_score

START, NIGHT = pd.Timestamp("2026-01-01"), pd.Timestamp("2026-07-01")
SIGNALS = ("page_view", "page_view_pricing", "demo_requested", "email_open", "form_submitted")


def warehouse(seed: int = 0, n: int = 400) -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(seed)
    span = (NIGHT - START).total_seconds()

    def ts(k):
        return START + pd.to_timedelta(rng.uniform(0, span, k), unit="s")

    created = ts(n)
    ids = [str(1_000_000 + i) for i in range(n)]

    def later(base, p, days):
        t = base + pd.to_timedelta(rng.exponential(days, n), unit="D")
        return pd.Series(t).where(rng.random(n) < p)

    contacts = pd.DataFrame(
        {
            "contact_id": ids,
            "created_at": created,
            "job_title": rng.choice(["CEO", "Developer", "Student", None], n),
            "company_id": rng.integers(1, 40, n).astype(str),
            "lead_at": later(created, 0.7, 10),
        }
    )
    contacts["mql_at"] = (
        contacts.lead_at + pd.to_timedelta(rng.exponential(10, n), unit="D")
    ).where(rng.random(n) < 0.5)
    contacts["sql_at"] = (
        contacts.mql_at + pd.to_timedelta(rng.exponential(10, n), unit="D")
    ).where(rng.random(n) < 0.5)
    contacts["opportunity_at"] = (
        contacts.sql_at + pd.to_timedelta(rng.exponential(7, n), unit="D")
    ).where(rng.random(n) < 0.6)
    companies = pd.DataFrame(
        {
            "company_id": [str(i) for i in range(1, 40)],
            "industry": rng.choice(["software", "retail", "education"], 39),
            "employee_count": rng.integers(1, 5000, 39),
        }
    )
    k = 6000
    who = rng.integers(0, n, k)
    signals = pd.DataFrame(
        {
            "contact_id": np.asarray(ids)[who],
            "signal": rng.choice(SIGNALS, k),
            "occurred_at": created[who] + pd.to_timedelta(rng.exponential(40, k), unit="D"),
        }
    )
    buyers = rng.choice(n, n // 4, replace=False)
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(buyers))],
            "contact_id": np.asarray(ids)[buyers],
            "revenue_usd": rng.lognormal(4, 0.5, len(buyers)),
            "ordered_at": created[buyers]
            + pd.to_timedelta(rng.exponential(60, len(buyers)), unit="D"),
            "order_number": 1,
        }
    )
    # sales opens deals for some, buyers or not (a deal without a contact is left out)
    dealt = rng.choice(n, n // 3, replace=False)
    deals = pd.DataFrame(
        {
            "deal_id": [f"d{i}" for i in range(len(dealt))],
            "contact_id": pd.Series(np.asarray(ids)[dealt]).where(rng.random(len(dealt)) < 0.95),
            "created_at": created[dealt]
            + pd.to_timedelta(rng.exponential(45, len(dealt)), unit="D"),
        }
    )
    con = duckdb.connect()
    for schema in ("staging", "intermediate"):
        con.execute(f"create schema {schema}")
    for name, df in (
        ("staging.stg_hubspot__contacts", contacts),
        ("staging.stg_hubspot__companies", companies),
        ("intermediate.int_contact_signals", signals),
        ("intermediate.int_orders_numbered", orders),
        ("staging.stg_hubspot__deals", deals),
    ):
        con.register("df", df)
        con.execute(f"create table {name} as select * from df")
        con.unregister("df")
    return con


def cut_at(con: duckdb.DuckDBPyConnection, s: pd.Timestamp) -> int:
    """Remove every fact at or after ``s``; return how many rows/values were removed."""
    removed = 0
    for table, col in (
        ("intermediate.int_contact_signals", "occurred_at"),
        ("intermediate.int_orders_numbered", "ordered_at"),
        ("staging.stg_hubspot__deals", "created_at"),
        ("staging.stg_hubspot__contacts", "created_at"),
    ):
        removed += con.execute(f"select count(*) from {table} where {col} >= ?", [s]).fetchone()[0]
        con.execute(f"delete from {table} where {col} >= ?", [s])
    for col in lead_score.STAGE_DATES:
        removed += con.execute(
            f"select count(*) from staging.stg_hubspot__contacts where {col} >= ?", [s]
        ).fetchone()[0]
        con.execute(f"update staging.stg_hubspot__contacts set {col} = null where {col} >= ?", [s])
    return removed


@pytest.mark.parametrize("s", [pd.Timestamp("2026-03-15"), pd.Timestamp("2026-05-20 13:30")])
def test_features_at_s_ignore_everything_at_or_after_s(s):
    full = lead_score.features(warehouse(), [s])
    past_only = warehouse()
    removed = cut_at(past_only, s)
    assert removed > 500  # the future was really there, and is now gone
    cut = lead_score.features(past_only, [s])
    assert len(full) > 100
    key = ["contact_id", "snapshot_at"]
    a = full.sort_values(key).reset_index(drop=True)
    b = cut.sort_values(key).reset_index(drop=True)[a.columns]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_the_check_catches_a_feature_that_reads_the_future():
    # the same comparison on a deliberately leaky feature (orders ever placed) fails
    s = pd.Timestamp("2026-04-01")

    def leaky(con):
        df = lead_score.features(con, [s])
        ever = con.execute(
            "select contact_id, count(*) as n from intermediate.int_orders_numbered group by 1"
        ).df()
        return (
            df.merge(ever, on="contact_id", how="left").fillna({"n": 0}).sort_values("contact_id")
        )

    full, past_only = warehouse(), warehouse()
    cut_at(past_only, s)
    assert not np.array_equal(leaky(full).n.to_numpy(), leaky(past_only).n.to_numpy())


def test_labels_come_after_the_snapshot_and_end_before_the_night():
    con = warehouse()
    snaps = lead_score.snapshots(NIGHT, 30, 14, 6)
    assert max(snaps) + pd.Timedelta(days=30) <= NIGHT
    rows = lead_score.features(con, snaps)
    y = lead_score.labels(con, rows, 30)
    orders = con.execute("select contact_id, ordered_at from intermediate.int_orders_numbered").df()
    deals = con.execute("select contact_id, created_at from staging.stg_hubspot__deals").df()
    # oracle, in pandas: the earlier of the first order and the first deal
    first_order = orders.groupby("contact_id").ordered_at.min()
    first_deal = deals.dropna(subset=["contact_id"]).groupby("contact_id").created_at.min()
    ready = pd.concat([first_order, first_deal], axis=1).min(axis=1).rename("f")
    m = rows.merge(ready, left_on="contact_id", right_index=True, how="left")
    delta = (m.f - m.snapshot_at).dt.total_seconds() / 86400
    # sales-ready in [s, s + 30 days)
    assert np.array_equal(y, ((delta >= 0) & (delta < 30)).to_numpy(int))
    # nobody who was already sales-ready before s (a deal or an order) is a prospect at s
    assert not (delta < 0).any()
    # both kinds of evidence make positives
    pos = m[y == 1]
    by_deal = pos.contact_id.map(first_deal) <= pos.contact_id.map(first_order).fillna(NIGHT)
    assert by_deal.any() and (~by_deal).any()


def test_learned_score_ranks_converters_first_and_explains_itself():
    con = warehouse(seed=4, n=1500)
    # make conversions depend on demo requests: the model must find that
    for table, col in (
        ("intermediate.int_orders_numbered", "ordered_at"),
        ("staging.stg_hubspot__deals", "created_at"),
    ):
        con.execute(f"""
            update {table} set {col} = {col} + interval 400 day
            where contact_id not in (select contact_id from intermediate.int_contact_signals
                                     where signal = 'demo_requested')
        """)
    snaps = lead_score.snapshots(NIGHT, 30, 14, 8)
    rows = lead_score.features(con, snaps)
    y = lead_score.labels(con, rows, 30)
    pipe = lead_score.train(rows, y)
    scored = lead_score.score(pipe, rows)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, scored.conversion_probability) > 0.7
    top = scored.loc[scored.conversion_probability.idxmax(), "top_features"]
    assert "demo_requested" in top
