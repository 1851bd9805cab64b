"""Credentials reach the vendors but never the logs, errors or dlt's stored state."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys

import pytest
from sources_support import add_faults, tune_connection

from lifecycle.sandbox.state import HUBSPOT_TOKEN, MAILCHIMP_KEY
from lifecycle.tasks import ingest

SECRETS = (
    HUBSPOT_TOKEN,
    MAILCHIMP_KEY,
    base64.b64encode(f"anystring:{MAILCHIMP_KEY}".encode()).decode(),
)


def _leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_debug_logs_of_an_ingest_with_retries_never_show_a_credential(sandbox, caplog, monkeypatch):
    for conn in ("hubspot_default", "mailchimp_default"):
        tune_connection(monkeypatch, conn, backoff_s=0.01)
    add_faults(sandbox, "hubspot", [{"status": 503}, {"status": 429, "retry_after": 0}])
    add_faults(sandbox, "mailchimp", [{"status": 500}])
    with caplog.at_level(logging.DEBUG):
        ingest("hubspot")
        ingest("mailchimp")
    assert "retry" in caplog.text  # the retries were logged (with their URLs)...
    assert _leaks(caplog.text) == []  # ...and no credential was
    # nor anything dlt keeps on disk (state, traces, load packages)
    dlt_dir = os.environ["LIFECYCLE_DATA_DIR"]
    for root, _, files in os.walk(dlt_dir):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith((".duckdb", ".wal", ".gz")):
                continue
            with open(path, "rb") as fh:
                blob = fh.read().decode("utf-8", "replace")
            assert _leaks(blob) == [], path


def test_a_failing_run_in_a_subprocess_prints_no_credential(sandbox, monkeypatch):
    """What an Airflow task log would show: the whole stderr of a failed ingest."""
    tune_connection(monkeypatch, "mailchimp_default", backoff_s=0.01, max_retries=1)
    add_faults(sandbox, "mailchimp", [{"status": 503}] * 4)
    code = (
        "import logging; logging.basicConfig(level=logging.DEBUG); "
        "from lifecycle.tasks import ingest; ingest('mailchimp')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Mailchimp" in proc.stderr and "503" in proc.stderr
    assert _leaks(proc.stdout + proc.stderr) == []


@pytest.mark.parametrize("conn_id", ["hubspot_default", "mailchimp_default"])
def test_endpoint_repr_hides_the_password(sandbox, conn_id):
    from lifecycle.connections import get_endpoint

    ep = get_endpoint(conn_id)
    assert ep.password and ep.password not in repr(ep)


def test_wrong_mailchimp_key_gives_a_clear_error_naming_the_connection(sandbox, monkeypatch):
    from lifecycle.httpclient import AuthError

    tune_connection(monkeypatch, "mailchimp_default")
    conn = json.loads(os.environ["AIRFLOW_CONN_MAILCHIMP_DEFAULT"])
    conn["password"] = "wrong-key-us1"
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps(conn))
    with pytest.raises(Exception) as info:
        ingest("mailchimp")
    chain, e = [], info.value
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    auth = [x for x in chain if isinstance(x, AuthError)]
    assert auth, chain
    assert "mailchimp_default" in str(auth[0]) and "401" in str(auth[0])
    assert "wrong-key-us1" not in str(auth[0])
