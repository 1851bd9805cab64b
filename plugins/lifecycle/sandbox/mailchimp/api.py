"""Mailchimp Marketing v3 emulator (source side).

Basic auth with any user and the API key; ``count`` <= 1000 with ``offset`` paging;
``since_last_changed`` (members), ``since_send_time`` (campaigns) and ``since`` (email
activity) filters; at most 10 concurrent connections per key (the next one gets 429).
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

    @router.get("/3.0/lists/{list_id}/members", dependencies=[slot])
    def mc_members(
        list_id: str,
        request: Request,
        count: int = 10,
        offset: int = 0,
        since_last_changed: str | None = None,
    ) -> dict:
        mailchimp_auth(request)
        members = state.cached("mc:members", records.members)
        if list_id != records.LIST_ID:
            raise HTTPException(404, detail={"title": "Resource Not Found", "status": 404})
        if since_last_changed:
            members = [m for m in members if m["last_changed"] > since_last_changed]
        return {
            "members": state.corrupt("mailchimp", "members", mc_page(members, count, offset)),
            "list_id": list_id,
            "total_items": len(members),
        }

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
