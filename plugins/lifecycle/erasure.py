"""Erasure in the warehouse: who must be forgotten, and forgetting them.

Contract B of issue 10. ``ops.erasures`` holds one row per erasure, hashes only:

=====================  ======================================================================
``erasure_id``         varchar primary key (sha256 of origin and hashes, first 32 hex digits)
``requested_at``       timestamp (UTC): when the vendor archived/deleted, or the request came
``origin``             ``hubspot_archived`` | ``hubspot_deleted`` | ``mailchimp_archived`` |
                       ``mailchimp_deleted`` | ``request``
``email_sha256``       sha256 hex of the trimmed, lowercased email (null if unknown)
``contact_id_sha256``  sha256 hex of the HubSpot contact id as text (null if unknown)
``status``             ``recorded`` | ``propagated`` | ``partial`` (set by propagation)
=====================  ======================================================================

No plain identifier is ever stored there or logged. ``ops.erasure_identifiers`` keeps
the hashes of other ids found to belong to an erased person (Segment ``userId`` and
``anonymousId``), so their later events are recognised too; ``ops.erasure_purges``
says what each purge deleted.

Every night each ingest task detects the vendor's archived and deleted records
(:func:`detect`), records them (:func:`record`) and purges that source's raw rows of
every erased person (:func:`purge`); staging excludes erased people by hash, so they
leave every mart and audience at the next build. ``lifecycle forget`` records a
``request`` erasure and purges raw, intermediate, marts and audiences at once.
Removal at the destinations (Meta, Google Ads, Mailchimp, HubSpot) is
``lifecycle.activation.erasure.propagate`` (issue 10b).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb

from lifecycle import warehouse

log = logging.getLogger(__name__)

ORIGINS = (
    "hubspot_archived",
    "hubspot_deleted",
    "mailchimp_archived",
    "mailchimp_deleted",
    "request",
)
STATUSES = ("recorded", "propagated", "partial")
DDL = """create table if not exists ops.erasures (
    erasure_id varchar primary key,
    requested_at timestamp,
    origin varchar,
    email_sha256 varchar,
    contact_id_sha256 varchar,
    status varchar)"""
IDENTIFIERS_DDL = """create table if not exists ops.erasure_identifiers (
    erasure_id varchar,
    identifier_kind varchar,
    identifier_sha256 varchar,
    primary key (erasure_id, identifier_kind, identifier_sha256))"""
PURGES_DDL = """create table if not exists ops.erasure_purges (
    purged_at timestamp, scope varchar, table_name varchar, rows_deleted bigint)"""
#: The erasures whose rows were deleted from the dbt tables (:func:`purge_models`).
MODELS_PURGED_DDL = """create table if not exists ops.erasure_models_purged (
    erasure_id varchar primary key, purged_at timestamp)"""
#: One row per HubSpot or Mailchimp detection: whether it had every contact id / list
#: member (a sweep: the id listing, or a HubSpot full load's own) to tell records deleted
#: for good from the rest.
PRESENCE_DDL = """create table if not exists ops.erasure_presence_checks (
    checked_at timestamp, source varchar, swept boolean, ids bigint)"""
#: A connection's ``extra.presence_check_every``: list every contact id (HubSpot) or
#: member (Mailchimp) on every Nth detection (1: every run). Archived records are read
#: every run whatever it says.
PRESENCE_CHECK_EVERY = 1
#: At most this share of the contacts (or members) a warehouse holds may vanish from a
#: vendor in one night before detection refuses to erase them (a wrong portal or list in
#: the connection must not erase everyone). A connection's extra can set
#: ``max_deleted_share``.
MAX_DELETED_SHARE = 0.1
MIN_GUARDED = 10
#: Schemas dbt builds; :func:`purge` with ``models=True`` deletes erased people there too.
MODEL_SCHEMAS = ("intermediate", "marts", "audiences")


class ErasureGuardError(RuntimeError):
    """So many records vanished at once that erasing them all is refused."""


# --- hashing ---------------------------------------------------------------------------


def email_sha256(email: str | None) -> str | None:
    """sha256 hex of the trimmed, lowercased email (None for a missing or blank one)."""
    if email is None or not str(email).strip():
        return None
    return hashlib.sha256(str(email).strip().lower().encode()).hexdigest()


def contact_id_sha256(contact_id: str | int | None) -> str | None:
    """sha256 hex of the HubSpot contact id as text."""
    if contact_id is None or str(contact_id).strip() == "":
        return None
    return hashlib.sha256(str(contact_id).strip().encode()).hexdigest()


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# SQL of the same hashes (DuckDB), for matching rows without reading plain ids out.
SQL_EMAIL = "sha256(lower(trim({col})))"
SQL_ID = "sha256(trim(cast({col} as varchar)))"


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``ops.erasures`` (and its side tables) if missing."""
    con.execute("create schema if not exists ops")
    con.execute(DDL)
    con.execute(IDENTIFIERS_DDL)
    con.execute(PURGES_DDL)
    con.execute(PRESENCE_DDL)
    con.execute(MODELS_PURGED_DDL)


