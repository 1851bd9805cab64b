"""Control plane for tests: health, clock, injected faults, what destinations received."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from lifecycle.sandbox.common import iso
from lifecycle.sandbox.state import DATA_FAULT_KINDS, RateLimit, SandboxState

#: Limits a test may change with ``POST /_sandbox/limits``.
LIMITS = {
    "hubspot_search_cap": int,
    "hubspot_search_per_s": int,
    "hubspot_per_10s": int,
    "mailchimp_max_connections": int,
    "mailchimp_latency_s": float,
    # destinations (issue 10): Google access-token lifetime, how long a Customer Match
    # job runs, and vendor time moved forward (tokens expire and jobs end without waiting)
    "google_ads_token_ttl_s": float,
    "google_ads_job_runtime_s": float,
    "vendor_clock_offset_s": float,
}


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    world = state.world

    # ---- control plane ----------------------------------------------------------
    @router.get("/_sandbox/health")
    def health() -> dict:
        return {
            "status": "ok",
            "now": iso(state.now),
            "contacts": int(world.config.contacts),
        }

    @router.post("/_sandbox/faults/{vendor}")
    async def add_faults(vendor: str, request: Request) -> dict:
        """Queue faults for the next requests to ``/<vendor>``.

        Transport faults (one per request, in order; ``{}`` lets one request through):
        ``{"status": 429, "retry_after": 1}``, ``{"status": 503}``, ``{"delay_s": 2}``,
        ``{"malformed": true}``. Record faults apply to the next page of ``object``:
        ``{"kind": "missing_field" | "new_field" | "changed_type", "object": "contacts",
        "field": "email", "value": ..., "count": 2}``.
        """
        body = await request.json()
        items = body if isinstance(body, list) else [body]
        bad = [f for f in items if "kind" in f and f["kind"] not in DATA_FAULT_KINDS]
        if bad:
            raise HTTPException(400, detail={"message": f"unknown fault kind in {bad}"})
        with state.lock:
            transport = [f for f in items if "kind" not in f]
            data = [f for f in items if "kind" in f]
            state.faults.setdefault(vendor, []).extend(transport)
            state.data_faults.setdefault(vendor, []).extend(data)
            return {
                "queued": len(state.faults[vendor]),
                "queued_records": len(state.data_faults[vendor]),
            }

    @router.post("/_sandbox/limits")
    async def set_limits(request: Request) -> dict:
        """Change vendor limits (e.g. a small search cap so a small world crosses it)."""
        body = await request.json()
        unknown = set(body) - set(LIMITS)
        if unknown:
            raise HTTPException(
                400, detail={"message": f"unknown limits {sorted(unknown)}; known: {list(LIMITS)}"}
            )
        with state.lock:
            for k, v in body.items():
                v = LIMITS[k](v)
                if k == "hubspot_search_per_s":
                    state.hubspot_search_limit = RateLimit(v, 1.0)
                elif k == "hubspot_per_10s":
                    state.hubspot_limit = RateLimit(v, 10.0)
                else:
                    setattr(state, k, v)
        return limits()

    @router.get("/_sandbox/limits")
    def limits() -> dict:
        return {
            "hubspot_search_cap": state.hubspot_search_cap,
            "hubspot_search_per_s": state.hubspot_search_limit.max_requests,
            "hubspot_per_10s": state.hubspot_limit.max_requests,
            "mailchimp_max_connections": state.mailchimp_max_connections,
            "mailchimp_latency_s": state.mailchimp_latency_s,
            **{
                k: getattr(state, k)
                for k in LIMITS
                if hasattr(state, k) and k.startswith(("google_ads_", "vendor_"))
            },
        }

    @router.get("/_sandbox/stats")
    def stats() -> dict:
        """What the emulators saw: requests, throttled calls, peak concurrency."""
        with state.lock:
            return dict(state.stats)

    @router.post("/_sandbox/clock")
    async def clock(request: Request) -> dict:
        body = await request.json()
        state.set_clock(float(body["now_ts"]))
        return {"now": iso(state.now)}

    @router.get("/_sandbox/received/{destination}")
    def received(destination: str) -> dict:
        with state.lock:
            calls = list(state.received.get(destination, []))
            members = (
                {k: sorted(list(m) for m in v) for k, v in state.meta_audiences.items()}
                if destination == "meta"
                else {}
            )
        return {"calls": calls, "members": members}

    @router.post("/_sandbox/reset")
    def reset() -> dict:
        state.reset()
        with state.lock:
            state.data_faults.clear()
            state.stats.clear()
        return {"reset": True}

    return router
