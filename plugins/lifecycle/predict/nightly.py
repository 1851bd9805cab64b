"""The nightly ``predict`` task: fit the models on the warehouse, write their tables.

Reads ``intermediate.int_orders_numbered`` (orders), ``intermediate.int_events_attributed``
(subscription events) and the lead-score inputs; writes, for the night:

- ``predict.customer_predictions`` one row per customer (BG/NBD + Gamma-Gamma);
- ``predict.subscription_retention`` cohort x period, observed next to the sBG projection;
- ``predict.subscriber_predictions`` DERL per subscriber;
- ``predict.lead_predictions`` the learned lead score per prospect;
- ``ops.predict_fits`` parameters, log-likelihood, convergence per model per night;
- ``ops.predict_calibration`` / ``ops.predict_holdout_weekly`` the held-out check.

``predict.*`` holds the latest night (replaced); ``ops.*`` keeps every night (a re-run
of a night replaces that night's rows), so drift is a query away. The dbt models in
``models/marts/predict/`` turn ``predict.*`` into marts and audiences.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss

from lifecycle.predict import clv, guards, lead_score, retention
from lifecycle.predict.fitting import Fit

log = logging.getLogger(__name__)

FITS_DDL = """create table if not exists ops.predict_fits (
    run_id varchar, night date, model varchar, segment varchar, status varchar,
    status_reason varchar, params json, log_likelihood double, converged boolean,
    iterations integer, n bigint, seconds double, metrics json, fitted_at timestamp)"""
CALIBRATION_DDL = """create table if not exists ops.predict_calibration (
    run_id varchar, night date, model varchar, holdout_days double, frequency_bucket varchar,
    customers bigint, predicted_purchases double, actual_purchases double,
    predicted_per_customer double, actual_per_customer double)"""
WEEKLY_DDL = """create table if not exists ops.predict_holdout_weekly (
    run_id varchar, night date, model varchar, holdout_week integer,
    predicted_purchases double, actual_purchases double)"""


def _naive(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts)
    return ts.dt.tz_convert("UTC").dt.tz_localize(None) if ts.dt.tz is not None else ts


def _fit_row(run_id, night, model, segment, verdict, fit: Fit | None, metrics=None) -> dict:
    return {
        "run_id": run_id,
        "night": night,
        "model": model,
        "segment": segment,
        "status": verdict.status if fit is not None or not verdict.ok else "not_fitted",
        "status_reason": verdict.reason,
        "params": json.dumps(fit.params if fit else None),
        "log_likelihood": fit.log_likelihood if fit else None,
        "converged": fit.converged if fit else None,
        "iterations": fit.iterations if fit else None,
        "n": fit.n
        if fit
        else int(verdict.figures.get("customers", verdict.figures.get("subscribers", 0)) or 0),
        "seconds": fit.seconds if fit else None,
        "metrics": json.dumps({**verdict.figures, **(metrics or {})}, default=float),
        "fitted_at": datetime.now(UTC).replace(tzinfo=None),
    }


def customers(con, as_of: pd.Timestamp, cfg: dict, run_id: str, night: str):
    """BG/NBD + Gamma-Gamma per customer, with the calibration check. Returns
    (predictions, fit rows, calibration table, weekly table)."""
    orders = con.execute(
        "select contact_id, ordered_at, revenue_usd from intermediate.int_orders_numbered "
        "where ordered_at < ?",
        [as_of.to_pydatetime()],
    ).df()
    orders["ordered_at"] = _naive(orders.ordered_at)
    orders["revenue_usd"] = orders.revenue_usd.astype(float).fillna(0.0)
    rules = guards.minimum_data("clv")
    summary = clv.summarise(orders, as_of)
    verdict = guards.judge(clv.minimum_figures(summary, as_of), rules)
    fits, calib, weekly = [], pd.DataFrame(), pd.DataFrame()
    if verdict.ok:
        models = clv.fit_models(summary)
        if not (models.purchases.converged and models.spend.converged):
            verdict = guards.Verdict(
                guards.INSUFFICIENT, ("fit did not converge",), verdict.figures
            )
        spend_corr = clv.gamma_gamma.frequency_spend_correlation(
            summary.x[summary.x > 0], summary.monetary[summary.x > 0]
        )
        fits.append(_fit_row(run_id, night, "bgnbd", "all", verdict, models.purchases))
        fits.append(
            _fit_row(
                run_id,
                night,
                "gamma_gamma",
                "all",
                verdict,
                models.spend,
                {"frequency_spend_correlation": spend_corr},
            )
        )
    else:
        fits.append(_fit_row(run_id, night, "bgnbd", "all", verdict, None))
    if verdict.ok:
        pred = clv.predict(models, summary, as_of, cfg)
        pred["prediction_status"], pred["status_reason"] = guards.OK, None
    else:
        pred = pd.DataFrame({"contact_id": summary.contact_id.to_numpy()})
        for col in (
            "frequency",
            "recency_days",
            "tenure_days",
            "monetary_mean_usd",
            "p_alive",
            "expected_purchases_30d",
            "expected_purchases_90d",
            "expected_purchases_365d",
            "p_order_within_window",
            "churn_risk",
            "expected_spend_usd",
            "predicted_clv_usd",
        ):
            pred[col] = np.nan
        pred["expected_next_order_at"] = pd.NaT
        pred["prediction_status"], pred["status_reason"] = verdict.status, verdict.reason
    pred["clv_horizon_days"] = cfg["clv_horizon_days"]
    pred["annual_discount_rate"] = cfg["annual_discount_rate"]

    holdout = cfg["calibration_holdout_days"]
    cal_fit, table, weekly, cal_verdict = clv.calibration(orders, as_of, holdout, rules)
    metrics = {"holdout_days": holdout}
    if cal_fit is not None:
        metrics |= {
            "holdout_predicted": float(table.predicted.sum()),
            "holdout_actual": float(table.actual.sum()),
        }
        calib = table.assign(run_id=run_id, night=night, model="bgnbd", holdout_days=holdout)
        weekly = weekly.assign(run_id=run_id, night=night, model="bgnbd")
    fits.append(_fit_row(run_id, night, "bgnbd", "calibration", cal_verdict, cal_fit, metrics))
    return pred, fits, calib, weekly


def subscriptions(con, as_of: pd.Timestamp, cfg: dict, run_id: str, night: str):
    events = con.execute(
        "select contact_id, event_name, event_at, revenue_usd "
        "from intermediate.int_events_attributed "
        "where contact_id is not null and event_name in (?, ?, ?) and event_at < ?",
        [*retention.EVENTS, as_of.to_pydatetime()],
    ).df()
    events["event_at"] = _naive(events.event_at)
    period = cfg["subscription_period_days"]
    subs = retention.subscribers(events, as_of, period)
    rules = guards.minimum_data("retention")
    fits = retention.fit_cohorts(subs, rules) if len(subs) else {}
    if not fits:
        verdict = guards.judge({"subscribers": 0}, rules)
        fits = {retention.POOLED: (None, verdict)}
    table = retention.retention_table(subs, fits, int(cfg["subscription_projection_periods"]))
    discount = (1 + cfg["annual_discount_rate"]) ** (period / 365.0) - 1
    per_sub = retention.subscriber_predictions(subs, fits, discount)
    rows = [_fit_row(run_id, night, "sbg", cohort, v, f) for cohort, (f, v) in fits.items()]
    return table, per_sub, rows


def leads(con, as_of: pd.Timestamp, cfg: dict, run_id: str, night: str):
    rules = guards.minimum_data("lead_score")
    snaps = lead_score.snapshots(
        as_of, cfg["lead_label_window_days"], cfg["lead_snapshot_every_days"], cfg["lead_snapshots"]
    )
    t0 = time.perf_counter()
    rows = lead_score.features(con, snaps)
    y = lead_score.labels(con, rows, cfg["lead_label_window_days"])
    verdict = guards.judge(
        {"training_rows": len(rows), "training_conversions": int(y.sum())}, rules
    )
    now_rows = lead_score.features(con, [as_of])
    if not verdict.ok or y.min() == y.max():
        out = pd.DataFrame({"contact_id": now_rows.contact_id})
        out["conversion_probability"], out["predictive_lead_score"] = np.nan, None
        out["top_features"], out["prediction_status"] = None, guards.INSUFFICIENT
        out["status_reason"] = verdict.reason or "one class only"
        return out, [_fit_row(run_id, night, "lead_score", "all", verdict, None)]
    metrics = lead_score.holdout_auc(con, as_of, cfg)
    pipe = lead_score.train(rows, y)
    out = lead_score.score(pipe, now_rows)
    out["prediction_status"], out["status_reason"] = guards.OK, None
    lr = pipe.named_steps["lr"]
    names = pipe.named_steps["pre"].get_feature_names_out()
    fit = Fit(
        model="lead_score",
        params={n: float(c) for n, c in zip(names, lr.coef_[0], strict=True)}
        | {"intercept": float(lr.intercept_[0])},
        log_likelihood=-float(
            log_loss(y, pipe.predict_proba(lead_score._transform(rows))[:, 1], normalize=False)
        ),
        converged=bool(lr.n_iter_[0] < lr.max_iter),
        iterations=int(lr.n_iter_[0]),
        n=len(rows),
        seconds=time.perf_counter() - t0,
    )
    return out, [_fit_row(run_id, night, "lead_score", "all", verdict, fit, metrics)]


def _replace(con, table: str, df: pd.DataFrame) -> None:
    con.register("predict_frame", df)
    try:
        con.execute(
            f"create or replace table {table} as "
            "select * replace (cast(night as date) as night) from predict_frame"
        )
    finally:
        con.unregister("predict_frame")


def _append_night(con, table: str, ddl: str, df: pd.DataFrame, night: str) -> None:
    con.execute(ddl)
    con.execute(f"delete from {table} where night = ?::date", [night])
    if df is None or df.empty:
        return
    cols = [r[0] for r in con.execute(f"describe {table}").fetchall()]
    con.register("predict_frame", df.reindex(columns=cols))
    try:
        con.execute(f"insert into {table} select * from predict_frame")
    finally:
        con.unregister("predict_frame")


def run(
    con: duckdb.DuckDBPyConnection,
    night: str,
    run_id: str | None = None,
    overrides: dict[str, float] | None = None,
) -> dict:
    """Fit and write everything for ``night`` (YYYY-MM-DD: data strictly before it)."""
    t0 = time.perf_counter()
    run_id = run_id or f"predict__{night}"
    cfg = guards.predict_settings(overrides)
    as_of = pd.Timestamp(night)
    pred, fits, calib, weekly = customers(con, as_of, cfg, run_id, night)
    table, per_sub, sub_fits = subscriptions(con, as_of, cfg, run_id, night)
    leads_out, lead_fits = leads(con, as_of, cfg, run_id, night)
    for df in (pred, table, per_sub, leads_out):
        df.insert(0, "night", pd.Timestamp(night).date())
    con.execute("begin")
    try:
        con.execute("create schema if not exists predict")
        con.execute("create schema if not exists ops")
        _replace(con, "predict.customer_predictions", pred)
        _replace(con, "predict.subscription_retention", table)
        _replace(con, "predict.subscriber_predictions", per_sub)
        _replace(con, "predict.lead_predictions", leads_out)
        _append_night(
            con, "ops.predict_fits", FITS_DDL, pd.DataFrame(fits + sub_fits + lead_fits), night
        )
        _append_night(
            con,
            "ops.predict_calibration",
            CALIBRATION_DDL,
            calib.rename(
                columns={
                    "bucket": "frequency_bucket",
                    "predicted": "predicted_purchases",
                    "actual": "actual_purchases",
                }
            )
            if len(calib)
            else calib,
            night,
        )
        _append_night(
            con,
            "ops.predict_holdout_weekly",
            WEEKLY_DDL,
            weekly.rename(
                columns={"predicted": "predicted_purchases", "actual": "actual_purchases"}
            )
            if len(weekly)
            else weekly,
            night,
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    status = {f["model"] + ":" + f["segment"]: f["status"] for f in fits + sub_fits + lead_fits}
    summary = {
        "night": night,
        "customers": len(pred),
        "customers_status": pred.prediction_status.iloc[0] if len(pred) else guards.INSUFFICIENT,
        "subscribers": len(per_sub),
        "prospects_scored": int((leads_out.prediction_status == guards.OK).sum()),
        "fits": status,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("predict %s: %s", night, summary)
    return summary
