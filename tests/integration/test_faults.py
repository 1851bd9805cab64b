"""Each injected vendor fault: the run succeeds, or fails loudly, and nothing is lost.

Run just these with ``.venv/bin/pytest tests/integration/test_faults.py -v``.
"""

from __future__ import annotations

import json
import logging

import pytest
from sources_support import add_faults, counts, quarantine, query, stats, tune_connection

from lifecycle.httpclient import RetriesExhausted
from lifecycle.sandbox.expected import expected_counts
from lifecycle.tasks import ingest

HUBSPOT = ["hubspot_contacts", "hubspot_deals", "hubspot_companies"]
MAILCHIMP = ["mailchimp_members", "mailchimp_campaigns", "mailchimp_activity"]


def _expected(world, keys):
    e = expected_counts(world, world.now_ts)
    return {k: e[k] for k in keys}


def _chain(exc: BaseException) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.fixture()
def quick_retries(monkeypatch):
    """Short timeouts and backoff so fault tests take seconds, not minutes."""
    for conn in ("hubspot_default", "mailchimp_default"):
        tune_connection(monkeypatch, conn, timeout_s=1.5, backoff_s=0.05, max_backoff_s=0.2)


TRANSPORT_FAULTS = {
    "429_burst_with_retry_after": [
        {"status": 429, "retry_after": 1, "body": {"category": "RATE_LIMITS"}}
    ]
    * 3,
    "5xx": [{"status": 500}, {"status": 502}, {"status": 503}],
    "slow_response": [{"delay_s": 0.8}] * 2,
    "timeout": [{"delay_s": 2.5}],
    "malformed_json_page": [{}, {"malformed": True}],
}


# Every fault against HubSpot; Mailchimp (same client) gets the two that differ most.
CASES = [("hubspot", f) for f in TRANSPORT_FAULTS] + [
    ("mailchimp", "429_burst_with_retry_after"),
    ("mailchimp", "timeout"),
]


@pytest.mark.parametrize(("vendor", "fault"), CASES)
def test_transport_fault_is_retried_and_counts_match_the_world(
    sandbox, quick_retries, caplog, vendor, fault
):
    queued = add_faults(sandbox, vendor, TRANSPORT_FAULTS[fault])
    assert queued["queued"] == len(TRANSPORT_FAULTS[fault])
    with caplog.at_level(logging.INFO):
        ingest(vendor)
    keys = HUBSPOT if vendor == "hubspot" else MAILCHIMP
    assert counts(keys) == _expected(sandbox.world, keys)
    assert sandbox.app.state.sandbox.faults[vendor] == [], "every fault was served"
    if fault != "slow_response":
        assert "retry" in caplog.text.lower() or "retrying" in caplog.text.lower()
    assert quarantine(vendor) == []


def test_persistent_5xx_fails_loudly_and_a_rerun_loads_everything(sandbox, monkeypatch):
    tune_connection(monkeypatch, "hubspot_default", backoff_s=0.01, max_retries=2)
    add_faults(sandbox, "hubspot", [{}, {}] + [{"status": 503}] * 3)
    with pytest.raises(Exception) as info:
        ingest("hubspot")
    exhausted = [e for e in _chain(info.value) if isinstance(e, RetriesExhausted)]
    assert exhausted, f"expected RetriesExhausted in {_chain(info.value)!r}"
    assert "HubSpot" in str(exhausted[0]) and "503" in str(exhausted[0])
    ingest("hubspot")
    assert counts(HUBSPOT) == _expected(sandbox.world, HUBSPOT)


