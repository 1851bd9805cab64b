"""HubSpot CRM v3 emulator (write side), mounted at ``/hubspot``.

- ``GET/POST /crm/v3/properties/contacts``: contact property definitions; creating an
  existing one is a 409.
- ``POST /crm/v3/objects/contacts/batch/update``: at most 100 ``inputs``; an unknown
  property fails the whole batch (400); per input, a missing contact or a backward
  ``lifecyclestage`` move (set without clearing first) is an error; any error makes the
  answer 207 multi-status with ``errors[].context.ids``. ``""`` clears a property.

Contacts start as the world's contacts; the shared HubSpot rate limit applies.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from lifecycle.sandbox.hubspot import records
from lifecycle.sandbox.state import HUBSPOT_TOKEN, SandboxState

MAX_INPUTS = 100
STAGES = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    def auth(request: Request) -> dict:
        if request.headers.get("authorization", "") != f"Bearer {HUBSPOT_TOKEN}":
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

    def store() -> dict:
        def build():
            contacts = {
                str(c["id"]): dict(c["properties"])
                for c in records.contacts(state.world, state.now)
            }
            names = set().union(*(p.keys() for p in contacts.values())) if contacts else set()
            props = {
                n: {
                    "name": n,
                    "label": n,
                    "type": "string",
                    "fieldType": "text",
                    "groupName": "contactinformation",
                    "hubspotDefined": True,
                }
                for n in names | {"lifecyclestage", "email", "firstname", "lastname"}
            }
            return {"contacts": contacts, "properties": props}

        return state.destination("hubspot", build)

    @router.get("/crm/v3/properties/contacts")
    def list_properties(request: Request) -> JSONResponse:
        headers = auth(request)
        s = store()
        with state.lock:
            results = list(s["properties"].values())
        return JSONResponse({"results": results}, headers=headers)

    @router.post("/crm/v3/properties/contacts")
    async def create_property(request: Request) -> JSONResponse:
        headers = auth(request)
        body = await request.json()
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise HTTPException(
                400,
                detail={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"missing {', '.join(missing)}",
                },
            )
        s = store()
        with state.lock:
            if body["name"] in s["properties"]:
                raise HTTPException(
                    409,
                    detail={
                        "status": "error",
                        "category": "OBJECT_ALREADY_EXISTS",
                        "message": f"A property named '{body['name']}' already exists.",
                    },
                )
            s["properties"][body["name"]] = {**body, "hubspotDefined": False}
        state.record("hubspot", {"call": "create_property", "body": body})
        return JSONResponse(s["properties"][body["name"]], status_code=201, headers=headers)

    @router.post("/crm/v3/objects/contacts/batch/update")
    async def batch_update(request: Request) -> JSONResponse:
        headers = auth(request)
        body = await request.json()
        inputs = body.get("inputs") or []
        if len(inputs) > MAX_INPUTS:
            raise HTTPException(
                400,
                detail={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"{len(inputs)} inputs (max 100)",
                },
            )
        s = store()
        state.record("hubspot", {"call": "batch_update", "body": body})
        with state.lock:
            unknown = sorted(
                {k for i in inputs for k in (i.get("properties") or {})} - set(s["properties"])
            )
        if unknown:
            raise HTTPException(
                400,
                detail={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": f"Property values were not valid: properties {', '.join(unknown)} "
                    "do not exist",
                },
            )
        results, errors = [], []
        for item in inputs:
            cid = str(item.get("id"))
            props = item.get("properties") or {}
            injected = state.take_rejection("hubspot", cid)
            with state.lock:
                contact = s["contacts"].get(cid)
                current = (contact or {}).get("lifecyclestage") or ""
                wanted = props.get("lifecyclestage")
                if injected:
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": injected,
                            "context": {"ids": [cid]},
                        }
                    )
                elif contact is None:
                    errors.append(
                        {
                            "status": "error",
                            "category": "OBJECT_NOT_FOUND",
                            "message": "Object not found. objectId are usually numeric.",
                            "context": {"ids": [cid]},
                        }
                    )
                elif (
                    wanted
                    and current in STAGES
                    and wanted in STAGES
                    and STAGES.index(wanted) < STAGES.index(current)
                ):
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "message": f"lifecyclestage cannot move backwards from "
                            f"{current} to {wanted}; clear it first",
                            "context": {"ids": [cid]},
                        }
                    )
                else:
                    contact.update(props)
                    results.append({"id": cid, "properties": dict(props)})
        out = {"status": "COMPLETE", "results": results}
        if errors:
            out.update(errors=errors, numErrors=len(errors))
        return JSONResponse(out, status_code=207 if errors else 200, headers=headers)

    return router
