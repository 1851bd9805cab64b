"""The quality gate's own checks on the marts, results stored in ``ops.quality_results``.

Each check is a SQL query that returns the number of offending rows; zero passes.
Severity ``fail`` blocks publish and activation; ``warn`` is reported and lets the
night continue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    sql: str  # returns one integer: offending rows
    severity: str = "fail"
    description: str = ""


CHECKS = (
    Check(
        "contacts_have_one_stage",
        """select count(*) from (
                 select c.contact_id from marts.dim_contacts c
                 left join marts.fct_lifecycle_stage_history h
                   on h.contact_id = c.contact_id and h.is_current
                 group by c.contact_id having count(*) > 1
             ) union all select count(*) from marts.dim_contacts where lifecycle_stage is null""",
        description="every contact is in exactly one current stage",
    ),
    Check(
        "scores_in_range",
        "select count(*) from marts.dim_contacts where lead_score not between 0 and 100",
        description="lead scores within 0-100",
    ),
    Check(
        "audience_consent",
        """select count(*) from audiences.aud_sales_ready a
             join marts.dim_contacts c using (contact_id) where not c.has_ad_consent""",
        description="no sendable contact without ad-targeting consent",
    ),
    Check(
        "contacts_not_empty",
        "select case when count(*) = 0 then 1 else 0 end from marts.dim_contacts",
        description="the contact mart has rows",
    ),
)


class QualityGateFailed(RuntimeError):
    """At least one check of severity 'fail' found offending rows."""


def run_checks(
    con: duckdb.DuckDBPyConnection, run_id: str, checks: tuple[Check, ...] = CHECKS
) -> list[dict]:
    con.execute("create schema if not exists ops")
    con.execute("""create table if not exists ops.quality_results (
        run_id varchar, checked_at timestamp, suite varchar, check_name varchar,
        severity varchar, offending_rows bigint, status varchar, description varchar)""")
    now = datetime.now(UTC).replace(tzinfo=None)
    results = []
    for c in checks:
        bad = sum(r[0] for r in con.execute(c.sql).fetchall())
        status = "pass" if bad == 0 else c.severity
        results.append(
            {
                "check": c.name,
                "severity": c.severity,
                "offending_rows": int(bad),
                "status": status,
                "description": c.description,
            }
        )
        con.execute(
            "insert into ops.quality_results values (?,?,?,?,?,?,?,?)",
            [run_id, now, "marts", c.name, c.severity, bad, status, c.description],
        )
        log.log(
            logging.INFO if status == "pass" else logging.ERROR,
            "quality %s: %s (%d offending rows) - %s",
            status.upper(),
            c.name,
            bad,
            c.description,
        )
    failed = [r for r in results if r["status"] == "fail"]
    if failed:
        raise QualityGateFailed(
            "quality gate failed: "
            + "; ".join(
                f"{r['check']} ({r['offending_rows']} offending rows: {r['description']})"
                for r in failed
            )
        )
    return results
