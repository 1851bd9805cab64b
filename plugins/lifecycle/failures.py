"""Fail fast on what a retry cannot fix; retry what it can.

The nightly DAG retries every task (``retries=2`` in its default_args) because most
failures at night are passing: a 429 or 5xx the HTTP client ran out of patience for, a
timeout, a dropped connection, a DuckDB file lock. Some failures are certain to repeat:
a dbt model that does not compile or whose SQL is wrong, a vendor answering 400, 401,
403 or 404 (a bad request, bad credentials, a list that does not exist), a failed
quality check, a consent seed that does not validate, an erasure guard that tripped.
Retrying those only delays the alert (issue 10: ten minutes on a deterministic SQL
error). They are raised as Airflow's ``AirflowFailException``: the task fails on its
first try, with the model or request and the error in the log.

- :func:`run_failing_fast` wraps a task function (ingest, erase).
- :func:`dbt_fail_fast` is a Cosmos ``callback``: Cosmos calls it with the dbt project
  folder of the run, after dbt ran and before it raises its own error, so it can read
  ``target/run_results.json`` and tell a SQL error from a lock.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: dbt node messages that a retry can fix (the warehouse busy, the connection gone).
TRANSIENT_DBT = re.compile(
    r"could not set lock|database is locked|io error|connection (refused|reset|closed)|"
    r"could not connect|timeout|timed out|out of memory|could not serialize|deadlock",
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def permanent_cause(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain that a retry cannot fix, or None."""
    from lifecycle.consent_config import ConsentConfigError  # noqa: PLC0415
    from lifecycle.erasure import ErasureGuardError  # noqa: PLC0415
    from lifecycle.httpclient import ApiError, RetriesExhausted  # noqa: PLC0415

    for e in _chain(exc):
        if isinstance(e, RetriesExhausted):
            return None  # retryable statuses that kept failing: try again later
        if isinstance(e, ApiError) and e.permanent:
            return e
        if isinstance(e, ConsentConfigError | ErasureGuardError):
            return e
        if type(e).__name__ == "SearchCapError":  # lifecycle.sources.hubspot
            return e
    return None


def _fail(message: str, cause: BaseException | None = None):
    from airflow.sdk.exceptions import AirflowFailException  # noqa: PLC0415

    log.error("%s (not retried: a retry cannot fix it)", message)
    raise AirflowFailException(message) from cause


def run_failing_fast(fn: Callable[..., Any], *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)``; an error a retry cannot fix fails the task at once."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        cause = permanent_cause(exc)
        if cause is None:
            raise
        _fail(f"{type(cause).__name__}: {cause}", exc)


def deterministic_dbt_errors(run_results: dict) -> list[tuple[str, str]]:
    """``(node, message)`` of every node that errored or failed for a reason a retry
    cannot fix: a compile or SQL error, a failing test. Lock and connection errors are
    left out (retried)."""
    found = []
    for r in run_results.get("results") or []:
        status = str(r.get("status") or "").lower()
        if status not in ("error", "fail", "runtime error"):
            continue
        message = str(r.get("message") or "")
        if status == "error" and TRANSIENT_DBT.search(message):
            continue
        node = str(r.get("unique_id") or "?")
        found.append((node, message.strip()))
    return found


def dbt_fail_fast(project_dir: str, **_: Any) -> None:
    """Cosmos callback: fail the task without retries when dbt's errors are deterministic.

    Reads ``<project_dir>/target/run_results.json``; when every failing node failed for
    a reason a retry cannot fix, raises ``AirflowFailException`` naming each node (e.g.
    ``model.lifecycle.stg_mailchimp__members``) and its error. Otherwise returns and
    Cosmos raises its own error, which Airflow retries.
    """
    path = Path(project_dir) / "target" / "run_results.json"
    if not path.exists():
        return
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    failing = [
        r
        for r in results.get("results") or []
        if str(r.get("status") or "").lower() in ("error", "fail", "runtime error")
    ]
    permanent = deterministic_dbt_errors(results)
    if not failing or len(permanent) < len(failing):
        return
    lines = "; ".join(
        f"{node}: {message.splitlines()[0] if message else ''}" for node, message in permanent
    )
    details = "\n".join(f"{node}:\n{message}" for node, message in permanent)
    log.error("dbt failed with errors a retry cannot fix:\n%s", details)
    _fail(f"dbt failed (not retried): {lines}")
