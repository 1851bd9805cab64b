"""Helpers for the sync tests: audience and consent tables, sandbox state, engine calls.

The consent model is built here as Contract A describes it (one row per contact and
purpose), without dbt, so the activation tests run on their own. Its oracle is the test's
own consent decision per contact, never the engine's code.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import requests

from lifecycle.activation import engine

T0 = datetime(2026, 7, 1, 3, 0)
PURPOSES = ("email_marketing", "ad_user_data", "ad_personalization")

CONSENT_DDL = """
create schema if not exists marts;
create or replace table marts.dim_contact_consent (
    consent_id varchar, contact_id varchar, purpose varchar, channel varchar,
    is_granted boolean, consent_status varchar, deciding_source varchar,
    deciding_record_id varchar, decided_at timestamp, last_withdrawn_at timestamp)
"""

ERASURES_DDL = """
create schema if not exists ops;
create table if not exists ops.erasures (
    erasure_id varchar primary key, requested_at timestamp, origin varchar,
    email_sha256 varchar, contact_id_sha256 varchar, status varchar)
"""


def audience_frame(ids) -> pd.DataFrame:
    """Contract columns; consent varies with the id so every channel excludes someone."""
    ids = list(ids)
    return pd.DataFrame(
        {
            "contact_id": [str(i) for i in ids],
            "email": [f"  User.{i}@Example.com " for i in ids],
            "phone": [f"+1 (650) 555-{i:04d}" for i in ids],
            "first_name": [f"Ann{i}" for i in ids],
            "last_name": [f"Lee{i}" for i in ids],
            "country_code": ["US"] * len(ids),
            "lifecycle_stage": ["mql"] * len(ids),
            "lead_score": [i % 100 for i in ids],
            "has_email_consent": [i % 3 != 0 for i in ids],
            "has_ad_consent": [i % 4 != 0 for i in ids],
            "email_status": [
                "cleaned" if i % 7 == 0 else "unsubscribed" if i % 5 == 0 else "subscribed"
                for i in ids
            ],
        }
    )


def put(con, table: str, frame: pd.DataFrame) -> None:
    con.execute("create schema if not exists audiences")
    con.register("frame", frame)
    con.execute(f"create or replace table audiences.{table} as select * from frame")
    con.unregister("frame")


def consent_of(frame: pd.DataFrame) -> dict[str, dict[str, bool]]:
    """Per contact, the purposes the test grants (from the frame's test columns)."""
    out = {}
    for r in frame.itertuples(index=False):
        email = bool(r.has_email_consent) and r.email_status == "subscribed"
        ads = bool(r.has_ad_consent)
        out[str(r.contact_id)] = {
            "email_marketing": email,
            "ad_user_data": ads,
            "ad_personalization": ads,
        }
    return out


def put_consent(con, grants: dict[str, dict[str, bool]], withdrawn: set | None = None) -> None:
    """``marts.dim_contact_consent`` per Contract A from ``{contact: {purpose: granted}}``.

    ``withdrawn`` lists ``(contact, purpose)`` pairs whose status is ``withdrawn``.
    """
    withdrawn = withdrawn or set()
    rows = []
    for cid, purposes in grants.items():
        for purpose in PURPOSES:
            granted = bool(purposes.get(purpose, False))
            status = (
                "withdrawn"
                if (cid, purpose) in withdrawn
                else "granted"
                if granted
                else "not_granted"
            )
            rows.append(
                {
                    "consent_id": f"{cid}:{purpose}",
                    "contact_id": cid,
                    "purpose": purpose,
                    "channel": "email" if purpose == "email_marketing" else "ads",
                    "is_granted": granted,
                    "consent_status": status,
                    "deciding_source": "test",
                    "deciding_record_id": None,
                    "decided_at": T0,
                    "last_withdrawn_at": T0 if status == "withdrawn" else None,
                }
            )
    con.execute(CONSENT_DDL)
    if rows:
        con.register("consent_rows", pd.DataFrame(rows))
        con.execute("insert into marts.dim_contact_consent select * from consent_rows")
        con.unregister("consent_rows")


def put_audience(con, table: str, frame: pd.DataFrame) -> None:
    """The audience table and a consent model that grants what its test columns say."""
    put(con, table, frame)
    put_consent(con, consent_of(frame))


def store(srv, name: str) -> dict:
    return srv.app.state.sandbox.__dict__["destinations"][name]


def received(srv, name: str) -> list[dict]:
    return requests.get(f"{srv.base_url}/_sandbox/received/{name}", timeout=10).json()["calls"]


def limits(srv, **values) -> dict:
    r = requests.post(f"{srv.base_url}/_sandbox/limits", json=values, timeout=10)
    r.raise_for_status()
    return r.json()


def sync(con, spec, now=T0) -> dict:
    return engine.run(con, spec, engine.destination(spec.destination), now=now)


def runs(con, destination: str) -> list[tuple]:
    return con.execute(
        "select status, planned_adds, planned_updates, planned_removes, sent, accepted, "
        "rejected from ops.sync_runs where destination = ? order by started_at",
        [destination],
    ).fetchall()


def membership(con, destination: str) -> set[str]:
    return {
        k
        for (k,) in con.execute(
            "select member_key from ops.audience_membership where destination = ?", [destination]
        ).fetchall()
    }
