"""The nightly predict task on a real DuckDB warehouse holding the tables it reads.

Orders are drawn from a BG/NBD population and subscriptions from an sBG population with
known parameters (drawn here, independently of the code under test), so the fitted
parameters have a truth to meet; a small warehouse must say insufficient_data.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from lifecycle.predict import nightly

NIGHT = "2026-07-01"
START = pd.Timestamp("2025-01-01")


def build(n_customers: int, n_subscribers: int, seed: int = 0) -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(seed)
    night = pd.Timestamp(NIGHT)
    span = (night - START).days
    # BG/NBD purchases (days): λ ~ Gamma(0.6, 20), p ~ Beta(0.8, 4)
    lam = rng.gamma(0.6, 1 / 20, n_customers)
    p = rng.beta(0.8, 4.0, n_customers)
    first = rng.uniform(0, span - 200, n_customers)
    rows = []
    for i in range(n_customers):
        t = first[i]
        rows.append((i, t))
        while True:
            t += rng.exponential(1 / lam[i])
            if t >= span:
                break
            rows.append((i, t))
            if rng.random() < p[i]:
                break
    o = pd.DataFrame(rows, columns=["c", "t"])
    orders = pd.DataFrame(
        {
            "order_id": [f"o{k}" for k in range(len(o))],
            "contact_id": (o.c + 1_000_000).astype(str),
            "revenue_usd": rng.gamma(6.0, 10.0, len(o)),
            "ordered_at": START + pd.to_timedelta(o.t * 86400, unit="s"),
        }
    )
    orders["order_number"] = orders.groupby("contact_id").ordered_at.rank(method="first")
    # sBG subscriptions: θ ~ Beta(0.7, 3.0), monthly, started over the first 10 months
    theta = rng.beta(0.7, 3.0, n_subscribers)
    start = night - pd.to_timedelta(rng.uniform(200, 330, n_subscribers), unit="D")
    ev = []
    for i in range(n_subscribers):
        cid = str(2_000_000 + i)
        ev.append((cid, "Subscription Started", start[i], 49.0))
        k = 1
        while True:
            if rng.random() < theta[i]:
                at = start[i] + pd.Timedelta(days=30 * k - 10)
                if at < night:
                    ev.append((cid, "Subscription Cancelled", at, None))
                break
            at = start[i] + pd.Timedelta(days=30 * k)
            if at >= night:
                break
            ev.append((cid, "Subscription Renewed", at, 49.0))
            k += 1
    events = pd.DataFrame(ev, columns=["contact_id", "event_name", "event_at", "revenue_usd"])
    contacts = pd.DataFrame(
        {
            "contact_id": pd.concat([orders.contact_id, events.contact_id]).unique(),
        }
    )
    contacts["created_at"] = START
    contacts["job_title"] = "CEO"
    contacts["company_id"] = "1"
    for col in ("lead_at", "mql_at", "sql_at", "opportunity_at"):
        contacts[col] = pd.NaT
    con = duckdb.connect()
    for schema in ("staging", "intermediate"):
        con.execute(f"create schema {schema}")
    tables = {
        "intermediate.int_orders_numbered": orders,
        "intermediate.int_events_attributed": events,
        "intermediate.int_contact_signals": pd.DataFrame(
            {"contact_id": ["1000000"], "signal": ["page_view"], "occurred_at": [START]}
        ),
        "staging.stg_hubspot__contacts": contacts,
        "staging.stg_hubspot__companies": pd.DataFrame(
            {"company_id": ["1"], "industry": ["software"], "employee_count": [10]}
        ),
    }
    for name, df in tables.items():
        con.register("df", df)
        con.execute(f"create table {name} as select * from df")
        con.unregister("df")
    return con


@pytest.fixture(scope="module")
def big():
    con = build(2500, 600, seed=1)
    summary = nightly.run(con, NIGHT)
    return con, summary


def test_enough_data_gives_predictions_and_diagnostics(big):
    con, summary = big
    assert summary["fits"]["bgnbd:all"] == "ok"
    n, ok, bad = con.execute(
        "select count(*), count(*) filter (where prediction_status = 'ok'), "
        "count(*) filter (where p_alive < 0 or p_alive > 1 or predicted_clv_usd < 0 "
        "or expected_purchases_90d < expected_purchases_30d) "
        "from predict.customer_predictions"
    ).fetchone()
    assert n == 2500 and ok == n and bad == 0
    params = json.loads(
        con.execute(
            "select params from ops.predict_fits where model = 'bgnbd' and segment = 'all'"
        ).fetchone()[0]
    )
    # the population's truth: r = 0.6, alpha = 20 days, a = 0.8, b = 4
    assert params["r"] == pytest.approx(0.6, rel=0.25)
    assert params["alpha"] == pytest.approx(20, rel=0.35)
    buckets = con.execute(
        "select frequency_bucket, customers from ops.predict_calibration order by 1"
    ).fetchall()
    assert buckets[0][0] == "0" and sum(b[1] for b in buckets) > 1000


def test_sbg_recovers_the_subscribers_parameters_and_gives_derl(big):
    con, _ = big
    params = json.loads(
        con.execute(
            "select params from ops.predict_fits where model = 'sbg' and segment = 'all'"
        ).fetchone()[0]
    )
    assert params["alpha"] == pytest.approx(0.7, rel=0.35)
    assert params["beta"] == pytest.approx(3.0, rel=0.4)
    n_active, with_derl = con.execute(
        "select count(*) filter (where is_active), count(*) filter (where derl_periods > 0) "
        "from predict.subscriber_predictions"
    ).fetchone()
    assert n_active > 50 and with_derl == n_active
    obs = con.execute(
        "select observed_survival, projected_survival from predict.subscription_retention "
        "where cohort = 'all' and period = 3"
    ).fetchone()
    assert obs[0] == pytest.approx(obs[1], abs=0.06)


def test_rerunning_a_night_replaces_its_diagnostics(big):
    con, _ = big
    before = con.execute("select count(*) from ops.predict_fits").fetchone()[0]
    nightly.run(con, NIGHT)
    assert con.execute("select count(*) from ops.predict_fits").fetchone()[0] == before
    nightly.run(con, "2026-06-15")
    assert con.execute("select count(distinct night) from ops.predict_fits").fetchone()[0] == 2


@pytest.mark.parametrize("subscribers", [10, 0])
def test_below_the_minimum_the_marts_say_insufficient_data(subscribers):
    con = build(120, subscribers, seed=2)
    summary = nightly.run(con, NIGHT)
    assert summary["fits"]["bgnbd:all"] == "insufficient_data"
    statuses, numbers = con.execute(
        "select list(distinct prediction_status), count(p_alive) + count(predicted_clv_usd) "
        "from predict.customer_predictions"
    ).fetchone()
    assert statuses == ["insufficient_data"] and numbers == 0
    reason = con.execute(
        "select status_reason from ops.predict_fits where model = 'bgnbd' and segment = 'all'"
    ).fetchone()[0]
    assert "customers 120 < 500" in reason
    assert (
        con.execute(
            "select count(*) from predict.subscriber_predictions where derl_periods is not null"
        ).fetchone()[0]
        == 0
    )
