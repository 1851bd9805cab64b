"""Mailchimp Marketing v3: list members, campaigns and per-campaign email activity.

Members merge on ``id`` (the subscriber hash) and are pulled incrementally with
``since_last_changed``; campaigns merge on ``id``; email activity is flattened to one row
per action, merged on (campaign, email, action, timestamp). Mailchimp allows 10
concurrent connections per key: the client never opens more than 4.
"""

from __future__ import annotations

import logging

import dlt

from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient
from lifecycle.sources.common import Field, quarantined, violation

log = logging.getLogger(__name__)

SOURCE = "mailchimp"
PAGE = 1000
MEMBER_CONTRACT = [
    Field("id"),
    Field("email_address"),
    Field("status"),
    Field("last_changed", "timestamp"),
]
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
        max_concurrency=4,
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


@dlt.resource(name="members", primary_key="id", write_disposition="merge")
def members(
    conn_id: str = "mailchimp_default",
    changed=dlt.sources.incremental("last_changed", initial_value=None),
):
    api, extra = client(conn_id)
    params = {"since_last_changed": changed.last_value} if changed.last_value else {}
    for page in paged(api, f"lists/{extra['list_id']}/members", "members", params):
        good = []
        for m in page:
            reason = violation(m, MEMBER_CONTRACT)
            if reason:
                yield quarantined(SOURCE, "members", m, reason, m.get("id"))
                continue
            perms = {
                p.get("marketing_permission_id"): p.get("enabled")
                for p in m.get("marketing_permissions") or []
            }
            good.append(
                {
                    "id": m["id"],
                    "email_address": m["email_address"],
                    "status": m["status"],
                    "first_name": (m.get("merge_fields") or {}).get("FNAME"),
                    "last_name": (m.get("merge_fields") or {}).get("LNAME"),
                    "timestamp_signup": m.get("timestamp_signup"),
                    "last_changed": m["last_changed"],
                    "list_id": m.get("list_id"),
                    "has_ad_consent": bool(perms.get("perm_ads", False)),
                    "has_email_permission": bool(perms.get("perm_email", False)),
                }
            )
        if good:
            yield good


@dlt.resource(name="campaigns", primary_key="id", write_disposition="merge")
def campaigns(conn_id: str = "mailchimp_default"):
    api, _ = client(conn_id)
    for page in paged(api, "campaigns", "campaigns"):
        yield [
            {
                "id": c["id"],
                "send_time": c.get("send_time"),
                "status": c.get("status"),
                "subject_line": (c.get("settings") or {}).get("subject_line"),
                "list_id": (c.get("recipients") or {}).get("list_id"),
            }
            for c in page
        ]


@dlt.transformer(
    name="email_activity",
    primary_key=["campaign_id", "email_id", "action", "timestamp"],
    write_disposition="merge",
    columns={
        "url": {"data_type": "text"},
        "bounce_type": {"data_type": "text"},
        "timestamp": {"data_type": "timestamp"},
    },
)
def email_activity(campaign_page: list[dict], conn_id: str = "mailchimp_default"):
    api, _ = client(conn_id)
    for c in campaign_page:
        for page in paged(api, f"reports/{c['id']}/email-activity", "emails"):
            rows = []
            for e in page:
                for a in e.get("activity") or []:
                    row = {
                        "campaign_id": c["id"],
                        "email_id": e.get("email_id"),
                        "email_address": e.get("email_address"),
                        "action": a.get("action"),
                        "timestamp": a.get("timestamp"),
                        "bounce_type": a.get("type"),
                        "url": a.get("url"),
                    }
                    reason = violation(row, ACTIVITY_CONTRACT)
                    if reason:
                        yield quarantined(SOURCE, "email_activity", row, reason, e.get("email_id"))
                    else:
                        rows.append(row)
            if rows:
                yield rows


@dlt.source(name="mailchimp", max_table_nesting=0)
def mailchimp_source(conn_id: str = "mailchimp_default"):
    """Audience members, campaigns and their email activity."""
    sent = campaigns(conn_id)
    return [members(conn_id), sent, sent | email_activity(conn_id)]