def _table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ? "
            "and table_catalog = current_database()",
            [schema, table],
        ).fetchone()
    )


def _columns(con, schema: str, table: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? "
            "and table_name = ? and table_catalog = current_database()",
            [schema, table],
        ).fetchall()
    }


# --- recording -------------------------------------------------------------------------


def record(
    con: duckdb.DuckDBPyConnection,
    origin: str,
    *,
    email: str | None = None,
    contact_id: str | None = None,
    requested_at: datetime | str | None = None,
    index: HashIndex | None = None,
) -> str | None:
    """Record one erasure (idempotent: the same origin and person give the same id).

    The plain identifiers are hashed here and never stored or logged. When only one of
    them is given, the other is looked up in ``raw_hubspot.contacts`` so both hashes
    are kept. Returns the ``erasure_id`` (None when there was nothing to identify).
    """
    if origin not in ORIGINS:
        raise ValueError(f"unknown erasure origin {origin!r}; known: {', '.join(ORIGINS)}")
    ensure_table(con)
    e_hash, c_hash = email_sha256(email), contact_id_sha256(contact_id)
    if e_hash is None and c_hash is None:
        return None
    e_hash, c_hash = _complete(con, e_hash, c_hash, index)
    erasure_id = _sha(f"{origin}|{e_hash or ''}|{c_hash or ''}")[:32]
    when = requested_at or datetime.now(UTC)
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    con.execute(
        "insert or ignore into ops.erasures values (?, ?, ?, ?, ?, 'recorded')",
        [erasure_id, when, origin, e_hash, c_hash],
    )
    return erasure_id


class HashIndex:
    """Both hashes of every CRM contact with an email, read once: a detection that records
    thousands of erasures looks each one up here instead of hashing every contact again
    per erasure (at a million contacts that was the Mailchimp ingest's longest part)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.by_email: dict[str, set[str]] = {}
        self.by_id: dict[str, set[str]] = {}
        if not _table_exists(con, "raw_hubspot", "contacts"):
            return
        for e, c in con.execute(
            f"select distinct {SQL_EMAIL.format(col='email')}, {SQL_ID.format(col='id')} "
            "from raw_hubspot.contacts where email is not null"
        ).fetchall():
            self.by_email.setdefault(e, set()).add(c)
            self.by_id.setdefault(c, set()).add(e)

    def complete(self, e_hash: str | None, c_hash: str | None) -> tuple[str | None, str | None]:
        if e_hash and c_hash:
            return e_hash, c_hash
        if e_hash:
            found = self.by_email.get(e_hash, set())
            return e_hash, next(iter(found)) if len(found) == 1 else None
        found = self.by_id.get(c_hash, set())
        return (next(iter(found)) if len(found) == 1 else None), c_hash


def _complete(
    con, e_hash: str | None, c_hash: str | None, index: HashIndex | None = None
) -> tuple[str | None, str | None]:
    """Fill the missing hash from the CRM contact that has the other one, if exactly one."""
    if index is not None:
        return index.complete(e_hash, c_hash)
    if not _table_exists(con, "raw_hubspot", "contacts") or (e_hash and c_hash):
        return e_hash, c_hash
    if e_hash:
        rows = con.execute(
            f"select distinct {SQL_ID.format(col='id')} from raw_hubspot.contacts "
            f"where {SQL_EMAIL.format(col='email')} = ?",
            [e_hash],
        ).fetchall()
        return e_hash, rows[0][0] if len(rows) == 1 else None
    rows = con.execute(
        f"select distinct {SQL_EMAIL.format(col='email')} from raw_hubspot.contacts "
        f"where {SQL_ID.format(col='id')} = ? and email is not null",
        [c_hash],
    ).fetchall()
    return (rows[0][0] if len(rows) == 1 else None), c_hash


def pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Erasure ids not yet propagated to every destination."""
    ensure_table(con)
    return [
        r[0]
        for r in con.execute(
            "select erasure_id from ops.erasures where status <> 'propagated' order by 1"
        ).fetchall()
    ]


