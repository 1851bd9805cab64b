"""Segment-spec web events from daily partitions of gzipped JSON lines.

Files live at ``<root>/<source_id>/<yyyy-mm-dd>/<batch>.jsonl.gz``. Every column the
warehouse reads is selected with its type (absent fields land as typed nulls), among
them ``consent_preferences``: the JSON of ``context.consent.categoryPreferences``
(Segment's consent object, on the ``Segment Consent Preference Updated`` event and on
any event a consent manager stamps). Each run reads the
files that are new or changed since the last run (path + size + mtime kept in dlt
state), with DuckDB straight into Arrow (no Python dict per event), and merges on
``message_id`` so a duplicated file or a re-run never duplicates an event. Events
without ``messageId``, ``type`` or a parseable ``timestamp`` go to quarantine.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dlt
import duckdb

from lifecycle.connections import get_endpoint

log = logging.getLogger(__name__)

SOURCE = "segment"
# Columns we model. The spec's free-form objects (context, traits, properties) are also
# kept whole as JSON, so new fields inside them are never lost (schema drift is kept).
SELECT = """
    messageId::varchar                          as message_id,
    "type"::varchar                             as type,
    try_cast(event as varchar)                  as event,
    anonymousId::varchar                        as anonymous_id,
    try_cast(userId as varchar)                 as user_id,
    try_cast("timestamp" as varchar)            as ts_raw,
    try_cast("timestamp" as timestamptz)        as timestamp,
    try_cast(receivedAt as timestamptz)         as received_at,
    try_cast(json_extract_string(to_json(context), '$.page.path') as varchar)     as page_path,
    try_cast(json_extract_string(to_json(context), '$.page.url') as varchar)      as page_url,
    try_cast(json_extract_string(to_json(context), '$.page.referrer') as varchar) as page_referrer,
    json_extract_string(to_json(context), '$.campaign.source')  as utm_source,
    json_extract_string(to_json(context), '$.campaign.medium')  as utm_medium,
    json_extract_string(to_json(context), '$.campaign.name')    as utm_campaign,
    json_extract_string(to_json(context), '$.userAgent')        as user_agent,
    json_extract_string(to_json(context), '$.ip')               as ip,
    json_extract_string(to_json(context), '$.page.search')      as page_search,
    json_extract_string(to_json(properties), '$.form_id')       as form_id,
    json_extract_string(to_json(properties), '$.content_id')    as content_id,
    json_extract_string(to_json(properties), '$.referral_code') as referral_code,
    json_extract_string(to_json(traits), '$.referral_code')     as traits_referral_code,
    json_extract_string(to_json(traits), '$.email')             as traits_email,
    try_cast(json_extract_string(to_json(properties), '$.revenue') as double) as revenue,
    json_extract_string(to_json(properties), '$.order_id')      as order_id,
    json_extract(to_json(context), '$.consent.categoryPreferences')::varchar
                                                as consent_preferences,
    to_json(properties)::varchar                as properties,
    to_json(context)::varchar                   as context,
    to_json(traits)::varchar                    as traits,
    filename                                    as source_file
"""


def landing_root(conn_id: str = "segment_default") -> tuple[Path, str]:
    ep = get_endpoint(conn_id)
    return Path(ep.extra["path"]), ep.extra.get("source_id", "web")


def list_files(root: Path, source_id: str) -> list[Path]:
    return sorted((root / source_id).glob("*/*.jsonl.gz"))


def _read(files: list[Path]):
    con = duckdb.connect()
    file_list = ", ".join(f"'{f.as_posix()}'" for f in files)
    rel = con.sql(
        f"""select {SELECT} from read_json([{file_list}], format='newline_delimited',
                 filename=true, union_by_name=true, ignore_errors=true,
                 columns={{messageId:'VARCHAR', type:'VARCHAR', event:'VARCHAR',
                          anonymousId:'VARCHAR', userId:'VARCHAR', timestamp:'VARCHAR',
                          receivedAt:'VARCHAR', context:'JSON', traits:'JSON',
                          properties:'JSON'}})"""
    )
    table = rel.arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    return con, table


@dlt.resource(name="events", primary_key="message_id", write_disposition="merge")
def events(conn_id: str = "segment_default", batch_bytes: int = 32 << 20):
    """New or changed event files as Arrow tables; bad events to quarantine."""
    import pyarrow.compute as pc  # noqa: PLC0415

    root, source_id = landing_root(conn_id)
    state = dlt.current.resource_state()
    seen: dict = state.setdefault("files", {})
    todo = []
    for f in list_files(root, source_id):
        st = f.stat()
        sig = f"{st.st_size}:{int(st.st_mtime)}"
        key = f.relative_to(root).as_posix()
        if seen.get(key) != sig:
            todo.append((f, key, sig))
    log.info("segment: %d new or changed files under %s", len(todo), root / source_id)
    done = 0
    for chunk in _batches(todo, batch_bytes):
        done += len(chunk)
        con, table = _read([f for f, _, _ in chunk])
        ok = pc.and_(
            pc.and_(pc.is_valid(table["message_id"]), pc.is_valid(table["type"])),
            pc.is_valid(table["timestamp"]),
        )
        good = table.filter(ok).drop_columns(["ts_raw"])
        bad = table.filter(pc.invert(ok))
        if good.num_rows:
            yield good
        if bad.num_rows:
            yield from _quarantine(bad)
        con.close()
        for _, key, sig in chunk:
            seen[key] = sig
        log.info(
            "segment: read %d/%d files, %d events, %d quarantined",
            done,
            len(todo),
            good.num_rows,
            bad.num_rows,
        )


def _batches(todo: list[tuple[Path, str, str]], batch_bytes: int):
    """Consecutive files up to ``batch_bytes`` compressed: few large Arrow tables, bounded
    memory (a day of a million-contact world is one batch on its own)."""
    chunk: list = []
    size = 0
    for item in todo:
        n = item[0].stat().st_size
        if chunk and size + n > batch_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _quarantine(bad):
    from lifecycle.sources.common import quarantined  # noqa: PLC0415

    for row in bad.to_pylist():
        missing = [c for c in ("message_id", "type") if not row.get(c)]
        if not any(row.get(c) for c in ("message_id", "type", "ts_raw", "anonymous_id")):
            reason = f"malformed JSON line in {row.get('source_file')}"
        elif missing:
            reason = f"missing required field '{missing[0]}'"
        else:
            reason = f"field 'timestamp' expected timestamp, got {row.get('ts_raw')!r}"
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        yield quarantined(SOURCE, "events", row, reason, row.get("message_id"))


@dlt.source(name="segment")
def segment_source(conn_id: str = "segment_default"):
    """Web tracking events (identify, page, track) from the landing folder."""
    return events(conn_id)
