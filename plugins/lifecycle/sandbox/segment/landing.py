"""The emulated Segment object-storage destination: daily folders of JSONL.gz batches.

Web events of a simulated world land as ``<root>/web/<yyyy-mm-dd>/<batch>.jsonl.gz``,
as Segment's storage destinations deliver them (late files, appends and re-deliveries
included when asked for).
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lifecycle.sandbox.world import DAY, UA_CRAWLER, UA_MOBILE, UA_SCANNER, USER_AGENTS, World

log = logging.getLogger(__name__)

SEGMENT_SOURCE_ID = "web"


#: With anomalies on, about 1 event in 50 arrives in a late file for its day (visible 3
#: days after the day), 1 in 50 is appended to the day's first file 2 days later, and
#: every tenth day's first file is delivered twice.
LATE_BUCKET, APPEND_BUCKET, BUCKETS = 0, 1, 50
LATE_AFTER_S, APPEND_AFTER_S = 3 * DAY, 2 * DAY


#: Batch files of a day: the regular one and, with anomalies, the late one.
SEGMENT_FILES = np.array(["batch-0001", "batch-late"], dtype=object)
#: Events per DuckDB COPY when landing: bounds memory (about 1.5 GB per million events).
LANDING_CHUNK_EVENTS = 1_000_000


def _segment_layout(world: World, now: float, anomalies: bool) -> dict[str, np.ndarray]:
    """Where every event landed before ``now`` sits: row, received time, day, file.

    Arrays only (no copy of the event table), so a 24-million-event world is laid out
    in seconds. ``day`` is the received day number (epoch days), ``file`` an index into
    :data:`SEGMENT_FILES`.
    """
    ts = world.events.ts.to_numpy()
    received = ts + 0.25 + (ts % 3)
    day = np.floor(received / DAY).astype(np.int64)
    file = np.zeros(len(ts), dtype=np.int8)
    landed = received
    if anomalies:
        bucket = np.random.default_rng(world.config.seed + 1).integers(0, BUCKETS, len(ts))
        file[bucket == LATE_BUCKET] = 1
        landed = np.where(bucket == LATE_BUCKET, day * DAY + LATE_AFTER_S, landed)
        landed = np.where(bucket == APPEND_BUCKET, day * DAY + APPEND_AFTER_S, landed)
    rows = np.flatnonzero(landed < now)
    return {
        "row": rows,
        "received": received[rows],
        "day": day[rows],
        "file": file[rows],
        "landed": landed[rows],
    }


def _day_names(days: np.ndarray) -> np.ndarray:
    """``yyyy-mm-dd`` of epoch day numbers (formatted once per distinct day)."""
    uniq, inverse = np.unique(days, return_inverse=True)
    names = pd.to_datetime(uniq * DAY, unit="s", utc=True).strftime("%Y-%m-%d")
    return np.asarray(names, dtype=object)[inverse]


def _segment_rows(world: World, layout: dict[str, np.ndarray], sel=slice(None)) -> pd.DataFrame:
    ev = world.events.iloc[layout["row"][sel]]
    return ev.assign(
        received=layout["received"][sel],
        day=_day_names(layout["day"][sel]),
        file=SEGMENT_FILES[layout["file"][sel]],
        landed=layout["landed"][sel],
        user_agent=USER_AGENTS[ev.ua.to_numpy()],
        ip=event_ips(ev.anonymous_id.to_numpy(dtype=str), ev.ua.to_numpy()),
    )


def event_ips(anonymous_id: np.ndarray, ua: np.ndarray) -> np.ndarray:
    """``context.ip`` of each event, stable per device: home broadband for desktops,
    carrier NAT for phones, the crawlers' and scanners' own ranges for bots."""
    h = pd.util.hash_array(anonymous_id.astype(object)).astype(np.int64) & 0xFFFFFF
    b, c = (h >> 8) % 250, h % 253 + 1
    first = np.where(
        ua >= UA_SCANNER,
        "64.235",
        np.where(ua >= UA_CRAWLER, "66.249", np.where(ua >= UA_MOBILE, "100.72", "86.12")),
    )
    return np.char.add(
        np.char.add(np.char.add(first, "."), b.astype(str)), np.char.add(".", c.astype(str))
    ).astype(object)


def segment_frame(world: World, now: float, anomalies: bool = False) -> pd.DataFrame:
    """Web events that have landed in the bucket before ``now``.

    Columns added: ``received`` (epoch s), ``day`` (received day, ``yyyy-mm-dd``),
    ``file`` (batch file name in that day's folder) and ``landed`` (when it appears).
    """
    return _segment_rows(world, _segment_layout(world, now, anomalies))


# One Segment-spec event per row; JSON-typed columns keep each type's own keys.
_SEGMENT_SQL = """
select
    "type",
    message_id as messageId,
    anonymous_id as anonymousId,
    user_id as userId,
    strftime(to_timestamp(ts)::timestamp, '%Y-%m-%dT%H:%M:%S.%g') || 'Z' as "timestamp",
    strftime(to_timestamp(received)::timestamp, '%Y-%m-%dT%H:%M:%S.%g') || 'Z' as receivedAt,
    case when "type" = 'track' then event end as event,
    case when "type" = 'page' then coalesce(nullif(trim(path, '/'), ''), 'home') end as name,
    struct_pack(
        page := struct_pack(
            path := path,
            url := 'https://www.example.com' || path
                || case when "type" = 'page' and detail is not null then '?' || detail else '' end,
            referrer := null::varchar,
            title := coalesce(nullif(trim(path, '/'), ''), 'home'),
            search := case when "type" = 'page' and detail is not null
                then '?' || detail else '' end
        ),
        campaign := case when utm_source is null then '{}'::json
            else json_object('source', utm_source, 'medium', utm_medium, 'name', utm_campaign)
            end,
        userAgent := user_agent,
        ip := ip,
        consent := case when consent is not null
            then json_object('categoryPreferences', consent::json) end
    ) as context,
    case
        when "type" = 'page' then json_object('path', path)
        when "type" = 'track' and order_id is not null then
            json_object('order_id', order_id, 'revenue', revenue, 'currency', 'USD')
        when "type" = 'track' and event = 'Form Submitted' then json_object('form_id', detail)
        when "type" = 'track' and event = 'Content Downloaded' then
            json_object('content_id', detail)
        when "type" = 'track' and event = 'Signed Up' and detail is not null then
            json_object('referral_code', detail)
        when "type" = 'track' then '{}'::json
    end as properties,
    case when "type" = 'identify' then
        case when detail is null then json_object('email', email)
            else json_object('email', email, 'referral_code', detail) end
    end as traits
from ev
order by day, file, ts, message_id
"""


def write_segment_files(
    world: World, root: Path, now: float, *, anomalies: bool = False
) -> dict[str, int]:
    """Land Segment-spec daily partitions ``<root>/web/<yyyy-mm-dd>/<batch>.jsonl.gz``.

    Returns {day: events landed}. A landing folder is append-only: a call after the
    clock moved writes only files that are new or grew (a manifest remembers what each
    file holds), atomically (write aside, then rename). With ``anomalies`` the folder
    also gets late files, events appended to a past day's file and duplicated files,
    as object-storage deliveries do. Written by DuckDB's COPY (JSON built in SQL, not
    in Python) in chunks of about :data:`LANDING_CHUNK_EVENTS` events, so memory stays
    bounded and the log shows progress; the manifest is saved after every chunk.
    """
    layout = _segment_layout(world, now, anomalies)
    base = root / SEGMENT_SOURCE_ID
    base.mkdir(parents=True, exist_ok=True)
    manifest_path = base / ".manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    key = layout["day"] * len(SEGMENT_FILES) + layout["file"]
    keys, per_key = np.unique(key, return_counts=True)
    names = [
        (d, str(f))
        for d, f in zip(
            _day_names(keys // len(SEGMENT_FILES)),
            SEGMENT_FILES[keys % len(SEGMENT_FILES)],
            strict=True,
        )
    ]
    todo = [
        i
        for i, ((d, f), n) in enumerate(zip(names, per_key, strict=True))
        if manifest.get(f"{d}/{f}.jsonl.gz") != int(n) or not (base / d / f"{f}.jsonl.gz").exists()
    ]
    chunks = _chunks(todo, per_key, LANDING_CHUNK_EVENTS)
    written = 0

    def done(c: int, chunk: list[int], job: Future) -> None:
        nonlocal written
        job.result()
        for i in chunk:
            d, f = names[i]
            manifest[f"{d}/{f}.jsonl.gz"] = int(per_key[i])
        # the manifest follows every chunk: a crash leaves it true for what is on disk
        manifest_path.write_text(json.dumps(manifest, sort_keys=True))
        n = int(per_key[chunk].sum())
        written += n
        log.info(
            "segment landing: chunk %d/%d, %d files, %d events (%d of %d)",
            c,
            len(chunks),
            len(chunk),
            n,
            written,
            int(per_key[todo].sum()),
        )

    # DuckDB renders chunk k+1 while a thread compresses chunk k (both release the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segment-gzip") as gzipper:
        pending = None
        for c, chunk in enumerate(chunks, 1):
            sel = np.flatnonzero(np.isin(key, keys[chunk]))
            staging = base / f".staging-{os.getpid()}-{c}.json"
            _render_json(_segment_rows(world, layout, sel), staging)
            if pending is not None:
                done(*pending)
            files = [(*names[i], int(per_key[i])) for i in chunk]
            pending = (c, chunk, gzipper.submit(_cut_into_batches, staging, base, files))
        if pending is not None:
            done(*pending)
    days = sorted({d for d, _ in names})
    if anomalies:
        for d in days:
            day_ts = _epoch_day(d)
            dup = base / d / "batch-0001-redelivered.jsonl.gz"
            if (day_ts // DAY) % 10 == 3 and day_ts + APPEND_AFTER_S < now and not dup.exists():
                shutil.copyfile(base / d / "batch-0001.jsonl.gz", dup)
    manifest_path.write_text(json.dumps(manifest, sort_keys=True))
    log.info("segment landing: %d files written under %s", len(todo), base)
    per_day: dict[str, int] = {}
    for (d, _), n in zip(names, per_key, strict=True):
        per_day[d] = per_day.get(d, 0) + int(n)
    return per_day


def _chunks(todo: list[int], sizes: np.ndarray, limit: int) -> list[list[int]]:
    """Consecutive groups of files holding at most ``limit`` events (or one bigger file)."""
    chunks: list[list[int]] = []
    total = 0
    for i in todo:
        if not chunks or total + sizes[i] > limit:
            chunks.append([])
            total = 0
        chunks[-1].append(i)
        total += int(sizes[i])
    return chunks


_LANDING_COLUMNS = [
    "day",
    "file",
    "type",
    "message_id",
    "anonymous_id",
    "user_id",
    "ts",
    "received",
    "event",
    "path",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "email",
    "revenue",
    "order_id",
    "detail",
    "user_agent",
    "ip",
    "consent",
]


def _render_json(ev: pd.DataFrame, staging: Path) -> None:
    """Write events as one Segment-spec JSON-lines file ordered by day, file and time.

    One ordered file keeps each batch in time order, which DuckDB's partitioned write
    with several threads does not; :func:`_cut_into_batches` then splits it.
    """
    if "consent" not in ev.columns:  # a world without consent-banner events
        ev = ev.assign(consent=None)
    ev = ev[_LANDING_COLUMNS].copy()
    # Text columns as objects with real None: pandas' string dtype keeps missing
    # values as NaN, which DuckDB would write as the string "NaN".
    for c in _LANDING_COLUMNS:
        if c not in ("ts", "received", "revenue"):
            ev[c] = ev[c].astype(object).where(ev[c].notna(), None)
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.register("ev", ev)
        con.execute(f"copy ({_SEGMENT_SQL}) to '{staging.as_posix()}' (format json)")
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        con.close()


def _cut_into_batches(staging: Path, base: Path, files: list[tuple[str, str, int]]) -> None:
    """Cut a rendered chunk into its ``(day, file, events)`` batch files, atomically each."""
    try:
        with open(staging, "rb") as src:
            for d, f, n in files:
                target = base / d / f"{f}.jsonl.gz"
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp")
                # DuckDB's own gzip is several times slower than zlib level 1 here
                with gzip.open(tmp, "wb", compresslevel=1) as out:
                    # one write per file: a write per line costs more than the gzip
                    out.write(b"".join(itertools.islice(src, n)))
                os.replace(tmp, target)
            if src.read(1):
                raise RuntimeError(f"{staging}: more events rendered than the batch files hold")
    finally:
        staging.unlink(missing_ok=True)


def _epoch_day(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
