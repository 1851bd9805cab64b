"""HubSpot CRM v3: contacts, companies and deals (with their associations).

Incremental by HubSpot's own cursor: ``POST /crm/v3/objects/{type}/search`` filtered on
the last-modified property ``GTE`` the last value seen (kept in dlt state), sorted
ascending, 100 per page. A search query reaches at most 10,000 results, so when a window
fills up the connector starts a new query at the last ``lastmodifieddate`` it saw
(records already emitted at that instant are skipped by id). Records are flattened to
``id, created_at, updated_at, archived`` plus one column per property, and merged on
``id``: a re-run or an overlap never duplicates a row. Deals get ``contact_id`` and
``company_id`` from the v4 associations batch read.

Bad records go to ``raw_hubspot.quarantine`` with the reason: a missing required
field, a property that is not a string (HubSpot serves every property as a string, so a
changed type is a contract break) or an unparseable date. Unknown new properties are
kept: the table grows a column (schema drift evolves).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

import dlt

from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, client_options
from lifecycle.sources.common import Field, quarantined, violation

log = logging.getLogger(__name__)

SOURCE = "hubspot"
PAGE_SIZE = 100
#: HubSpot search returns at most this many results per query.
SEARCH_CAP = 10_000
EPOCH = "1970-01-01T00:00:00.000Z"
MODIFIED_PROPERTY = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
CONTACT_PROPERTIES = [
    "email",
    "firstname",
    "lastname",
    "phone",
    "country",
    "jobtitle",
    "company",
    "associatedcompanyid",
    "createdate",
    "lastmodifieddate",
    "lifecyclestage",
    "hs_lifecyclestage_subscriber_date",
    "hs_lifecyclestage_lead_date",
    "hs_lifecyclestage_marketingqualifiedlead_date",
    "hs_lifecyclestage_salesqualifiedlead_date",
    "hs_lifecyclestage_opportunity_date",
    "hs_lifecyclestage_customer_date",
    "hs_lifecyclestage_evangelist_date",
    # merges: the survivor lists the merged-away ids and their addresses (issue 11)
    "hs_merged_object_ids",
    "hs_additional_emails",
]
#: Deal properties whose every version is read (batch read ``propertiesWithHistory``).
DEAL_HISTORY_PROPERTIES = ["dealstage"]
DEAL_STAGE_HISTORY_TABLE = "deal_stage_history"
COMPANY_PROPERTIES = [
    "name",
    "domain",
    "industry",
    "numberofemployees",
    "country",
    "createdate",
    "hs_lastmodifieddate",
]
DEAL_PROPERTIES = [
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "createdate",
    "closedate",
    "hs_lastmodifieddate",
]
CONTRACTS = {
    "contacts": [
        Field("id"),
        Field("updated_at", "timestamp"),
        Field("email"),
        Field("createdate", "timestamp"),
    ],
    "companies": [Field("id"), Field("updated_at", "timestamp")],
    "deals": [
        Field("id"),
        Field("updated_at", "timestamp"),
        Field("dealstage"),
        Field("amount", "number", required=False),
    ],
}


class SearchCapError(RuntimeError):
    """More records share one last-modified instant than one search query can return."""


def client(conn_id: str = "hubspot_default") -> ApiClient:
    ep = get_endpoint(conn_id)
    return ApiClient(
        "HubSpot",
        ep.base_url,
        conn_id=conn_id,
        headers={"Authorization": f"Bearer {ep.password}"},
        **client_options(ep.extra),
    )


def _is_date(prop: str) -> bool:
    return prop.endswith("date")


def record_violation(raw: dict, object_type: str) -> str | None:
    """Why a HubSpot object breaks the contract (None when it is fine)."""
    if not isinstance(raw.get("properties"), dict):
        return "missing required field 'properties'"
    for k, v in raw["properties"].items():
        if v is not None and not isinstance(v, str):
            return (
                f"field '{k}' expected str (HubSpot properties are strings), got "
                f"{type(v).__name__} {str(v)[:40]!r}"
            )
        if v and _is_date(k) and violation({k: v}, [Field(k, "timestamp")]):
            return f"field '{k}' expected timestamp, got {v[:40]!r}"
    return violation(flatten(raw), CONTRACTS[object_type])


def flatten(record: dict) -> dict:
    out = {
        "id": record.get("id"),
        "created_at": record.get("createdAt"),
        "updated_at": record.get("updatedAt"),
        "archived": record.get("archived", False),
    }
    out.update({k: v for k, v in (record.get("properties") or {}).items() if k != "hs_object_id"})
    for to, key in (("contacts", "contact_id"), ("companies", "company_id")):
        assoc = (record.get("associations") or {}).get(to, {}).get("results") or []
        if assoc:
            out[key] = str(assoc[0]["id"])
    return out


def _ms(iso: str) -> str:
    return str(int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000))


def search_objects(
    api: ApiClient,
    object_type: str,
    properties: list[str],
    since: str,
    page_size: int = PAGE_SIZE,
    cap: int = SEARCH_CAP,
) -> Iterator[list[dict]]:
    """Every object modified at or after ``since``, oldest first, in pages.

    Slides the query window forward on the last seen last-modified value whenever the
    next page would cross the search cap, so any number of changes can be pulled.
    """
    prop = MODIFIED_PROPERTY[object_type]
    cursor = since
    emitted_at_cursor: set[str] = set()  # ids already yielded whose modified == cursor
    windows = 0
    while True:
        windows += 1
        after: str | None = None
        fetched = 0
        last_mod, ids_at_last = cursor, set(emitted_at_cursor)
        while True:
            body: dict = {
                "filterGroups": [
                    {"filters": [{"propertyName": prop, "operator": "GTE", "value": _ms(cursor)}]}
                ],
                "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
                "properties": sorted(set(properties) | {prop}),
                "limit": page_size,
            }
            if after:
                body["after"] = after
            res = api.json("POST", f"crm/v3/objects/{object_type}/search", json=body)
            results = res.get("results") or []
            fetched += len(results)
            page = []
            for r in results:
                mod = (r.get("properties") or {}).get(prop) or r.get("updatedAt")
                if mod == cursor and r.get("id") in emitted_at_cursor:
                    continue
                page.append(r)
                if isinstance(mod, str) and mod > last_mod:
                    last_mod, ids_at_last = mod, set()
                if mod == last_mod:
                    ids_at_last.add(r.get("id"))
            if page:
                yield page
            after = ((res.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                log.info("hubspot %s: search done in %d window(s)", object_type, windows)
                return
            if fetched + page_size > cap:
                break
        if last_mod == cursor and ids_at_last == emitted_at_cursor:
            raise SearchCapError(
                f"HubSpot {object_type}: more than {cap} records have {prop} = {cursor}; "
                "the search window cannot slide past them. Run with full_refresh=True "
                "(the list endpoint has no cap)."
            )
        log.info(
            "hubspot %s: %d results reach the search cap; sliding the window to %s=%s",
            object_type,
            fetched,
            prop,
            last_mod,
        )
        cursor, emitted_at_cursor = last_mod, ids_at_last


def add_associations(api: ApiClient, object_type: str, page: list[dict], to_types: list[str]):
    """Attach v4 associations (batch read, one call per page and target type)."""
    ids = [{"id": r["id"]} for r in page if r.get("id")]
    for to in to_types:
        res = api.json(
            "POST", f"crm/v4/associations/{object_type}/{to}/batch/read", json={"inputs": ids}
        )
        found = {
            x["from"]["id"]: [{"id": str(t["toObjectId"])} for t in x.get("to") or []]
            for x in res.get("results") or []
        }
        for r in page:
            r.setdefault("associations", {})[to] = {"results": found.get(r.get("id"), [])}
    return page


def deal_stage_history(api: ApiClient, page: list[dict]) -> list[dict]:
    """Every ``dealstage`` a page of deals went through, one row per version.

    ``POST /crm/v3/objects/deals/batch/read`` with ``propertiesWithHistory`` (HubSpot
    docs, "Read a batch of deals by internal ID"): each version has ``value`` and
    ``timestamp``. Search cannot return history, so this is one extra call per page.
    """
    ids = [{"id": r["id"]} for r in page if r.get("id")]
    if not ids:
        return []
    res = api.json(
        "POST",
        "crm/v3/objects/deals/batch/read",
        json={
            "inputs": ids,
            "properties": ["dealstage"],
            "propertiesWithHistory": DEAL_HISTORY_PROPERTIES,
        },
    )
    rows = []
    for r in res.get("results") or []:
        for v in (r.get("propertiesWithHistory") or {}).get("dealstage") or []:
            if v.get("value") and v.get("timestamp"):
                rows.append(
                    {
                        "deal_id": str(r["id"]),
                        "deal_stage": v["value"],
                        "changed_at": v["timestamp"],
                        "source_type": v.get("sourceType"),
                    }
                )
    return rows


def list_objects(
    api: ApiClient, object_type: str, properties: list[str], associations: str | None = None
) -> Iterator[list[dict]]:
    """Page through ``GET /crm/v3/objects/{type}`` following ``paging.next.after``."""
    params: dict = {"limit": PAGE_SIZE, "properties": ",".join(properties)}
    if associations:
        params["associations"] = associations
    after = None
    while True:
        if after:
            params["after"] = after
        body = api.json("GET", f"crm/v3/objects/{object_type}", params=params)
        yield body.get("results", [])
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def column_hints(properties: list[str]) -> dict:
    """Declare every requested property so its column exists even before it has data."""
    hints = {
        "id": {"data_type": "text", "nullable": False},
        "created_at": {"data_type": "timestamp"},
        "updated_at": {"data_type": "timestamp"},
        "archived": {"data_type": "bool"},
        "contact_id": {"data_type": "text"},
        "company_id": {"data_type": "text"},
    }
    for p in properties:
        hints[p] = {"data_type": "timestamp" if _is_date(p) else "text"}
    return hints


def _resource(object_type: str, properties: list[str], conn_id: str, associations=()):
    @dlt.resource(
        name=object_type,
        primary_key="id",
        write_disposition="merge",
        columns=column_hints(properties),
    )
    def objects():
        api = client(conn_id)
        # The vendor's cap; a connection may lower it (the sandbox can emulate a small cap).
        cap = int(get_endpoint(conn_id).extra.get("search_cap", SEARCH_CAP))
        state = dlt.current.resource_state()
        since = state.get("last_modified", EPOCH)
        newest, good_n, bad = since, 0, 0
        for page in search_objects(api, object_type, properties, since, cap=cap):
            if associations:
                page = add_associations(api, object_type, page, list(associations))
            good = []
            for raw in page:
                reason = record_violation(raw, object_type)
                if reason:
                    bad += 1
                    yield quarantined(SOURCE, object_type, raw, reason, raw.get("id"))
                    continue
                rec = flatten(raw)
                good.append(rec)
                newest = max(newest, rec["updated_at"])
            good_n += len(good)
            if good:
                yield good

        # Committed by dlt with the load package: a failed run leaves the cursor alone.
        state["last_modified"] = newest
        log.info(
            "hubspot %s: %d records modified since %s (%d quarantined); %s requests, "
            "%s retries, %s throttled; cursor now %s",
            object_type,
            good_n,
            since,
            bad,
            api.stats["requests"],
            api.stats["retries"],
            api.stats["throttled"],
            newest,
        )

    return objects


def _stage_history(deals, conn_id: str):
    """Every ``dealstage`` version of the deals the deals resource just loaded."""

    @dlt.transformer(
        data_from=deals,
        name=DEAL_STAGE_HISTORY_TABLE,
        primary_key=["deal_id", "deal_stage", "changed_at"],
        write_disposition="merge",
        columns={
            "deal_id": {"data_type": "text", "nullable": False},
            "deal_stage": {"data_type": "text", "nullable": False},
            "changed_at": {"data_type": "timestamp", "nullable": False},
            "source_type": {"data_type": "text"},
        },
    )
    def history(page):
        items = page if isinstance(page, list) else [page]
        page = [r for r in items if isinstance(r, dict) and "dealstage" in r]
        if page:
            rows = deal_stage_history(client(conn_id), page)
            if rows:
                yield rows

    return history


@dlt.source(name="hubspot", max_table_nesting=0)
def hubspot_source(conn_id: str = "hubspot_default"):
    """Contacts, companies and deals from HubSpot CRM v3, and the deals' stage history."""
    deals = _resource("deals", DEAL_PROPERTIES, conn_id, associations=("contacts", "companies"))
    return [
        _resource("contacts", CONTACT_PROPERTIES, conn_id),
        _resource("companies", COMPANY_PROPERTIES, conn_id),
        deals,
        _stage_history(deals, conn_id),
    ]
