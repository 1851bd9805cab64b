"""Erasure propagation (Contract B) over HTTP: every destination receives the removal.

``ops.erasures`` rows are inserted here per the contract's DDL (the warehouse side,
issue 10a, records them in production). The oracle is what each emulated vendor holds
and received, and a scan of every ``ops`` table for the person's plain identifiers.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import duckdb
import pandas as pd
import pytest
import requests
from sync_support import ERASURES_DDL, T0, limits, put, put_consent, received, store, sync

from lifecycle.activation import engine, erasure
from lifecycle.activation.audiences import load
from lifecycle.activation.hashing import hashed, normalize_email_google
from lifecycle.sandbox.accounts import MAIN_LIST
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.sandbox.mailchimp import records as mailchimp_records

YML = """
audiences:
  everyone:
    model: aud_everyone
    identifiers: [email, phone]
    guards: {max_removal_pct: 100}
    destinations:
      meta: {audience_id: "901", mode: mirror}
      google_ads: {customer_id: "111", user_list_id: "444", mode: mirror}
      mailchimp: {list_id: lst0001, tag: erase_tag, mode: mirror}
  writeback:
    model: aud_writeback
    identifiers: [email]
    guards: {max_removal_pct: 100}
    destinations:
      hubspot:
        properties:
          lifecycle_lead_score: lead_score
        numeric_properties: [lifecycle_lead_score]
