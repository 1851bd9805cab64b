"""HubSpot CRM v3 emulator (write side), mounted at ``/hubspot``.

From HubSpot's CRM API reference, not from the connector:

- ``GET /crm/v3/properties/contacts`` and ``GET /crm/v3/properties/contacts/{name}``
  ("Read a property"; unknown: 404): property definitions. ``lifecyclestage`` is an
  enumeration with this portal's options — custom ones, as portals have had since
  lifecycle stages became customisable: internal names that are ids for some
  (``1482937104`` = "Marketing Qualified Lead"), an extra custom stage, and **no**
  ``other``. Contacts hold this portal's values (the world's default stage names are
  translated by label).
- ``POST /crm/v3/properties/contacts`` ("Create a property"): an existing name is 409.
- ``POST /crm/v3/objects/contacts/batch/update`` ("Update a batch of contacts"): at most
  100 ``inputs``; an unknown property, or a value that is not one of an enumeration's
  options (``INVALID_OPTION``), fails the whole batch with HubSpot's 400
  ``VALIDATION_ERROR`` shape; per input, a missing contact or a backward
  ``lifecyclestage`` move (in the options' display order, set without clearing first) is
  an error; any error makes the answer 207 multi-status with ``errors[].context.ids``.
  ``""`` clears a property.
- ``POST /crm/v3/objects/contacts/gdpr-delete`` ("Permanently delete a contact
  (GDPR-compliant)"): ``{objectId}`` (a contact id, or an email with ``idProperty:
  email``) -> 204 and the contact is gone; an unknown id is 404, an unknown email is
  blocklisted (204).

Contacts start as the world's contacts; the shared HubSpot rate limit applies.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from lifecycle.sandbox.hubspot import records
from lifecycle.sandbox.state import HUBSPOT_TOKEN, SandboxState

MAX_INPUTS = 100
#: This portal's lifecycle stage options, in display order: customised (ids as internal
#: names for two of them, an extra stage), without ``evangelist`` and without ``other``.
LIFECYCLE_OPTIONS = [
    {"label": "Subscriber", "value": "subscriber"},
    {"label": "Lead", "value": "lead"},
    {"label": "Marketing Qualified Lead", "value": "1482937104"},
    {"label": "Sales Qualified Lead", "value": "salesqualifiedlead"},
    {"label": "Opportunity", "value": "opportunity"},
    {"label": "Customer", "value": "customer"},
    {"label": "Evangelist", "value": "1482937170"},
    {"label": "Partner referral", "value": "1482937161"},
]
#: internal values in the portal's order (tests read the vendor's own order from here)
STAGES = [o["value"] for o in LIFECYCLE_OPTIONS]
#: a default stage name (as the world's records spell it) -> this portal's value
BY_DEFAULT_NAME = {o["label"].lower().replace(" ", ""): o["value"] for o in LIFECYCLE_OPTIONS}


def _not_found(message: str) -> HTTPException:
    return HTTPException(
        404, detail={"status": "error", "category": "OBJECT_NOT_FOUND", "message": message}
    )


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
            for c in contacts.values():
                stage = c.get("lifecyclestage")
                if stage:
                    c["lifecyclestage"] = BY_DEFAULT_NAME.get(stage, stage)
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
                for n in names | {"email", "firstname", "lastname"}
            }
            props["lifecyclestage"] = {
                "name": "lifecyclestage",
                "label": "Lifecycle Stage",
                "type": "enumeration",
                "fieldType": "radio",
                "groupName": "contactinformation",
                "hubspotDefined": True,
                "options": [
                    {**o, "displayOrder": i, "hidden": False}
                    for i, o in enumerate(LIFECYCLE_OPTIONS)
                ],
            }
            return {"contacts": contacts, "properties": props, "blocklist": set()}

        return state.destination("hubspot", build)

    @router.get("/crm/v3/properties/contacts/{name}")
    def read_property(name: str, request: Request) -> JSONResponse:
        headers = auth(request)
        s = store()
        with state.lock:
            prop = s["properties"].get(name)
        if prop is None:
            raise _not_found(f"Unable to find property {name} for object type contacts")
        return JSONResponse(prop, headers=headers)

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
        with state.lock:
            allowed = {
                name: [o["value"] for o in prop.get("options") or []]
                for name, prop in s["properties"].items()
                if prop.get("type") == "enumeration"
            }
        invalid = [
            (name, value)
            for i in inputs
            for name, value in (i.get("properties") or {}).items()
            if name in allowed and value not in ("", None) and value not in allowed[name]
        ]
        if invalid:
            name, value = invalid[0]
            state.count("hubspot_invalid_option")
            raise HTTPException(
                400,
                detail={
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": 'Property values were not valid: [{"isValid":false,"message":"'
                    f"{value} was not one of the allowed options: "
                    f"{', '.join(allowed[name])}"
                    f'","error":"INVALID_OPTION","name":"{name}"}}]',
                },
            )
        with state.lock:
            order = {o: i for i, o in enumerate(allowed.get("lifecyclestage", []))}
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
                    and current in order
                    and wanted in order
                    and order[wanted] < order[current]
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

    @router.post("/crm/v3/objects/contacts/gdpr-delete")
    async def gdpr_delete(request: Request) -> Response:
        headers = auth(request)
        body = await request.json()
        object_id = str(body.get("objectId") or "")
        s = store()
        with state.lock:
            if body.get("idProperty") == "email":
                match = [
                    cid
                    for cid, c in s["contacts"].items()
                    if str(c.get("email") or "").lower() == object_id.lower()
                ]
                if not match:
                    s["blocklist"].add(object_id.lower())
            else:
                match = [object_id] if object_id in s["contacts"] else []
                if not match:
                    raise _not_found(f"resource not found: contact {object_id}")
            for cid in match:
                del s["contacts"][cid]
        state.record("hubspot", {"call": "gdpr_delete", "body": body})
        return Response(status_code=204, headers=headers)

    return router
