"""Failure alerts: log line always; webhook and SMTP when their connections exist.

A real HTTP server and a real (minimal) SMTP server listen on loopback; the callback is
given the context Airflow passes to ``on_failure_callback``.
"""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from email import message_from_string, policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from lifecycle.alerts import SMTP_CONN_ID, WEBHOOK_CONN_ID, on_failure


def _context():
    ti = SimpleNamespace(
        dag_id="lifecycle_nightly",
        task_id="quality.raw_checks",
        try_number=1,
        log_url="http://airflow.example/dags/lifecycle_nightly/runs/r1/tasks/quality.raw_checks",
    )
    return {
        "ti": ti,
        "ds": "2026-07-01",
        "run_id": "scheduled__2026-07-01T02:00:00+00:00",
        "exception": RuntimeError(
            "quality gate FAILED (1 checks): raw_hubspot: "
            "contacts.expect_column_values_to_be_unique(id) - 6 offending"
        ),
    }


@pytest.fixture()
def webhook():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "body": json.loads(body), "type": self.headers["Content-Type"]}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], received
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def smtp_server():
    """Just enough SMTP (RFC 5321) to accept one message per session."""
    received: list[dict] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            def reply(line: str):
                self.wfile.write((line + "\r\n").encode())

            reply("220 localhost test SMTP")
            mail = {"rcpt": []}
            while True:
                line = self.rfile.readline().decode().rstrip("\r\n")
                if not line:
                    return
                cmd = line.split(" ", 1)[0].upper()
                if cmd in ("EHLO", "HELO"):
                    reply("250 localhost")
                elif cmd == "MAIL":
                    mail["from"] = line.split(":", 1)[1].strip(" <>")
                    reply("250 OK")
                elif cmd == "RCPT":
                    mail["rcpt"].append(line.split(":", 1)[1].strip(" <>"))
                    reply("250 OK")
                elif cmd == "DATA":
                    reply("354 end with .")
                    data = []
                    while (row := self.rfile.readline().decode()) not in (".\r\n", ""):
                        data.append(row)
                    mail["data"] = "".join(data)
                    received.append(dict(mail))
                    reply("250 OK queued")
                elif cmd == "QUIT":
                    reply("221 bye")
                    return
                else:
                    reply("250 OK")

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], received
    srv.shutdown()
    srv.server_close()


def test_without_connections_the_alert_is_logged_only(monkeypatch, caplog):
    monkeypatch.delenv(f"AIRFLOW_CONN_{WEBHOOK_CONN_ID.upper()}", raising=False)
    monkeypatch.delenv(f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}", raising=False)
    with caplog.at_level(logging.ERROR, logger="lifecycle.alerts"):
        sent = on_failure(_context())
    assert sent == {"logged": True}
    (record,) = [r for r in caplog.records if r.message.startswith("ALERT")]
    for part in (
        "quality.raw_checks FAILED for night 2026-07-01 (lifecycle_nightly)",
        "DAG: lifecycle_nightly",
        "expect_column_values_to_be_unique(id)",
        "Log: http://airflow.example/dags/lifecycle_nightly/runs/r1/tasks/",
    ):
        assert part in record.message


def test_webhook_and_smtp_receive_the_alert(monkeypatch, webhook, smtp_server):
    http_port, posts = webhook
    smtp_port, mails = smtp_server
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{WEBHOOK_CONN_ID.upper()}", f"http://127.0.0.1:{http_port}/hooks/lifecycle"
    )
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {
                    "to": "oncall@example.com, data@example.com",
                    "from": "airflow@example.com",
                },
            }
        ),
    )
    sent = on_failure(_context())
    assert sent[WEBHOOK_CONN_ID] == 204
    assert sent[SMTP_CONN_ID] == ["oncall@example.com", "data@example.com"]

    (post,) = posts
    assert post["path"] == "/hooks/lifecycle"
    assert post["type"] == "application/json"
    body = post["body"]
    assert body["dag_id"] == "lifecycle_nightly"
    assert body["task_id"] == "quality.raw_checks"
    assert body["night"] == "2026-07-01"
    assert "6 offending" in body["error"]
    assert body["text"].startswith("[lifecycle] quality.raw_checks FAILED for night 2026-07-01")

    (mail,) = mails
    assert mail["from"] == "airflow@example.com"
    assert mail["rcpt"] == ["oncall@example.com", "data@example.com"]
    msg = message_from_string(mail["data"], policy=policy.default)
    assert msg["Subject"] == (
        "[lifecycle] quality.raw_checks FAILED for night 2026-07-01 (lifecycle_nightly)"
    )
    assert "Log: http://airflow.example/" in msg.get_content()


def test_an_unreachable_webhook_is_logged_and_does_not_raise(monkeypatch, caplog):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(f"AIRFLOW_CONN_{WEBHOOK_CONN_ID.upper()}", f"http://127.0.0.1:{port}/x")
    monkeypatch.delenv(f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}", raising=False)
    sent = on_failure(_context())
    assert sent[WEBHOOK_CONN_ID].startswith("failed:")
    assert any("could not be delivered" in r.message for r in caplog.records)


def test_every_task_of_the_nightly_dag_alerts_on_failure(dbt_manifest):
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    root = Path(__file__).resolve().parents[2]
    dag = DagBag(dag_folder=str(root / "dags")).dags["lifecycle_nightly"]
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        assert on_failure in callbacks, task.task_id
