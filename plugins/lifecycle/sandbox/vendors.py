"""What each emulated vendor holds, derived from a simulated world as of its clock.

These functions turn the world's tables into the records a vendor API returns, in the
vendor's own shapes (HubSpot properties are strings, Mailchimp members carry a
subscriber hash, ...). The HTTP layer in ``app.py`` only pages and authenticates.
"""

from __future__ import annotations

import gzip
import hashlib
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

from lifecycle.sandbox.world import DAY, HUBSPOT_STAGE, World

log = logging.getLogger(__name__)

SEGMENT_SOURCE_ID = "web"
MAILCHIMP_LIST_ID = "lst0001"
HS_STAGE_DATE_PROPS = {
    "subscriber": "hs_lifecyclestage_subscriber_date",
    "lead": "hs_lifecyclestage_lead_date",
    "mql": "hs_lifecyclestage_marketingqualifiedlead_date",
    "sql": "hs_lifecyclestage_salesqualifiedlead_date",
    "opportunity": "hs_lifecyclestage_opportunity_date",
    "customer": "hs_lifecyclestage_customer_date",
    "advocate": "hs_lifecyclestage_evangelist_date",
}


def iso(ts: float | None) -> str | None:
    """Epoch seconds to the vendors' ISO-8601 UTC form with milliseconds."""
    if ts is None or (isinstance(ts, float) and np.isnan(ts)):
        return None
    return datetime.fromtimestamp(float(ts), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _iso_array(a: np.ndarray) -> np.ndarray:
    s = pd.to_datetime(pd.Series(a), unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = s.str.slice(0, 23) + "Z"
    return np.where(np.isnan(a.astype(float)), None, out.to_numpy(dtype=object))


def _py(v):
    """A JSON-safe Python value (numpy scalars unwrapped, NaN and NaT as None)."""
    if v is None:
        return None
    if isinstance(v, float | np.floating) and np.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _records(cols: dict[str, np.ndarray]) -> list[dict]:
    """Column arrays to a list of JSON-safe dicts (no pandas: it would turn None into NaN)."""
    names = list(cols)
    n = max(np.size(v) if not isinstance(v, str) else 1 for v in cols.values())
    arrays = [np.broadcast_to(np.asarray(cols[k], dtype=object), (n,)) for k in names]
    rows = zip(*arrays, strict=True)
    return [{k: _py(v) for k, v in zip(names, row, strict=True)} for row in rows]


def hubspot_contacts(world: World, now: float) -> list[dict]:
    """HubSpot CRM v3 contact objects as the list endpoint returns them, sorted by id."""
    c = world.contacts
    c = c[c.subscriber_at.to_numpy() < now]
    comp = world.companies.set_index("company_id").name
    props: dict[str, np.ndarray] = {
        "hs_object_id": c.hubspot_id.to_numpy(),
        "email": c.email_typed.to_numpy(),
        "firstname": c.firstname.to_numpy(),
        "lastname": c.lastname.to_numpy(),
        "phone": c.phone.to_numpy(),
        "country": c.country.to_numpy(),
        "jobtitle": c.jobtitle.to_numpy(),
        "company": comp.reindex(c.company_id).to_numpy(),
        "associatedcompanyid": c.company_id.to_numpy(),
        "createdate": _iso_array(c.subscriber_at.to_numpy()),
    }
    stage = np.full(len(c), "subscriber", dtype=object)
    modified = c.subscriber_at.to_numpy().copy()
    for name, prop in HS_STAGE_DATE_PROPS.items():
        t = c[f"{name}_at"].to_numpy()
        reached = np.nan_to_num(t, nan=np.inf) < now
        props[prop] = np.where(reached, _iso_array(t), None)
        stage[reached] = HUBSPOT_STAGE[name]
        modified = np.where(reached, np.fmax(modified, t), modified)
    for extra in ("unsubscribed_at", "cleaned_at"):
        t = c[extra].to_numpy()
        modified = np.where(np.nan_to_num(t, nan=np.inf) < now, np.fmax(modified, t), modified)
    props["lifecyclestage"] = stage
    props["lastmodifieddate"] = _iso_array(modified)
    created = props["createdate"]
    updated = props["lastmodifieddate"]
    records = _records(props)
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": created[i],
            "updatedAt": updated[i],
            "archived": False,
        }
        for i, r in enumerate(records)
    ]