# --- detection -------------------------------------------------------------------------


def _guard(vanished: int, known: int, share: float, what: str) -> None:
    if vanished > max(MIN_GUARDED, share * known):
        raise ErasureGuardError(
            f"{vanished} of {known} {what} vanished from the vendor since the last load "
            f"(more than {share:.0%}); refusing to erase them. Check that the Airflow "
            f"connection points at the right account, or raise max_deleted_share in its "
            f"extra if the deletions are real."
        )


def detect(con: duckdb.DuckDBPyConnection, source: str, conn_id: str | None = None) -> dict:
    """Record the archived and deleted records ``source`` reports; return counts by origin.

    HubSpot: archived contacts (``?archived=true``) and contacts once loaded that the
    portal no longer has at all. Mailchimp: members with status ``archived`` and members
    once loaded that their list no longer has.
    """
    ensure_table(con)
    if source == "hubspot":
        return _detect_hubspot(con, conn_id or "hubspot_default")
    if source == "mailchimp":
        return _detect_mailchimp(con, conn_id or "mailchimp_default")
    return {}


def _detect_hubspot(con, conn_id: str) -> dict:
    from lifecycle.connections import get_endpoint  # noqa: PLC0415
    from lifecycle.sources.hubspot import find_removed_contacts  # noqa: PLC0415

    extra = get_endpoint(conn_id).extra
    every = int(extra.get("presence_check_every", PRESENCE_CHECK_EVERY))
    archived, present = find_removed_contacts(conn_id, sweep=_sweep_due(con, "hubspot", every))
    con.execute(
        "insert into ops.erasure_presence_checks values (?, 'hubspot', ?, ?)",
        [
            datetime.now(UTC).replace(tzinfo=None),
            present is not None,
            None if present is None else len(present),
        ],
    )
    counts = {"hubspot_archived": 0, "hubspot_deleted": 0}
    for a in archived:
        if record(
            con,
            "hubspot_archived",
            email=a["email"],
            contact_id=a["id"],
            requested_at=a["archived_at"],
        ):
            counts["hubspot_archived"] += 1
    if present is None:
        log.info(
            "hubspot erasures: contact id listing not due (every %d runs; "
            "ops.erasure_presence_checks): contacts deleted for good are found on the next",
            every,
        )
    elif _table_exists(con, "raw_hubspot", "contacts"):
        known = con.execute(
            "select id, email from raw_hubspot.contacts where not coalesce(archived, false)"
        ).fetchall()
        gone = [(cid, email) for cid, email in known if str(cid) not in present]
        share = float(extra.get("max_deleted_share", MAX_DELETED_SHARE))
        _guard(len(gone), len(known), share, "HubSpot contacts")
        for cid, email in gone:
            if record(con, "hubspot_deleted", email=email, contact_id=cid):
                counts["hubspot_deleted"] += 1
    log.info(
        "hubspot erasures: %d archived contacts, %d deleted (ids no longer in the portal)",
        counts["hubspot_archived"],
        counts["hubspot_deleted"],
    )
    return counts


def _sweep_due(con, source: str, every: int) -> bool:
    """Whether this detection lists every id: on every ``every``-th run (counted in
    ``ops.erasure_presence_checks``, so clocks and schedules do not matter)."""
    if every <= 1:
        return True
    last, since = con.execute(
        "with s as (select max(checked_at) as t from ops.erasure_presence_checks "
        "where source = ? and swept) "
        "select (select t from s), count(*) from ops.erasure_presence_checks, s "
        "where source = ? and (s.t is null or checked_at > s.t)",
        [source, source],
    ).fetchone()
    return last is None or since >= every - 1


