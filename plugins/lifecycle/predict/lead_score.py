"""A lead score learned nightly from the warehouse's own history (scikit-learn).

Training rows are (contact, snapshot date s) for contacts known before s that were not
yet sales-ready before s (no deal, no order); the label is "sales-ready within
``lead_label_window_days`` of s": the contact's first deal opens (sales accepted it) or
its first order is placed, as ``lifecycle evaluate`` labels the rules score. Snapshots
run back from ``night - window`` so every label is fully observed by the night. Features
are **point in time**: each is computed from facts timestamped strictly before s (web
and email signals, CRM stage dates, the contact's creation), plus firmographics the CRM
holds without history (job title, industry, company size), taken as they are now; see
docs/predictive.md for that assumption. ``tests/unit/test_predict_lead_score.py``
checks it: deleting every fact at or after s must not change a single feature at s.

The model is a logistic regression on standardised features, so each contact's top
contributing features are coefficient x standardised value, shown beside the rules score.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

log = logging.getLogger(__name__)

CATEGORICAL = ("job_title", "industry")
#: CRM stage dates that count as reached when dated before the snapshot.
STAGE_DATES = ("lead_at", "mql_at", "sql_at", "opportunity_at")
RECENT_DAYS = 30


#: When each contact became sales-ready: its first deal (sales accepted it: SQL) or its
#: first order, whichever came first; the label, and who is still a prospect.
def sales_ready_sql(con: duckdb.DuckDBPyConnection) -> str:
    """When each contact became sales-ready: its first deal (sales accepted it: SQL) or
    its first order, whichever came first; the label, and who is still a prospect. A
    warehouse without HubSpot deals (no CRM connected) has orders only."""
    deals = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'staging' and table_name = 'stg_hubspot__deals'"
    ).fetchone()[0]
    union = (
        """
        union all
        select contact_id, created_at from staging.stg_hubspot__deals
        where contact_id is not null"""
        if deals
        else ""
    )
    return f"""
    select contact_id, min(ready_at) as sales_ready_at from (
        select contact_id, ordered_at as ready_at from intermediate.int_orders_numbered{union}
    ) group by 1
