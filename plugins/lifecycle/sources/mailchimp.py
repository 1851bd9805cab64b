"""Mailchimp Marketing v3: lists, list members (+ their marketing permissions),
campaigns and per-campaign email activity.

Lists are discovered at run time (``GET /lists``; a connection may name ``list_ids`` in
its extra instead). Members merge on (``list_id``, ``id``): the subscriber hash is the
same on every list an address is on. Each is pulled incrementally per list with
``since_last_changed``. A member's ``marketing_permissions`` land as data in
``member_permissions`` (one row per list, member and permission, with the permission's
opaque id and its text): permission ids are per list and opaque, so the warehouse
matches a permission by its text (``seeds/consent_sources.csv``), never by id.
``timestamp_signup`` and ``timestamp_opt`` are ``""`` for imported members and absent
on some lists: they are declared, land as the text sent, and staging parses them.
Campaigns merge on ``id``; email activity is flattened to one row per action, merged on
(campaign, email, action, timestamp). Mailchimp allows 10 concurrent connections per
key: the client never opens more than 5.

:func:`find_removed_members` lists every member id of every list (a partial response:
ids only) so members deleted for good, which vanish from the API, are told apart from
the rest; archived members keep their place with status ``archived``.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import dlt
import pandas as pd
import pyarrow as pa

from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, client_options
from lifecycle.sources.common import Field, declared_columns, quarantined, violation

log = logging.getLogger(__name__)

SOURCE = "mailchimp"
PAGE = 1000
#: Mailchimp allows 10 simultaneous connections per API key ("Marketing API:
#: Fundamentals", throttling); the source's clients share at most 5 of them, so a
#: destination sync on the same key has the other 5.
KEY_CONNECTIONS = 10
CONNECTIONS = 5
MEMBER_CONTRACT = [
    Field("id"),
    Field("list_id"),
    Field("email_address"),
    Field("status"),
    Field("last_changed", "timestamp"),
    Field("unique_email_id", required=False),
    Field("first_name", required=False),
    Field("last_name", required=False),
    # "" for every imported member, absent on lists that never set it
    Field("timestamp_signup", "timestamp", required=False),
    Field("timestamp_opt", "timestamp", required=False),
]
PERMISSION_COLUMNS = [
    Field("list_id"),
    Field("member_id"),
    Field("marketing_permission_id"),
    Field("text", required=False),
    Field("enabled", "bool", required=False),
    Field("member_last_changed", "timestamp"),
]
LIST_COLUMNS = [Field("id"), Field("name", required=False)]
CAMPAIGN_CONTRACT = [
    Field("id"),
    Field("send_time", "timestamp"),
    Field("status", required=False),
    Field("subject_line", required=False),
    Field("list_id", required=False),
]
ACTIVITY_CONTRACT = [
    Field("campaign_id"),
    Field("email_address"),
    Field("action"),
    Field("timestamp", "timestamp"),
    Field("email_id", required=False),
    Field("url", required=False),
    Field("bounce_type", required=False),
    # where the open or click came from (machine opens: privacy-proxy ranges)
    Field("ip", required=False),
]


def client(conn_id: str = "mailchimp_default") -> tuple[ApiClient, dict]:
    ep = get_endpoint(conn_id)
    api = ApiClient(
        "Mailchimp",
        ep.base_url,
        conn_id=conn_id,
        auth=(ep.login or "anystring", ep.password or ""),
        max_concurrency=CONNECTIONS,
        **client_options(ep.extra),
    )
    return api, ep.extra


def paged(api: ApiClient, path: str, key: str, params: dict | None = None):
    offset = 0
    while True:
        body = api.json("GET", path, params={**(params or {}), "count": PAGE, "offset": offset})
        items = body.get(key, [])
        yield items
        offset += len(items)
        if not items or offset >= int(body.get("total_items", 0)):
            return


def lists(api: ApiClient, extra: dict) -> list[dict]:
    """The lists to read (``id``, ``name``): those named by ``list_ids`` in the
    connection's extra, else every list of the account (``GET /lists``)."""
    params = {"fields": "lists.id,lists.name,total_items"}
    found = [x for page in paged(api, "lists", "lists", params) for x in page if x.get("id")]
    configured = extra.get("list_ids")
    if not configured:
        return found
    if isinstance(configured, str):
        configured = [x.strip() for x in configured.split(",")]
    names = {x["id"]: x.get("name") for x in found}
    return [{"id": str(i), "name": names.get(str(i))} for i in configured]


def _member_row(m: dict, list_id: str) -> dict:
    merge = m.get("merge_fields") or {}
    return {
        "id": m.get("id"),
        "list_id": m.get("list_id") or list_id,
        "email_address": m.get("email_address"),
        "unique_email_id": m.get("unique_email_id"),
        "status": m.get("status"),
        "first_name": merge.get("FNAME"),
        "last_name": merge.get("LNAME"),
        "timestamp_signup": m.get("timestamp_signup"),
        "timestamp_opt": m.get("timestamp_opt"),
        "last_changed": m.get("last_changed"),
    }


