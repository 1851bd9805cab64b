"""HubSpot CRM v3: contacts, companies and deals (with their associations).

A first load (no cursor yet, or a re-read of every record) pages the list endpoint
``GET /crm/v3/objects/{type}`` (100 per page, under the account's general burst limit
rather than search's 4 requests per second: several times the throughput on a big
portal). Later nights are incremental by HubSpot's own cursor:
``POST /crm/v3/objects/{type}/search`` filtered on the last-modified property ``GTE``
the last value seen (kept in dlt state), sorted ascending, 100 per page. A search query
reaches at most 10,000 results, so when a window fills up the connector starts a new
query at the last ``lastmodifieddate`` it saw
(records already emitted at that instant are skipped by id). Records are flattened to
``id, created_at, updated_at, archived`` plus one column per property, and merged on
``id``: a re-run or an overlap never duplicates a row. Deals get ``contact_id`` and
``company_id`` from the v4 associations batch read, chosen by HubSpot's association
type ids (deal→contact 3; deal→company 341 for the primary company, else 5), never by
position.

Every property staging reads is declared (typed columns exist even when no record has
the property: HubSpot leaves an unset property out or sends ``null``). Optional dates
and numbers land as the text HubSpot sent and staging parses them.

Consent: the contact properties that ``seeds/consent_sources.csv`` names as
``hubspot_property`` sources are requested too, and their change history (HubSpot's
``propertiesWithHistory``) lands in ``contact_consent`` (contact,
property, value, changed_at), so the consent model knows *when* each value was set.
A full load asks the list endpoint for that history (50 contacts per page then); a
search cannot return history, so incremental pages get it from a batch read.
When the seed names a property the last run did not request, the next run re-reads
every contact once so older records get it.

Erasure: :func:`find_removed_contacts` reads archived contacts (only
``GET /crm/v3/objects/contacts?archived=true`` returns them: search never does) and
lists every contact id, so contacts deleted for good (gone from every endpoint) are
told apart from the rest. After a full load it takes the ids that load just listed
instead of listing them again. The listing costs one request per 100 contacts (10,000
at a million), so a connection can ask for it every Nth run only
(``extra.presence_check_every``, :mod:`lifecycle.erasure`); archived contacts are read
every run.

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

from lifecycle import consent_config
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, client_options
from lifecycle.sources.common import Field, declared_columns, quarantined, violation

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
#: Properties whose value must parse as a timestamp when set (the required ones land
#: typed; every other date lands as text and is parsed in staging).
TYPED_TIMESTAMPS = {"createdate", "lastmodifieddate", "hs_lastmodifieddate"}
#: Optional numbers: land as text, parsed in staging.
NUMBERS = {"amount", "numberofemployees"}
CONSENT_TABLE = "contact_consent"
CONSENT_FIELDS = [
    Field("contact_id"),
    Field("property"),
    Field("value", required=False),
    Field("changed_at", "timestamp", required=False),
    Field("source_type", required=False),
    Field("contact_updated_at", "timestamp"),
]
#: HubSpot-defined association type ids ("Associations v4"): the one that names the
#: record to keep, per (from, to).
DEAL_CONTACT_TYPE = 3
DEAL_COMPANY_TYPE, DEAL_PRIMARY_COMPANY_TYPE = 5, 341
#: Batch reads with propertiesWithHistory take at most this many ids.
HISTORY_BATCH = 50
#: Associations batch reads take at most this many ids (HubSpot Developer Changelog,
#: "Bug Fix: Batch Read Limit for HubSpot Associations API": 1000 per request body
#: since 2025-02-10, v3 and v4). The connector fills each call: 1,000 deals cost two
#: association calls, not twenty.
ASSOCIATION_BATCH = 1000


#: The contact ids (and the ids merged into them) that this process's last complete full
#: load listed, per connection: :func:`find_removed_contacts` takes them instead of
#: listing every contact a second time. Cleared when a contacts load starts, set only
#: when its listing finished, taken (popped) by the first reader.
_FULL_LISTING: dict[str, set[str]] = {}


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
        chosen = (record.get("associations") or {}).get(to, {}).get("chosen")
        if chosen:
            out[key] = chosen
    return out


def _has_type(link: dict, type_id: int) -> bool:
    return any(
        t.get("category") == "HUBSPOT_DEFINED" and int(t.get("typeId", -1)) == type_id
        for t in link.get("associationTypes") or []
    )


def choose_association(links: list[dict], to: str) -> str | None:
    """The associated record a deal keeps, chosen by HubSpot-defined type id.

    Companies: the primary company (type 341), else the first unlabeled one (type 5).
    Contacts: the first with the deal→contact type (3). Labels (USER_DEFINED types) and
    the order HubSpot lists them in are never what decides.
    """
    if to == "companies":
        for wanted in (DEAL_PRIMARY_COMPANY_TYPE, DEAL_COMPANY_TYPE):
            found = [x for x in links if _has_type(x, wanted)]
            if found:
                return str(found[0]["toObjectId"])
        return None
    found = [x for x in links if _has_type(x, DEAL_CONTACT_TYPE)]
    return str(found[0]["toObjectId"]) if found else None


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
    """Attach v4 associations (batch read: one call per target type and
    ``ASSOCIATION_BATCH`` ids)."""
    ids = [{"id": r["id"]} for r in page if r.get("id")]
    for to in to_types:
        found = {}
        for i in range(0, len(ids), ASSOCIATION_BATCH):
            res = api.json(
                "POST",
                f"crm/v4/associations/{object_type}/{to}/batch/read",
                json={"inputs": ids[i : i + ASSOCIATION_BATCH]},
            )
            found.update({x["from"]["id"]: x.get("to") or [] for x in res.get("results") or []})
        for r in page:
            links = found.get(r.get("id"), [])
            r.setdefault("associations", {})[to] = {
                "results": [{"id": str(x["toObjectId"])} for x in links],
                "chosen": choose_association(links, to),
            }
    return page


def deal_stage_history(api: ApiClient, page: list[dict]) -> list[dict]:
    """Every ``dealstage`` a page of deals went through, one row per version.

    A full load's list pages carry it (``propertiesWithHistory``); search cannot return
    history, so a search page gets it from ``POST /crm/v3/objects/deals/batch/read``
    with ``propertiesWithHistory`` (HubSpot docs, "Read a batch of deals by internal
    ID"). Each version has ``value`` and ``timestamp``.
    """
    results = [r for r in page if "propertiesWithHistory" in r]  # a full load's list pages
    ids = [{"id": r["id"]} for r in page if r.get("id") and "propertiesWithHistory" not in r]
    for i in range(0, len(ids), HISTORY_BATCH):  # at most 50 ids with propertiesWithHistory
        res = api.json(
            "POST",
            "crm/v3/objects/deals/batch/read",
            json={
                "inputs": ids[i : i + HISTORY_BATCH],
                "properties": ["dealstage"],
                "propertiesWithHistory": DEAL_HISTORY_PROPERTIES,
            },
        )
        results += res.get("results") or []
    rows = []
    for r in results:
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
    api: ApiClient,
    object_type: str,
    properties: list[str],
    associations: str | None = None,
    history: list[str] = (),
) -> Iterator[list[dict]]:
    """Page through ``GET /crm/v3/objects/{type}`` following ``paging.next.after``.

    ``history``: properties whose versions each record carries (``propertiesWithHistory``,
    at most ``HISTORY_BATCH`` records per page then)."""
    params: dict = {"properties": ",".join(properties)}
    if associations:
        params["associations"] = associations
    if history:
        params["propertiesWithHistory"] = ",".join(history)
        params["limit"] = HISTORY_BATCH
    yield from _list_pages(api, object_type, params)


def fields(properties: list[str]) -> list[Field]:
    """Every column an object table has: record fields, then one per requested property
    (required timestamps typed; other dates and numbers as the text HubSpot sent)."""
    out = [
        Field("id"),
        Field("created_at", "timestamp"),
        Field("updated_at", "timestamp"),
        Field("archived", "bool", required=False),
        Field("contact_id", required=False),
        Field("company_id", required=False),
    ]
    for p in properties:
        if p in TYPED_TIMESTAMPS:
            out.append(Field(p, "timestamp"))
        elif _is_date(p):
            out.append(Field(p, "timestamp", required=False))
        elif p in NUMBERS:
            out.append(Field(p, "number", required=False))
        else:
            out.append(Field(p, required=False))
    return out


def column_hints(properties: list[str]) -> dict:
    """Declare every requested property so its column exists even before it has data."""
    return declared_columns(fields(properties))


def consent_rows(api: ApiClient, page: list[dict], properties: list[str]) -> list[dict]:
    """Each consent property of each contact of ``page`` with its latest change time.

    The history comes with the records when the list call asked for it
    (``propertiesWithHistory``, a full load); otherwise (search cannot return history)
    from a batch read with ``propertiesWithHistory`` (at most 50 ids per call)."""
    rows = []
    got = {r["id"]: r for r in page if "propertiesWithHistory" in r}
    missing = [r for r in page if r["id"] not in got]
    for i in range(0, len(missing), HISTORY_BATCH):
        res = api.json(
            "POST",
            "crm/v3/objects/contacts/batch/read",
            json={
                "inputs": [{"id": r["id"]} for r in missing[i : i + HISTORY_BATCH]],
                "properties": properties,
                "propertiesWithHistory": properties,
            },
        )
        got.update({r["id"]: r for r in res.get("results") or []})
    for r in page:
        history = (got.get(r["id"]) or {}).get("propertiesWithHistory") or {}
        current = r.get("properties") or {}
        for prop in properties:
            latest = (history.get(prop) or [None])[0] or {}
            value = current.get(prop, latest.get("value"))
            rows.append(
                {
                    "contact_id": r["id"],
                    "property": prop,
                    "value": value,
                    # the history's newest entry is the current value's change time
                    "changed_at": latest.get("timestamp") if latest.get("value") == value else None,
                    "source_type": latest.get("sourceType"),
                    "contact_updated_at": r.get("updatedAt"),
                }
            )
    return rows


def _to_table(rows: list[dict], table: str, key, columns: dict):
    return dlt.mark.with_hints(
        rows,
        dlt.mark.make_hints(
            table_name=table, write_disposition="merge", primary_key=key, columns=columns
        ),
        create_table_variant=True,
    )


def _resource(
    object_type: str,
    properties: list[str],
    conn_id: str,
    associations=(),
    consent_properties: list[str] = (),
):
    properties = list(properties) + [p for p in consent_properties if p not in properties]
    hints = column_hints(properties)
    # the properties whose versions land too: contacts' consent, deals' stage
    history = list(consent_properties) or (
        DEAL_HISTORY_PROPERTIES if object_type == "deals" else []
    )

    # No resource-level columns: dlt would copy them into every table the resource feeds
    # (contacts and contact_consent); each batch carries its own table's hints.
    @dlt.resource(name=object_type, primary_key="id", write_disposition="merge")
    def objects():
        api = client(conn_id)
        # The vendor's cap; a connection may lower it (the sandbox can emulate a small cap).
        cap = int(get_endpoint(conn_id).extra.get("search_cap", SEARCH_CAP))
        state = dlt.current.resource_state()
        since = state.get("last_modified", EPOCH)
        asked = set(state.get("consent_properties") or [])
        if consent_properties and not set(consent_properties) <= asked and since != EPOCH:
            log.info(
                "hubspot %s: consent properties %s are new in the consent seed; re-reading "
                "every record once",
                object_type,
                sorted(set(consent_properties) - asked),
            )
            since = EPOCH
        newest, good_n, bad, consent_n = since, 0, 0, 0
        # everything: the list endpoint (general rate limit, no 10,000-result cap);
        # what changed since the cursor: search (the only endpoint that filters on it)
        full = since == EPOCH
        listed: set[str] | None = None
        if object_type == "contacts":
            _FULL_LISTING.pop(conn_id, None)
            listed = set() if full else None
        pages = (
            # a full load asks the list for the consent history: no batch read per page
            list_objects(api, object_type, properties, history=history)
            if full
            else search_objects(api, object_type, properties, since, cap=cap)
        )
        if associations:
            # pages of 100 (list) or up to 200 (search) regrouped to fill each call
            pages = _regroup(pages, ASSOCIATION_BATCH)
        for page in pages:
            if associations:
                page = add_associations(api, object_type, page, list(associations))
            if listed is not None:
                listed.update(_present_ids(page))
            good, raw_good = [], []
            for raw in page:
                reason = record_violation(raw, object_type)
                if reason:
                    bad += 1
                    yield quarantined(SOURCE, object_type, raw, reason, raw.get("id"))
                    continue
                rec = flatten(raw)
                good.append(rec)
                raw_good.append(raw)
                newest = max(newest, rec["updated_at"])
            good_n += len(good)
            if good:
                yield _to_table(good, object_type, "id", hints)
            if object_type == "deals" and raw_good:
                rows = deal_stage_history(api, raw_good)
                if rows:
                    yield _to_table(
                        rows,
                        DEAL_STAGE_HISTORY_TABLE,
                        ["deal_id", "deal_stage", "changed_at"],
                        declared_columns(DEAL_STAGE_HISTORY_FIELDS),
                    )
            if consent_properties and raw_good:
                rows = consent_rows(api, raw_good, list(consent_properties))
                consent_n += len(rows)
                yield _to_table(
                    rows,
                    CONSENT_TABLE,
                    ["contact_id", "property"],
                    declared_columns(CONSENT_FIELDS),
                )
        if listed is not None:
            _FULL_LISTING[conn_id] = listed
        # Committed by dlt with the load package: a failed run leaves the cursor alone.
        state["last_modified"] = newest
        if consent_properties:
            state["consent_properties"] = sorted(set(consent_properties) | asked)
        log.info(
            "hubspot %s: %d records %s (%d quarantined%s); %s requests, "
            "%s retries, %s throttled; cursor now %s",
            object_type,
            good_n,
            "in a full load (list endpoint)" if full else f"modified since {since} (search)",
            bad,
            f", {consent_n} consent values" if consent_properties else "",
            api.stats["requests"],
            api.stats["retries"],
            api.stats["throttled"],
            newest,
        )

    return objects


def find_removed_contacts(
    conn_id: str = "hubspot_default", *, sweep: bool = True
) -> tuple[list[dict], set[str] | None]:
    """Archived contacts (``id``, ``email``, ``archived_at``) and the ids of every contact
    the portal still has, active or archived (``None`` when ``sweep`` is false and no
    full load listed them tonight: the id listing is skipped, archived contacts are not).

    Archived contacts come only from the list endpoint with ``archived=true`` (search
    never returns them). The ids of contacts merged into another count as present: the
    survivor lists them in ``hs_merged_object_ids`` and HubSpot still resolves them to
    it, so a CRM merge is never mistaken for a deletion. A contact once loaded that is
    in neither set was deleted for good (a GDPR delete, or purged from the recycle bin
    after 90 days).
    """
    api = client(conn_id)
    archived = []
    listed = _FULL_LISTING.pop(conn_id, None)
    for page in _list_pages(api, "contacts", {"archived": "true", "properties": "email"}):
        for r in page:
            archived.append(
                {
                    "id": str(r.get("id")),
                    "email": (r.get("properties") or {}).get("email"),
                    "archived_at": r.get("archivedAt") or r.get("updatedAt"),
                }
            )
    present: set[str] | None = {a["id"] for a in archived}
    if listed is not None:
        # tonight's full load just listed every contact: no second pass over the portal
        present |= listed
    elif not sweep:
        present = None
    else:
        for page in _list_pages(
            api, "contacts", {"properties": "hs_object_id,hs_merged_object_ids"}
        ):
            present |= _present_ids(page)
    log.info(
        "hubspot contacts: %d archived, %s ids in the portal (%s; %s requests)",
        len(archived),
        "not listed" if present is None else len(present),
        "from tonight's full load"
        if listed is not None
        else ("listed" if present is not None else "sweep not due tonight"),
        api.stats["requests"],
    )
    return archived, present


def _present_ids(page: list[dict]) -> set[str]:
    """The ids a page of contacts shows the portal has: each record's own, and the ids
    merged into it (``hs_merged_object_ids``, ``;``-joined; HubSpot still resolves them)."""
    ids = set()
    for r in page:
        ids.add(str(r.get("id")))
        merged = (r.get("properties") or {}).get("hs_merged_object_ids") or ""
        ids.update(filter(None, (x.strip() for x in str(merged).split(";"))))
    return ids


def _regroup(pages: Iterator[list[dict]], size: int) -> Iterator[list[dict]]:
    """The records of ``pages`` again, in groups of ``size`` (the last one smaller)."""
    group: list[dict] = []
    for page in pages:
        group.extend(page)
        while len(group) >= size:
            yield group[:size]
            group = group[size:]
    if group:
        yield group


def _list_pages(api: ApiClient, object_type: str, params: dict):
    params = {"limit": PAGE_SIZE, **params}
    after = None
    while True:
        if after:
            params["after"] = after
        body = api.json("GET", f"crm/v3/objects/{object_type}", params=params)
        yield body.get("results", [])
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


DEAL_STAGE_HISTORY_FIELDS = [
    Field("deal_id"),
    Field("deal_stage"),
    Field("changed_at", "timestamp"),
    Field("source_type", required=False),
]


@dlt.source(name="hubspot", max_table_nesting=0)
def hubspot_source(conn_id: str = "hubspot_default"):
    """Contacts, companies and deals from HubSpot CRM v3, and the deals' stage history."""
    return [
        _resource(
            "contacts",
            CONTACT_PROPERTIES,
            conn_id,
            consent_properties=consent_config.hubspot_properties(),
        ),
        _resource("companies", COMPANY_PROPERTIES, conn_id),
        _resource("deals", DEAL_PROPERTIES, conn_id, associations=("contacts", "companies")),
    ]
