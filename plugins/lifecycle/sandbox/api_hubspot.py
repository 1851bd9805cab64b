"""HubSpot CRM v3 emulator: bearer auth, cursor paging, rate-limit headers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from lifecycle.sandbox import vendors
from lifecycle.sandbox.state import HUBSPOT_TOKEN, SandboxState


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    # ---- HubSpot CRM v3 -----------------------------------------------------------
    builders = {
        "contacts": vendors.hubspot_contacts,
        "companies": vendors.hubspot_companies,
        "deals": vendors.hubspot_deals,
    }

    def hubspot_auth(request: Request) -> dict:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {HUBSPOT_TOKEN}":
            raise HTTPException(
                401,
                detail={
                    "status": "error",
                    "category": "INVALID_AUTHENTICATION",
                    "message": "Authentication credentials not found.",
                },
            )
        ok, remaining = state.hubspot_limit.take()
        headers = {
            "X-HubSpot-RateLimit-Max": str(state.hubspot_limit.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(
                int(state.hubspot_limit.interval_s * 1000)
            ),
        }
        if not ok:
            raise HTTPException(
                429,
                detail={
                    "status": "error",
                    "category": "RATE_LIMITS",
                    "message": "You have reached your secondly limit.",
                },
                headers=headers,
            )
        return headers

    def select_props(record: dict, wanted: str | None) -> dict:
        if not wanted:
            return record
        keep = set(wanted.split(","))
        props = {k: v for k, v in record["properties"].items() if k in keep}
        return {**record, "properties": props}

    @router.get("/crm/v3/objects/{object_type}")
    def hubspot_list(
        object_type: str,
        request: Request,
        limit: int = 10,
        after: str | None = None,
        properties: str | None = None,
    ):
        headers = hubspot_auth(request)
        if object_type not in builders:
            raise HTTPException(
                404, detail={"status": "error", "message": f"Unknown object type {object_type}"}
            )
        if limit > 100:
            raise HTTPException(
                400,
                detail={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "limit must be <= 100",
                },
            )
        records = state.cached(f"hs:{object_type}", builders[object_type])
        start = int(after or 0)
        page = [select_props(r, properties) for r in records[start : start + limit]]
        body: dict = {"results": page}
        if start + limit < len(records):
            body["paging"] = {
                "next": {"after": str(start + limit), "link": f"?after={start + limit}"}
            }
        return JSONResponse(body, headers=headers)

    return router
