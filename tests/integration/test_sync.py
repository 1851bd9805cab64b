"""Audience syncs over real HTTP against the sandbox, on a real DuckDB built per test.

Each test builds its own ``audiences.*`` tables with the contract columns (so it does not
depend on the dbt audience models), syncs them with the engine, and compares what the
emulated vendor now holds and received with what the audience says it should.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import timedelta

import duckdb
import pandas as pd
import pytest
import requests
from sync_support import (
    T0,
    audience_frame,
    consent_of,
    limits,
    membership,
    put,
    put_audience,
    received,
    runs,
    store,
    sync,
)

from lifecycle.activation import engine
from lifecycle.activation.audiences import load
from lifecycle.activation.hashing import hashed, normalize_email_google, normalize_phone_e164
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.sandbox.hubspot.api_write import BY_DEFAULT_NAME
from lifecycle.sandbox.hubspot.api_write import STAGES as HUBSPOT_STAGE_ORDER
from lifecycle.sandbox.mailchimp import records as mailchimp_records

YML = """
audiences:
  test:
    model: aud_test
    identifiers: [email, phone, first_name, last_name]
    guards: {max_removal_pct: 20, retry_backoff_minutes: 60, max_attempts: 3}
    destinations:
      meta: {audience_id: "777", mode: mirror}
      google_ads: {customer_id: "111", user_list_id: "222", mode: mirror}
      mailchimp: {list_id: lst0001, tag: test_tag, mode: mirror}
  writeback:
    model: aud_writeback
    identifiers: [email]
    guards: {max_attempts: 2, retry_backoff_minutes: 0}
    destinations:
      hubspot:
        properties:
          lifecyclestage: lifecycle_stage
          lifecycle_lead_score: lead_score
          lifecycle_lead_score_reasons: lead_score_reasons
        numeric_properties: [lifecycle_lead_score]
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
    return {(s.audience, s.destination): s for s in load(path)}


# ---- Meta ------------------------------------------------------------------------------
def test_meta_mirror_equals_audience_then_sends_nothing_then_follows_churn(sandbox, wh, specs):
    spec = specs[("test", "meta")]
    frame = audience_frame(range(1, 61))
    put_audience(wh, "aud_test", frame)

    first = sync(wh, spec)
    want = {
        hashed("EMAIL", e) for e, ok in zip(frame.email, frame.has_ad_consent, strict=True) if ok
    }
    got = requests.get(f"{sandbox.base_url}/_sandbox/received/meta", timeout=10).json()
    assert {tuple(m)[0] for m in got["members"]["777"]} == want
    assert first["accepted"] == len(want) == 45  # every 4th id has no ad consent

    calls = len(received(sandbox, "meta"))
    second = sync(wh, spec)
    assert (second["sent"], second["status"]) == (0, "success")
    assert len(received(sandbox, "meta")) == calls  # nothing sent at all

    # churn: 3 leave (5%), 4 join; mirror removes only the leavers, adds only the joiners
    frame2 = audience_frame([*range(4, 61), *range(61, 65)])
    put_audience(wh, "aud_test", frame2)
    third = sync(wh, spec)
    want2 = {
        hashed("EMAIL", e) for e, ok in zip(frame2.email, frame2.has_ad_consent, strict=True) if ok
    }
    got2 = requests.get(f"{sandbox.base_url}/_sandbox/received/meta", timeout=10).json()
    assert {tuple(m)[0] for m in got2["members"]["777"]} == want2
    assert (third["planned_adds"], third["planned_removes"]) == (
        len(want2 - want),
        len(want - want2),
    )
    deletes = [c for c in received(sandbox, "meta") if c["method"] == "DELETE"]
    assert {r[0] for c in deletes for r in c["data"]} == want - want2
    assert membership(wh, "meta") == want2
    changes = wh.execute(
        "select change, count(*) from ops.sync_changes where destination = 'meta' "
        "and outcome = 'accepted' group by 1 order by 1"
    ).fetchall()
    assert changes == [("add", len(want) + len(want2 - want)), ("remove", len(want - want2))]


