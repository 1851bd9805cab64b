"""HubSpot CRM v3: contacts, companies and deals (with their contact associations).

Records are flattened to ``id, created_at, updated_at, archived`` plus one column per
requested property, merged on ``id``. Incremental by ``updatedAt`` (state kept by dlt).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dlt

from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient
from lifecycle.sources.common import Field, quarantined, violation

log = logging.getLogger(__name__)

SOURCE = "hubspot"
PAGE_SIZE = 100
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
]
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


def client(conn_id: str = "hubspot_default") -> ApiClient:
    ep = get_endpoint(conn_id)
    return ApiClient(
        "HubSpot", ep.base_url, conn_id=conn_id, headers={"Authorization": f"Bearer {ep.password}"}
    )


def flatten(record: dict) -> dict:
    out = {
        "id": record["id"],
        "created_at": record.get("createdAt"),
        "updated_at": record.get("updatedAt"),
        "archived": record.get("archived", False),
    }
    out.update({k: v for k, v in (record.get("properties") or {}).items() if k != "hs_object_id"})
    assoc = (record.get("associations") or {}).get("contacts", {}).get("results") or []
    if assoc:
        out["contact_id"] = assoc[0]["id"]
    return out


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
    }
    for p in properties:
        is_date = p.endswith("date") or p.endswith("_date")
        hints[p] = {"data_type": "timestamp" if is_date else "text"}
    return hints


def _resource(
    object_type: str, properties: list[str], conn_id: str, associations: str | None = None
):
    @dlt.resource(
        name=object_type,
        primary_key="id",
        write_disposition="merge",
        columns=column_hints(properties),
    )
    def objects(
        updated=dlt.sources.incremental(
            "updated_at", initial_value="1970-01-01T00:00:00Z", on_cursor_value_missing="include"
        ),
    ):
        api = client(conn_id)
        bad = 0
        for page in list_objects(api, object_type, properties, associations):
            good = []
            for raw in page:
                rec = flatten(raw)
                reason = violation(rec, CONTRACTS[object_type])
                if reason:
                    bad += 1
                    yield quarantined(SOURCE, object_type, raw, reason, rec.get("id"))
                else:
                    good.append(rec)
            if good:
                yield good
        log.info(
            "hubspot %s: %s requests, %s retries, %d quarantined",
            object_type,
            api.stats["requests"],
            api.stats["retries"],
            bad,
        )

    return objects


@dlt.source(name="hubspot", max_table_nesting=0)
def hubspot_source(conn_id: str = "hubspot_default"):
    """Contacts, companies and deals from HubSpot CRM v3."""
    return [
        _resource("contacts", CONTACT_PROPERTIES, conn_id),
        _resource("companies", COMPANY_PROPERTIES, conn_id),
        _resource("deals", DEAL_PROPERTIES, conn_id, associations="contacts"),
    ]
