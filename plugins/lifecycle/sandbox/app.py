"""The emulated vendor APIs: one FastAPI app, one router module per vendor.

Paths after the prefix follow each vendor's documented contract (see
``shared/CONTRACTS.md``), so a connector only changes its base URL and credentials
between the sandbox and the real vendor:

- ``/hubspot``   HubSpot CRM v3 (``api_hubspot.py``)
- ``/mailchimp`` Mailchimp Marketing v3 (``api_mailchimp.py``)
- ``/meta``      Meta Marketing API custom-audience users (``api_meta.py``)
- ``/google_ads`` Google Ads Customer Match offline user data jobs (``api_google_ads.py``)
- ``/mailchimp`` also list-member upserts and tags (``api_mailchimp_write.py``)
- ``/hubspot``   also contact batch updates and properties (``api_hubspot_write.py``)
- ``/_sandbox``  control plane for tests: health, clock, faults, received (``api_control.py``)

Faults queued with ``POST /_sandbox/faults/<vendor>`` are applied, one per request, to
the next requests whose path starts with ``/<vendor>``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from lifecycle.sandbox import (
    api_control,
    api_google_ads,
    api_hubspot,
    api_hubspot_write,
    api_mailchimp,
    api_mailchimp_write,
    api_meta,
)
from lifecycle.sandbox.state import SandboxState
from lifecycle.sandbox.world import World

ROUTERS = (
    ("", api_control),
    ("/hubspot", api_hubspot),
    ("/mailchimp", api_mailchimp),
    ("/meta", api_meta),
    ("/google_ads", api_google_ads),
    ("/mailchimp", api_mailchimp_write),
    ("/hubspot", api_hubspot_write),
)


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
                return JSONResponse(
                    status_code=int(fault["status"]),
                    content=fault.get("body", {"message": "injected fault"}),
                    headers=headers,
                )
            if fault.get("malformed"):
                # a truncated JSON body, as a proxy cut mid-response would deliver
                return Response(
                    content='{"results": [ {"id": "1", "prop',
                    media_type="application/json",
                    status_code=200,
                )
        return await call_next(request)

    for prefix, module in ROUTERS:
        app.include_router(module.router(state), prefix=prefix)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        body = exc.detail if isinstance(exc.detail, dict) else {"message": exc.detail}
        return JSONResponse(
            status_code=exc.status_code, content=body, headers=getattr(exc, "headers", None) or {}
        )

    return app
