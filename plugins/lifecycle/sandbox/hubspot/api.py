"""HubSpot CRM v3 emulator: bearer auth, list and search paging, associations, rate limits.

- ``GET /crm/v3/objects/{type}``: list with an ``after`` cursor, ``limit`` <= 100.
- ``POST /crm/v3/objects/{type}/search``: filter on the last-modified property
  (``lastmodifieddate`` for contacts, ``hs_lastmodifieddate`` otherwise) with
  GTE/GT/LTE/LT/EQ, sorted ascending, ``limit`` <= 100; a query reaches at most
  ``hubspot_search_cap`` (10,000) results: paging past it answers 400, as HubSpot does.
- ``POST /crm/v3/objects/{type}/batch/read``: up to 100 ids, with ``properties`` and
  ``propertiesWithHistory`` (every version of a property, newest first; HubSpot docs
  "Read a batch of deals by internal ID, or unique property values"). The emulator
  keeps the history of ``dealstage``.
- ``POST /crm/v4/associations/{from}/{to}/batch/read`` and
  ``GET /crm/v4/objects/{from}/{id}/associations/{to}``.
- Every call answers ``X-HubSpot-RateLimit-*`` headers; over the limit: 429. Search has
  its own limit (about 4 requests per second).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import datetime

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import JSONResponse

from lifecycle.sandbox.hubspot import records as portal
from lifecycle.sandbox.state import HUBSPOT_TOKEN, RateLimit, SandboxState

#: The property a search filters and sorts on to find changed records, per object.
MODIFIED_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
SEARCH_OPERATORS = ("GTE", "GT", "LTE", "LT", "EQ")


def _error(status: int, category: str, message: str, headers: dict | None = None):
    return HTTPException(
        status,
        detail={"status": "error", "category": category, "message": message},
        headers=headers,
    )


def _ms(value: str | int) -> int:
    """A HubSpot datetime filter value (epoch milliseconds or ISO-8601) in milliseconds."""
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise _error(400, "VALIDATION_ERROR", f"filter value {value!r} is not a datetime") from exc


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    builders = {
        "contacts": portal.contacts,
        "companies": portal.companies,
        "deals": portal.deals,
    }

    def records(object_type: str) -> list[dict]:
        if object_type not in builders:
            raise _error(404, "OBJECT_NOT_FOUND", f"Unknown object type {object_type}")
        return state.cached(f"hs:{object_type}", builders[object_type])

    def by_modified(object_type: str) -> tuple[list[int], list[dict]]:
        """Records sorted by (last modified, id), with their sort keys in milliseconds."""

        def build(world, now):
            rows = sorted(records(object_type), key=lambda r: (r["updatedAt"], r["id"]))
            return [_ms(r["updatedAt"]) for r in rows], rows

        return state.cached(f"hs:{object_type}:by_modified", build)

    def throttle(request: Request, limit: RateLimit) -> dict:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {HUBSPOT_TOKEN}":
            raise _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        state.count("hubspot_requests")
        ok, remaining = limit.take()
        headers = {
            "X-HubSpot-RateLimit-Max": str(limit.max_requests),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limit.interval_s * 1000)),
        }
        if not ok:
            state.count("hubspot_429")
            raise _error(429, "RATE_LIMITS", "You have reached your secondly limit.", headers)
        return headers

    def hubspot_auth(request: Request) -> dict:
        return throttle(request, state.hubspot_limit)

    def select_props(record: dict, wanted: list[str] | None) -> dict:
        if not wanted:
            return record
        keep = set(wanted)
        props = {k: v for k, v in record["properties"].items() if k in keep}
        return {**record, "properties": props}

    def with_associations(record: dict, object_type: str, to_types: str | None) -> dict:
        if not to_types:
            return record
        assoc = state.cached("hs:associations", portal.associations)
        out = {}
        for to in to_types.split(","):
            ids = assoc.get((object_type, to), {}).get(record["id"], [])
            out[to] = {
                "results": [{"id": i, "type": f"{object_type[:-1]}_to_{to[:-1]}"} for i in ids]
            }
        return {**record, "associations": out}

    @router.get("/crm/v3/objects/{object_type}")
    def hubspot_list(
        object_type: str,
        request: Request,
        limit: int = 10,
        after: str | None = None,
        properties: str | None = None,
        associations: str | None = None,
    ):
        headers = hubspot_auth(request)
        rows = records(object_type)
        if limit > 100:
            raise _error(400, "VALIDATION_ERROR", "limit must be <= 100")
        start = int(after or 0)
        wanted = properties.split(",") if properties else None
        page = [
            with_associations(select_props(r, wanted), object_type, associations)
            for r in rows[start : start + limit]
        ]
        page = state.corrupt("hubspot", object_type, page)
        body: dict = {"results": page}
        if start + limit < len(rows):
            body["paging"] = {
                "next": {"after": str(start + limit), "link": f"?after={start + limit}"}
            }
        return JSONResponse(body, headers=headers)

    @router.post("/crm/v3/objects/{object_type}/search")
    def hubspot_search(object_type: str, request: Request, body: dict = Body(default={})):  # noqa: B006
        headers = throttle(request, state.hubspot_search_limit)
        state.count("hubspot_search_requests")
        keys, rows = by_modified(object_type)
        limit = int(body.get("limit", 10))
        if limit > 100:
            raise _error(400, "VALIDATION_ERROR", "limit must be <= 100", headers)
        after = int(body.get("after") or 0)
        prop = MODIFIED_PROPERTY[object_type]
        lo, hi = 0, len(rows)
        groups = body.get("filterGroups") or []
        if len(groups) > 1:
            raise _error(400, "VALIDATION_ERROR", "the emulator supports one filter group")
        for f in groups[0].get("filters", []) if groups else []:
            name, op = f.get("propertyName"), f.get("operator")
            if name not in (prop, "lastmodifieddate", "hs_lastmodifieddate"):
                raise _error(400, "VALIDATION_ERROR", f"cannot filter on {name!r} in the sandbox")
            if op not in SEARCH_OPERATORS:
                raise _error(400, "VALIDATION_ERROR", f"unsupported operator {op!r}")
            v = _ms(f.get("value"))
            if op in ("GTE", "EQ"):
                lo = max(lo, bisect_left(keys, v))
            if op == "GT":
                lo = max(lo, bisect_right(keys, v))
            if op in ("LTE", "EQ"):
                hi = min(hi, bisect_right(keys, v))
            if op == "LT":
                hi = min(hi, bisect_left(keys, v))
        for s in body.get("sorts") or []:
            if s.get("propertyName") not in (prop, "lastmodifieddate", "hs_lastmodifieddate"):
                raise _error(400, "VALIDATION_ERROR", "the sandbox sorts by last modified only")
            if s.get("direction", "ASCENDING") != "ASCENDING":
                raise _error(400, "VALIDATION_ERROR", "the sandbox sorts ascending only")
        total = max(0, hi - lo)
        if after >= state.hubspot_search_cap:
            state.count("hubspot_search_cap_400")
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"Search results are limited to {state.hubspot_search_cap} per query; "
                f"narrow the filter instead of paging past it (after={after}).",
                headers,
            )
        start = lo + after
        end = min(hi, start + limit, lo + state.hubspot_search_cap)
        wanted = list(body.get("properties") or []) or None
        page = [select_props(r, wanted) for r in rows[start:end]]
        page = state.corrupt("hubspot", object_type, page)
        out: dict = {"total": total, "results": page}
        if end < hi:
            # Offered even at the cap, as HubSpot does; requesting it answers 400.
            out["paging"] = {"next": {"after": str(end - lo)}}
        return JSONResponse(out, headers=headers)

    @router.post("/crm/v3/objects/{object_type}/batch/read")
    def objects_batch_read(
        object_type: str,
        request: Request,
        body: dict = Body(default={}),  # noqa: B006
    ):
        headers = hubspot_auth(request)
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _error(400, "VALIDATION_ERROR", "at most 100 inputs per batch read", headers)
        by_id = state.cached(
            f"hs:{object_type}:by_id", lambda w, now: {r["id"]: r for r in records(object_type)}
        )
        wanted = list(body.get("properties") or []) or None
        with_history = list(body.get("propertiesWithHistory") or [])
        history = {}
        if with_history and object_type == "deals":
            history = state.cached("hs:deals:stage_history", portal.deal_stage_history)
        results = []
        for item in inputs:
            rec = by_id.get(str(item.get("id")))
            if rec is None:
                continue
            out = select_props(rec, wanted)
            if with_history:
                out = {
                    **out,
                    "propertiesWithHistory": {
                        p: history.get(rec["id"], []) if p == "dealstage" else []
                        for p in with_history
                    },
                }
            results.append(out)
        return JSONResponse({"status": "COMPLETE", "results": results}, headers=headers)

    @router.post("/crm/v4/associations/{from_type}/{to_type}/batch/read")
    def associations_batch(
        from_type: str,
        to_type: str,
        request: Request,
        body: dict = Body(default={}),  # noqa: B006
    ):
        headers = hubspot_auth(request)
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            raise _error(400, "VALIDATION_ERROR", "at most 1000 inputs per batch", headers)
        assoc = state.cached("hs:associations", portal.associations)
        m = assoc.get((from_type, to_type))
        if m is None:
            raise _error(400, "VALIDATION_ERROR", f"no association {from_type} -> {to_type}")
        results = [
            {
                "from": {"id": str(i["id"])},
                "to": [
                    {
                        "toObjectId": int(t),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}
                        ],
                    }
                    for t in m.get(str(i["id"]), [])
                ],
            }
            for i in inputs
            if str(i.get("id")) in m
        ]
        return JSONResponse({"status": "COMPLETE", "results": results}, headers=headers)

    @router.get("/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}")
    def associations_one(from_type: str, object_id: str, to_type: str, request: Request):
        headers = hubspot_auth(request)
        assoc = state.cached("hs:associations", portal.associations)
        ids = assoc.get((from_type, to_type), {}).get(object_id, [])
        results = [
            {
                "toObjectId": int(t),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}],
            }
            for t in ids
        ]
        return JSONResponse({"results": results}, headers=headers)

    return router