def _permission_rows(m: dict, row: dict) -> list[dict]:
    return [
        {
            "list_id": row["list_id"],
            "member_id": row["id"],
            "marketing_permission_id": p.get("marketing_permission_id"),
            "text": p.get("text"),
            "enabled": p.get("enabled"),
            "member_last_changed": row["last_changed"],
        }
        for p in m.get("marketing_permissions") or []
        if p.get("marketing_permission_id")
    ]


def _to_table(rows: list[dict], table: str, key: list[str], fields: list[Field]):
    return dlt.mark.with_hints(
        rows,
        dlt.mark.make_hints(
            table_name=table,
            write_disposition="merge",
            primary_key=key,
            columns=declared_columns(fields),
        ),
        create_table_variant=True,
    )


# No resource-level columns: dlt would copy them into every table the resource feeds
# (members, member_permissions, lists); each batch carries its own table's hints.
@dlt.resource(name="members", write_disposition="merge")
def members(conn_id: str = "mailchimp_default"):
    """Members of every list changed since the last run (``since_last_changed`` per list,
    kept in dlt state), their marketing permissions, and the lists themselves."""
    api, extra = client(conn_id)
    state = dlt.current.resource_state()
    cursors: dict = state.setdefault("since_by_list", {})
    found = lists(api, extra)
    ids = [x["id"] for x in found]
    if found:
        yield _to_table(
            [{"id": x["id"], "name": x.get("name")} for x in found], "lists", ["id"], LIST_COLUMNS
        )
    n, bad, perms = 0, 0, 0
    for list_id in ids:
        since = cursors.get(list_id)
        params = {"since_last_changed": since} if since else {}
        newest = since or ""
        for page in paged(api, f"lists/{list_id}/members", "members", params):
            good, granted = [], []
            for m in page:
                row = _member_row(m, list_id)
                reason = violation(row, MEMBER_CONTRACT)
                if reason:
                    bad += 1
                    yield quarantined(SOURCE, "members", m, reason, m.get("id"))
                    continue
                good.append(row)
                granted += _permission_rows(m, row)
                newest = max(newest, row["last_changed"])
            n += len(good)
            perms += len(granted)
            if good:
                yield _to_table(good, "members", ["list_id", "id"], MEMBER_CONTRACT)
            if granted:
                yield _to_table(
                    granted,
                    "member_permissions",
                    ["list_id", "member_id", "marketing_permission_id"],
                    PERMISSION_COLUMNS,
                )
        cursors[list_id] = newest or None
    log.info(
        "mailchimp members: %d changed on %d list(s), %d marketing permissions, %d quarantined",
        n,
        len(ids),
        perms,
        bad,
    )


def find_removed_members(conn_id: str = "mailchimp_default") -> dict[str, set[str]]:
    """What identifies each member still on each list (archived included): its ``id``
    and its ``unique_email_id``, ``{list_id: {id, "ueid:" + unique_email_id, ...}}``.

    A partial response (``fields=members.id,members.unique_email_id,total_items``) keeps
    a full listing cheap. A member loaded once is deleted for good only when neither is
    here: a changed address gives the member a new ``id`` (the hash of the address)
    while its ``unique_email_id`` stays.
    """
    api, extra = client(conn_id)
    present: dict[str, set[str]] = {}
    for list_id in [x["id"] for x in lists(api, extra)]:
        ids = present.setdefault(list_id, set())
        for page in paged(
            api,
            f"lists/{list_id}/members",
            "members",
            {"fields": "members.id,members.unique_email_id,total_items"},
        ):
            ids.update(m["id"] for m in page if m.get("id"))
            ids.update(f"ueid:{m['unique_email_id']}" for m in page if m.get("unique_email_id"))
    return present


@dlt.resource(
    name="campaigns",
    primary_key="id",
    write_disposition="merge",
    columns=declared_columns(CAMPAIGN_CONTRACT),
)
def campaigns(conn_id: str = "mailchimp_default"):
    """Campaigns sent since the last run (``since_send_time``, kept in dlt state)."""
    api, _ = client(conn_id)
    state = dlt.current.resource_state()
    since = state.get("send_time")
    params = {"since_send_time": since} if since else {}
    newest = since or ""
    for page in paged(api, "campaigns", "campaigns", params):
        rows, bad = [], []
        for c in page:
            row = {
                "id": c.get("id"),
                "send_time": c.get("send_time"),
                "status": c.get("status"),
                "subject_line": (c.get("settings") or {}).get("subject_line"),
                "list_id": (c.get("recipients") or {}).get("list_id"),
            }
            reason = violation(row, CAMPAIGN_CONTRACT)
            if reason:
                bad.append(quarantined(SOURCE, "campaigns", c, reason, c.get("id")))
            else:
                rows.append(row)
                newest = max(newest, row["send_time"])
        yield from bad
        if rows:
            yield rows
    state["send_time"] = newest or None


