"""Google Ads (and Meta) as documented: OAuth refresh, API versions, two ad consents.

Over real HTTP against the emulator, whose tokens expire after N minutes of vendor time
and whose Customer Match jobs run for minutes; tests move the vendor clock instead of
waiting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import duckdb
import pytest
import requests
from sync_support import (
    audience_frame,
    limits,
    membership,
    put,
    put_consent,
    received,
    store,
    sync,
)

from lifecycle.activation import engine
from lifecycle.activation.audiences import load
from lifecycle.activation.google_ads import GOOGLE_ADS_API_VERSION
from lifecycle.activation.hashing import hashed, normalize_email_google
from lifecycle.activation.meta import GRAPH_API_VERSION
from lifecycle.sandbox.google_ads.api import (
    GOOGLE_ADS_CLIENT_SECRET,
    GOOGLE_ADS_REFRESH_TOKEN,
)

YML = """
audiences:
  ads:
    model: aud_ads
    identifiers: [email, phone]
    guards: {max_removal_pct: 100}
    destinations:
      google_ads: {customer_id: "111", user_list_id: "333", mode: mirror}
      meta: {audience_id: "888", mode: mirror}
"""


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture()
def specs(tmp_path):
    path = tmp_path / "audiences.yml"
    path.write_text(YML)
    return {s.destination: s for s in load(path)}


def google_hash(email: str) -> str:
    return hashlib.sha256(normalize_email_google(email).encode()).hexdigest()


def stats(srv) -> dict:
    return requests.get(f"{srv.base_url}/_sandbox/stats", timeout=10).json()


def granted_all(frame, **overrides) -> dict:
    grants = {
        c: {"email_marketing": True, "ad_user_data": True, "ad_personalization": True}
        for c in frame.contact_id
    }
    for cid, purposes in overrides.items():
        grants[cid].update(purposes)
    return grants


def test_oauth_refreshes_on_401_and_before_expiry_and_never_logs_a_credential(
    sandbox, wh, specs, caplog
):
    caplog.set_level(logging.DEBUG)
    frame = audience_frame(range(1, 11))
    put(wh, "aud_ads", frame)
    put_consent(wh, granted_all(frame))
    limits(sandbox, google_ads_token_ttl_s=600)  # tokens live 10 minutes
    dest = engine.destination("google_ads")
    first = engine.run(wh, specs["google_ads"], dest)
    assert first["status"] == "submitted"
    assert stats(sandbox)["google_ads_tokens_issued"] == 1
    (job,) = [json.loads(j) for (j,) in wh.execute("select job from ops.sync_jobs").fetchall()]

    # the vendor's clock passes the token's lifetime: the next call gets a 401, the
    # client refreshes once and retries; the job has also ended by then
    limits(sandbox, vendor_clock_offset_s=700)
    outcome = dest.poll(job)
    assert outcome is not None and len(outcome.accepted) == 10
    assert stats(sandbox)["google_ads_401"] == 1
    assert stats(sandbox)["google_ads_tokens_issued"] == 2

    # before expiry (by the client's own clock, less its margin) it refreshes first
    now = [0.0]
    dest.auth.clock = lambda: now[0]
    dest.auth.invalidate()
    dest.poll(job)  # a refresh at t=0: valid until t=600 by the answer's expires_in
    now[0] = 600 - dest.auth.skew_s + 1
    dest.poll(job)
    assert stats(sandbox)["google_ads_tokens_issued"] == 4
    assert stats(sandbox)["google_ads_401"] == 1  # no 401 needed for that one

    tokens = list(store(sandbox, "google_ads")["tokens"])
    assert len(tokens) == 4
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in [*tokens, GOOGLE_ADS_CLIENT_SECRET, GOOGLE_ADS_REFRESH_TOKEN]:
        assert secret not in text
    assert "access token refreshed" in text
    assert GOOGLE_ADS_REFRESH_TOKEN not in repr(dest.auth)
    token_calls = [c for c in received(sandbox, "google_ads") if c["call"] == "token"]
    assert {c["grant_type"] for c in token_calls} == {"refresh_token"}


def test_a_revoked_refresh_token_fails_with_the_connection_named_not_the_secret(
    sandbox, wh, specs, monkeypatch
):
    conn = json.loads(os.environ["AIRFLOW_CONN_GOOGLE_ADS_DEFAULT"])
    conn["extra"]["refresh_token"] = "revoked-refresh-token"
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_ADS_DEFAULT", json.dumps(conn))
    frame = audience_frame(range(1, 4))
    put(wh, "aud_ads", frame)
    put_consent(wh, granted_all(frame))
    with pytest.raises(Exception) as err:
        sync(wh, specs["google_ads"])
    message = str(err.value)
    assert "invalid_grant" in message and "google_ads_default" in message
    assert "revoked-refresh-token" not in message
    status = wh.execute("select status, error from ops.sync_runs").fetchall()
    assert status[0][0] == "failed" and "revoked-refresh-token" not in status[0][1]


def test_api_versions_are_one_setting_with_current_defaults(sandbox, wh, specs, monkeypatch):
    frame = audience_frame(range(1, 6))
    put(wh, "aud_ads", frame)
    put_consent(wh, granted_all(frame))
    assert sync(wh, specs["google_ads"])["status"] == "submitted"
    assert sync(wh, specs["meta"])["status"] == "success"
    create = next(c for c in received(sandbox, "google_ads") if c["call"] == "create")
    assert create["version"] == GOOGLE_ADS_API_VERSION == "v26"
    assert {c["version"] for c in received(sandbox, "meta")} == {GRAPH_API_VERSION} == {"v26.0"}

    # a sunset version (v20 ended 10 June 2026; Meta v19.0 expired 21 May 2026) fails
    for var, version in (("GOOGLE_ADS", "v20"), ("META", "v19.0")):
        conn = json.loads(os.environ[f"AIRFLOW_CONN_{var}_DEFAULT"])
        conn["extra"]["api_version"] = version
        monkeypatch.setenv(f"AIRFLOW_CONN_{var}_DEFAULT", json.dumps(conn))
    put(wh, "aud_ads", audience_frame(range(1, 8)))
    put_consent(wh, granted_all(audience_frame(range(1, 8))))
    with pytest.raises(Exception, match="v20 is not available"):
        sync(wh, specs["google_ads"])
    with pytest.raises(Exception, match="#2635"):
        sync(wh, specs["meta"])
    assert stats(sandbox)["google_ads_sunset_version"] >= 1
    assert stats(sandbox)["meta_deprecated_version"] >= 1


def test_ad_user_data_and_ad_personalization_are_two_consents_from_the_model(sandbox, wh, specs):
    frame = audience_frame(range(1, 7)).assign(has_ad_consent=True)  # a stale single flag
    put(wh, "aud_ads", frame)
    put_consent(
        wh,
        granted_all(
            frame,
            **{
                "2": {"ad_personalization": False},
                "3": {"ad_user_data": False},
                "4": {"ad_user_data": False, "ad_personalization": False},
            },
        ),
        withdrawn={("2", "ad_personalization")},
    )
    sendable = {"1", "5", "6"}
    want = {
        google_hash(e) for e, c in zip(frame.email, frame.contact_id, strict=True) if c in sendable
    }
    first = sync(wh, specs["google_ads"])
    assert (first["sendable"], first["planned_adds"]) == (3, 3)
    limits(sandbox, vendor_clock_offset_s=61)
    assert engine.finish_jobs(wh)["running"] == 0
    assert set(store(sandbox, "google_ads")["lists"]["customers/111/userLists/333"]) == want
    ops = [
        op
        for c in received(sandbox, "google_ads")
        if c["call"] == "addOperations"
        for op in c["operations"]
    ]
    assert len(ops) == 3
    assert all(
        op["create"]["consent"] == {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
        for op in ops
    )
    meta = sync(wh, specs["meta"])
    assert meta["accepted"] == 3
    members = {
        tuple(m)[0]
        for m in requests.get(f"{sandbox.base_url}/_sandbox/received/meta", timeout=10).json()[
            "members"
        ]["888"]
    }
    assert members == {
        hashed("EMAIL", e)
        for e, c in zip(frame.email, frame.contact_id, strict=True)
        if c in sendable
    }

    # contact 1 withdraws ad personalization only: removed from both, as a consent removal
    put_consent(
        wh,
        granted_all(
            frame,
            **{
                "1": {"ad_personalization": False},
                "2": {"ad_personalization": False},
                "3": {"ad_user_data": False},
                "4": {"ad_user_data": False, "ad_personalization": False},
            },
        ),
    )
    again = sync(wh, specs["google_ads"])
    assert (again["planned_removes"], again["consent_removes"]) == (1, 1)
    limits(sandbox, vendor_clock_offset_s=200)
    engine.finish_jobs(wh)
    gone = google_hash(frame.email[0])
    assert gone not in store(sandbox, "google_ads")["lists"]["customers/111/userLists/333"]
    assert gone not in membership(wh, "google_ads")
    removes = [
        op
        for c in received(sandbox, "google_ads")
        if c["call"] == "addOperations"
        for op in c["operations"]
        if "remove" in op
    ]
    assert [op["remove"]["userIdentifiers"][0]["hashedEmail"] for op in removes] == [gone]
    assert all("consent" not in op["remove"] for op in removes)
