"""The quality gate's verdict: results stored in ``ops.quality_results``, pass/warn/fail.

Every check (a Great Expectations expectation, a freshness threshold) becomes one
:class:`CheckResult`. Severity comes from the suite file (or the source's freshness block):
``fail`` blocks publish and activation, ``warn`` is reported and lets the night continue.
:func:`decide` raises :class:`QualityGateFailed` naming each failed check and its counts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import duckdb

log = logging.getLogger(__name__)

SEVERITIES = ("warn", "fail")

RESULTS_DDL = """create table if not exists ops.quality_results (
    run_id varchar, checked_at timestamp, suite varchar, check_name varchar,
    severity varchar, offending_rows bigint, status varchar, description varchar)"""
#: Columns added after the first release; added in place to older warehouses.
EXTRA_COLUMNS = {"night": "date", "target": "varchar", "observed": "varchar"}


@dataclass
class CheckResult:
    """One check's outcome. ``status`` is ``pass``, ``warn`` or ``fail``."""

    suite: str
    check: str
    target: str
    severity: str
    success: bool
    offending_rows: int = 0
    observed: dict = field(default_factory=dict)
    description: str = ""

    @property
    def status(self) -> str:
        return "pass" if self.success else self.severity

    def summary(self) -> str:
        detail = ", ".join(f"{k}={v}" for k, v in self.observed.items() if v not in (None, []))
        return (
            f"{self.suite}: {self.check} on {self.target} - {self.offending_rows} offending rows"
            + (f" ({detail})" if detail else "")
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "status": self.status}


class QualityGateFailed(RuntimeError):
    """At least one check of severity 'fail' did not pass; the night must not be served."""

    def __init__(self, failed: list[CheckResult]):
        self.failed = failed
        super().__init__(
            f"quality gate FAILED ({len(failed)} checks): " + "; ".join(r.summary() for r in failed)
        )


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(RESULTS_DDL)
    for col, kind in EXTRA_COLUMNS.items():
        con.execute(f"alter table ops.quality_results add column if not exists {col} {kind}")


def record(
    con: duckdb.DuckDBPyConnection, run_id: str, night: str, results: list[CheckResult]
) -> None:
    """Store results for ``run_id``; a re-run of the same suites replaces their rows."""
    ensure_table(con)
    now = datetime.now(UTC).replace(tzinfo=None)
    for suite in sorted({r.suite for r in results}):
        con.execute(
            "delete from ops.quality_results where run_id = ? and suite = ?", [run_id, suite]
        )
    con.executemany(
        """insert into ops.quality_results (run_id, night, checked_at, suite, check_name,
               target, severity, offending_rows, status, observed, description)
           values (?,?,?,?,?,?,?,?,?,?,?)""",
        [
            [
                run_id,
                night,
                now,
                r.suite,
                r.check,
                r.target,
                r.severity,
                int(r.offending_rows),
                r.status,
                json.dumps(r.observed, default=str),
                r.description,
            ]
            for r in results
        ],
    )


def decide(results: list[CheckResult]) -> dict[str, int]:
    """Log every non-passing check; raise if any 'fail' check did not pass."""
    counts = {"pass": 0, "warn": 0, "fail": 0}
    for r in results:
        counts[r.status] += 1
        if r.status != "pass":
            log.log(
                logging.WARNING if r.status == "warn" else logging.ERROR,
                "quality %s: %s",
                r.status.upper(),
                r.summary(),
            )
    log.info(
        "quality: %d passed, %d warnings, %d failures",
        counts["pass"],
        counts["warn"],
        counts["fail"],
    )
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise QualityGateFailed(failed)
    return counts
