"""A pandas reference for the scale benchmark: sessionization and lead scores.

    python bench/scale_pandas.py --warehouse PATH --night YYYY-MM-DD

The same logic as the dbt models ``int_sessions`` (a device's events split where the gap
exceeds ``session_timeout_minutes``; counts, landing and exit pages, first and last
campaign) and ``int_lead_scores`` (fit rules on title, industry and size; engagement
signals decayed by each rule's half-life, capped per rule, per group and per part at
50), written as plain pandas over the same inputs read from the warehouse (the models'
upstream tables and the rule seeds). Reason codes and grades are left out of both
timings' comparison: the reference reproduces the numbers, and its output is checked
against the pipeline's tables (sessions matched, scores equal) so the two do the same
work. Prints one JSON line: seconds to read, to compute, and the agreement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the dbt models this reproduces (the pipeline side of the ratio)
PIPELINE_MODELS = ("int_sessions", "int_lead_scores")


def _var(name: str):
    return yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"][name]


def read(con, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    return {
        "events": con.execute(
            """select event_id, anonymous_id, user_id, event_type, page_path, utm_source,
                      utm_medium, utm_campaign, event_at, is_bot
               from intermediate.int_web_events"""
        ).df(),
        "contacts": con.execute(
            "select contact_id, job_title, company_id from intermediate.int_contacts"
        ).df(),
        "companies": con.execute(
            "select company_id, industry, employee_count from staging.stg_hubspot__companies"
        ).df(),
        "signals": con.execute(
            "select contact_id, signal, occurred_at from intermediate.int_contact_signals"
        ).df(),
        "fit_rules": con.execute("select * from seeds.lead_score_fit_rules").df(),
        "fit_groups": con.execute("select * from seeds.lead_score_fit_groups").df(),
        "eng_rules": con.execute("select * from seeds.lead_score_engagement_rules").df(),
        "eng_groups": con.execute("select * from seeds.lead_score_engagement_groups").df(),
    }


def sessions(events: pd.DataFrame, as_of: pd.Timestamp, timeout_min: int) -> pd.DataFrame:
    ev = events[
        events.event_type.isin(["page", "track"])
        & ~events.is_bot.astype(bool)
        & events.anonymous_id.notna()
        & (events.event_at < as_of)
    ]
    ev = ev.sort_values(["anonymous_id", "event_at", "event_id"], kind="mergesort")
    gap = ev.groupby("anonymous_id", sort=False).event_at.diff()
    start = gap.isna() | (gap > pd.Timedelta(minutes=timeout_min))
    ev = ev.assign(
        session_number=start.astype(int).groupby(ev.anonymous_id, sort=False).cumsum(),
        is_page=(ev.event_type == "page").astype(int),
    )
    keys = ["anonymous_id", "session_number"]
    g = ev.groupby(keys, sort=False)
    out = g.agg(
        user_id=("user_id", "max"),
        session_started_at=("event_at", "min"),
        session_ended_at=("event_at", "max"),
        events_count=("event_id", "size"),
        page_views=("is_page", "sum"),
    )
    # first/last row of each (sorted) session, nulls included (not "first non-null")
    for col, n in (("landing_page_path", 0), ("exit_page_path", -1)):
        rows = g.nth(n).set_index(keys)
        out[col] = rows.page_path.reindex(out.index).values
    utm = ev[ev.utm_source.notna() | ev.utm_medium.notna()].groupby(keys, sort=False)
    for side, n in (("first", 0), ("last", -1)):
        rows = utm.nth(n).set_index(keys)
        for col in ("utm_source", "utm_medium", "utm_campaign"):
            out[f"{side}_{col}"] = rows[col].reindex(out.index).values
    return out.reset_index()


def lead_scores(data: dict, as_of: pd.Timestamp) -> pd.DataFrame:
    contacts = data["contacts"].merge(data["companies"], on="company_id", how="left")
    fit = data["fit_rules"]
    hits = []
    for attr in ("job_title", "industry"):
        rules = fit[(fit.attribute == attr) & (fit.operator == "eq")]
        m = contacts[["contact_id", attr]].merge(
            rules,
            left_on=contacts[attr].astype("string"),
            right_on=rules.match_value.astype("string"),
        )
        hits.append(m[["contact_id", "rule_id", "rule_group", "points"]])
    num = contacts[["contact_id", "employee_count"]].dropna()
    for op in ("gte", "lt"):
        rules = fit[(fit.attribute == "employee_count") & (fit.operator == op)]
        m = num.merge(rules, how="cross")
        mv = m.match_value.astype(float)
        keep = m.employee_count >= mv if op == "gte" else m.employee_count < mv
        hits.append(m[keep][["contact_id", "rule_id", "rule_group", "points"]])
    fit_hits = pd.concat(hits).assign(kind="fit", points=lambda d: d.points.astype(float))

    sig = data["signals"]
    sig = sig[sig.occurred_at < as_of].merge(data["eng_rules"], on="signal")
    age_days = (as_of - sig.occurred_at).dt.total_seconds() / 86400.0
    sig = sig.assign(w=sig.points * np.power(0.5, age_days / sig.half_life_days))
    eng = sig.groupby(["contact_id", "rule_id", "rule_group", "max_points"], as_index=False).w.sum()
    eng["points"] = np.minimum(eng.w, eng.max_points.astype(float))
    eng_hits = eng[["contact_id", "rule_id", "rule_group", "points"]].assign(kind="engagement")

    allh = pd.concat([fit_hits, eng_hits])
    caps = pd.concat(
        [data["fit_groups"].assign(kind="fit"), data["eng_groups"].assign(kind="engagement")]
    )[["rule_group", "kind", "max_points"]]
    groups = allh.groupby(["contact_id", "kind", "rule_group"], as_index=False).points.sum()
    groups = groups.merge(caps, on=["rule_group", "kind"], how="left")
    groups["points"] = np.where(
        groups.max_points.notna(), np.minimum(groups.points, groups.max_points), groups.points
    )
    parts = groups.pivot_table(index="contact_id", columns="kind", values="points", aggfunc="sum")
    out = contacts[["contact_id"]].set_index("contact_id")
    for kind in ("fit", "engagement"):
        v = parts[kind] if kind in parts else pd.Series(dtype=float)
        # SQL round(): half away from zero (the values are >= 0 after the clip below)
        out[f"{kind}_score"] = np.clip(np.floor(v.reindex(out.index).fillna(0) + 0.5), 0, 50)
    out["lead_score"] = out.fit_score + out.engagement_score
    return out.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warehouse", type=Path, required=True, help="DuckDB warehouse")
    parser.add_argument("--night", required=True, help="the night (as_of), YYYY-MM-DD")
    args = parser.parse_args(argv)
    as_of = pd.Timestamp(args.night)
    con = duckdb.connect(str(args.warehouse), read_only=True)
    t0 = time.perf_counter()
    data = read(con, as_of)
    t1 = time.perf_counter()
    got_sessions = sessions(data["events"], as_of, int(_var("session_timeout_minutes")))
    got_scores = lead_scores(data, as_of)
    t2 = time.perf_counter()
    want_sessions = con.execute(
        "select anonymous_id, session_started_at, events_count, page_views, landing_page_path "
        "from intermediate.int_sessions"
    ).df()
    want_scores = con.execute(
        "select contact_id, lead_score from intermediate.int_lead_scores"
    ).df()
    con.close()
    on = ["anonymous_id", "session_started_at", "events_count", "page_views"]
    matched = got_sessions[on].merge(want_sessions[on], on=on).shape[0]
    scores = got_scores.merge(want_scores, on="contact_id", suffixes=("_pandas", "_dbt"))
    equal = int((scores.lead_score_pandas == scores.lead_score_dbt).sum())
    print(
        json.dumps(
            {
                "pandas_read_s": round(t1 - t0, 2),
                "pandas_compute_s": round(t2 - t1, 2),
                "pandas_s": round(t2 - t0, 2),
                "pandas_sessions": len(got_sessions),
                "dbt_sessions": len(want_sessions),
                "sessions_matched": int(matched),
                "lead_scores_compared": len(scores),
                "lead_scores_equal": equal,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