@pytest.mark.parametrize(
    ("vendor", "entity", "field", "kind", "value", "reason"),
    [
        ("hubspot", "contacts", "email", "missing_field", None, "missing required field 'email'"),
        ("hubspot", "contacts", "createdate", "changed_type", 1719792000000, "expected str"),
        ("hubspot", "deals", "dealstage", "missing_field", None, "missing required field"),
        ("mailchimp", "members", "email_address", "missing_field", None, "missing required"),
        ("mailchimp", "members", "last_changed", "changed_type", 1719792000, "expected timestamp"),
    ],
)
def test_bad_records_are_quarantined_with_reason_payload_and_load_id(
    sandbox, caplog, vendor, entity, field, kind, value, reason
):
    add_faults(
        sandbox,
        vendor,
        [{"kind": kind, "object": entity, "field": field, "value": value, "count": 2}],
    )
    with caplog.at_level(logging.INFO):
        loaded = ingest(vendor)
    q = quarantine(vendor)
    assert len(q) == 2, q
    assert loaded["quarantine"] == 2
    assert "2 records QUARANTINED" in caplog.text
    key = {"members": "mailchimp_members", "contacts": "hubspot_contacts"}.get(
        entity, "hubspot_deals"
    )
    expected = expected_counts(sandbox.world, sandbox.world.now_ts)[key]
    table = {"hubspot_contacts": "raw_hubspot.contacts", "hubspot_deals": "raw_hubspot.deals"}.get(
        key, "raw_mailchimp.members"
    )
    # Mailchimp members are keyed per list (an address on two lists is two members)
    key_sql = "list_id || ':' || id" if entity == "members" else "id"
    good_ids = {r[0] for r in query(f"select {key_sql} from {table}")}
    assert len(good_ids) == expected - 2
    loads = {r[0] for r in query(f"select load_id from raw_{vendor}._dlt_loads")}
    for row in q:
        assert row["source"] == vendor and row["entity"] == entity
        assert reason in row["reason"] and f"'{field}'" in row["reason"]
        assert row["load_id"] in loads
        payload = json.loads(row["payload"])
        assert row["record_key"] == payload["id"]
        key = f"{payload['list_id']}:{payload['id']}" if entity == "members" else payload["id"]
        assert key not in good_ids  # in quarantine or loaded, never both
    cols = query(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = 'quarantine'",
        [f"raw_{vendor}"],
    )
    assert {c[0] for c in cols} == {
        "quarantine_id",
        "source",
        "entity",
        "record_key",
        "reason",
        "payload",
        "quarantined_at",
        "_dlt_load_id",
        "_dlt_id",
    }
    # nothing lost: every record served is either loaded or quarantined
    assert len(good_ids) + len(q) == expected


def test_unexpected_new_field_is_kept_as_a_new_column(sandbox):
    add_faults(
        sandbox,
        "hubspot",
        [
            {
                "kind": "new_field",
                "object": "contacts",
                "field": "hs_buying_role",
                "value": "CHAMPION",
                "count": 3,
            }
        ],
    )
    ingest("hubspot")
    assert counts(["hubspot_contacts"]) == _expected(sandbox.world, ["hubspot_contacts"])
    got = query("select count(*) from raw_hubspot.contacts where hs_buying_role = 'CHAMPION'")
    assert got[0][0] == 3
    assert quarantine("hubspot") == []


def test_mailchimp_concurrency_limit_is_enforced_and_never_exceeded_by_the_client(sandbox):
    import concurrent.futures

    import requests
    from sources_support import set_limits

    from lifecycle.sandbox.state import MAILCHIMP_KEY

    set_limits(sandbox, mailchimp_latency_s=0.3)
    url = f"{sandbox.base_url}/mailchimp/3.0/campaigns"
    with concurrent.futures.ThreadPoolExecutor(14) as pool:
        codes = list(
            pool.map(
                lambda _: requests.get(url, auth=("any", MAILCHIMP_KEY), timeout=10).status_code,
                range(14),
            )
        )
    assert codes.count(429) >= 1 and codes.count(200) >= 10
    before = stats(sandbox).get("mailchimp_429", 0)
    ingest("mailchimp")
    s = stats(sandbox)
    assert s.get("mailchimp_429", 0) == before, "the connector went over the connection limit"
    assert 1 < s["mailchimp_peak_connections"] <= 10
    assert counts(MAILCHIMP) == _expected(sandbox.world, MAILCHIMP)