"""


def snapshots(
    night: pd.Timestamp, window_days: float, every_days: float, n: int
) -> list[pd.Timestamp]:
    """Training snapshot dates, newest first: the newest ends its label window at the night."""
    last = night - pd.Timedelta(days=window_days)
    return [last - pd.Timedelta(days=every_days * k) for k in range(int(n))]


def features(con: duckdb.DuckDBPyConnection, at: list[pd.Timestamp]) -> pd.DataFrame:
    """Point-in-time features of every prospect at each date in ``at``.

    One row per (contact_id, snapshot_at). Only rows timestamped before the snapshot
    are read (signals, orders, CRM stage dates, the contact's creation).
    """
    snaps = pd.DataFrame({"snapshot_at": pd.to_datetime(list(at))})
    con.register("lead_snapshots", snaps)
    signals = [
        r[0]
        for r in con.execute(
            "select distinct signal from intermediate.int_contact_signals order by 1"
        ).fetchall()
    ]
    counts = ",\n".join(
        f"count(*) filter (where sig.signal = '{s}') as n_{s},\n"
        f"count(*) filter (where sig.signal = '{s}' and sig.occurred_at >= "
        f"s.snapshot_at - interval {RECENT_DAYS} day) as recent_{s}"
        for s in signals
    )
    stage = ",\n".join(
        f"(c.{col} is not null and c.{col} < s.snapshot_at) as reached_{col.removesuffix('_at')}"
        for col in STAGE_DATES
    )
    sql = f"""
    with sales_ready as ({sales_ready_sql(con)}),
    prospects as (
        select s.snapshot_at, c.contact_id
        from lead_snapshots s
        join staging.stg_hubspot__contacts c on c.created_at < s.snapshot_at
        left join sales_ready f on f.contact_id = c.contact_id
        where f.sales_ready_at is null or f.sales_ready_at >= s.snapshot_at
    ),
    signal_counts as (
        select p.contact_id, p.snapshot_at,
            {counts if counts else "0 as n_none"},
            max(sig.occurred_at) as last_signal_at
        from prospects p
        join lead_snapshots s on s.snapshot_at = p.snapshot_at
        join intermediate.int_contact_signals sig
            on sig.contact_id = p.contact_id and sig.occurred_at < s.snapshot_at
        group by 1, 2
    )
    select
        p.contact_id,
        p.snapshot_at,
        date_diff('second', c.created_at, s.snapshot_at) / 86400.0 as days_known,
        coalesce(date_diff('second', sc.last_signal_at, s.snapshot_at) / 86400.0, 9999)
            as days_since_last_signal,
        coalesce(c.job_title, '(none)') as job_title,
        coalesce(co.industry, '(none)') as industry,
        coalesce(co.employee_count, 0) as employee_count,
        {stage},
        sc.* exclude (contact_id, snapshot_at, last_signal_at)
    from prospects p
    join lead_snapshots s on s.snapshot_at = p.snapshot_at
    join staging.stg_hubspot__contacts c on c.contact_id = p.contact_id
    left join staging.stg_hubspot__companies co on co.company_id = c.company_id
    left join signal_counts sc on sc.contact_id = p.contact_id and sc.snapshot_at = p.snapshot_at
    order by p.snapshot_at, p.contact_id
    """
    df = con.execute(sql).df()
    con.unregister("lead_snapshots")
    numeric = [c for c in df.columns if c.startswith(("n_", "recent_"))]
    df[numeric] = df[numeric].fillna(0)
    return df


def labels(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, window_days: float) -> np.ndarray:
    """1 when the contact becomes sales-ready (its first deal opens or its first order is
    placed) in [snapshot, snapshot + window)."""
    first = con.execute(sales_ready_sql(con)).df()
    m = rows[["contact_id", "snapshot_at"]].merge(first, on="contact_id", how="left")
    end = m.snapshot_at + pd.Timedelta(days=window_days)
    return ((m.sales_ready_at >= m.snapshot_at) & (m.sales_ready_at < end)).to_numpy(int)


def _transform(df: pd.DataFrame) -> pd.DataFrame:
    out = df.drop(columns=["contact_id", "snapshot_at"]).copy()
    for c in out.columns:
        if c.startswith(("n_", "recent_")) or c in (
            "days_known",
            "days_since_last_signal",
            "employee_count",
        ):
            out[c] = np.log1p(out[c].astype(float).clip(lower=0))
        elif c.startswith("reached_"):
            out[c] = out[c].astype(float)
    return out


def model() -> Pipeline:
    def numeric(cols):
        return [c for c in cols if c not in CATEGORICAL]

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), lambda X: numeric(X.columns)),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", min_frequency=5, sparse_output=False),
                list(CATEGORICAL),
            ),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("pre", pre), ("lr", LogisticRegression(C=0.5, max_iter=2000))])


def train(train_rows: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pipe = model()
    pipe.fit(_transform(train_rows), y)
    return pipe


def score(pipe: Pipeline, rows: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """Conversion probability, a 0-100 score and the top contributing features per row."""
    X = _transform(rows)
    proba = pipe.predict_proba(X)[:, 1]
    Z = pipe.named_steps["pre"].transform(X)
    names = np.asarray(pipe.named_steps["pre"].get_feature_names_out())
    coef = pipe.named_steps["lr"].coef_[0]
    contrib = Z * coef
    order = np.argsort(-contrib, axis=1)[:, :top]
    reasons = [
        ", ".join(f"{names[j]} (+{contrib[i, j]:.2f})" for j in order[i] if contrib[i, j] > 0.05)
        or None
        for i in range(len(rows))
    ]
    return pd.DataFrame(
        {
            "contact_id": rows.contact_id.to_numpy(),
            "conversion_probability": proba,
            "predictive_lead_score": np.round(
                100 * pd.Series(proba).rank(pct=True).to_numpy()
            ).astype(int),
            "top_features": reasons,
        }
    )


def holdout_auc(con, night: pd.Timestamp, cfg: dict) -> dict:
    """Train on all snapshots but the newest, AUC on the newest (what the nightly records)."""
    snaps = snapshots(
        night, cfg["lead_label_window_days"], cfg["lead_snapshot_every_days"], cfg["lead_snapshots"]
    )
    rows = features(con, snaps)
    y = labels(con, rows, cfg["lead_label_window_days"])
    newest = rows.snapshot_at == snaps[0]
    out = {
        "training_rows": int((~newest).sum()),
        "training_conversions": int(y[~newest].sum()),
        "holdout_rows": int(newest.sum()),
        "holdout_conversions": int(y[newest].sum()),
    }
    if y[~newest].sum() and (1 - y[~newest]).sum() and 0 < y[newest].sum() < newest.sum():
        pipe = train(rows[~newest], y[~newest])
        out["holdout_auc"] = float(
            roc_auc_score(y[newest], score(pipe, rows[newest]).conversion_probability)
        )
    return out
