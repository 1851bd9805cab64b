"""Segment-spec web events from daily partitions of gzipped JSON lines.

Files live at ``<root>/<source_id>/<yyyy-mm-dd>/<batch>.jsonl.gz``. DuckDB reads them
and merges them into ``raw_segment`` itself, in the warehouse connection: no dlt, no
Arrow table or Python object per event (dlt's normalise + load + merge cost about five
times the parse, and every column is declared here, so none of its schema inference is
needed). Every column the warehouse reads is selected with its type (absent fields land
as typed nulls), among them ``consent_preferences``: the JSON of
``context.consent.categoryPreferences`` (Segment's consent object, on the ``Segment
Consent Preference Updated`` event and on any event a consent manager stamps).

Each run reads only the files that are new or changed since the last run (path + size +
mtime, kept in :data:`FILES_TABLE`), in batches of about :data:`BATCH_BYTES` of
compressed files. A batch is one transaction: its events merged on ``message_id``
(delete + insert, so a duplicated or re-delivered file, lines appended to a loaded
file or a re-run never duplicate an event; as with dlt's merge the last loaded copy
wins, within a batch the one from the file sorted last), its bad events written to
``raw_segment.quarantine`` and its files marked done. A run that dies keeps the batches
it committed and the next one reads the rest. Events without ``messageId``, ``type`` or
a parseable ``timestamp`` go to quarantine, in the rows and columns the dlt sources
write (:func:`~lifecycle.sources.common.quarantine_row`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from lifecycle.connections import get_endpoint
from lifecycle.sources.common import QUARANTINE_TABLE, log_loaded, quarantine_row

log = logging.getLogger(__name__)

SOURCE = "segment"
SCHEMA = f"raw_{SOURCE}"
EVENTS_TABLE = f"{SCHEMA}.events"
QUARANTINE = f"{SCHEMA}.{QUARANTINE_TABLE}"
#: One row per landing file loaded: ``path`` (relative to the landing root),
#: ``size_bytes`` and ``mtime_ns`` as read, ``load_id`` and ``loaded_at`` of the run, and
#: the ``events`` and ``quarantined`` rows it held. Written in the batch's transaction.
FILES_TABLE = f"{SCHEMA}._loaded_files"
# Columns we model, by JSON path into each line. The spec's free-form objects (context,
# traits, properties) are also kept whole as JSON, so new fields inside them are never
# lost (schema drift is kept).
TEXT_FIELDS = {
    "message_id": "$.messageId",
    "type": "$.type",
    "event": "$.event",
    "anonymous_id": "$.anonymousId",
    "user_id": "$.userId",
    "ts_raw": "$.timestamp",
    "received_at": "$.receivedAt",
    "page_path": "$.context.page.path",
    "page_url": "$.context.page.url",
    "page_referrer": "$.context.page.referrer",
    "utm_source": "$.context.campaign.source",
    "utm_medium": "$.context.campaign.medium",
    "utm_campaign": "$.context.campaign.name",
    "user_agent": "$.context.userAgent",
    "ip": "$.context.ip",
    "page_search": "$.context.page.search",
    "form_id": "$.properties.form_id",
    "content_id": "$.properties.content_id",
    "referral_code": "$.properties.referral_code",
    "traits_referral_code": "$.traits.referral_code",
    "traits_email": "$.traits.email",
    "revenue": "$.properties.revenue",
    "order_id": "$.properties.order_id",
}
JSON_FIELDS = {
    "consent_preferences": "$.context.consent.categoryPreferences",
    "properties": "$.properties",
    "context": "$.context",
    "traits": "$.traits",
}
#: The spec's objects, kept whole.
WHOLE = ("properties", "context", "traits")
#: What a value parses as (the rest stay text).
CASTS = {"received_at": "timestamptz", "revenue": "double"}
#: The longest line read (DuckDB's JSON reader's default object size).
MAX_LINE_BYTES = 16 << 20

#: ``raw_segment.events`` as staging, erasure and the quality suites read it: the columns
#: of :data:`SELECT` (less ``ts_raw``) with the types dlt gave them before.
EVENTS_DDL = f"""
create table if not exists {EVENTS_TABLE} (
    message_id varchar, "type" varchar, event varchar, anonymous_id varchar,
    user_id varchar, "timestamp" timestamptz, received_at timestamptz, page_path varchar,
    page_url varchar, page_referrer varchar, utm_source varchar, utm_medium varchar,
    utm_campaign varchar, user_agent varchar, ip varchar, page_search varchar,
    form_id varchar, content_id varchar, referral_code varchar,
    traits_referral_code varchar, traits_email varchar, revenue double, order_id varchar,
    consent_preferences varchar, properties varchar, context varchar, traits varchar,
    source_file varchar
)"""
#: The quarantine table of every source (``_dlt_load_id`` and ``_dlt_id`` as dlt names
#: them, so one query reads every source's quarantine).
QUARANTINE_DDL = f"""
create table if not exists {QUARANTINE} (
    quarantine_id varchar, source varchar, entity varchar, record_key varchar,
    reason varchar, payload varchar, quarantined_at timestamptz, _dlt_load_id varchar,
    _dlt_id varchar
)"""
FILES_DDL = f"""
create table if not exists {FILES_TABLE} (
    path varchar primary key, size_bytes bigint, mtime_ns bigint, load_id varchar,
    loaded_at timestamptz, events bigint, quarantined bigint
)"""
#: What makes an event loadable; the rest go to quarantine.
LOADABLE = "message_id is not null and type is not null and timestamp is not null"
BATCH = "_segment_batch"
#: Compressed bytes of landing files read per batch (one transaction each).
BATCH_BYTES = 32 << 20


def landing_root(conn_id: str = "segment_default") -> tuple[Path, str]:
    ep = get_endpoint(conn_id)
    return Path(ep.extra["path"]), ep.extra.get("source_id", "web")


def list_files(root: Path, source_id: str) -> list[Path]:
    return sorted((root / source_id).glob("*/*.jsonl.gz"))


def load(
    conn_id: str = "segment_default",
    *,
    full_refresh: bool = False,
    batch_bytes: int | None = None,
) -> dict[str, int]:
    """Load the new or changed landing files into ``raw_segment``; return rows read per
    table in this run (``events``, ``quarantine``; a table with none is left out), as
    :func:`~lifecycle.sources.common.run_source` does for the dlt sources.

    ``full_refresh`` drops the tables and the files' record and reads every file again
    (in the first batch's transaction, so readers never see an empty table).
    """
    from lifecycle.warehouse import connect  # noqa: PLC0415

    root, source_id = landing_root(conn_id)
    load_id = str(time.time())  # dlt's form, so ids sort with the other sources'
    con = connect()
    try:
        # rows need no order (the merge picks by file): lets DuckDB insert in parallel
        con.execute("set preserve_insertion_order = false")
        _ensure_tables(con)
        seen = {} if full_refresh else _loaded(con)
        todo = []
        for f in list_files(root, source_id):
            st = f.stat()
            key = f.relative_to(root).as_posix()
            if seen.get(key) != (st.st_size, st.st_mtime_ns):
                todo.append((f, key, st.st_size, st.st_mtime_ns))
        log.info("segment: %d new or changed files under %s", len(todo), root / source_id)
        totals = {"events": 0, QUARANTINE_TABLE: 0}
        reset = full_refresh
        done = 0
        for chunk in _batches(todo, batch_bytes or BATCH_BYTES):
            good, bad = _load_batch(con, chunk, load_id, reset=reset)
            reset = False
            done += len(chunk)
            totals["events"] += good
            totals[QUARANTINE_TABLE] += bad
            log.info(
                "segment: read %d/%d files, %d events, %d quarantined", done, len(todo), good, bad
            )
        if reset:  # a full refresh with no files: still start from nothing
            _in_transaction(con, lambda: _reset(con))
    finally:
        con.execute("reset preserve_insertion_order")
        con.close()
    counts = {k: v for k, v in totals.items() if v}
    log_loaded(SOURCE, counts)
    return counts


def _ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {SCHEMA}")
    for ddl in (EVENTS_DDL, QUARANTINE_DDL, FILES_DDL):
        con.execute(ddl)
    # a quarantine table made by dlt has no record_key when no record had one
    con.execute(f"alter table {QUARANTINE} add column if not exists record_key varchar")


def _reset(con: duckdb.DuckDBPyConnection) -> None:
    for table in (EVENTS_TABLE, QUARANTINE, FILES_TABLE):
        con.execute(f"drop table if exists {table}")
    _ensure_tables(con)


def _loaded(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int]]:
    rows = con.execute(f"select path, size_bytes, mtime_ns from {FILES_TABLE}").fetchall()
    return {path: (size, mtime) for path, size, mtime in rows}


def _in_transaction(con: duckdb.DuckDBPyConnection, work):
    con.begin()
    try:
        out = work()
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return out


def _read_sql(files: list[Path]) -> str:
    """The batch's events: one row per line, its fields and objects, and the file.

    Each line is read as text (DuckDB's CSV reader, one column) and parsed once per
    list of JSON paths, not once per column: the same rows as DuckDB's JSON reader
    with these columns and ``ignore_errors`` gave, in less time.
    A line that is not JSON gives a row of nulls (quarantined as malformed), as that
    reader's ``ignore_errors`` did: ``try()`` turns the parse error into nulls, so each
    line is parsed twice (text fields, objects), not three times (a ``json_valid``
    first cost a third of the parse).
    """
    file_list = ", ".join("'{}'".format(f.as_posix().replace("'", "''")) for f in files)
    text_paths = ", ".join(f"'{p}'" for p in TEXT_FIELDS.values())
    json_paths = ", ".join(f"'{p}'" for p in JSON_FIELDS.values())
    columns = []
    for i, name in enumerate(TEXT_FIELDS, start=1):
        value = f"v[{i}]"
        cast = CASTS.get(name)
        columns.append(f"try_cast({value} as {cast}) as {name}" if cast else f"{value} as {name}")
        if name == "ts_raw":
            columns.append(f'try_cast({value} as timestamptz) as "timestamp"')
    for i, name in enumerate(JSON_FIELDS, start=1):
        # a whole object sent as null is SQL null (as DuckDB's JSON reader gave it)
        value = f"nullif(j[{i}]::varchar, 'null')" if name in WHOLE else f"j[{i}]::varchar"
        columns.append(f"{value} as {name}")
    return f"""
        select {", ".join(columns)}, filename as source_file
        from (
            select filename,
                   try(json_extract_string(line, [{text_paths}])) as v,
                   try(json_extract(line, [{json_paths}])) as j
            from read_csv([{file_list}], columns={{'line': 'VARCHAR'}}, header=false,
                          auto_detect=false, delim=e'\\x01', quote='', escape='',
                          filename=true, max_line_size={MAX_LINE_BYTES})
            where line is not null
        )"""


def _load_batch(
    con: duckdb.DuckDBPyConnection,
    chunk: list[tuple[Path, str, int, int]],
    load_id: str,
    *,
    reset: bool = False,
) -> tuple[int, int]:
    """Merge one batch of files in one transaction; return (events read, quarantined)."""

    def work() -> tuple[int, int]:
        if reset:
            _reset(con)
        con.execute(f"create or replace temp table {BATCH} as {_read_sql([c[0] for c in chunk])}")
        con.execute(
            f"delete from {EVENTS_TABLE} where message_id in "
            f"(select message_id from {BATCH} where {LOADABLE})"
        )
        con.execute(
            f"""insert into {EVENTS_TABLE} by name
                select * exclude (ts_raw) from {BATCH} where {LOADABLE}
                qualify row_number() over (partition by message_id order by source_file desc) = 1"""
        )
        bad = _quarantine(con, load_id)
        per_file = {
            path: (good, quarantined)
            for path, good, quarantined in con.execute(
                f"select source_file, count(*) filter ({LOADABLE}), "
                f"count(*) filter (not ({LOADABLE})) from {BATCH} group by 1"
            ).fetchall()
        }
        now = datetime.now(UTC)
        con.executemany(
            f"insert or replace into {FILES_TABLE} values (?, ?, ?, ?, ?, ?, ?)",
            [
                [key, size, mtime, load_id, now, *per_file.get(f.as_posix(), (0, 0))]
                for f, key, size, mtime in chunk
            ],
        )
        con.execute(f"drop table {BATCH}")
        return sum(g for g, _ in per_file.values()), bad

    return _in_transaction(con, work)


def _batches(todo: list[tuple[Path, str, int, int]], batch_bytes: int) -> Iterator[list]:
    """Consecutive files up to ``batch_bytes`` compressed: few large batches, bounded
    memory (a day of a million-contact world is one batch on its own)."""
    chunk: list = []
    size = 0
    for item in todo:
        n = item[2]
        if chunk and size + n > batch_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _quarantine(con: duckdb.DuckDBPyConnection, load_id: str) -> int:
    """Write the batch's unloadable events to quarantine (merged on ``quarantine_id``);
    return how many there were."""
    cur = con.execute(f"select * from {BATCH} where not ({LOADABLE})")
    names = [d[0] for d in cur.description]
    bad = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    rows = {}
    for row in bad:
        missing = [c for c in ("message_id", "type") if not row.get(c)]
        if not any(row.get(c) for c in ("message_id", "type", "ts_raw", "anonymous_id")):
            reason = f"malformed JSON line in {row.get('source_file')}"
        elif missing:
            reason = f"missing required field '{missing[0]}'"
        else:
            reason = f"field 'timestamp' expected timestamp, got {row.get('ts_raw')!r}"
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        q = quarantine_row(SOURCE, "events", row, reason, row.get("message_id"))
        rows[q["quarantine_id"]] = q
    if rows:
        con.execute(
            f"delete from {QUARANTINE} where quarantine_id in ({', '.join('?' * len(rows))})",
            list(rows),
        )
        con.executemany(
            f"""insert into {QUARANTINE} (quarantine_id, source, entity, record_key, reason,
                    payload, quarantined_at, _dlt_load_id, _dlt_id)
                values (?, ?, ?, ?, ?, ?, ?::timestamptz, ?, ?)""",
            [
                [
                    *(q[c] for c in ("quarantine_id", "source", "entity", "record_key")),
                    q["reason"],
                    q["payload"],
                    q["quarantined_at"],
                    load_id,
                    secrets.token_urlsafe(10),
                ]
                for q in rows.values()
            ],
        )
    return len(bad)