def hubspot_companies(world: World, now: float) -> list[dict]:
    """Companies: created with their first visitor, modified when a contact joins them."""
    comp = world.companies
    people = world.contacts
    first_seen = people.groupby("company_id").first_seen_at.min()
    joined = people[people.subscriber_at.to_numpy() < now].groupby("company_id").subscriber_at.max()
    created = first_seen.reindex(comp.company_id).fillna(float(world.start_ts)).to_numpy()
    modified = np.fmax(created, joined.reindex(comp.company_id).to_numpy())
    frame = _records(
        {
            "hs_object_id": comp.company_id.to_numpy(),
            "name": comp.name.to_numpy(),
            "domain": comp.domain.to_numpy(),
            "industry": comp.industry.to_numpy(),
            "numberofemployees": comp.numberofemployees.to_numpy().astype(str),
            "country": comp.country.to_numpy(),
            "createdate": _iso_array(created),
            "hs_lastmodifieddate": _iso_array(modified),
        }
    )
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": r["createdate"],
            "updatedAt": r["hs_lastmodifieddate"],
            "archived": False,
        }
        for r in frame
    ]


def hubspot_associations(world: World, now: float) -> dict[tuple[str, str], dict[str, list[str]]]:
    """``{(from, to): {from_id: [to_id, ...]}}`` for deals, contacts and companies."""
    c = world.contacts[world.contacts.subscriber_at.to_numpy() < now]
    d = world.deals[world.deals.createdate.to_numpy() < now]
    company_of = dict(zip(world.contacts.hubspot_id, world.contacts.company_id, strict=True))
    deal_contact = dict(zip(d.deal_id, d.hubspot_contact_id, strict=True))
    out: dict[tuple[str, str], dict[str, list[str]]] = {
        ("deals", "contacts"): {k: [v] for k, v in deal_contact.items()},
        ("deals", "companies"): {k: [company_of[v]] for k, v in deal_contact.items()},
        ("contacts", "companies"): {
            k: [v] for k, v in zip(c.hubspot_id, c.company_id, strict=True)
        },
    }
    for (a, b), m in list(out.items()):
        rev: dict[str, list[str]] = {}
        for k, vs in m.items():
            for v in vs:
                rev.setdefault(v, []).append(k)
        out[(b, a)] = rev
    return out


def hubspot_deals(world: World, now: float) -> list[dict]:
    d = world.deals
    d = d[d.createdate.to_numpy() < now]
    won = np.nan_to_num(d.won_at.to_numpy(), nan=np.inf) < now
    lost = np.nan_to_num(d.lost_at.to_numpy(), nan=np.inf) < now
    stage = np.where(won, "closedwon", np.where(lost, "closedlost", "presentationscheduled"))
    close = np.where(won | lost, d.closedate.to_numpy(), np.nan)
    modified = np.fmax(d.createdate.to_numpy(), close)
    frame = _records(
        {
            "hs_object_id": d.deal_id.to_numpy(),
            "dealname": np.char.add("Deal ", d.deal_id.to_numpy().astype(str)),
            "dealstage": stage,
            "pipeline": "default",
            "amount": np.char.mod("%.2f", d.amount.to_numpy()),
            "createdate": _iso_array(d.createdate.to_numpy()),
            "closedate": _iso_array(close),
            "hs_lastmodifieddate": _iso_array(modified),
        }
    )
    contact = d.hubspot_contact_id.to_numpy()
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": r["createdate"],
            "updatedAt": r["hs_lastmodifieddate"],
            "archived": False,
            "associations": {
                "contacts": {"results": [{"id": contact[i], "type": "deal_to_contact"}]}
            },
        }
        for i, r in enumerate(frame)
    ]


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def mailchimp_members(world: World, now: float) -> list[dict]:
    c = world.contacts
    c = c[c.subscriber_at.to_numpy() < now]
    unsub = np.nan_to_num(c.unsubscribed_at.to_numpy(), nan=np.inf)
    cleaned = np.nan_to_num(c.cleaned_at.to_numpy(), nan=np.inf)
    status = np.where(cleaned < now, "cleaned", np.where(unsub < now, "unsubscribed", "subscribed"))
    changed = c.subscriber_at.to_numpy()
    changed = np.where(unsub < now, np.fmax(changed, unsub), changed)
    changed = np.where(cleaned < now, np.fmax(changed, cleaned), changed)
    signup = _iso_array(c.subscriber_at.to_numpy())
    changed_iso = _iso_array(changed)
    out = []
    for i, (email, first, last, ad) in enumerate(
        zip(
            c.email.to_numpy(),
            c.firstname.to_numpy(),
            c.lastname.to_numpy(),
            c.ad_consent.to_numpy(),
            strict=True,
        )
    ):
        out.append(
            {
                "id": subscriber_hash(email),
                "email_address": email,
                "status": str(status[i]),
                "merge_fields": {"FNAME": first, "LNAME": last},
                "timestamp_signup": signup[i],
                "last_changed": changed_iso[i],
                "list_id": MAILCHIMP_LIST_ID,
                "marketing_permissions": [
                    {"marketing_permission_id": "perm_email", "text": "Email", "enabled": True},
                    {
                        "marketing_permission_id": "perm_ads",
                        "text": "Customized online advertising",
                        "enabled": bool(ad),
                    },
                ],
            }
        )
    return out


