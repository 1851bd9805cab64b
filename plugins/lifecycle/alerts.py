"""Failure alerts: a clear message to the log and, when configured, a webhook and email.

``on_failure`` is the DAG's ``on_failure_callback``. It always logs one message naming
the DAG, the task, the night, the error and a link to the task's log. Two optional
Airflow connections send it further:

- ``lifecycle_alerts_webhook`` (type http): JSON ``{"text": ..., "dag_id": ...}`` is
  POSTed to ``<schema>://<host>:<port>/<path>`` (or ``extra.url``). Works with Slack /
  Teams / Mattermost incoming webhooks, which read ``text``.
- ``lifecycle_alerts_smtp`` (type smtp): host, port, login/password (optional),
  ``extra.to`` (comma-separated), ``extra.from``, ``extra.starttls`` (default false).

An alert that cannot be delivered is logged, never raised: the callback must not hide the
task's own failure.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from dataclasses import asdict, dataclass
from email import policy
from email.message import EmailMessage

log = logging.getLogger(__name__)

WEBHOOK_CONN_ID = "lifecycle_alerts_webhook"
SMTP_CONN_ID = "lifecycle_alerts_smtp"


@dataclass(frozen=True)
class Alert:
    dag_id: str
    task_id: str
    night: str
    run_id: str
    try_number: int | None
    error: str
    log_url: str

    @property
    def subject(self) -> str:
        return f"[lifecycle] {self.task_id} FAILED for night {self.night} ({self.dag_id})"

    @property
    def text(self) -> str:
        return (
            f"{self.subject}\n"
            f"DAG: {self.dag_id}\nTask: {self.task_id} (try {self.try_number})\n"
            f"Night: {self.night}\nRun: {self.run_id}\nError: {self.error}\n"
            f"Log: {self.log_url}"
        )


def from_context(context) -> Alert:
    """Build the alert from an Airflow task context (a mapping)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?")
    night = context.get("ds") or str(getattr(dag_run, "logical_date", "") or "")[:10]
    run_id = context.get("run_id") or getattr(dag_run, "run_id", "") or ""
    error = context.get("exception")
    try:
        log_url = getattr(ti, "log_url", None) or ""
    except Exception:  # log_url needs the api-server's base_url configured
        log_url = ""
    if not log_url:
        log_url = f"(task log of {dag_id}/{run_id}/{task_id} in the Airflow UI)"
    return Alert(
        dag_id=dag_id,
        task_id=task_id,
        night=night,
        run_id=run_id,
        try_number=getattr(ti, "try_number", None),
        error=f"{type(error).__name__}: {error}" if error else "unknown error",
        log_url=log_url,
    )


def _connection(conn_id: str):
    try:
        from airflow.sdk import BaseHook  # noqa: PLC0415 - only when an alert is sent

        return BaseHook.get_connection(conn_id)
    except Exception:  # not configured: that channel is off
        return None


def post_webhook(alert: Alert, conn) -> int:
    extra = conn.extra_dejson or {}
    url = extra.get("url")
    if not url:
        scheme = "https" if conn.conn_type == "https" or extra.get("https") else "http"
        port = f":{conn.port}" if conn.port else ""
        url = f"{scheme}://{conn.host}{port}/{(conn.schema or '').lstrip('/')}"
    body = json.dumps({"text": alert.text, **asdict(alert)}).encode()
    req = urllib.request.Request(  # noqa: S310 - URL comes from an Airflow connection
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return resp.status


def send_email(alert: Alert, conn) -> list[str]:
    extra = conn.extra_dejson or {}
    to = [a.strip() for a in str(extra.get("to", "")).split(",") if a.strip()]
    if not to:
        raise ValueError(f"connection {SMTP_CONN_ID} has no extra.to (comma-separated)")
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = alert.subject
    msg["From"] = extra.get("from") or conn.login or "lifecycle-pipeline@localhost"
    msg["To"] = ", ".join(to)
    msg.set_content(alert.text)
    with smtplib.SMTP(conn.host, conn.port or 25, timeout=10) as smtp:
        if str(extra.get("starttls", "")).lower() in ("1", "true", "yes"):
            smtp.starttls()
        if conn.login:
            smtp.login(conn.login, conn.password or "")
        smtp.send_message(msg)
    return to


def on_failure(context) -> dict:
    """``on_failure_callback``: log the alert, then webhook and email when configured."""
    alert = from_context(context)
    log.error("ALERT %s", alert.text)
    sent: dict = {"logged": True}
    for conn_id, send in ((WEBHOOK_CONN_ID, post_webhook), (SMTP_CONN_ID, send_email)):
        conn = _connection(conn_id)
        if conn is None:
            continue
        try:
            sent[conn_id] = send(alert, conn)
            log.info("alert sent via %s", conn_id)
        except Exception as exc:  # delivery problems must not mask the task failure
            sent[conn_id] = f"failed: {exc}"
            log.error("alert via %s could not be delivered: %s", conn_id, exc)
    return sent
