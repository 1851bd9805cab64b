"""Mailchimp Marketing v3 emulator (source side): Basic auth, count/offset paging."""

from __future__ import annotations

import base64

from fastapi import APIRouter, HTTPException, Request

from lifecycle.sandbox import vendors
from lifecycle.sandbox.state import MAILCHIMP_KEY, SandboxState


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

    @router.get("/3.0/lists/{list_id}/members")
    def mc_members(
        list_id: str,
        request: Request,
        count: int = 10,
        offset: int = 0,
        since_last_changed: str | None = None,
    ) -> dict:
        mailchimp_auth(request)
        members = state.cached("mc:members", vendors.mailchimp_members)
        if list_id != vendors.MAILCHIMP_LIST_ID:
            raise HTTPException(404, detail={"title": "Resource Not Found", "status": 404})
        if since_last_changed:
            members = [m for m in members if m["last_changed"] > since_last_changed]
        return {
            "members": mc_page(members, count, offset),
            "list_id": list_id,
            "total_items": len(members),
        }

    @router.get("/3.0/campaigns")
    def mc_campaigns(
        request: Request, count: int = 10, offset: int = 0, since_send_time: str | None = None
    ) -> dict:
        mailchimp_auth(request)
        items = state.cached("mc:campaigns", vendors.mailchimp_campaigns)
        if since_send_time:
            items = [c for c in items if c["send_time"] > since_send_time]
        return {"campaigns": mc_page(items, count, offset), "total_items": len(items)}

    @router.get("/3.0/reports/{campaign_id}/email-activity")
    def mc_activity(
        campaign_id: str,
        request: Request,
        count: int = 10,
        offset: int = 0,
        since: str | None = None,
    ) -> dict:
        mailchimp_auth(request)
        per = state.cached("mc:activity", vendors.mailchimp_activity)
        items = per.get(campaign_id, [])
        if since:
            items = [
                {**e, "activity": [a for a in e["activity"] if a["timestamp"] > since]}
                for e in items
            ]
            items = [e for e in items if e["activity"]]
        return {
            "emails": mc_page(items, count, offset),
            "campaign_id": campaign_id,
            "total_items": len(items),
        }

    return router