def _activity_rows(campaign_id: str, page: list[dict]) -> tuple[list[dict], list]:
    rows, bad = [], []
    for e in page:
        for a in e.get("activity") or []:
            row = {
                "campaign_id": campaign_id,
                "email_id": e.get("email_id"),
                "email_address": e.get("email_address"),
                "action": a.get("action"),
                "timestamp": a.get("timestamp"),
                "bounce_type": a.get("type"),
                "url": a.get("url"),
                "ip": a.get("ip"),
            }
            reason = violation(row, ACTIVITY_CONTRACT)
            if reason:
                bad.append(quarantined(SOURCE, "email_activity", row, reason, e.get("email_id")))
            else:
                rows.append(row)
    return rows, bad


#: email_activity as an Arrow table: dlt writes it to Parquet as it is instead of
#: coercing each row's values one by one (most of a big Mailchimp load's time).
#: The merge key's columns are not nullable, as dlt's hints for a primary key say (a
#: mismatch made dlt warn on every table it was given).
ACTIVITY_ARROW = pa.schema(
    [
        pa.field("campaign_id", pa.string(), nullable=False),
        pa.field("email_id", pa.string(), nullable=False),
        ("email_address", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        ("bounce_type", pa.string()),
        ("url", pa.string()),
        ("ip", pa.string()),
    ]
)


def _activity_table(rows: list[dict]) -> pa.Table:
    """Rows that passed the contract, typed: the timestamps parsed in one vectorised call
    (the contract checked that each parses)."""
    columns = {
        name: [r[name] for r in rows] for name in ACTIVITY_ARROW.names if name != "timestamp"
    }
    stamps = pd.to_datetime([r["timestamp"] for r in rows], utc=True, format="ISO8601")
    columns["timestamp"] = stamps.as_unit("us")
    return pa.table({n: columns[n] for n in ACTIVITY_ARROW.names}, schema=ACTIVITY_ARROW)


def _parallel_pages(work, keys: list, workers: int):
    """Yield every item ``work(key)`` yields, for ``workers`` keys at a time, as they come.

    At most ``2 * workers`` items wait in memory: a campaign's whole activity (hundreds
    of thousands of rows at a million contacts) is never held, only pages of it. A
    worker's error is raised here; when the consumer stops early, the workers stop too.
    """
    pages: queue.Queue = queue.Queue(maxsize=2 * workers)
    stop = threading.Event()

    def run(key) -> None:
        for item in work(key):
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailchimp") as pool:
        pending = {pool.submit(run, key) for key in keys}
        try:
            while True:
                try:
                    yield pages.get(timeout=0.1)
                    continue
                except queue.Empty:
                    pass
                done = {f for f in pending if f.done()}
                for f in done:
                    f.result()  # a worker's error, raised in the consumer
                pending -= done
                if not pending and pages.empty():
                    return
        finally:
            stop.set()
            for f in pending:
                f.cancel()


@dlt.resource(
    name="email_activity",
    primary_key=["campaign_id", "email_id", "action", "timestamp"],
    write_disposition="merge",
    columns=declared_columns(ACTIVITY_CONTRACT),
)
def email_activity(conn_id: str = "mailchimp_default"):
    """Activity on every campaign since the last run (``since``), campaigns fetched in
    parallel but never over the connection budget (``CONNECTIONS``)."""
    api, _ = client(conn_id)
    state = dlt.current.resource_state()
    since = state.get("since")
    ids = [c["id"] for page in paged(api, "campaigns", "campaigns") for c in page if c.get("id")]

    def fetch(campaign_id: str):
        params = {"since": since} if since else {}
        for page in paged(api, f"reports/{campaign_id}/email-activity", "emails", params):
            yield _activity_rows(campaign_id, page)

    newest, n, n_bad = since or "", 0, 0
    for rows, bad in _parallel_pages(fetch, ids, CONNECTIONS):
        n += len(rows)
        n_bad += len(bad)
        yield from bad
        if rows:
            newest = max(newest, max(r["timestamp"] for r in rows))
            yield _activity_table(rows)
    state["since"] = newest or None
    log.info(
        "mailchimp email activity: %d actions on %d campaigns since %s, %d quarantined; "
        "%s requests, %s throttled",
        n,
        len(ids),
        since,
        n_bad,
        api.stats["requests"],
        api.stats["throttled"],
    )


@dlt.source(name="mailchimp", max_table_nesting=0)
def mailchimp_source(conn_id: str = "mailchimp_default"):
    """Audience members, campaigns and their email activity."""
    return [members(conn_id), campaigns(conn_id), email_activity(conn_id)]
