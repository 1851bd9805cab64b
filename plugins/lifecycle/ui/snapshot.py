"""What the Lifecycle page shows, read from the serving snapshot (never the warehouse).

Every function takes a read-only DuckDB connection to ``serving.duckdb`` and returns a
JSON-able dict; the page and any script read the same numbers from ``/lifecycle/api/...``.
Only the public interface of the snapshot is read: ``marts.dim_contacts``
(``lifecycle_stage``, ``lead_score``, ``lead_grade``), ``marts.fct_lifecycle_stage_history``
(``contact_id``, ``stage``, ``valid_from``, ``valid_to``), ``audiences.aud_*``,
``ops.sync_runs``, ``ops.quality_results``, ``ops.quality_metrics`` and
``ops.serving_snapshot``. The stage order comes from its one home, the dbt seed
``lifecycle_stages.csv``.

A *night* N is the run whose cutoff is N 00:00 UTC: it counts what happened on day N-1.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

#: How many nights the trends cover (the snapshot's night and the 29 before it).
NIGHTS = 30
#: The stage whose entries count as "MQLs created".
MQL_STAGE = "mql"
GRADES = [f"{fit}{eng}" for fit in "ABC" for eng in "123"]
#: Lead-score histogram: ten buckets of ten points; 100 falls in the last one.
SCORE_BUCKETS = [(lo, lo + 10) for lo in range(0, 100, 10)]
HISTORY = "marts.fct_lifecycle_stage_history"
#: Columns of ``ops.sync_runs`` the page shows (older snapshots may lack the later ones).
SYNC_COLUMNS = (
    "sync_run_id",
    "audience",
    "destination",
    "mode",
    "started_at",
    "finished_at",
    "audience_size",
    "sendable",
    "planned_adds",
    "planned_updates",
    "planned_removes",
    "deferred",
    "sent",
    "accepted",
    "rejected",
    "match_rate",
    "status",
    "error",
)


@dataclass(frozen=True)
class Stage:
    name: str
    order: int
    kind: str  # forward | state


def stages(dbt_project_dir: Path) -> list[Stage]:
    """The stages in order, from ``seeds/lifecycle_stages.csv``."""
    with open(dbt_project_dir / "seeds" / "lifecycle_stages.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(
        (Stage(r["stage"], int(r["stage_order"]), r.get("stage_kind") or "forward") for r in rows),
        key=lambda s: s.order,
    )


def connect(path: Path) -> duckdb.DuckDBPyConnection | None:
    """A read-only connection to the snapshot, or None when no night was published yet."""
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    return con


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_catalog = "
            "current_database() and table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchone()[0]
    )


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    schema, name = table.split(".")
    return {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_catalog = "
            "current_database() and table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()
    }


def iso(value) -> str | None:
    """Timestamps as ISO 8601 in UTC (the snapshot stores naive UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def info(con: duckdb.DuckDBPyConnection | None) -> dict | None:
    """Which night the snapshot holds, the run that published it, when, how many tables."""
    if con is None or not has_table(con, "ops.serving_snapshot"):
        return None
    night, run_id, published_at, tables = con.execute(
        "select max(night), arg_max(run_id, night), max(published_at), count(*) "
        "from ops.serving_snapshot"
    ).fetchone()
    if night is None:
        return None
    return {
        "night": iso(night),
        "run_id": run_id,
        "published_at": iso(published_at),
        "tables": int(tables),
    }


def cutoff(night: str) -> datetime:
    """The night's cutoff: ``night`` 00:00 (naive UTC, like the snapshot's timestamps)."""
    return datetime.fromisoformat(night)


def _nights(night: str) -> list[str]:
    last = date.fromisoformat(night)
    return [(last - timedelta(days=i)).isoformat() for i in range(NIGHTS - 1, -1, -1)]


def funnel(con: duckdb.DuckDBPyConnection, order: list[Stage], night: str) -> dict:
    """Contacts per stage now; per forward stage how many ever reached it (or a later
    forward stage), the conversion to the next forward stage, and median days in stage
    over every spell of the stage (a current spell counts up to the night's cutoff)."""
    current = dict(
        con.execute(
            "select lifecycle_stage, count(*) from marts.dim_contacts group by 1"
        ).fetchall()
    )
    forward = [s for s in order if s.kind == "forward"]
    values = ", ".join("(?, ?)" for _ in forward)
    reached = dict(
        con.execute(
            f"""with stage_order(stage, stage_order) as (values {values}),
                best as (
                    select h.contact_id, max(o.stage_order) as best_order
                    from {HISTORY} h join stage_order o using (stage)
                    group by 1)
                select o.stage, count(b.contact_id)
                from stage_order o left join best b on b.best_order >= o.stage_order
                group by 1""",
            [v for s in forward for v in (s.name, s.order)],
        ).fetchall()
    )
    days = {
        stage: (int(spells), median)
        for stage, spells, median in con.execute(
            f"""select stage, count(*),
                       median(date_diff('second', valid_from, coalesce(valid_to, ?)) / 86400.0)
                from {HISTORY} group by 1""",
            [cutoff(night)],
        ).fetchall()
    }
    rows = []
    known = {s.name for s in order}
    for s in order:
        nxt = forward[forward.index(s) + 1] if s in forward[:-1] else None
        here = reached.get(s.name) if s.kind == "forward" else None
        conversion = None
        if nxt is not None and here:
            conversion = round(reached.get(nxt.name, 0) / here, 4)
        spells, median = days.get(s.name, (0, None))
        rows.append(
            {
                "stage": s.name,
                "order": s.order,
                "kind": s.kind,
                "contacts": int(current.get(s.name, 0)),
                "reached": int(here) if here is not None else None,
                "next_stage": nxt.name if nxt else None,
                "conversion_to_next": conversion,
                "spells": spells,
                "median_days_in_stage": round(median, 1) if median is not None else None,
            }
        )
    # a stage the seed does not know (should not happen): shown, not hidden
    for stage, n in sorted(current.items(), key=lambda kv: str(kv[0])):
        if stage not in known:
            rows.append(
                {
                    "stage": stage,
                    "order": None,
                    "kind": "unknown",
                    "contacts": int(n),
                    "reached": None,
                    "next_stage": None,
                    "conversion_to_next": None,
                    "spells": days.get(stage, (0, None))[0],
                    "median_days_in_stage": None,
                }
            )
    return {"total_contacts": int(sum(current.values())), "stages": rows}


TRANSITIONS = f"""
with ordered as (
    select stage as to_stage, valid_from,
           lag(stage) over (partition by contact_id order by valid_from, stage) as from_stage
    from {HISTORY}
)
select from_stage, to_stage, valid_from from ordered
where from_stage is not null and valid_from >= ? and valid_from < ?
"""


def transitions(con: duckdb.DuckDBPyConnection, night: str) -> dict:
    """Stage moves of the night (day N-1) by from -> to, and moves per night for 30 nights."""
    end = cutoff(night)
    last = con.execute(
        f"select from_stage, to_stage, count(*) from ({TRANSITIONS}) "
        "group by 1, 2 order by 3 desc, 1, 2",
        [end - timedelta(days=1), end],
    ).fetchall()
    per_night = con.execute(
        f"select (valid_from::date + 1)::varchar, to_stage, count(*) from ({TRANSITIONS}) "
        "group by 1, 2",
        [end - timedelta(days=NIGHTS), end],
    ).fetchall()
    trend = {n: {"night": n, "transitions": 0, "by_to_stage": {}} for n in _nights(night)}
    for n, to_stage, count in per_night:
        trend[n]["transitions"] += int(count)
        trend[n]["by_to_stage"][to_stage] = int(count)
    return {
        "last_night": {
            "from": iso(end - timedelta(days=1)),
            "to": iso(end),
            "transitions": int(sum(r[2] for r in last)),
            "moves": [{"from_stage": a, "to_stage": b, "contacts": int(n)} for a, b, n in last],
        },
        "trend": list(trend.values()),
    }


def lead_score(con: duckdb.DuckDBPyConnection, night: str) -> dict:
    """Score histogram (ten buckets), contacts per grade, MQLs created per night."""
    buckets = dict(
        con.execute(
            "select least(floor(lead_score / 10), 9)::int, count(*) from marts.dim_contacts "
            "where lead_score is not null group by 1"
        ).fetchall()
    )
    grades = dict(
        con.execute("select lead_grade, count(*) from marts.dim_contacts group by 1").fetchall()
    )
    total, median = con.execute(
        "select count(*), median(lead_score) from marts.dim_contacts"
    ).fetchone()
    end = cutoff(night)
    mqls = dict(
        con.execute(
            f"select (valid_from::date + 1)::varchar, count(*) from {HISTORY} "
            "where stage = ? and valid_from >= ? and valid_from < ? group by 1",
            [MQL_STAGE, end - timedelta(days=NIGHTS), end],
        ).fetchall()
    )
    return {
        "contacts": int(total),
        "median_score": round(float(median), 1) if median is not None else None,
        "distribution": [
            {
                "from": lo,
                "to": hi,
                "label": f"{lo}-{hi - 1 if hi < 100 else 100}",
                "contacts": int(buckets.get(i, 0)),
            }
            for i, (lo, hi) in enumerate(SCORE_BUCKETS)
        ],
        "grades": [{"grade": g, "contacts": int(grades.get(g, 0))} for g in GRADES]
        + [
            {"grade": g, "contacts": int(n)}
            for g, n in sorted(grades.items(), key=lambda kv: str(kv[0]))
            if g not in GRADES
        ],
        "mql_stage": MQL_STAGE,
        "mqls_per_night": [{"night": n, "mqls": int(mqls.get(n, 0))} for n in _nights(night)],
    }


def audience_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_catalog = "
            "current_database() and table_schema = 'audiences' "
            "and starts_with(table_name, 'aud_') order by 1"
        ).fetchall()
    ]


