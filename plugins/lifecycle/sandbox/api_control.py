"""Control plane for tests: health, clock, injected faults, what destinations received."""

from __future__ import annotations

from fastapi import APIRouter, Request

from lifecycle.sandbox import vendors
from lifecycle.sandbox.state import SandboxState


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    world = state.world

    # ---- control plane ----------------------------------------------------------
    @router.get("/_sandbox/health")
    def health() -> dict:
        return {
            "status": "ok",
            "now": vendors.iso(state.now),
            "contacts": int(world.config.contacts),
        }

    @router.post("/_sandbox/faults/{vendor}")
    async def add_faults(vendor: str, request: Request) -> dict:
        body = await request.json()
        with state.lock:
            state.faults.setdefault(vendor, []).extend(body if isinstance(body, list) else [body])
            return {"queued": len(state.faults[vendor])}

    @router.post("/_sandbox/clock")
    async def clock(request: Request) -> dict:
        body = await request.json()
        state.set_clock(float(body["now_ts"]))
        return {"now": vendors.iso(state.now)}

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
        return {"reset": True}

    return router