def test_meta_rate_limit_codes_are_retried(sandbox, wh, specs):
    spec = specs[("test", "meta")]
    put_audience(wh, "aud_test", audience_frame(range(1, 11)))
    fault = {
        "status": 400,
        "body": {"error": {"message": "User request limit reached", "code": 17}},
    }
    requests.post(f"{sandbox.base_url}/_sandbox/faults/meta", json=[fault, fault], timeout=10)
    result = sync(wh, spec)
    assert result["status"] == "success" and result["accepted"] == 8
    assert len(received(sandbox, "meta")) == 1  # the two refused calls never reached it


# ---- Google Ads ------------------------------------------------------------------------
def test_google_ads_job_flow_consent_and_partial_failure_converge(sandbox, wh, specs):
    spec = specs[("test", "google_ads")]
    frame = audience_frame(range(1, 41))
    put_audience(wh, "aud_test", frame)
    ok = frame[frame.has_ad_consent]
    emails = [hashlib.sha256(normalize_email_google(e).encode()).hexdigest() for e in ok.email]
    phones = [hashlib.sha256(normalize_phone_e164(p).encode()).hexdigest() for p in ok.phone]
    refused = emails[:2]
    sandbox.app.state.sandbox.reject_next("google_ads", {k: "test refusal" for k in refused})
    # a rate limit on the first call is retried by the client
    requests.post(
        f"{sandbox.base_url}/_sandbox/faults/google_ads",
        json={"status": 429, "body": {"error": {"status": "RESOURCE_EXHAUSTED"}}},
        timeout=10,
    )

    first = sync(wh, spec)
    # the job runs at the vendor: the run is submitted, nothing is member yet
    assert (first["status"], first["sent"], first["jobs"]) == ("submitted", 30, 1)
    assert membership(wh, "google_ads") == set()
    assert engine.finish_jobs(wh)["running"] == 1  # the emulated job runs for a minute
    limits(sandbox, vendor_clock_offset_s=61)
    done = engine.finish_jobs(wh)
    assert done["running"] == 0
    assert [(f["accepted"], f["rejected"]) for f in done["finished"]] == [(28, 2)]
    assert runs(wh, "google_ads") == [("partial", 30, 0, 0, 30, 28, 2)]
    lst = store(sandbox, "google_ads")["lists"]["customers/111/userLists/222"]
    assert set(lst) == set(emails) - set(refused)
    assert {v["hashedPhoneNumber"] for v in lst.values()} == set(phones[2:])
    calls = [c for c in received(sandbox, "google_ads") if c["call"] != "token"]
    assert [c["call"] for c in calls] == ["create", "addOperations", "run", "search", "search"]
    ops = calls[1]["operations"]
    consents = {tuple(sorted(op["create"]["consent"].items())) for op in ops}
    assert consents == {(("adPersonalization", "GRANTED"), ("adUserData", "GRANTED"))}
    assert sum(len(op["create"]["userIdentifiers"]) for op in ops) <= 10_000
    rej = wh.execute(
        "select member_key, reason, attempts, status from ops.sync_rejections order by 1"
    ).fetchall()
    assert rej == [
        (k, "offlineUserDataJobError=INVALID_USER_DATA: test refusal", 1, "pending")
        for k in sorted(refused)
    ]

    # within the backoff the rejected pair waits; after it, only that pair is sent
    waiting = sync(wh, spec, now=T0 + timedelta(minutes=10))
    assert (waiting["sent"], waiting["deferred"]) == (0, 2)
    retry = sync(wh, spec, now=T0 + timedelta(hours=2))
    assert (retry["status"], retry["sent"]) == ("submitted", 2)
    # while its job runs, the next run does not send the pair again
    assert sync(wh, spec, now=T0 + timedelta(hours=2, minutes=1))["sent"] == 0
    limits(sandbox, vendor_clock_offset_s=200)
    assert engine.finish_jobs(wh)["finished"][0]["accepted"] == 2
    assert set(lst) == set(emails)
    sent = Counter(
        op["create"]["userIdentifiers"][0]["hashedEmail"]
        for c in received(sandbox, "google_ads")
        if c["call"] == "addOperations"
        for op in c["operations"]
    )
    assert {k for k, n in sent.items() if n > 1} == set(refused)  # nothing else twice
    assert wh.execute("select distinct status from ops.sync_rejections").fetchall() == [
        ("resolved",)
    ]
    again = sync(wh, spec, now=T0 + timedelta(hours=3))
    assert again["sent"] == 0


