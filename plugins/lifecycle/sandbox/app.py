"""The emulated vendor APIs: one FastAPI app, one prefix per vendor.

Paths after the prefix follow each vendor's documented contract (see
``shared/CONTRACTS.md``), so a connector only changes its base URL and credentials
between the sandbox and the real vendor:

- ``/hubspot``   HubSpot CRM v3 (bearer token, cursor paging, search, rate-limit headers)
- ``/mailchimp`` Mailchimp Marketing v3 (Basic auth, count/offset paging)
- ``/meta``      Meta Marketing API custom-audience users (access_token)
- ``/_sandbox``  control plane for tests: health, clock, injected faults, what was received
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from lifecycle.sandbox import vendors
from lifecycle.sandbox.world import World

# Fixed credentials of the local emulators (not secrets: the sandbox serves fake data).
HUBSPOT_TOKEN = "sandbox-hubspot-token"  # noqa: S105
MAILCHIMP_KEY = "sandbox-mailchimp-key-us1"
META_TOKEN = "sandbox-meta-token"  # noqa: S105
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class RateLimit:
    """A sliding window: at most ``max_requests`` per ``interval_s`` seconds."""

    max_requests: int
    interval_s: float
    hits: deque = field(default_factory=deque)

    def take(self) -> tuple[bool, int]:
        now = time.monotonic()
        while self.hits and now - self.hits[0] > self.interval_s:
            self.hits.popleft()
        if len(self.hits) >= self.max_requests:
            return False, 0
        self.hits.append(now)
        return True, self.max_requests - len(self.hits)


class SandboxState:
    """The world, its clock, what vendors hold, faults queued by tests, what was received."""

    def __init__(self, world: World):
        self.world = world
        self.lock = threading.Lock()
        self.faults: dict[str, list[dict]] = {}
        self.received: dict[str, list[dict]] = {}
        self.meta_audiences: dict[str, set[tuple]] = {}
        self.hubspot_limit = RateLimit(150, 10.0)
        self.set_clock(float(world.now_ts))

    def set_clock(self, now: float) -> None:
        with self.lock:
            self.now = now
            self._cache: dict[str, object] = {}

    def cached(self, key: str, build):
        with self.lock:
            if key not in self._cache:
                self._cache[key] = build(self.world, self.now)
            return self._cache[key]

    def next_fault(self, vendor: str) -> dict | None:
        with self.lock:
            queue = self.faults.get(vendor) or []
            return queue.pop(0) if queue else None

    def record(self, destination: str, entry: dict) -> None:
        with self.lock:
            self.received.setdefault(destination, []).append(entry)


def _error(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers or {})


def create_app(world: World) -> FastAPI:
    state = SandboxState(world)
    app = FastAPI(title="lifecycle-pipeline sandbox", version="1")
    app.state.sandbox = state

    @app.middleware("http")
    async def faults(request: Request, call_next):
        """Apply a fault queued for this vendor before the real handler runs."""
        vendor = request.url.path.strip("/").split("/", 1)[0]
        fault = state.next_fault(vendor)
        if fault:
            if fault.get("delay_s"):
                time.sleep(float(fault["delay_s"]))
            if fault.get("status"):
                headers = {}
                if fault.get("retry_after") is not None:
                    headers["Retry-After"] = str(fault["retry_after"])
                return _error(
                    int(fault["status"]), fault.get("body", {"message": "injected fault"}), headers
                )
            if fault.get("malformed"):
                return _raw('{"results": [ {"id": "1", "prop')
        return await call_next(request)

    # ---- control plane ----------------------------------------------------------
    @app.get("/_sandbox/health")
    def health() -> dict:
        return {
            "status": "ok",
            "now": vendors.iso(state.now),
            "contacts": int(world.config.contacts),
        }

    @app.post("/_sandbox/faults/{vendor}")
    async def add_faults(vendor: str, request: Request) -> dict:
        body = await request.json()
        with state.lock:
            state.faults.setdefault(vendor, []).extend(body if isinstance(body, list) else [body])
            return {"queued": len(state.faults[vendor])}

    @app.post("/_sandbox/clock")
    async def clock(request: Request) -> dict:
        body = await request.json()
        state.set_clock(float(body["now_ts"]))
        return {"now": vendors.iso(state.now)}

    @app.get("/_sandbox/received/{destination}")
    def received(destination: str) -> dict:
        with state.lock:
            calls = list(state.received.get(destination, []))
            members = (
                {k: sorted(list(m) for m in v) for k, v in state.meta_audiences.items()}
                if destination == "meta"
                else {}
            )
        return {"calls": calls, "members": members}

    @app.post("/_sandbox/reset")
    def reset() -> dict:
        with state.lock:
            state.received.clear()
            state.meta_audiences.clear()
            state.faults.clear()
        return {"reset": True}

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

    @app.get("/hubspot/crm/v3/objects/{object_type}")
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

    @app.get("/mailchimp/3.0/lists/{list_id}/members")
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

    @app.get("/mailchimp/3.0/campaigns")
    def mc_campaigns(
        request: Request, count: int = 10, offset: int = 0, since_send_time: str | None = None
    ) -> dict:
        mailchimp_auth(request)
        items = state.cached("mc:campaigns", vendors.mailchimp_campaigns)
        if since_send_time:
            items = [c for c in items if c["send_time"] > since_send_time]
        return {"campaigns": mc_page(items, count, offset), "total_items": len(items)}

    @app.get("/mailchimp/3.0/reports/{campaign_id}/email-activity")
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

    # ---- Meta custom audiences ----------------------------------------------------------
    async def meta_payload(request: Request) -> tuple[str, dict]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            body = await request.json()
        else:
            body = dict(await request.form())
        token = body.get("access_token") or request.query_params.get("access_token")
        if token != META_TOKEN:
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": "Invalid OAuth access token.",
                        "type": "OAuthException",
                        "code": 190,
                    }
                },
            )
        payload = body.get("payload")
        if isinstance(payload, str):
            payload = json.loads(payload)
        if not payload or "schema" not in payload or "data" not in payload:
            raise HTTPException(
                400,
                detail={"error": {"message": "(#100) Missing payload schema or data", "code": 100}},
            )
        if len(payload["data"]) > 10_000:
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": "(#100) Too many users in one request (max 10000)",
                        "code": 100,
                    }
                },
            )
        return token, payload

    def meta_apply(audience_id: str, payload: dict, method: str) -> dict:
        schema = payload["schema"] if isinstance(payload["schema"], list) else [payload["schema"]]
        valid, invalid = [], []
        for row in payload["data"]:
            row = row if isinstance(row, list) else [row]
            ok = (
                len(row) == len(schema)
                and all(v == "" or HEX64.match(str(v)) for v in row)
                and any(row)
            )
            (valid if ok else invalid).append(tuple(row))
        with state.lock:
            members = state.meta_audiences.setdefault(audience_id, set())
            if method == "POST":
                members.update(valid)
            else:
                members.difference_update(valid)
        state.record(
            "meta",
            {
                "audience_id": audience_id,
                "method": method,
                "schema": schema,
                "data": [list(r) for r in payload["data"]],
            },
        )
        return {
            "audience_id": audience_id,
            "session_id": str(int(time.time() * 1000)),
            "num_received": len(payload["data"]),
            "num_invalid_entries": len(invalid),
            "invalid_entry_samples": {str(i): list(r) for i, r in enumerate(invalid[:5])},
        }

    @app.post("/meta/{version}/{audience_id}/users")
    async def meta_add(version: str, audience_id: str, request: Request) -> dict:
        _, payload = await meta_payload(request)
        return meta_apply(audience_id, payload, "POST")

    @app.delete("/meta/{version}/{audience_id}/users")
    async def meta_remove(version: str, audience_id: str, request: Request) -> dict:
        _, payload = await meta_payload(request)
        return meta_apply(audience_id, payload, "DELETE")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        body = exc.detail if isinstance(exc.detail, dict) else {"message": exc.detail}
        return JSONResponse(
            status_code=exc.status_code, content=body, headers=getattr(exc, "headers", None) or {}
        )

    return app


def _raw(text: str) -> Response:
    """A truncated JSON body, as a proxy cut mid-response would deliver."""
    return Response(content=text, media_type="application/json", status_code=200)
