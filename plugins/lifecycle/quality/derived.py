"""Derived batches: small frames the runner computes from the warehouse and the history.

Each function returns the frame Great Expectations validates, its expectations, context
for the message and (most of them) the metric to remember for the next night:
``daily_volume`` (the night's day vs the trailing daily average), ``row_count_change``,
``stage_shift``, ``audience_sizes`` (vs the previous night, from ``ops.quality_metrics``)
and ``audience_consent`` (every audience row against the one consent model). The heavy
work is SQL in DuckDB; only aggregates reach pandas.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from lifecycle.quality.history import previous
from lifecycle.quality.suites import Expectation

#: What derived batches read, for messages.
TARGETS = {
    "stage_shift": "marts.dim_contacts",
    "audience_sizes": "audiences.aud_*",
    "audience_consent": "audiences.aud_* x marts.dim_contact_consent",
}


def _between(column: str, lo=None, hi=None, severity: str = "fail") -> Expectation:
    kwargs = {"column": column}
    if lo is not None:
        kwargs["min_value"] = lo
    if hi is not None:
        kwargs["max_value"] = hi
    return Expectation("expect_column_values_to_be_between", kwargs, severity)


def _daily_volume(con, p: dict, as_of: datetime, sev: str):
    table, ts, days = p["table"], p["timestamp"], int(p.get("trailing_days", 7))
    day_start = as_of - timedelta(days=1)
    since = day_start - timedelta(days=days)
    day_rows, first_seen, trailing_rows = con.execute(
        f"""select count(*) filter (where "{ts}" >= ? and "{ts}" < ?),
                   min("{ts}") filter (where "{ts}" >= ?),
                   count(*) filter (where "{ts}" >= ? and "{ts}" < ?)
            from {table}""",
        [day_start, as_of, since, since, day_start],
    ).fetchone()
    # a young table has fewer trailing days than asked for: average over those it has
    if first_seen is not None:
        first_day = pd.Timestamp(first_seen).tz_localize(None).floor("D").to_pydatetime()
        n_days = max(1, min(days, (day_start - max(first_day, since)).days))
    else:
        n_days = days
    avg = trailing_rows / n_days
    lo = math.floor(float(p.get("min_ratio", 0.5)) * avg)
    hi = math.ceil(float(p.get("max_ratio", 2.0)) * avg) if avg else None
    frame = pd.DataFrame({"day": [day_start.date().isoformat()], "day_rows": [day_rows]})
    ctx = {"trailing_avg": round(avg, 1), "trailing_days": n_days}
    return frame, [_between("day_rows", lo, hi, sev)], ctx, ("daily_rows", {table: day_rows})


def _row_count_change(con, p: dict, sev: str, night: str):
    table = p["table"]
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    prev = previous(con, "row_count", table, night)
    if prev:
        lo = math.ceil(prev[1] * (1 - float(p.get("max_drop", 0.1))))
        hi = math.floor(prev[1] * (1 + float(p.get("max_growth", 1.0))))
        ctx = {"previous_night": prev[0], "previous_rows": int(prev[1])}
    else:
        lo, hi, ctx = 1, None, {"previous_night": None}
    frame = pd.DataFrame({"table": [table], "rows": [rows]})
    return frame, [_between("rows", lo, hi, sev)], ctx, ("row_count", {table: rows})


def _stage_shift(con, p: dict, sev: str, night: str):
    counts = dict(
        con.execute(
            "select lifecycle_stage, count(*) from marts.dim_contacts group by 1"
        ).fetchall()
    )
    total = sum(counts.values()) or 1
    shares = {k: v / total for k, v in counts.items() if k is not None}
    prev_night = con.execute(
        "select max(night) from ops.quality_metrics where metric = 'stage_share' "
        "and night < ?::date",
        [night],
    ).fetchone()[0]
    prev = (
        dict(
            con.execute(
                "select key, value from ops.quality_metrics "
                "where metric = 'stage_share' and night = ?",
                [prev_night],
            ).fetchall()
        )
        if prev_night
        else dict(shares)
    )
    stages = sorted(set(shares) | set(prev))
    frame = pd.DataFrame(
        {
            "stage": stages,
            "share": [shares.get(s, 0.0) for s in stages],
            "previous_share": [prev.get(s, 0.0) for s in stages],
        }
    )
    frame["shift"] = (frame["share"] - frame["previous_share"]).abs().round(4)
    worst = frame.sort_values("shift").iloc[-1] if len(frame) else None
    ctx = {
        "previous_night": str(prev_night) if prev_night else None,
        "largest_shift": f"{worst['stage']} {worst['shift']:.3f}" if worst is not None else None,
    }
    exp = _between("shift", None, float(p.get("tolerance", 0.1)), sev)
    return frame, [exp], ctx, ("stage_share", shares)


def _audience_tables(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'audiences' "
            "and table_catalog = current_database() and table_name like 'aud_%' order by 1"
        ).fetchall()
    ]


def _audience_sizes(con, p: dict, sev: str, night: str):
    sizes = {
        t: con.execute(f"select count(*) from audiences.{t}").fetchone()[0]
        for t in _audience_tables(con)
    }
    rows = []
    for t, n in sizes.items():
        prev = previous(con, "audience_size", t, night)
        change = abs(n - prev[1]) / max(prev[1], 1) if prev else 0.0
        rows.append(
            {
                "audience": t,
                "size": n,
                "previous_size": prev[1] if prev else None,
                "change": round(change, 4),
            }
        )
    frame = pd.DataFrame(rows, columns=["audience", "size", "previous_size", "change"])
    exp = _between("change", None, float(p.get("tolerance", 0.5)), sev)
    return frame, [exp], {"sizes": sizes}, ("audience_size", sizes)


#: Per contact, from the one consent model: email_marketing granted, or every ad
#: purpose granted (the channels an audience may be sent to).
_CONSENT_BY_CONTACT = """
    select
        contact_id,
        bool_or(is_granted and purpose = 'email_marketing') as email_ok,
        coalesce(bool_and(is_granted) filter (where channel = 'ads'), false) as ads_ok
    from marts.dim_contact_consent
    group by contact_id
