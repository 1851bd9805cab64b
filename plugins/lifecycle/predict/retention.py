"""Contractual retention from subscription events: cohort tables, sBG fits, DERL.

Input: one row per subscription event (``contact_id``, ``event_name`` =
``Subscription Started`` | ``Subscription Renewed`` | ``Subscription Cancelled``,
``event_at``, ``revenue_usd``). A subscriber has one subscription; its cohort is the
month it started. After ``renewals`` renewals a subscriber who cancelled has lifetime
``renewals + 1`` periods (an observed churn); one still active contributes
S(renewals) (right-censored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lifecycle.predict import guards, sbg
from lifecycle.predict.fitting import Fit

STARTED, RENEWED, CANCELLED = (
    "Subscription Started",
    "Subscription Renewed",
    "Subscription Cancelled",
)
EVENTS = (STARTED, RENEWED, CANCELLED)
POOLED = "all"


def subscribers(events: pd.DataFrame, as_of: pd.Timestamp, period_days: float) -> pd.DataFrame:
    """One row per subscriber: cohort, started_at, renewals, cancelled_at, price,
    ``known_through`` (renewal decisions whose outcome is known by the night: the
    likelihood's censoring) and ``decided_through`` (renewals that had come due by the
    night: the cohort table's base)."""
    e = events[events.event_at < as_of]
    started = e[e.event_name == STARTED].groupby("contact_id").event_at.min()
    if started.empty:
        return pd.DataFrame(
            columns=[
                "contact_id",
                "cohort",
                "started_at",
                "renewals",
                "cancelled_at",
                "is_active",
                "known_through",
                "decided_through",
                "price_usd",
            ]
        )
    renewals = e[e.event_name == RENEWED].groupby("contact_id").size()
    cancelled = e[e.event_name == CANCELLED].groupby("contact_id").event_at.min()
    price = (
        e[e.event_name.isin([STARTED, RENEWED])]
        .sort_values("event_at")
        .groupby("contact_id")
        .revenue_usd.last()
    )
    out = pd.DataFrame({"started_at": started})
    out["renewals"] = renewals.reindex(out.index).fillna(0).astype(int)
    out["cancelled_at"] = cancelled.reindex(out.index)
    out["is_active"] = out.cancelled_at.isna()
    due = np.floor((as_of - out.started_at) / pd.Timedelta(days=period_days)).astype(int)
    out["known_through"] = np.where(out.is_active, np.maximum(due, out.renewals), out.renewals + 1)
    # renewals that had come due by the night, whatever happened (the cohort table's base)
    out["decided_through"] = np.maximum(due, out.renewals)
    out["price_usd"] = price.reindex(out.index)
    out["cohort"] = out.started_at.dt.strftime("%Y-%m")
    return out.reset_index()


def _inputs(s: pd.DataFrame):
    churned = s[~s.is_active].groupby("renewals").size()
    alive = s[s.is_active].groupby("renewals").size()
    return (
        churned.index.to_numpy() + 1.0,
        churned.to_numpy(float),
        alive.index.to_numpy(float),
        alive.to_numpy(float),
    )


def fit_cohorts(
    subs: pd.DataFrame, rules: dict[str, float]
) -> dict[str, tuple[Fit | None, guards.Verdict]]:
    """An sBG fit per cohort and one pooled over all (``"all"``), each judged by the rules."""
    groups = [(c, g) for c, g in subs.groupby("cohort")] + [(POOLED, subs)]
    out = {}
    for cohort, g in groups:
        verdict = guards.judge(
            {
                "subscribers": len(g),
                "renewal_periods": float(g.known_through.max()) if len(g) else 0,
            },
            rules,
        )
        fit = sbg.fit(*_inputs(g)) if verdict.ok else None
        if fit is not None and not fit.converged:
            verdict = guards.Verdict(
                guards.INSUFFICIENT, ("sBG fit did not converge",), verdict.figures
            )
        out[cohort] = (fit, verdict)
    return out


def retention_table(subs: pd.DataFrame, fits: dict, projection_periods: int) -> pd.DataFrame:
    """Per cohort (and ``all``) and period t: observed survival next to the sBG projection."""
    rows = []
    groups = [(c, g) for c, g in subs.groupby("cohort")] + [(POOLED, subs)]
    for cohort, g in groups:
        fit, verdict = fits[cohort]
        # period t counts the subscribers whose t-th renewal had come due by the night,
        # cancelled or not (counting every early cancellation but only the old actives
        # would bias survival down)
        known = g.decided_through.to_numpy()
        ren = g.renewals.to_numpy()
        last = int(known.max()) if len(g) else 0
        params = (fit.params["alpha"], fit.params["beta"]) if fit is not None else None
        for t in range(0, last + projection_periods + 1):
            observable = int((known >= t).sum()) if t <= last else 0
            active = int(((ren >= t) & (known >= t)).sum()) if t <= last else 0
            rows.append(
                {
                    "cohort": cohort,
                    "period": t,
                    "cohort_subscribers": len(g),
                    "observable_subscribers": observable,
                    "retained_subscribers": active,
                    "observed_survival": active / observable if observable else None,
                    "projected_survival": float(sbg.survival(params, t)) if params else None,
                    "projected_retention_rate": (
                        float(sbg.retention_rate(params, t)) if params and t >= 1 else None
                    ),
                    "is_projection": t > last,
                    "prediction_status": verdict.status,
                    "status_reason": verdict.reason,
                }
            )
    return pd.DataFrame(rows)


def subscriber_predictions(
    subs: pd.DataFrame, fits: dict, discount_per_period: float
) -> pd.DataFrame:
    """DERL (periods) and its value per active subscriber: the cohort's fit, else the
    pooled one, else ``insufficient_data``."""
    out = subs[["contact_id", "cohort", "started_at", "renewals", "is_active", "price_usd"]].copy()
    derl = np.full(len(out), np.nan)
    source = np.full(len(out), None, dtype=object)
    status = np.full(len(out), guards.INSUFFICIENT, dtype=object)
    for i, (cohort, active, renewals) in enumerate(
        zip(out.cohort, out.is_active, out.renewals, strict=True)
    ):
        if not active:
            status[i] = "cancelled"
            continue
        for key in (cohort, POOLED):
            fit, verdict = fits.get(key, (None, None))
            if fit is not None and verdict.ok:
                derl[i] = float(
                    sbg.derl(
                        (fit.params["alpha"], fit.params["beta"]), renewals, discount_per_period
                    )
                )
                source[i], status[i] = key, guards.OK
                break
    out["derl_periods"] = derl
    out["expected_residual_value_usd"] = derl * out.price_usd.to_numpy(float)
    out["fit_cohort"] = source
    out["prediction_status"] = status
    return out
