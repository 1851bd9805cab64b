"""Recording erasures with the contacts' hashes read once gives what a lookup per
erasure gives (lifecycle.erasure.HashIndex)."""

from __future__ import annotations

import duckdb

from lifecycle import erasure


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema raw_hubspot")
    con.execute(
        "create table raw_hubspot.contacts as select * from (values "
        "('1', ' Ann@Example.com'), ('2', 'bob@example.com'), ('3', 'bob@example.com'), "
        "('4', null)) t(id, email)"
    )
    return con


CASES = [
    {"email": "ann@example.com"},  # one contact: its id's hash is filled in
    {"email": "BOB@example.com "},  # two contacts share it: left unknown
    {"contact_id": "1"},  # its email's hash is filled in
    {"contact_id": "4"},  # no email on record
    {"email": "nobody@example.com"},
    {"email": "ann@example.com", "contact_id": "9"},  # both given: kept as given
]


def test_an_index_read_once_records_the_same_erasures_as_a_lookup_each():
    one_by_one, indexed = _warehouse(), _warehouse()
    index = erasure.HashIndex(indexed)
    ids_a = [erasure.record(one_by_one, "request", requested_at="2026-07-01", **c) for c in CASES]
    ids_b = [
        erasure.record(indexed, "request", requested_at="2026-07-01", index=index, **c)
        for c in CASES
    ]
    # Ann by email and contact 1 complete to the same pair of hashes: one erasure
    assert ids_a == ids_b and ids_a[0] == ids_a[2] and len(set(ids_a)) == len(CASES) - 1
    rows = "select * from ops.erasures order by erasure_id"
    assert one_by_one.execute(rows).fetchall() == indexed.execute(rows).fetchall()
    filled = dict(
        indexed.execute(
            "select email_sha256, contact_id_sha256 from ops.erasures "
            "where email_sha256 = sha256('ann@example.com') and erasure_id = ?",
            [ids_b[0]],
        ).fetchall()
    )
    assert filled == {erasure.email_sha256("ann@example.com"): erasure.contact_id_sha256("1")}