def audience_sizes(con: duckdb.DuckDBPyConnection, night: str) -> list[dict]:
    """Each audience's size in the snapshot, and per night the size the quality gate
    recorded (``ops.quality_metrics``, metric ``audience_size``): null on a night with no
    record (the gate did not run, or the audience did not exist yet)."""
    tables = audience_tables(con)
    history: dict[str, dict[str, int]] = {t: {} for t in tables}
    if has_table(con, "ops.quality_metrics"):
        for n, key, value in con.execute(
            "select night::varchar, key, value from ops.quality_metrics "
            "where metric = 'audience_size' and night > ?::date - ? and night <= ?::date",
            [night, NIGHTS, night],
        ).fetchall():
            if key in history:
                history[key][n] = int(value)
    out = []
    for t in tables:
        size = con.execute(f'select count(*) from audiences."{t}"').fetchone()[0]
        out.append(
            {
                "audience": t,
                "size": int(size),
                "history": [{"night": n, "size": history[t].get(n)} for n in _nights(night)],
            }
        )
    return out


def last_syncs(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The latest ``ops.sync_runs`` row per (audience, destination)."""
    if not has_table(con, "ops.sync_runs"):
        return []
    have = _columns(con, "ops.sync_runs")
    cols = ", ".join(f'"{c}"' if c in have else f'null as "{c}"' for c in SYNC_COLUMNS)
    rows = con.execute(
        f"""select {cols} from (
                select *, row_number() over (
                    partition by audience, destination order by started_at desc) as rn
                from ops.sync_runs)
            where rn = 1 order by audience, destination"""
    ).fetchall()
    out = []
    for row in rows:
        r = dict(zip(SYNC_COLUMNS, row, strict=True))
        planned = [r["planned_adds"], r["planned_updates"], r["planned_removes"]]
        r["planned"] = int(sum(p or 0 for p in planned))
        for k in ("started_at", "finished_at"):
            r[k] = iso(r[k])
        if r["match_rate"] is not None:
            r["match_rate"] = round(float(r["match_rate"]), 4)
        out.append(r)
    return out


def _results(con: duckdb.DuckDBPyConnection, snap: dict, suite: str | None = None) -> list:
    if not has_table(con, "ops.quality_results"):
        return []
    have = _columns(con, "ops.quality_results")
    cols = [
        c
        for c in (
            "suite",
            "check_name",
            "target",
            "severity",
            "status",
            "offending_rows",
            "observed",
            "description",
            "checked_at",
        )
    ]
    select = ", ".join(f'"{c}"' if c in have else f'null as "{c}"' for c in cols)
    if snap.get("run_id"):
        where, params = "run_id = ?", [snap["run_id"]]
    else:  # published outside Airflow: the night's latest results
        where, params = "night = ?::date", [snap["night"]]
    if suite:
        where += " and suite = ?"
        params.append(suite)
    rows = con.execute(
        f"""select {select} from ops.quality_results where {where}
            order by case status when 'fail' then 0 when 'warn' then 1 else 2 end,
                     suite, check_name, target""",
        params,
    ).fetchall()
    out = []
    for row in rows:
        r = dict(zip(cols, row, strict=True))
        try:
            r["observed"] = json.loads(r["observed"]) if r["observed"] else {}
        except ValueError:
            r["observed"] = {"raw": r["observed"]}
        r["checked_at"] = iso(r["checked_at"])
        r["offending_rows"] = int(r["offending_rows"] or 0)
        out.append(r)
    return out


def quality(con: duckdb.DuckDBPyConnection, snap: dict) -> dict:
    """Every check of the quality gate for the night the snapshot holds."""
    checks = _results(con, snap)
    counts = {k: sum(c["status"] == k for c in checks) for k in ("pass", "warn", "fail")}
    return {"run_id": snap.get("run_id"), "counts": counts, "checks": checks}


def freshness(con: duckdb.DuckDBPyConnection, snap: dict) -> list[dict]:
    """Each source's freshness at the night's cutoff (the gate's ``freshness`` checks)."""
    out = []
    for r in _results(con, snap, suite="freshness"):
        name = r["check_name"]
        source = name[name.find("(") + 1 : name.rfind(")")] if "(" in name else name
        obs = r["observed"]
        out.append(
            {
                "source": source,
                "status": r["status"],
                "severity": r["severity"],
                "tables": r["target"],
                "age_hours": obs.get("age_hours"),
                "limit_hours": obs.get("limit_hours"),
                "table_age_hours": obs.get("table_age_hours", {}),
                "error": obs.get("error"),
                "checked_at": r["checked_at"],
            }
        )
    return sorted(out, key=lambda s: s["source"])