# ---- Mailchimp -------------------------------------------------------------------------
def test_mailchimp_status_per_member_consent_tags_and_never_resubscribe(sandbox, wh, specs):
    spec = specs[("test", "mailchimp")]
    frame = audience_frame(range(1, 51))
    # an address the list holds as unsubscribed, whose consent another source grants
    world_members = mailchimp_records.members(sandbox.world, sandbox.world.now_ts)
    gone = next(m for m in world_members if m["status"] == "unsubscribed")
    frame = pd.concat(
        [
            frame,
            audience_frame([9001]).assign(
                email=gone["email_address"], has_email_consent=True, email_status="subscribed"
            ),
        ],
        ignore_index=True,
    )
    put_audience(wh, "aud_test", frame)
    grants = consent_of(frame)
    want = {
        e.strip().lower()
        for e, c in zip(frame.email, frame.contact_id, strict=True)
        if grants[c]["email_marketing"]
    }
    gone_email = gone["email_address"].strip().lower()
    assert gone_email in want
    refused = sorted(want - {gone_email})[:3]
    sandbox.app.state.sandbox.reject_next(
        "mailchimp", {hashlib.md5(e.encode()).hexdigest(): "Invalid Resource" for e in refused}
    )

    first = sync(wh, spec)
    assert (first["status"], first["accepted"], first["rejected"]) == (
        "partial",
        len(want) - 4,
        4,
    )
    batches = [c["body"] for c in received(sandbox, "mailchimp") if c["call"] == "batch_members"]
    sent = [m for b in batches for m in b["members"]]
    assert all(b["update_existing"] is True for b in batches)
    assert all(m["status"] == "subscribed" and "status_if_new" not in m for m in sent)
    excluded = {e.strip().lower() for e in frame.email} - want
    assert excluded and not excluded & {m["email_address"] for m in sent}
    assert gone_email not in {m["email_address"] for m in sent}  # never even attempted
    assert all(len(b["members"]) <= 500 for b in batches)
    mc = store(sandbox, "mailchimp")
    tag = next(s for s in mc["segments"]["lst0001"].values() if s["name"] == "test_tag")
    by_hash = mc["lists"]["lst0001"]
    assert {by_hash[h]["email_address"] for h in tag["members"]} == want - set(refused) - {
        gone_email
    }
    reasons = {r for (r,) in wh.execute("select reason from ops.sync_rejections").fetchall()}
    assert reasons == {
        "Invalid Resource (ERROR_GENERIC)",
        "unsubscribed in Mailchimp: never re-subscribed (Member In Compliance State)",
    }

    second = sync(wh, spec, now=T0 + timedelta(hours=2))
    assert (second["sent"], second["accepted"], second["rejected"]) == (4, 3, 1)
    assert {by_hash[h]["email_address"] for h in tag["members"]} == want - {gone_email}
    assert by_hash[gone["id"]]["status"] == "unsubscribed"
    stats = requests.get(f"{sandbox.base_url}/_sandbox/stats", timeout=10).json()
    assert stats.get("mailchimp_compliance_refusals", 0) == 0

    # leaving the audience untags (mirror) but never unsubscribes or deletes
    leaver = sorted(want - {gone_email})[5]
    put(wh, "aud_test", frame[frame.email.str.strip().str.lower() != leaver])
    third = sync(wh, spec, now=T0 + timedelta(hours=3))
    assert (third["planned_removes"], third["consent_removes"], third["accepted"]) == (1, 0, 1)
    assert {by_hash[h]["email_address"] for h in tag["members"]} == want - {leaver, gone_email}
    assert by_hash[hashlib.md5(leaver.encode()).hexdigest()]["status"] == "subscribed"


# ---- HubSpot write-back ----------------------------------------------------------------
def writeback_frame(srv, n: int) -> pd.DataFrame:
    contacts = hubspot_records.contacts(srv.world, srv.world.now_ts)[:n]
    n = len(contacts)  # the portal may hold fewer (archived and deleted contacts)
    return pd.DataFrame(
        {
            "contact_id": [str(c["id"]) for c in contacts],
            "email": [c["properties"]["email"] for c in contacts],
            "lifecycle_stage": ["sql"] * n,
            "hubspot_lifecycle_stage": [c["properties"]["lifecyclestage"] for c in contacts],
            "lead_score": [float(i) for i in range(n)],
            "lead_score_reasons": [["fit_title", "eng_demo"]] * n,
        }
    )


