"""Consent as the activation reads it: ``marts.dim_contact_consent`` (Contract A).

The engine never derives consent. It joins the consent model on ``contact_id`` for the
purposes the destination declares (``Destination.purposes``) and sends a contact only
when every one of them is granted (``is_granted``; unknown is false). A contact this
tool added whose purpose is no longer granted is removed — a *consent removal*, always
sent and never counted toward ``max_removal_pct``.
"""

from __future__ import annotations

from lifecycle.activation.base import SyncAborted

#: The purposes of Contract A (names as the consent model spells them).
PURPOSES = ("email_marketing", "ad_user_data", "ad_personalization")
MODEL_SCHEMA, MODEL_TABLE = "marts", "dim_contact_consent"
MODEL = f"{MODEL_SCHEMA}.{MODEL_TABLE}"
CONTRACT_COLUMNS = ("contact_id", "purpose", "is_granted")


def column(purpose: str) -> str:
    """The boolean column a destination finds in its rows for ``purpose``."""
    return f"consent_{purpose}"


def relation(con) -> str:
    """SQL relation ``(contact_id, purpose, is_granted)`` of the consent model.

    Raises :class:`SyncAborted` when the model is missing or lacks a contract column: no
    consent, nothing sent.
    """
    cols = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [MODEL_SCHEMA, MODEL_TABLE],
        ).fetchall()
    }
    if not cols:
        raise SyncAborted(
            f"consent model {MODEL} does not exist: build it (dbt) before syncing; "
            f"refusing to send without consent"
        )
    if set(CONTRACT_COLUMNS) <= cols:
        return (
            f"(select contact_id::varchar as contact_id, purpose, "
            f"coalesce(is_granted, false) as is_granted from {MODEL})"
        )
    raise SyncAborted(
        f"consent model {MODEL} lacks column(s) "
        f"{', '.join(c for c in CONTRACT_COLUMNS if c not in cols)} (Contract A: "
        f"one row per contact_id and purpose with is_granted)"
    )


def flags(con, purposes: tuple[str, ...]) -> str:
    """SQL relation ``(contact_id, consent_<purpose>…, all_granted, known)`` per contact.

    ``known`` says the contact has a row in the consent model for every purpose; a
    missing row is not granted.
    """
    rel = relation(con)
    if not purposes:
        return (
            "(select null::varchar as contact_id, true as all_granted, true as known where false)"
        )
    cols = ",\n".join(
        f"coalesce(bool_or(is_granted) filter (where purpose = '{p}'), false) as {column(p)}"
        for p in purposes
    )
    listed = ", ".join(f"'{p}'" for p in purposes)
    every = " and ".join(column(p) for p in purposes)
    # a filtered count per purpose, not count(distinct purpose): 4x faster at 1M contacts
    known = " and ".join(f"count(*) filter (where purpose = '{p}') > 0" for p in purposes)
    return f"""(
        select *, {every} as all_granted from (
            select contact_id, {cols},
                   {known} as known
            from {rel} where purpose in ({listed}) group by contact_id
        )
    )"""
