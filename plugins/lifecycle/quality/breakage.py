"""Deliberately broken worlds, to see the gate stop a night (``lifecycle quality --break``).

Each function damages a warehouse the way a misbehaving source would. Only ever applied
to a copy: ``lifecycle quality --break`` copies the warehouse to a temporary folder first.
"""

from __future__ import annotations

import duckdb

BREAKS = {
    "duplicate-keys": (
        "HubSpot serves 5 contacts twice",
        ["insert into raw_hubspot.contacts select * from raw_hubspot.contacts order by id limit 5"],
    ),
    "empty-day": (
        "Segment delivers no events for the night's day",
        [
            'delete from raw_segment.events where "timestamp" >= {as_of} - interval 1 day '
            'and "timestamp" < {as_of}'
        ],
    ),
    "schema-change": (
        "Segment renames the event `type` field to `event_type`",
        ['alter table raw_segment.events rename column "type" to event_type'],
    ),
    "stale-source": (
        "HubSpot stopped delivering 30 days ago",
        [
            f"update raw_hubspot.{t} set updated_at = updated_at - interval 30 day"
            for t in ("contacts", "companies", "deals")
        ],
    ),
    "no-consent": (
        "An audience lists contacts who gave no consent",
        [
            "insert into audiences.aud_sales_ready by name select contact_id, email "
            "from marts.dim_contacts where not coalesce(has_ad_consent, false) "
            "and not coalesce(has_email_consent, false) limit 3"
        ],
    ),
}


def apply(con: duckdb.DuckDBPyConnection, kind: str, night: str) -> str:
    """Break the warehouse behind ``con``; return what was done."""
    if kind not in BREAKS:
        raise KeyError(f"unknown break {kind!r}; known: {', '.join(BREAKS)}")
    what, statements = BREAKS[kind]
    for sql in statements:
        con.execute(sql.replace("{as_of}", f"timestamp '{night} 00:00:00'"))
    return what