def mailchimp_campaigns(world: World, now: float) -> list[dict]:
    cp = world.campaigns
    cp = cp[cp.send_time.to_numpy() < now]
    return [
        {
            "id": r.campaign_id,
            "type": "regular",
            "status": "sent",
            "send_time": iso(r.send_time),
            "settings": {"subject_line": r.subject},
            "recipients": {"list_id": MAILCHIMP_LIST_ID},
        }
        for r in cp.itertuples(index=False)
    ]


def mailchimp_activity(
    world: World, now: float, campaign_id: str | None = None
) -> dict[str, list[dict]]:
    """Email activity per campaign (or of one): an entry per recipient with their actions."""
    a = world.email_activity
    keep = a.ts.to_numpy() < now
    if campaign_id is not None:
        keep &= (a.campaign_id == campaign_id).to_numpy()
    a = a[keep]
    if a.empty:
        return {}
    a = a.sort_values(["campaign_id", "person", "ts"], kind="stable")
    camp = a.campaign_id.to_numpy()
    person = a.person.to_numpy()
    emails = world.contacts.email.to_numpy()
    hashes = {p: subscriber_hash(emails[p]) for p in np.unique(person)}
    actions = [
        {"action": x, "timestamp": t, "type": "hard" if x == "bounce" else None}
        for x, t in zip(a.action.to_numpy(), _iso_array(a.ts.to_numpy()), strict=True)
    ]
    new_group = np.r_[True, (camp[1:] != camp[:-1]) | (person[1:] != person[:-1])]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(a)]
    out: dict[str, list[dict]] = {}
    for s0, s1 in zip(starts, ends, strict=True):
        p, c = person[s0], str(camp[s0])
        out.setdefault(c, []).append(
            {
                "campaign_id": c,
                "list_id": MAILCHIMP_LIST_ID,
                "email_id": hashes[p],
                "email_address": str(emails[p]),
                "activity": actions[s0:s1],
            }
        )
    return out


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
    return world.events.iloc[layout["row"][sel]].assign(
        received=layout["received"][sel],
        day=_day_names(layout["day"][sel]),
        file=SEGMENT_FILES[layout["file"][sel]],
        landed=layout["landed"][sel],
    )


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
            url := 'https://www.example.com' || path,
            referrer := null::varchar,
            title := coalesce(nullif(trim(path, '/'), ''), 'home'),
            search := ''
        ),
        campaign := case when utm_source is null then '{}'::json
            else json_object('source', utm_source, 'medium', utm_medium, 'name', utm_campaign)
            end,
        userAgent := 'Mozilla/5.0 (sandbox)',
        ip := '203.0.113.7'
    ) as context,
    case
        when "type" = 'page' then json_object('path', path)
        when "type" = 'track' and order_id is not null then
            json_object('order_id', order_id, 'revenue', revenue, 'currency', 'USD')
        when "type" = 'track' then '{}'::json
    end as properties,
    case when "type" = 'identify' then json_object('email', email) end as traits
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
]


def _render_json(ev: pd.DataFrame, staging: Path) -> None:
    """Write events as one Segment-spec JSON-lines file ordered by day, file and time.

    One ordered file keeps each batch in time order, which DuckDB's partitioned write
    with several threads does not; :func:`_cut_into_batches` then splits it.
    """
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


def expected_counts(world: World, now: float, segment_anomalies: bool = False) -> dict[str, int]:
    """How many records each source serves as of ``now``: what a full load must land."""
    a = world.email_activity
    a = a[a.ts.to_numpy() < now]
    return {
        "hubspot_contacts": int((world.contacts.subscriber_at.to_numpy() < now).sum()),
        "hubspot_deals": int((world.deals.createdate.to_numpy() < now).sum()),
        "hubspot_companies": len(world.companies),
        "segment_events": len(_segment_layout(world, now, segment_anomalies)["row"]),
        "mailchimp_members": int((world.contacts.subscriber_at.to_numpy() < now).sum()),
        "mailchimp_campaigns": int((world.campaigns.send_time.to_numpy() < now).sum()),
        "mailchimp_activity": len(a),
    }


__all__ = ["DAY", "expected_counts", "write_segment_files"]