def test_hubspot_writeback_properties_forward_only_and_207(sandbox, wh, specs):
    spec = specs[("writeback", "hubspot")]
    frame = writeback_frame(sandbox, 150)
    ghost = frame.iloc[:1].assign(contact_id="999999999")  # not in HubSpot: a 207 error
    put(wh, "aud_writeback", pd.concat([frame, ghost], ignore_index=True))

    first = sync(wh, spec)
    assert (first["status"], first["accepted"], first["rejected"]) == ("partial", 150, 1)
    calls = received(sandbox, "hubspot")
    created = {
        c["body"]["name"]: c["body"]["type"] for c in calls if c["call"] == "create_property"
    }
    assert created == {
        "lifecycle_lead_score": "number",
        "lifecycle_lead_score_reasons": "string",
        "lifecycle_state": "enumeration",
    }
    updates = [c["body"]["inputs"] for c in calls if c["call"] == "batch_update"]
    assert [len(u) for u in updates] == [100, 51]
    contacts = store(sandbox, "hubspot")["contacts"]
    order = HUBSPOT_STAGE_ORDER  # the emulated portal's own options, in its order
    for row in frame.itertuples():
        c = contacts[row.contact_id]
        assert c["lifecycle_lead_score"] == str(int(row.lead_score))
        assert c["lifecycle_lead_score_reasons"] == "fit_title;eng_demo"
        assert c["lifecycle_state"] == ""  # sql is a forward stage
        before = BY_DEFAULT_NAME[row.hubspot_lifecycle_stage]  # the portal's value for it
        want = (
            before
            if order.index(before) > order.index("salesqualifiedlead")
            else ("salesqualifiedlead")
        )
        assert c["lifecyclestage"] == want  # forward only: later stages are kept
    assert any(order.index(BY_DEFAULT_NAME[s]) > 3 for s in frame.hubspot_lifecycle_stage)
    reason = wh.execute("select reason from ops.sync_rejections").fetchall()
    assert reason[0][0].startswith("OBJECT_NOT_FOUND")

    # the ghost is retried (backoff 0) and given up after max_attempts = 2
    second = sync(wh, spec, now=T0 + timedelta(minutes=1))
    assert (second["sent"], second["rejected"]) == (1, 1)
    third = sync(wh, spec, now=T0 + timedelta(minutes=2))
    assert (third["sent"], third["deferred"]) == (0, 1)
    assert wh.execute("select attempts, status from ops.sync_rejections").fetchall() == [
        (2, "gave_up")
    ]


def test_hubspot_backward_move_only_when_allowed_clear_then_set(sandbox, wh, specs):
    """An allowed backward move (never out of customer) is a clear, then a set."""
    base = specs[("writeback", "hubspot")]
    frame = writeback_frame(sandbox, 300)
    customers = frame[frame.hubspot_lifecycle_stage == "opportunity"].head(3)
    assert len(customers) == 3
    put(wh, "aud_writeback", customers)
    target = {**base.target, "allow_backward": ["opportunity>salesqualifiedlead"]}
    spec = type(base)(**{**base.__dict__, "target": target})
    result = sync(wh, spec)
    assert result["accepted"] == 3
    updates = [
        c["body"]["inputs"] for c in received(sandbox, "hubspot") if c["call"] == "batch_update"
    ]
    assert sorted(u["id"] for u in updates[0]) == sorted(customers.contact_id)
    assert all(u["properties"] == {"lifecyclestage": ""} for u in updates[0])
    assert [u["properties"]["lifecyclestage"] for u in updates[1]] == ["salesqualifiedlead"] * 3
    contacts = store(sandbox, "hubspot")["contacts"]
    assert {contacts[i]["lifecyclestage"] for i in customers.contact_id} == {"salesqualifiedlead"}


