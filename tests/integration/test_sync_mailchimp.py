"""Mailchimp as documented: lists that do not exist, the 500-member limit, status per member."""

from __future__ import annotations

import duckdb
import pytest
import requests
from sync_support import audience_frame, put, put_consent, received, store, sync

from lifecycle.activation.audiences import load
from lifecycle.httpclient import ApiError
from lifecycle.sandbox.state import MAILCHIMP_KEY

YML = """
audiences:
  mc:
    model: aud_mc
    identifiers: [email, first_name]
    guards: {max_removal_pct: 100}
    destinations:
      mailchimp: {list_id: lst0001, tag: mc_tag, mode: mirror}
  nowhere:
    model: aud_mc
    identifiers: [email]
    destinations:
      mailchimp: {list_id: no_such_list, tag: mc_tag}
"""
AUTH = ("anystring", MAILCHIMP_KEY)


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture()
def specs(tmp_path):
    path = tmp_path / "audiences.yml"
    path.write_text(YML)
    return {s.audience: s for s in load(path)}


def consent_for(frame, email: bool = True) -> dict:
    return {
        c: {"email_marketing": email, "ad_user_data": False, "ad_personalization": False}
        for c in frame.contact_id
    }


def test_a_list_that_does_not_exist_is_a_404_and_nothing_is_written(sandbox, wh, specs):
    frame = audience_frame(range(1, 6))
    put(wh, "aud_mc", frame)
    put_consent(wh, consent_for(frame))
    with pytest.raises(ApiError) as err:
        sync(wh, specs["nowhere"])
    assert err.value.status == 404 and "Resource Not Found" in err.value.body
    assert "no_such_list" not in store(sandbox, "mailchimp")["lists"]
    assert wh.execute("select status from ops.sync_runs").fetchall() == [("failed",)]
    for method, path, body in (
        ("POST", "lists/no_such_list", {"members": [], "update_existing": True}),
        ("GET", "lists/no_such_list/segments", None),
        ("DELETE", "lists/no_such_list/members/00", None),
    ):
        r = requests.request(
            method, f"{sandbox.base_url}/mailchimp/3.0/{path}", json=body, auth=AUTH, timeout=10
        )
        assert r.status_code == 404, (method, path)
        assert r.json()["title"] == "Resource Not Found"


def test_more_than_500_members_go_in_calls_of_at_most_500(sandbox, wh, specs):
    frame = audience_frame(range(1, 1202))
    put(wh, "aud_mc", frame)
    put_consent(wh, consent_for(frame))
    result = sync(wh, specs["mc"])
    assert (result["status"], result["accepted"]) == ("success", 1201)
    batches = [c["body"] for c in received(sandbox, "mailchimp") if c["call"] == "batch_members"]
    assert [len(b["members"]) for b in batches] == [500, 500, 201]
    tags = [c["body"] for c in received(sandbox, "mailchimp") if c["call"] == "segment_members"]
    assert [len(t["members_to_add"]) for t in tags] == [500, 500, 201]
    held = store(sandbox, "mailchimp")["lists"]["lst0001"]
    emails = {e.strip().lower() for e in frame.email}
    assert {m["email_address"] for m in held.values()} >= emails
    assert {m["status"] for m in held.values() if m["email_address"] in emails} == {"subscribed"}
    assert all(
        m["merge_fields"]["FNAME"].startswith("Ann")
        for m in held.values()
        if m["email_address"] in emails
    )


def test_emulator_refuses_501_members_and_a_member_without_status(sandbox):
    members = [{"email_address": f"x{i}@example.com", "status": "subscribed"} for i in range(501)]
    r = requests.post(
        f"{sandbox.base_url}/mailchimp/3.0/lists/lst0001",
        json={"members": members, "update_existing": True},
        auth=AUTH,
        timeout=10,
    )
    assert r.status_code == 400 and "max 500" in r.json()["detail"]
    r = requests.post(
        f"{sandbox.base_url}/mailchimp/3.0/lists/lst0001",
        json={
            "members": [{"email_address": "y@example.com", "status_if_new": "subscribed"}],
            "update_existing": True,
        },
        auth=AUTH,
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"field": "members.item:0.status", "message": "Required field not provided"}
    ]


def test_only_contacts_with_email_consent_are_added_as_new_members(sandbox, wh, specs):
    frame = audience_frame(range(1, 21))
    put(wh, "aud_mc", frame)
    grants = consent_for(frame)
    for c in ("3", "4", "5"):
        grants[c]["email_marketing"] = False
    put_consent(wh, grants)
    result = sync(wh, specs["mc"])
    assert (result["sendable"], result["accepted"]) == (17, 17)
    sent = {
        m["email_address"]
        for c in received(sandbox, "mailchimp")
        if c["call"] == "batch_members"
        for m in c["body"]["members"]
    }
    assert sent == {
        e.strip().lower()
        for e, c in zip(frame.email, frame.contact_id, strict=True)
        if c not in ("3", "4", "5")
    }
