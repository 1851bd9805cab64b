"""``lifecycle predict``: fit the predictive models, check them against the literature,
print the replay figures, or compare the learned lead score with the rules score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Fit the predictive models on the warehouse for a night and rebuild their marts
(what the nightly DAG's `predict` and `predict_marts` tasks do):

  marts.dim_customer_predictions  per customer: p_alive, expected purchases in 30/90/365
                                  days, expected_next_order_at, predicted_clv_usd (horizon
                                  and discount rate from seed predict_settings), churn_risk
                                  and churn_risk_band (seed churn_risk_bands)  [BG/NBD +
                                  Gamma-Gamma]
  marts.fct_subscription_retention  per subscription cohort x renewal period: observed
                                  survival beside the sBG projection
  marts.dim_subscriber_predictions  DERL (discounted expected residual lifetime) per
                                  active subscriber
  marts.dim_lead_predictions      learned lead score (scikit-learn, point-in-time
                                  features) beside the rules score, top features per contact
  marts.fct_ltv_cac_by_channel    predicted LTV by acquisition channel next to CAC
                                  (CAC empty until an ad-spend source is ingested)
  audiences.aud_at_risk_high_value, aud_likely_to_buy_soon, aud_lookalike_value_seed
  ops.predict_fits, ops.predict_calibration, ops.predict_holdout_weekly
                                  per night: parameters, log-likelihood, convergence,
                                  calibration on a held-out period by frequency bucket

Below the minimum-data rules (seed predict_minimum_data) a model's rows say
prediction_status = insufficient_data and carry no number. See docs/predictive.md.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="fit the predictive models (CLV, churn, retention, learned lead score)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--night", default="2026-07-01", help="the night (default 2026-07-01)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--check-literature",
        action="store_true",
        help="refit the four published cases offline (BG/NBD and Gamma-Gamma on CDNOW, sBG "
        "High End and Regular); the last line is one JSON object",
    )
    mode.add_argument(
        "--report",
        action="store_true",
        help="print the night's RFM segments, fits, calibration table and holdout by week "
        "from the warehouse (read-only)",
    )
    mode.add_argument(
        "--evaluate-lead-score",
        action="store_true",
        help="simulate a world (--contacts), run ingest + dbt + predict, and print the "
        "rules and learned lead scores' ROC AUC side by side (JSON on the last line)",
    )
    mode.add_argument(
        "--replay-cdnow",
        action="store_true",
        help="run ingest + dbt + predict on the CDNOW replay world into --workdir (kept), "
        "then print the --report figures for its night 2026-07-01 (CDNOW's 1998-07-01)",
    )
    p.add_argument(
        "--workdir",
        help="with --replay-cdnow or --evaluate-lead-score: folder for the warehouse (kept)",
    )
    p.add_argument("--contacts", type=int, default=10_000, help="with --evaluate-lead-score")
    p.add_argument("--seed", type=int, default=42, help="with --evaluate-lead-score")
    p.add_argument(
        "--profile",
        default="realistic",
        help="with --evaluate-lead-score: the world's noise profile (include/noise_profiles.yml)",
    )
    p.add_argument("--no-dbt", action="store_true", help="fit and write predict.* only")
    p.add_argument("--horizon-days", type=float, help="CLV horizon (seed: clv_horizon_days)")
    p.add_argument("--discount-rate", type=float, help="annual discount rate (seed)")
    p.add_argument(
        "--holdout-days", type=float, help="calibration holdout (seed: calibration_holdout_days)"
    )
    p.set_defaults(func=run)


def _overrides(args) -> dict:
    return {
        "clv_horizon_days": args.horizon_days,
        "annual_discount_rate": args.discount_rate,
        "calibration_holdout_days": args.holdout_days,
    }


def run(args) -> int:
    if args.check_literature:
        return check_literature()
    if args.report:
        return report(args.night)
    if args.replay_cdnow:
        import tempfile  # noqa: PLC0415

        from lifecycle.predict.replay import replay  # noqa: PLC0415

        logging.getLogger("dlt").setLevel(logging.ERROR)
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lifecycle-cdnow-"))
        warehouse = replay(workdir, seed=args.seed)
        print(f"kept the replay's warehouse: {warehouse}\n")
        from lifecycle.sandbox.cdnow import NOW  # noqa: PLC0415

        return report(NOW.isoformat(), warehouse)
    if args.evaluate_lead_score:
        from lifecycle.predict.evaluate_leads import evaluate  # noqa: PLC0415

        workdir = Path(args.workdir) if args.workdir else None
        figures = evaluate(args.contacts, seed=args.seed, workdir=workdir, profile=args.profile)
        print(
            f"  rules lead score AUC   {figures['rules_auc']:.4f}\n"
            f"  learned lead score AUC {figures['predictive_auc']:.4f}  "
            f"({figures['scored']} leads + MQLs, {figures['positives']} sales-ready "
            f"within 30 d: a deal opened or a purchase)"
        )
        print(json.dumps(figures), flush=True)
        return 0
    return fit(args.night, _overrides(args), dbt=not args.no_dbt)


def check_literature() -> int:
    from lifecycle.predict import literature  # noqa: PLC0415

    try:
        got = literature.check_literature()
    except literature.LiteratureDataMissing as exc:
        print(f"cannot check the literature: {exc}", file=sys.stderr)
        return 2
    pub = literature.PUBLISHED
    print("case            parameter  fitted      published")
    for case, values in got.items():
        for k, v in values.items():
            if k == "projected":
                actual = literature.ACTUAL_YEARS_8_12[case]
                errs = literature.projection_errors(case, v)
                print(
                    f"{case:<15} years 8-12 {v} vs actual {actual} "
                    f"(error {min(errs):+.1%} .. {max(errs):+.1%})"
                )
            else:
                print(f"{case:<15} {k:<10} {v:<11} {pub[case].get(k, '')}")
    print(json.dumps(got), flush=True)
    return 0


def fit(night: str, overrides: dict, dbt: bool = True) -> int:
    from lifecycle.config import settings  # noqa: PLC0415
    from lifecycle.predict.nightly import run as run_predict  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    s = settings()
    if not s.warehouse_path.exists():
        print(f"no warehouse at {s.warehouse_path}: run `make demo` first", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    print(
        f"[1/2] fitting the predictive models for night {night} on {s.warehouse_path}", flush=True
    )
    con = connect()
    try:
        summary = run_predict(
            con, night, run_id=f"cli__{time.strftime('%Y%m%dT%H%M%S')}", overrides=overrides
        )
    finally:
        con.close()
    for name, status in summary["fits"].items():
        print(f"      {name:<22} {status}")
    if dbt:
        print("[2/2] dbt build --select tag:predict (marts and audiences)", flush=True)
        if not _dbt_build(night, s):
            return 1
    print(f"done in {time.monotonic() - t0:.0f}s: {json.dumps(summary)}")
    return 0


def _dbt_build(night: str, s) -> bool:
    import os  # noqa: PLC0415

    from dbt.cli.main import dbtRunner  # noqa: PLC0415

    os.environ.setdefault("LIFECYCLE_WAREHOUSE_PATH", str(s.warehouse_path))
    os.environ.setdefault("LIFECYCLE_DBT_TARGET", "duckdb")
    project = str(s.dbt_project_dir)
    result = dbtRunner().invoke(
        [
            "build",
            "--project-dir",
            project,
            "--profiles-dir",
            project,
            "--select",
            "tag:predict",
            "--vars",
            f"{{as_of: '{night}'}}",
            "--quiet",
        ]
    )
    if not result.success:
        print(f"dbt build of the predict marts failed: {result.exception or ''}", file=sys.stderr)
    return bool(result.success)


def report(night: str, path: Path | None = None) -> int:
    """The replay figures: RFM segments, fits, calibration by bucket, holdout by week."""
    import duckdb  # noqa: PLC0415

    from lifecycle.config import settings  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    path = path or settings().warehouse_path
    if not Path(path).exists():
        print(f"no warehouse at {path}", file=sys.stderr)
        return 2
    try:
        con = connect(read_only=True, path=path)
    except duckdb.ConnectionException:  # dbt-duckdb in this process still holds it
        con = connect(path=path)
    try:
        print(f"Night {night}, warehouse {path}\n")
        print("RFM segments (marts.dim_customers):")
        for seg, n, rev in con.execute(
            "select rfm_segment, count(*), round(avg(revenue_usd), 2) from marts.dim_customers "
            "group by 1 order by 2 desc"
        ).fetchall():
            print(f"  {seg:<20} {n:>7} customers, mean revenue {rev}")
        print("\nFits (ops.predict_fits):")
        for model, seg, status, params, ll, conv in con.execute(
            "select model, segment, status, params, log_likelihood, converged "
            "from ops.predict_fits where night = ?::date and model <> 'lead_score' "
            "order by model, segment",
            [night],
        ).fetchall():
            p = json.loads(params) if params else None
            shown = {k: round(v, 4) for k, v in p.items()} if p else None
            print(f"  {model:<12} {seg:<12} {status:<18} LL {ll}  converged {conv}  {shown}")
        rows = con.execute(
            "select frequency_bucket, customers, predicted_purchases, actual_purchases, "
            "predicted_per_customer, actual_per_customer, holdout_days "
            "from ops.predict_calibration where night = ?::date order by frequency_bucket",
            [night],
        ).fetchall()
        if rows:
            print(
                f"\nCalibration (holdout {rows[0][6]:g} days; repeat purchase days per customer):"
            )
            print("  x in calibration   customers   predicted   actual")
            for b, n, _, _, pp, ap, _ in rows:
                print(f"  {b:<18} {n:>9}   {pp:>9.3f}   {ap:>6.3f}")
        weekly = con.execute(
            "select holdout_week, predicted_purchases, actual_purchases "
            "from ops.predict_holdout_weekly where night = ?::date order by 1",
            [night],
        ).fetchall()
        if weekly:
            print("\nHoldout repeat purchase days by week (predicted vs actual, cumulative):")
            cp = ca = 0.0
            for w, p, a in weekly:
                cp, ca = cp + p, ca + a
                print(f"  week {w:>3}  {p:8.1f} {a:6.0f}   cumulative {cp:9.1f} {ca:7.0f}")
    finally:
        con.close()
    return 0


def main() -> None:  # pragma: no cover - for python -m
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="lifecycle")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    main()