"""


def _audience_consent(con, p: dict, sev: str):
    parts = []
    # CRM write-back models live beside the audiences but go to no marketing channel.
    exclude = set(p.get("exclude") or [])
    for t in _audience_tables(con):
        if t in exclude:
            continue
        parts.append(
            f"select '{t}' as audience, a.contact_id, "
            f"coalesce(c.email_ok or c.ads_ok, false) as has_any_consent "
            f"from audiences.{t} a left join consent c using (contact_id)"
        )
    if parts:
        frame = con.execute(
            f"with consent as ({_CONSENT_BY_CONTACT}) " + " union all ".join(parts)
        ).df()
    else:
        frame = pd.DataFrame({"audience": [], "contact_id": [], "has_any_consent": []})
    exp = Expectation(
        "expect_column_values_to_be_in_set",
        {"column": "has_any_consent", "value_set": [True]},
        sev,
    )
    bad = frame[~frame["has_any_consent"].astype(bool)]
    ctx = {"audiences": len(parts), "consent_model": "marts.dim_contact_consent"}
    if len(bad):
        ctx["without_consent"] = bad.groupby("audience").size().astype(int).to_dict()
        ctx["contacts"] = bad["contact_id"].astype(str).head(5).tolist()
    return frame, [exp], ctx


def compute(con, kind: str, params: dict, as_of: datetime, night: str, severity: str):
    """One derived batch: ``(frame, expectations, context, remember-or-None)``."""
    if kind == "daily_volume":
        return _daily_volume(con, params, as_of, severity)
    if kind == "row_count_change":
        return _row_count_change(con, params, severity, night)
    if kind == "stage_shift":
        return _stage_shift(con, params, severity, night)
    if kind == "audience_sizes":
        return _audience_sizes(con, params, severity, night)
    if kind == "audience_consent":
        return (*_audience_consent(con, params, severity), None)
    raise ValueError(f"unknown derived batch {kind!r}")  # load_suite rejects these first