def _detect_mailchimp(con, conn_id: str) -> dict:
    from lifecycle.connections import get_endpoint  # noqa: PLC0415
    from lifecycle.sources.mailchimp import find_removed_members  # noqa: PLC0415

    counts = {"mailchimp_archived": 0, "mailchimp_deleted": 0}
    if not _table_exists(con, "raw_mailchimp", "members"):
        return counts
    index = HashIndex(con)
    for (email,) in con.execute(
        "select distinct email_address from raw_mailchimp.members where status = 'archived'"
    ).fetchall():
        if record(con, "mailchimp_archived", email=email, index=index):
            counts["mailchimp_archived"] += 1
    extra = get_endpoint(conn_id).extra
    every = int(extra.get("presence_check_every", PRESENCE_CHECK_EVERY))
    present = find_removed_members(conn_id) if _sweep_due(con, "mailchimp", every) else None
    con.execute(
        "insert into ops.erasure_presence_checks values (?, 'mailchimp', ?, ?)",
        [
            datetime.now(UTC).replace(tzinfo=None),
            present is not None,
            None if present is None else sum(len(v) for v in present.values()),
        ],
    )
    if present is None:
        log.info(
            "mailchimp erasures: %d archived members; member listing not due (every %d "
            "runs; ops.erasure_presence_checks)",
            counts["mailchimp_archived"],
            every,
        )
        return counts
    known = con.execute(
        "select list_id, id, unique_email_id, email_address from raw_mailchimp.members"
    ).fetchall()
    # only lists read this run: a list left out of the connection is not "deleted"
    known = [k for k in known if k[0] in present]
    # a member whose address changed is still there under a new id, same unique_email_id
    gone = [k for k in known if k[1] not in present[k[0]] and f"ueid:{k[2]}" not in present[k[0]]]
    share = float(extra.get("max_deleted_share", MAX_DELETED_SHARE))
    _guard(len(gone), len(known), share, "Mailchimp members")
    for _, _, _, email in gone:
        if record(con, "mailchimp_deleted", email=email, index=index):
            counts["mailchimp_deleted"] += 1
    log.info(
        "mailchimp erasures: %d archived members, %d deleted (gone from their list)",
        counts["mailchimp_archived"],
        counts["mailchimp_deleted"],
    )
    return counts


# --- purging ---------------------------------------------------------------------------


def _load_hashes(con, erasure_ids: Iterable[str] | None) -> None:
    """Temp tables ``_erase_email``, ``_erase_contact``, ``_erase_user``, ``_erase_anon``."""
    where = ""
    params: list = []
    if erasure_ids is not None:
        ids = list(erasure_ids)
        where = f"where erasure_id in ({', '.join('?' * len(ids))})" if ids else "where false"
        params = ids
    con.execute(
        "create or replace temp table _erase as select * from ops.erasures " + where, params
    )
    con.execute(
        "create or replace temp table _erase_email as select distinct email_sha256 as h "
        "from _erase where email_sha256 is not null"
    )
    con.execute(
        "create or replace temp table _erase_contact as select distinct contact_id_sha256 as h "
        "from _erase where contact_id_sha256 is not null"
    )
    for kind in ("user", "anon"):
        con.execute(
            f"create or replace temp table _erase_{kind} as select distinct identifier_sha256 "
            f"as h from ops.erasure_identifiers where identifier_kind = '{kind}' "
            "and erasure_id in (select erasure_id from _erase)"
        )


def _link_identifiers(con) -> None:
    """Complete each erasure's hashes from the raw data (CRM email <-> id; Segment user
    and anonymous ids of an erased email), before the rows that link them are purged."""
    if _table_exists(con, "raw_hubspot", "contacts"):
        con.execute(f"""
            update ops.erasures e set contact_id_sha256 = m.c
            from (select {SQL_EMAIL.format(col="email")} as h, min({SQL_ID.format(col="id")}) c,
                         count(distinct id) n
                  from raw_hubspot.contacts group by 1) m
            where e.contact_id_sha256 is null and e.email_sha256 = m.h and m.n = 1
              and e.erasure_id in (select erasure_id from _erase)""")
        con.execute(f"""
            update ops.erasures e set email_sha256 = m.h
            from (select {SQL_ID.format(col="id")} as c, min({SQL_EMAIL.format(col="email")}) h
                  from raw_hubspot.contacts where email is not null group by 1) m
            where e.email_sha256 is null and e.contact_id_sha256 = m.c
              and e.erasure_id in (select erasure_id from _erase)""")
        _load_hashes(con, [r[0] for r in con.execute("select erasure_id from _erase").fetchall()])
    if _table_exists(con, "raw_segment", "events"):
        con.execute(f"""
            insert or ignore into ops.erasure_identifiers
            select distinct e.erasure_id, 'user', {SQL_ID.format(col="ev.user_id")}
            from raw_segment.events ev
            join _erase e on e.email_sha256 = {SQL_EMAIL.format(col="ev.traits_email")}
            where ev.traits_email is not null and ev.user_id is not null""")
        con.execute(f"""
            insert or ignore into ops.erasure_identifiers
            select distinct i.erasure_id, 'anon', {SQL_ID.format(col="ev.anonymous_id")}
            from raw_segment.events ev
            join ops.erasure_identifiers i
              on i.identifier_kind = 'user'
              and i.identifier_sha256 = {SQL_ID.format(col="ev.user_id")}
            where ev.user_id is not null and ev.anonymous_id is not null
              and i.erasure_id in (select erasure_id from _erase)""")
        _load_hashes(con, [r[0] for r in con.execute("select erasure_id from _erase").fetchall()])


