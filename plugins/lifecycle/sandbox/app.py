"""The emulated vendor APIs: one FastAPI app, one router module per vendor.

Paths after the prefix follow each vendor's documented contract (see
``shared/CONTRACTS.md``), so a connector only changes its base URL and credentials
between the sandbox and the real vendor:

- ``/hubspot``   HubSpot CRM v3 (``hubspot/api.py``)
- ``/mailchimp`` Mailchimp Marketing v3 (``mailchimp/api.py``)
- ``/meta``      Meta Marketing API custom-audience users (``meta/api.py``)
- ``/google_ads`` Google Ads Customer Match offline user data jobs (``google_ads/api.py``)
- ``/mailchimp`` also list-member upserts and tags (``mailchimp/api_write.py``)
- ``/hubspot``   also contact batch updates and properties (``hubspot/api_write.py``)
- ``/_sandbox``  control plane for tests: health, clock, faults, received (``control.py``)

Faults queued with ``POST /_sandbox/faults/<vendor>`` are applied, one per request, to
the next requests whose path starts with ``/<vendor>``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from lifecycle.sandbox import control
from lifecycle.sandbox.google_ads import api as google_ads_api
from lifecycle.sandbox.hubspot import api as hubspot_api
from lifecycle.sandbox.hubspot import api_write as hubspot_write_api
from lifecycle.sandbox.mailchimp import api as mailchimp_api
from lifecycle.sandbox.mailchimp import api_write as mailchimp_write_api
from lifecycle.sandbox.meta import api as meta_api
from lifecycle.sandbox.state import SandboxState
from lifecycle.sandbox.world import World

ROUTERS = (
    ("", control),
    ("/hubspot", hubspot_api),
    ("/mailchimp", mailchimp_api),
    ("/meta", meta_api),
    ("/google_ads", google_ads_api),
    ("/mailchimp", mailchimp_write_api),
    ("/hubspot", hubspot_write_api),
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
