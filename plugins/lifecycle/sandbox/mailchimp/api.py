"""Mailchimp Marketing v3 emulator (source side).

Each behaviour follows a page of Mailchimp's Marketing API documentation:

- "Marketing API: Fundamentals" (authentication): Basic auth with any user name and the
  API key as password; a wrong key answers 401 "API Key Invalid".
- "Marketing API: Fundamentals" (pagination, partial responses): ``count`` (at most
  1000) with ``offset``; ``fields`` returns only the listed dot paths (e.g.
  ``members.id,total_items``).
- "Marketing API: Fundamentals" (throttling): at most 10 simultaneous connections per
  key; the next one gets 429.
- "Lists/Audiences" (``GET /lists``): every audience of the account with its id and name.
- "List Members" (``GET /lists/{list_id}/members``): ``status`` and
  ``since_last_changed`` filters; an unknown list answers 404 "Resource Not Found";
  members carry the shapes described in ``records.members`` (``""`` and absent
  timestamps, opaque per-list ``marketing_permission_id`` with the account's texts,
  status ``archived``; permanently deleted members are gone).
- "Campaigns" (``since_send_time``) and "Email Activity Reports" (``since``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, HTTPException, Request

from lifecycle.sandbox.mailchimp import records
from lifecycle.sandbox.state import MAILCHIMP_KEY, SandboxState

#: Campaign activity tables kept built (a campaign of a million-contact world is about
#: 200 MB of records; a client pages a few campaigns at a time: 5 connections).
ACTIVITY_CAMPAIGNS_CACHED = 8


def partial(body: dict, fields: str | None) -> dict:
    """Mailchimp's partial response: keep only the comma-separated dot paths in ``fields``
    (``members.id`` keeps ``id`` inside every item of ``members``)."""
    if not fields:
        return body
    wanted: dict[str, set[str] | None] = {}
    for path in fields.split(","):
        head, _, rest = path.strip().partition(".")
        if rest:
            keep = wanted.setdefault(head, set())
            if keep is not None:
                keep.add(rest.split(".", 1)[0])
        else:
            wanted[head] = None
    out: dict = {}
    for key, keep in wanted.items():
        if key not in body:
            continue
        value = body[key]
        if keep is not None and isinstance(value, list):
            value = [{k: v for k, v in item.items() if k in keep} for item in value]
        out[key] = value
    return out


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    # ---- Mailchimp Marketing v3 -----------------------------------------------------
    def mailchimp_auth(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                _, key = base64.b64decode(auth[6:]).decode().split(":", 1)
                ok = key == MAILCHIMP_KEY
            except ValueError:
                ok = False
        if not ok:
            raise HTTPException(
                401,
                detail={
                    "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                    "title": "API Key Invalid",
                    "status": 401,
                    "detail": "Your API key may be invalid, or you've attempted to access the "
                    "wrong datacenter.",
                },
            )

    def connection_slot() -> Iterator[None]:
        """Count this call against the key's concurrent connections while it runs."""
        with state.lock:
            if state.mailchimp_inflight >= state.mailchimp_max_connections:
                state.stats["mailchimp_429"] = state.stats.get("mailchimp_429", 0) + 1
                raise HTTPException(
                    429,
                    detail={
                        "title": "Too Many Requests",
                        "status": 429,
                        "detail": "You have exceeded the limit of 10 simultaneous connections.",
                    },
                )
            state.mailchimp_inflight += 1
            peak = max(state.stats.get("mailchimp_peak_connections", 0), state.mailchimp_inflight)
            state.stats["mailchimp_peak_connections"] = peak
            state.stats["mailchimp_requests"] = state.stats.get("mailchimp_requests", 0) + 1
        try:
            if state.mailchimp_latency_s:
                time.sleep(state.mailchimp_latency_s)
            yield
        finally:
            with state.lock:
                state.mailchimp_inflight -= 1

    slot = Depends(connection_slot)

    def mc_page(items: list, count: int, offset: int) -> list:
        if count > 1000:
            raise HTTPException(
                400,
                detail={
                    "title": "Invalid Resource",
                    "status": 400,
                    "detail": "count must be <= 1000",
                },
            )
        return items[offset : offset + count]

    def by_list(world, now) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {lst["id"]: [] for lst in records.lists(world, now)}
        for m in state.cached("mc:members", records.members):
            out[m["list_id"]].append(m)
        return out

    @router.get("/3.0/lists", dependencies=[slot])
    def mc_lists(
        request: Request, count: int = 10, offset: int = 0, fields: str | None = None
    ) -> dict:
        mailchimp_auth(request)
        items = state.cached("mc:lists", records.lists)
        body = {"lists": mc_page(items, count, offset), "total_items": len(items)}
        return partial(body, fields)

    @router.get("/3.0/lists/{list_id}/members", dependencies=[slot])
    def mc_members(
        list_id: str,
        request: Request,
        count: int = 10,
        offset: int = 0,
        since_last_changed: str | None = None,
        status: str | None = None,
        fields: str | None = None,
    ) -> dict:
        mailchimp_auth(request)
        lists = state.cached("mc:members_by_list", by_list)
        if list_id not in lists:
            raise HTTPException(
                404,
                detail={
                    "title": "Resource Not Found",
                    "status": 404,
                    "detail": "The requested resource could not be found.",
                },
            )
        members = lists[list_id]
        if since_last_changed:
            members = [m for m in members if m["last_changed"] > since_last_changed]
        if status:
            members = [m for m in members if m["status"] == status]
        body = {
            "members": state.corrupt("mailchimp", "members", mc_page(members, count, offset)),
            "list_id": list_id,
            "total_items": len(members),
        }
        return partial(body, fields)

    @router.get("/3.0/campaigns", dependencies=[slot])
    def mc_campaigns(
        request: Request, count: int = 10, offset: int = 0, since_send_time: str | None = None
    ) -> dict:
        mailchimp_auth(request)
        items = state.cached("mc:campaigns", records.campaigns)
        if since_send_time:
            items = [c for c in items if c["send_time"] > since_send_time]
        page = state.corrupt("mailchimp", "campaigns", mc_page(items, count, offset))
        return {"campaigns": page, "total_items": len(items)}

    @router.get("/3.0/reports/{campaign_id}/email-activity", dependencies=[slot])
    def mc_activity(
        campaign_id: str,
        request: Request,
        count: int = 10,
        offset: int = 0,
        since: str | None = None,
    ) -> dict:
        mailchimp_auth(request)
        items = state.cached(
            f"mc:activity:{campaign_id}",
            lambda world, now: records.activity(world, now, campaign_id).get(campaign_id, []),
            group="mc:activity",
            keep=ACTIVITY_CAMPAIGNS_CACHED,
        )
        if since:
            items = [
                {**e, "activity": [a for a in e["activity"] if a["timestamp"] > since]}
                for e in items
            ]
            items = [e for e in items if e["activity"]]
        return {
            "emails": state.corrupt("mailchimp", "email_activity", mc_page(items, count, offset)),
            "campaign_id": campaign_id,
            "total_items": len(items),
        }

    return router
