"""Mailchimp Marketing v3: list members, campaigns and per-campaign email activity.

Members merge on ``id`` (the subscriber hash) and are pulled incrementally with
``since_last_changed``; campaigns merge on ``id``; email activity is flattened to one row
per action, merged on (campaign, email, action, timestamp). Mailchimp allows 10
concurrent connections per key: the client never opens more than 5.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import dlt

from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, client_options
from lifecycle.sources.common import Field, quarantined, violation

log = logging.getLogger(__name__)

SOURCE = "mailchimp"
PAGE = 1000
#: Mailchimp allows 10 concurrent connections per API key; the source uses at most 5 so
#: a destination sync on the same key still has room.
CONNECTIONS = 5
MEMBER_CONTRACT = [
    Field("id"),
    Field("email_address"),
    Field("status"),
    Field("last_changed", "timestamp"),
]
CAMPAIGN_CONTRACT = [Field("id"), Field("send_time", "timestamp")]
ACTIVITY_CONTRACT = [
    Field("campaign_id"),
    Field("email_address"),
    Field("action"),
    Field("timestamp", "timestamp"),
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


def _member_row(m: dict) -> dict:
    perms = {
        p.get("marketing_permission_id"): p.get("enabled")
        for p in m.get("marketing_permissions") or []
    }
    return {
        "id": m["id"],
        "email_address": m["email_address"],
        "status": m["status"],
        "first_name": (m.get("merge_fields") or {}).get("FNAME"),
        "last_name": (m.get("merge_fields") or {}).get("LNAME"),
        "timestamp_signup": m.get("timestamp_signup"),
        "timestamp_opt": m.get("timestamp_opt"),
        "unique_email_id": m.get("unique_email_id"),
        "last_changed": m["last_changed"],
        "list_id": m.get("list_id"),
        "has_ad_consent": bool(perms.get("perm_ads", False)),
        "has_email_permission": bool(perms.get("perm_email", False)),
    }


@dlt.resource(
    name="members",
    primary_key="id",
    write_disposition="merge",
    # read by staging even when no member has them (issue 11: opt-in time, mc_eid)
    columns={
        "timestamp_opt": {"data_type": "timestamp"},
        "unique_email_id": {"data_type": "text"},
    },
)
def members(conn_id: str = "mailchimp_default"):
    """List members changed since the last run (``since_last_changed``, kept in dlt state)."""
    api, extra = client(conn_id)
    state = dlt.current.resource_state()
    since = state.get("last_changed")
    params = {"since_last_changed": since} if since else {}
    newest, n, bad = since or "", 0, 0
    for page in paged(api, f"lists/{extra['list_id']}/members", "members", params):
        good = []
        for m in page:
            reason = violation(m, MEMBER_CONTRACT)
            if reason:
                bad += 1
                yield quarantined(SOURCE, "members", m, reason, m.get("id"))
                continue
            good.append(_member_row(m))
            newest = max(newest, m["last_changed"])
        n += len(good)
        if good:
            yield good
    state["last_changed"] = newest or None
    log.info("mailchimp members: %d changed since %s, %d quarantined", n, since, bad)


@dlt.resource(name="campaigns", primary_key="id", write_disposition="merge")
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


@dlt.resource(
    name="email_activity",
    primary_key=["campaign_id", "email_id", "action", "timestamp"],
    write_disposition="merge",
    columns={
        "url": {"data_type": "text"},
        "bounce_type": {"data_type": "text"},
        "ip": {"data_type": "text"},
        "timestamp": {"data_type": "timestamp"},
    },
)
def email_activity(conn_id: str = "mailchimp_default"):
    """Activity on every campaign since the last run (``since``), campaigns fetched in
    parallel but never over the connection budget (``CONNECTIONS``)."""
    api, _ = client(conn_id)
    state = dlt.current.resource_state()
    since = state.get("since")
    ids = [c["id"] for page in paged(api, "campaigns", "campaigns") for c in page if c.get("id")]

    def fetch(campaign_id: str) -> tuple[list[dict], list]:
        params = {"since": since} if since else {}
        rows, bad = [], []
        for page in paged(api, f"reports/{campaign_id}/email-activity", "emails", params):
            r, b = _activity_rows(campaign_id, page)
            rows += r
            bad += b
        return rows, bad

    newest, n, n_bad = since or "", 0, 0
    with ThreadPoolExecutor(max_workers=CONNECTIONS, thread_name_prefix="mailchimp") as pool:
        for rows, bad in pool.map(fetch, ids):
            n += len(rows)
            n_bad += len(bad)
            yield from bad
            if rows:
                newest = max(newest, max(r["timestamp"] for r in rows))
                yield rows
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