def _delete(con, table: str, condition: str, scope: str, out: dict) -> None:
    """Delete the matching rows of ``table`` and of dlt's merge copy of it
    (``<schema>_staging.<table>``, emptied after each load, but not in older warehouses)."""
    schema, name = table.split(".")
    for target_schema in (schema, f"{schema}_staging"):
        if not _table_exists(con, target_schema, name):
            continue
        target = f"{target_schema}.{name}"
        try:
            n = con.execute(f"select count(*) from {target} where {condition}").fetchone()[0]
        except duckdb.BinderException:
            continue  # a staging copy from an older load lacks a column: nothing of ours
        if n:
            con.execute(f"delete from {target} where {condition}")
            out[target] = out.get(target, 0) + int(n)


def _matches(columns: set[str], alias: str = "") -> str | None:
    """A condition matching an erased person's rows in a table with these columns."""
    p = f"{alias}." if alias else ""
    parts = []
    if "contact_id" in columns:
        parts.append(f"{SQL_ID.format(col=p + 'contact_id')} in (select h from _erase_contact)")
    if "email" in columns:
        parts.append(f"{SQL_EMAIL.format(col=p + 'email')} in (select h from _erase_email)")
    if "user_id" in columns:
        parts.append(f"{SQL_ID.format(col=p + 'user_id')} in (select h from _erase_user)")
    if "anonymous_id" in columns:
        parts.append(f"{SQL_ID.format(col=p + 'anonymous_id')} in (select h from _erase_anon)")
    return " or ".join(parts) or None


