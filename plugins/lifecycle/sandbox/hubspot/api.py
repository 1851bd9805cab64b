"""HubSpot CRM v3 emulator: bearer auth, list and search paging, associations, rate limits.

Each behaviour follows a page of HubSpot's developer documentation:

- "Authentication overview" (private apps): ``Authorization: Bearer <token>``; without
  it 401 ``INVALID_AUTHENTICATION``.
- "CRM API | Contacts" / "Companies" / "Deals": ``GET /crm/v3/objects/{type}`` lists
  with an ``after`` cursor, ``limit`` <= 100; ``archived=true`` returns only archived
  records (with ``archivedAt``) and is the only way to see them;
  ``POST /crm/v3/objects/{type}/batch/read`` reads up to 100 ids (50 when
  ``propertiesWithHistory`` is asked for), with each property's history newest first;
  the list endpoint takes ``propertiesWithHistory`` too ("Usage of this parameter will
  reduce the maximum number of objects that can be read by a single request": the
  emulator allows 50 per page with it, as batch read does)
  ("Read a batch of deals by internal ID, or unique property values"; the emulator keeps
  the history of a deal's ``dealstage`` and of the contact consent checkbox).
- "CRM API | Search": ``POST /crm/v3/objects/{type}/search`` takes up to 5
  ``filterGroups`` (OR) of up to 6 ``filters`` (AND), 18 filters in all (400 beyond),
  operators EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY,
  NOT_HAS_PROPERTY; sorted by the last-modified property ascending; ``limit`` <= 200;
  a query reaches at most ``hubspot_search_cap`` (10,000) results, paging past it
  answers 400. Search never returns archived records.
- "Associations v4": ``POST /crm/v4/associations/{from}/{to}/batch/read`` and
  ``GET /crm/v4/objects/{from}/{id}/associations/{to}`` with HubSpot-defined type ids
  (deal→contact 3, contact→deal 4, deal→company 5 and 341 primary, company→deal 6,
  contact→company 279 and 1 primary, company→contact 280 and 2 primary).
- "API usage guidelines and limits": every call answers ``X-HubSpot-RateLimit-*``
  headers; over the limit 429. Search has its own limit (about 4 requests per second).

(HubSpot's changelog announced higher search limits in 2024 — 5 groups, 10 filters per
group, 25 in all — while the Search guide still states 5 x 6 and 18: the emulator
enforces the stricter, documented 5 x 6 / 18 so a connector within it works on both.)
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
SEARCH_OPERATORS = (
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
)
#: "CRM API | Search": at most 5 filter groups of at most 6 filters, 18 filters in all.
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
SEARCH_PAGE_MAX = 200
BATCH_READ_MAX, BATCH_READ_HISTORY_MAX = 100, 50


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

    def archived_records(object_type: str) -> list[dict]:
        records(object_type)  # 404 for an unknown type
        if object_type != "contacts":
            return []
        return state.cached("hs:contacts:archived", portal.archived_contacts)

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
            linked = assoc.get((object_type, to), {}).get(record["id"], [])
            out[to] = {
                "results": [
                    {"id": i, "type": f"{object_type[:-1]}_to_{to[:-1]}"} for i, _ in linked
                ]
            }
        return {**record, "associations": out}

    def with_history(record: dict, object_type: str, history_props: list[str]) -> dict:
        """``propertiesWithHistory``: the versions the emulator keeps (a deal's stage, a
        contact's consent checkbox), newest first; any other property asked for has an
        empty history."""
        if not history_props:
            return record
        history, kept = {}, None
        if object_type == "deals":
            history = state.cached("hs:deals:stage_history", portal.deal_stage_history)
            kept = "dealstage"
        elif object_type == "contacts":
            history = state.cached("hs:consent_history", portal.consent_history)
            kept = portal.HUBSPOT_CONSENT_PROPERTY
        return {
            **record,
            "propertiesWithHistory": {
                p: history.get(record["id"], []) if p == kept else [] for p in history_props
            },
        }

    @router.get("/crm/v3/objects/{object_type}")
    def hubspot_list(
        object_type: str,
        request: Request,
        limit: int = 10,
        after: str | None = None,
        properties: str | None = None,
        associations: str | None = None,
        archived: bool = False,
        propertiesWithHistory: str | None = None,  # noqa: N803 - HubSpot's parameter name
    ):
        headers = hubspot_auth(request)
        rows = archived_records(object_type) if archived else records(object_type)
        history_props = propertiesWithHistory.split(",") if propertiesWithHistory else []
        cap = BATCH_READ_HISTORY_MAX if history_props else 100
        if limit > cap:
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"limit must be <= {cap}"
                + (" with propertiesWithHistory" if history_props else ""),
            )
        start = int(after or 0)
        wanted = properties.split(",") if properties else None
        page = [
            with_history(
                with_associations(select_props(r, wanted), object_type, associations),
                object_type,
                history_props,
            )
            for r in rows[start : start + limit]
        ]
        page = state.corrupt("hubspot", object_type, page)
        body: dict = {"results": page}
        if start + limit < len(rows):
            body["paging"] = {
                "next": {"after": str(start + limit), "link": f"?after={start + limit}"}
            }
        return JSONResponse(body, headers=headers)

    def check_filter_groups(groups: list, headers: dict) -> None:
        if len(groups) > MAX_FILTER_GROUPS:
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"Too many filter groups ({len(groups)}); the maximum is {MAX_FILTER_GROUPS}.",
                headers,
            )
        total = 0
        for g in groups:
            n = len(g.get("filters") or [])
            total += n
            if n > MAX_FILTERS_PER_GROUP:
                raise _error(
                    400,
                    "VALIDATION_ERROR",
                    f"Too many filters in a filter group ({n}); the maximum is "
                    f"{MAX_FILTERS_PER_GROUP}.",
                    headers,
                )
        if total > MAX_FILTERS:
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"Too many filters ({total}); the maximum across all groups is {MAX_FILTERS}.",
                headers,
            )

    def matches(record: dict, f: dict, prop: str, key_ms: int) -> bool:
        name, op = f.get("propertyName"), f.get("operator", "EQ")
        if op not in SEARCH_OPERATORS:
            raise _error(400, "VALIDATION_ERROR", f"unsupported operator {op!r}")
        modified = name in (prop, "lastmodifieddate", "hs_lastmodifieddate")
        value = key_ms if modified else (record["properties"] or {}).get(name)
        if name == "hs_object_id":
            value = record["id"]
        if op == "HAS_PROPERTY":
            return value not in (None, "")
        if op == "NOT_HAS_PROPERTY":
            return value in (None, "")
        if value in (None, ""):
            return op in ("NEQ", "NOT_IN")

        def conv(x):
            return _ms(x) if modified else str(x)

        if op in ("IN", "NOT_IN"):
            values = {conv(v) for v in f.get("values") or []}
            return (value in values) == (op == "IN")
        if op == "BETWEEN":
            return conv(f.get("value")) <= value <= conv(f.get("highValue"))
        target = conv(f.get("value"))
        return {
            "EQ": value == target,
            "NEQ": value != target,
            "LT": value < target,
            "LTE": value <= target,
            "GT": value > target,
            "GTE": value >= target,
        }[op]

    def modified_range(filters: list, prop: str, keys: list[int]) -> tuple[int, int] | None:
        """The index range of a group that filters only on the modified property."""
        lo, hi = 0, len(keys)
        for f in filters:
            name, op = f.get("propertyName"), f.get("operator", "EQ")
            if name not in (prop, "lastmodifieddate", "hs_lastmodifieddate") or op not in (
                "GTE",
                "GT",
                "LTE",
                "LT",
                "EQ",
            ):
                return None
            v = _ms(f.get("value"))
            if op in ("GTE", "EQ"):
                lo = max(lo, bisect_left(keys, v))
            if op == "GT":
                lo = max(lo, bisect_right(keys, v))
            if op in ("LTE", "EQ"):
                hi = min(hi, bisect_right(keys, v))
            if op == "LT":
                hi = min(hi, bisect_left(keys, v))
        return lo, hi

    @router.post("/crm/v3/objects/{object_type}/search")
    def hubspot_search(object_type: str, request: Request, body: dict = Body(default={})):  # noqa: B006
        headers = throttle(request, state.hubspot_search_limit)
        state.count("hubspot_search_requests")
        keys, rows = by_modified(object_type)
        limit = int(body.get("limit", 10))
        if limit > SEARCH_PAGE_MAX:
            raise _error(400, "VALIDATION_ERROR", f"limit must be <= {SEARCH_PAGE_MAX}", headers)
        after = int(body.get("after") or 0)
        prop = MODIFIED_PROPERTY[object_type]
        groups = body.get("filterGroups") or []
        check_filter_groups(groups, headers)
        for s in body.get("sorts") or []:
            if s.get("propertyName") not in (prop, "lastmodifieddate", "hs_lastmodifieddate"):
                raise _error(400, "VALIDATION_ERROR", "the sandbox sorts by last modified only")
            if s.get("direction", "ASCENDING") != "ASCENDING":
                raise _error(400, "VALIDATION_ERROR", "the sandbox sorts ascending only")
        ranges = [modified_range(g.get("filters") or [], prop, keys) for g in groups]
        if not groups:
            selected = range(len(rows))
        elif len(groups) == 1 and ranges[0] is not None:
            selected = range(*ranges[0])  # the incremental pull: a bisected window
        else:  # OR of groups, AND within a group
            selected = [
                i
                for i in range(len(rows))
                if any(
                    all(matches(rows[i], f, prop, keys[i]) for f in g.get("filters") or [])
                    for g in groups
                )
            ]
        total = len(selected)
        if after >= state.hubspot_search_cap:
            state.count("hubspot_search_cap_400")
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"Search results are limited to {state.hubspot_search_cap} per query; "
                f"narrow the filter instead of paging past it (after={after}).",
                headers,
            )
        end = min(total, after + limit, state.hubspot_search_cap)
        wanted = list(body.get("properties") or []) or None
        page = [select_props(rows[i], wanted) for i in selected[after:end]]
        page = state.corrupt("hubspot", object_type, page)
        out: dict = {"total": total, "results": page}
        if end < total:
            # Offered even at the cap, as HubSpot does; requesting it answers 400.
            out["paging"] = {"next": {"after": str(end)}}
        return JSONResponse(out, headers=headers)

    @router.post("/crm/v3/objects/{object_type}/batch/read")
    def objects_batch_read(
        object_type: str,
        request: Request,
        body: dict = Body(default={}),  # noqa: B006
    ):
        headers = hubspot_auth(request)
        inputs = body.get("inputs") or []
        history_props = list(body.get("propertiesWithHistory") or [])
        cap = BATCH_READ_HISTORY_MAX if history_props else BATCH_READ_MAX
        if len(inputs) > cap:
            raise _error(
                400,
                "VALIDATION_ERROR",
                f"at most {cap} inputs per batch read"
                + (" with propertiesWithHistory" if history_props else ""),
                headers,
            )
        by_id = state.cached(
            f"hs:{object_type}:by_id", lambda w, n: {r["id"]: r for r in records(object_type)}
        )
        wanted = list(body.get("properties") or []) or None
        results = []
        for i in inputs:
            r = by_id.get(str(i.get("id")))
            if r is None:
                continue
            results.append(with_history(select_props(r, wanted), object_type, history_props))
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
                    {"toObjectId": int(t), "associationTypes": types}
                    for t, types in m.get(str(i["id"]), [])
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
        linked = assoc.get((from_type, to_type), {}).get(object_id, [])
        results = [{"toObjectId": int(t), "associationTypes": types} for t, types in linked]
        return JSONResponse({"results": results}, headers=headers)

    return router