"""


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture()
def syncs(tmp_path):
    path = tmp_path / "audiences.yml"
    path.write_text(YML)
    return load(path)


@pytest.fixture()
def synced(sandbox, wh, syncs):
    """Twelve real HubSpot contacts in every destination, jobs finished."""
    # contacts with a phone (HubSpot leaves an unset property out of the record) who are
    # subscribed on the list (Mailchimp rightly refuses to re-subscribe the others)
    world = sandbox.world
    served = hubspot_records.contacts(world, world.now_ts)
    subscribed = {
        m["email_address"]
        for m in mailchimp_records.members(world, world.now_ts)
        if m["list_id"] == MAIN_LIST and m["status"] == "subscribed"
    }
    contacts = [
        c
        for c in served
        if c["properties"].get("phone") and c["properties"].get("email") in subscribed
    ][:12]
    assert len(contacts) == 12
    frame = pd.DataFrame(
        {
            "contact_id": [str(c["id"]) for c in contacts],
            "email": [c["properties"]["email"] for c in contacts],
            "phone": [c["properties"]["phone"] for c in contacts],
            "lead_score": [float(i) for i in range(12)],
        }
    )
    put(wh, "aud_everyone", frame)
    put(wh, "aud_writeback", frame)
    put_consent(
        wh,
        {
            c: {"email_marketing": True, "ad_user_data": True, "ad_personalization": True}
            for c in frame.contact_id
        },
    )
    for spec in syncs:
        assert sync(wh, spec)["status"] in ("success", "submitted")
    limits(sandbox, vendor_clock_offset_s=120)
    assert engine.finish_jobs(wh)["running"] == 0
    return frame


def record(con, rows: list[tuple]) -> None:
    con.execute(ERASURES_DDL)
    for erasure_id, origin, email, contact_id in rows:
        con.execute(
            "insert into ops.erasures values (?, ?, ?, ?, ?, 'recorded')",
            [
                erasure_id,
                T0 + timedelta(hours=1),
                origin,
                erasure.email_sha256(email) if email else None,
                erasure.contact_id_sha256(contact_id) if contact_id else None,
            ],
        )


def plain_values_in_ops(con, values: list[str]) -> list[tuple]:
    """Every (table, column) of schema ops whose text holds one of ``values``."""
    hits = []
    cols = con.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'ops' and data_type = 'VARCHAR'"
    ).fetchall()
    for table, column in cols:
        for v in values:
            n = con.execute(
                f'select count(*) from ops."{table}" where "{column}" = ? '
                f'or lower("{column}") like ?',
                [v, f"%{v.lower()}%" if "@" in v else "\x00"],
            ).fetchall()[0][0]
            if n:
                hits.append((table, column, v))
    return hits


def test_propagate_sends_each_destination_its_removal_and_leaves_nothing_plain(
    sandbox, wh, syncs, synced
):
    frame = synced
    a, b, c = (frame.iloc[i] for i in range(3))
    record(
        wh,
        [
            ("e-request", "request", a.email, a.contact_id),  # a data-subject request
            ("e-crm", "hubspot_deleted", None, b.contact_id),  # deleted in the CRM
            ("e-mc", "mailchimp_archived", c.email, None),  # archived in Mailchimp
            ("e-nobody", "request", "nobody@example.com", "999999999"),
        ],
    )
    before = {n: len(received(sandbox, n)) for n in ("meta", "google_ads", "mailchimp", "hubspot")}

    out = erasure.propagate(wh, syncs=syncs, now=T0 + timedelta(hours=2))

    status = {(d["erasure_id"], d["destination"]): d["status"] for d in out}
    assert len(status) == 16  # one per (erasure, destination)
    people = ("e-request", "e-crm", "e-mc")
    assert {status[(e, "meta")] for e in people} == {"delivered"}
    assert {status[(e, "google_ads")] for e in people} == {"submitted"}
    assert {status[(e, "mailchimp")] for e in people} == {"delivered"}
    assert status[("e-request", "hubspot")] == "delivered"
    assert status[("e-crm", "hubspot")] == status[("e-mc", "hubspot")] == "skipped"
    assert {s for (e, _), s in status.items() if e == "e-nobody"} == {"not_a_member"}

    # Meta: DELETE /{audience_id}/users with the three hashed emails
    meta = received(sandbox, "meta")[before["meta"] :]
    assert [m["method"] for m in meta] == ["DELETE"]
    gone = {hashed("EMAIL", p.email) for p in (a, b, c)}
    assert {r[0] for r in meta[0]["data"]} == gone
    held = requests.get(f"{sandbox.base_url}/_sandbox/received/meta", timeout=10).json()
    assert not gone & {tuple(m)[0] for m in held["members"]["901"]}

    # Google Ads: one job of remove operations, run; the list changes when it ends
    google = received(sandbox, "google_ads")[before["google_ads"] :]
    ops = [op for g in google if g["call"] == "addOperations" for op in g["operations"]]
    g_gone = {
        hashlib.sha256(normalize_email_google(p.email).encode()).hexdigest() for p in (a, b, c)
    }
    assert {op["remove"]["userIdentifiers"][0]["hashedEmail"] for op in ops} == g_gone
    assert all("create" not in op for op in ops)
    statuses = dict(wh.execute("select erasure_id, status from ops.erasures").fetchall())
    assert statuses == {
        "e-request": "partial",
        "e-crm": "partial",
        "e-mc": "partial",
        "e-nobody": "propagated",
    }
    limits(sandbox, vendor_clock_offset_s=400)
    assert engine.finish_jobs(wh)["running"] == 0
    lst = store(sandbox, "google_ads")["lists"]["customers/111/userLists/444"]
    assert not g_gone & set(lst) and len(lst) == 9
    assert set(
        dict(wh.execute("select erasure_id, status from ops.erasures").fetchall()).values()
    ) == {"propagated"}

    # Mailchimp: the request is deleted for good, the others archived
    mc = received(sandbox, "mailchimp")[before["mailchimp"] :]
    calls = {(m["call"], m["subscriber_hash"]) for m in mc}
    md5 = {
        p.contact_id: hashlib.md5(p.email.strip().lower().encode()).hexdigest() for p in (a, b, c)
    }
    assert calls == {
        ("delete_permanent", md5[a.contact_id]),
        ("archive", md5[b.contact_id]),
        ("archive", md5[c.contact_id]),
    }
    members = store(sandbox, "mailchimp")["lists"]["lst0001"]
    assert md5[a.contact_id] not in members
    assert (
        members[md5[b.contact_id]]["status"] == members[md5[c.contact_id]]["status"] == "archived"
    )

    # HubSpot: a GDPR delete for the data-subject request only
    hs = received(sandbox, "hubspot")[before["hubspot"] :]
    assert hs == [{"call": "gdpr_delete", "body": {"objectId": a.contact_id}}]
    contacts = store(sandbox, "hubspot")["contacts"]
    assert a.contact_id not in contacts and b.contact_id in contacts

    # nothing plain left in ops: no contact id, no address; their state is gone
    plain = [str(p.contact_id) for p in (a, b, c)] + [p.email.strip() for p in (a, b, c)]
    assert plain_values_in_ops(wh, plain) == []
    left = wh.execute(
        "select count(*) from ops.audience_membership where contact_id in (?, ?, ?)",
        [a.contact_id, b.contact_id, c.contact_id],
    ).fetchall()[0][0]
    assert left == 0
    assert wh.execute("select count(*) from ops.audience_membership").fetchall()[0][0] == 9 * 4
    scrubbed = wh.execute(
        "select count(*) from ops.sync_changes where member_key like 'erased:%'"
    ).fetchall()[0][0]
    assert scrubbed >= 3 * 4  # at least every add of the three, in four destinations
    assert wh.execute("select count(*) from ops.erasure_deliveries").fetchall()[0][0] == 16

    # a second night has nothing left to send
    assert erasure.propagate(wh, syncs=syncs) == []


def test_a_vendor_refusal_keeps_the_erasure_partial_and_the_next_night_resends(
    sandbox, wh, syncs, synced
):
    a = synced.iloc[0]
    record(wh, [("e1", "request", a.email, a.contact_id)])
    fault = {"status": 400, "body": {"error": {"message": "(#100) boom", "code": 100}}}
    requests.post(f"{sandbox.base_url}/_sandbox/faults/meta", json=fault, timeout=10)
    first = {d["destination"]: d["status"] for d in erasure.propagate(wh, syncs=syncs)}
    assert first["meta"] == "failed"
    assert wh.execute("select status from ops.erasures").fetchall() == [("partial",)]
    # Meta's state is kept to resend from; the other destinations' is gone already
    kept = wh.execute(
        "select destination from ops.audience_membership where contact_id = ?", [a.contact_id]
    ).fetchall()
    assert kept == [("meta",)]
    second = {d["destination"]: d["status"] for d in erasure.propagate(wh, syncs=syncs)}
    assert second == {"meta": "delivered"}
    limits(sandbox, vendor_clock_offset_s=400)
    engine.finish_jobs(wh)
    assert wh.execute("select status from ops.erasures").fetchall() == [("propagated",)]
    assert plain_values_in_ops(wh, [a.contact_id, a.email.strip()]) == []