def purge(
    con: duckdb.DuckDBPyConnection,
    erasure_ids: Iterable[str] | None = None,
    *,
    sources: Iterable[str] = ("hubspot", "mailchimp", "segment"),
    models: bool = False,
) -> dict[str, int]:
    """Delete every row of the erased people from the raw tables of ``sources`` (and
    with ``models``, from the tables dbt built); return rows deleted per table.

    Idempotent, and meant to run every night over every erasure (``erasure_ids=None``):
    a full refresh or a late file can bring an erased person's rows back. Rows are
    matched by hash, so no plain identifier is read out of the warehouse. Deals keep
    their amounts but lose the erased contact (``contact_id`` set to null).
    """
    ensure_table(con)
    _load_hashes(con, erasure_ids)
    if not con.execute("select count(*) from _erase").fetchone()[0]:
        return {}
    _link_identifiers(con)
    out: dict[str, int] = {}
    sources = set(sources)
    c_id = SQL_ID.format(col="contact_id")
    if "hubspot" in sources:
        _delete(
            con,
            "raw_hubspot.contacts",
            f"{SQL_ID.format(col='id')} in (select h from _erase_contact) or "
            f"{SQL_EMAIL.format(col='email')} in (select h from _erase_email)",
            "hubspot",
            out,
        )
        _delete(
            con,
            "raw_hubspot.contact_consent",
            f"{c_id} in (select h from _erase_contact)",
            "hubspot",
            out,
        )
        if _table_exists(con, "raw_hubspot", "deals"):
            n = con.execute(
                "select count(*) from raw_hubspot.deals "
                f"where {c_id} in (select h from _erase_contact)"
            ).fetchone()[0]
            if n:
                con.execute(
                    f"update raw_hubspot.deals set contact_id = null "
                    f"where {c_id} in (select h from _erase_contact)"
                )
                out["raw_hubspot.deals (contact_id cleared)"] = int(n)
        _delete(
            con,
            "raw_hubspot.quarantine",
            f"{SQL_ID.format(col='record_key')} in (select h from _erase_contact) or "
            "sha256(lower(trim(coalesce(json_extract_string(payload, '$.properties.email'), ''))))"
            " in (select h from _erase_email)",
            "hubspot",
            out,
        )
    if "mailchimp" in sources:
        email = SQL_EMAIL.format(col="email_address")
        if _table_exists(con, "raw_mailchimp", "member_permissions") and _table_exists(
            con, "raw_mailchimp", "members"
        ):
            _delete(
                con,
                "raw_mailchimp.member_permissions",
                "list_id || ':' || member_id in (select list_id || ':' || id "
                f"from raw_mailchimp.members where {email} in (select h from _erase_email))",
                "mailchimp",
                out,
            )
        _delete(
            con,
            "raw_mailchimp.members",
            f"{email} in (select h from _erase_email)",
            "mailchimp",
            out,
        )
        _delete(
            con,
            "raw_mailchimp.email_activity",
            f"{email} in (select h from _erase_email)",
            "mailchimp",
            out,
        )
        _delete(
            con,
            "raw_mailchimp.quarantine",
            "sha256(lower(trim(coalesce(json_extract_string(payload, '$.email_address'), ''))))"
            " in (select h from _erase_email)",
            "mailchimp",
            out,
        )
    if "segment" in sources:
        _delete(
            con,
            "raw_segment.events",
            f"{SQL_ID.format(col='user_id')} in (select h from _erase_user) or "
            f"{SQL_ID.format(col='anonymous_id')} in (select h from _erase_anon) or "
            f"{SQL_EMAIL.format(col='traits_email')} in (select h from _erase_email)",
            "segment",
            out,
        )
        _delete(
            con,
            "raw_segment.quarantine",
            "sha256(trim(coalesce(json_extract_string(payload, '$.user_id'), ''))) "
            "in (select h from _erase_user) or "
            "sha256(trim(coalesce(json_extract_string(payload, '$.anonymous_id'), ''))) "
            "in (select h from _erase_anon)",
            "segment",
            out,
        )
    if models:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = current_database() and table_type = 'BASE TABLE' "
            f"and table_schema in ({', '.join(repr(s) for s in MODEL_SCHEMAS)}) order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            condition = _matches(_columns(con, schema, table))
            if condition:
                _delete(con, f"{schema}.{table}", condition, "models", out)
    now = datetime.now(UTC).replace(tzinfo=None)
    if not out:
        return out
    con.executemany(
        "insert into ops.erasure_purges values (?, ?, ?, ?)",
        [
            [now, ",".join(sorted(sources)) + ("+models" if models else ""), t, n]
            for t, n in out.items()
        ],
    )
    log.info("erasure purge: deleted %s", out)
    return out


def purge_models(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Delete the people erased since the last call from the tables dbt built; return rows
    deleted per table.

    Incremental models (``int_web_events``, ``int_sessions``, ``int_lead_score_history``)
    keep their rows from night to night: without this an erased person's events and
    sessions would stay in them, since the raw purge only keeps them from coming back.
    Each erasure is purged from the models once (``ops.erasure_models_purged``): staging
    leaves erased people out, so no later build brings them back.
    """
    ensure_table(con)
    ids = [
        r[0]
        for r in con.execute(
            "select erasure_id from ops.erasures "
            "where erasure_id not in (select erasure_id from ops.erasure_models_purged)"
        ).fetchall()
    ]
    if not ids:
        return {}
    out = purge(con, ids, sources=(), models=True)
    now = datetime.now(UTC).replace(tzinfo=None)
    con.executemany("insert into ops.erasure_models_purged values (?, ?)", [[i, now] for i in ids])
    return out


def compact(path) -> int:
    """Rewrite the DuckDB file at ``path`` into a fresh one and put it in its place.

    DuckDB marks deleted rows free but leaves their bytes in the file until the space
    is reused; a rewrite leaves only live data. Needs the file to itself (no other
    connection). Returns the bytes the file shrank by.
    """
    from pathlib import Path  # noqa: PLC0415

    path = Path(path)
    fresh = path.with_name(path.stem + ".compact.duckdb")
    fresh.unlink(missing_ok=True)
    before = path.stat().st_size
    con = warehouse.connect(path=path)
    try:
        con.execute("checkpoint")
        name = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach '{fresh}' as _compact")
        con.execute(f'copy from database "{name}" to _compact')
        con.execute("checkpoint _compact")
        con.execute("detach _compact")
    finally:
        con.close()
    os.replace(fresh, path)
    log.info("compacted %s: %d -> %d bytes", path, before, path.stat().st_size)
    return before - path.stat().st_size
