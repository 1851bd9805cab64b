"""Connectors against the sandbox over real HTTP into a real DuckDB file."""

from __future__ import annotations

import pytest
import requests
from sources_support import counts

from lifecycle.httpclient import AuthError
from lifecycle.sandbox.expected import expected_counts
from lifecycle.tasks import ingest


def test_full_load_lands_exactly_what_was_served_and_rerun_adds_nothing(sandbox):
    for source in ("hubspot", "segment", "mailchimp"):
        ingest(source)
    world = sandbox.world
    assert counts() == expected_counts(world, world.now_ts)
    for source in ("hubspot", "segment", "mailchimp"):
        ingest(source)
    assert counts() == expected_counts(world, world.now_ts)


def test_wrong_token_gives_a_clear_error_naming_the_connection(sandbox, monkeypatch):
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    conn["password"] = "wrong-token"
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    with pytest.raises(Exception) as info:
        ingest("hubspot")
    chain = []
    e = info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    auth = [x for x in chain if isinstance(x, AuthError)]
    assert auth, f"no AuthError in {chain!r}"
    assert "hubspot_default" in str(auth[0]) and "401" in str(auth[0])
    assert "wrong-token" not in str(auth[0])


def test_429_with_retry_after_is_retried_and_nothing_is_lost(sandbox):
    faults = [{"status": 429, "retry_after": 0, "body": {"category": "RATE_LIMITS"}}] * 3
    r = requests.post(f"{sandbox.base_url}/_sandbox/faults/hubspot", json=faults, timeout=5)
    assert r.json()["queued"] == 3
    counts = ingest("hubspot")
    world = sandbox.world
    assert counts["contacts"] == expected_counts(world, world.now_ts)["hubspot_contacts"]