# ---- guards ----------------------------------------------------------------------------
def test_guards_abort_with_reason_and_change_nothing(sandbox, wh, specs):
    spec = specs[("test", "meta")]
    put_audience(wh, "aud_test", audience_frame(range(1, 46)))
    put(wh, "aud_test", audience_frame(range(1, 41)))
    assert sync(wh, spec)["status"] == "success"
    before = membership(wh, "meta")
    calls = len(received(sandbox, "meta"))

    put(wh, "aud_test", audience_frame(range(1, 31)))  # 25% of the audience would leave
    r = sync(wh, spec)
    assert r["status"] == "aborted"
    assert "would remove 7 of 30 members (23.3% > 20% allowed" in r["error"]

    put(wh, "aud_test", audience_frame(range(1, 41)).iloc[:0])
    r = sync(wh, spec)
    assert r["status"] == "aborted" and "audience is empty" in r["error"]

    put(wh, "aud_test", audience_frame([*range(1, 41), 5]))
    r = sync(wh, spec)
    assert r["status"] == "aborted" and "primary key 'contact_id' is not unique" in r["error"]

    wh.execute("alter table marts.dim_contact_consent rename to consent_elsewhere")
    put(wh, "aud_test", audience_frame(range(1, 45)))
    r = sync(wh, spec)
    assert r["status"] == "aborted"
    assert "consent model marts.dim_contact_consent does not exist" in r["error"]
    wh.execute("alter table marts.consent_elsewhere rename to dim_contact_consent")

    put(wh, "aud_test", audience_frame(range(1, 45)))
    wh.execute("""create table ops.quality_results (run_id varchar, checked_at timestamp,
        suite varchar, check_name varchar, severity varchar, offending_rows bigint,
        status varchar, description varchar)""")
    wh.execute(
        "insert into ops.quality_results values ('old', '2026-06-30', 'marts', "
        "'scores_in_range', 'fail', 0, 'pass', 'ok')"
    )
    wh.execute(
        "insert into ops.quality_results values ('night', '2026-07-01', 'marts', "
        "'scores_in_range', 'fail', 3, 'fail', 'lead scores within 0-100')"
    )
    r = sync(wh, spec)
    assert r["status"] == "aborted"
    assert "quality gate run night failed: scores_in_range (3 offending rows" in r["error"]

    assert membership(wh, "meta") == before
    assert len(received(sandbox, "meta")) == calls
    statuses = [row[0] for row in runs(wh, "meta")]
    assert statuses == ["success"] + ["aborted"] * 5
    assert wh.execute("select count(*) from ops.sync_changes").fetchall() == [(len(before),)]

    # once the gate passes again, the sync proceeds with only the 4 new members
    wh.execute(
        "insert into ops.quality_results values ('next', '2026-07-02', 'marts', "
        "'scores_in_range', 'fail', 0, 'pass', 'ok')"
    )
    r = sync(wh, spec)
    assert (r["status"], r["planned_adds"]) == ("success", 3)  # id 44 has no ad consent


# ---- dry run ---------------------------------------------------------------------------
def test_cli_dry_run_prints_plan_and_sends_nothing(
    sandbox, wh, specs, tmp_path, monkeypatch, capsys
):
    from lifecycle.cli import main

    spec = specs[("test", "meta")]
    put_audience(wh, "aud_test", audience_frame(range(1, 23)))
    put(wh, "aud_test", audience_frame(range(1, 21)))
    sync(wh, spec)
    put(wh, "aud_test", audience_frame([*range(1, 18), 19, 20, 21, 22]))  # 18 out; 21, 22 in
    wh.close()
    monkeypatch.setenv("LIFECYCLE_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("LIFECYCLE_INCLUDE_DIR", str(tmp_path))
    monkeypatch.setenv("LIFECYCLE_DBT_PROJECT_DIR", str(tmp_path / "no_dbt"))
    calls = len(received(sandbox, "meta"))

    rc = main(["sync", "--dry-run", "--audience", "test", "--destination", "meta"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].startswith("test -> meta (mirror): 21 rows, 16 sendable")
    assert "+2 add, ~0 update, -1 remove, 0 deferred [dry_run]" in out[0]
    assert f"  + add    contact_id=21 key={hashed('EMAIL', 'user.21@example.com')}" in out
    assert f"  - remove contact_id=18 key={hashed('EMAIL', 'user.18@example.com')}" in out
    assert len(received(sandbox, "meta")) == calls
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from ops.sync_runs").fetchall() == [(1,)]
    con.close()
