"""What the emulated HubSpot portal holds, derived from a simulated world as of its clock.

Records in HubSpot CRM v3's own shapes (every property a string, ``properties`` keyed by
internal name); ``api.py`` pages, searches and authenticates over them. What the portal
holds beyond the people's journey comes from ``sandbox/accounts.py``:

- an unset property is absent from ``properties`` on some records and ``null`` on
  others (HubSpot "Properties": a property without a value has none; custom
  properties exist only where the portal made them);
- the custom checkbox ``marketing_ads_consent`` ("true" / "false") with its history
  (``propertiesWithHistory``, newest first, as HubSpot "Contacts" returns it);
- archived contacts (``archived: true`` with ``archivedAt``), served only by
  ``GET /crm/v3/objects/contacts?archived=true``, and contacts deleted for good, gone
  from every endpoint;
- v4 association types with HubSpot's documented type ids ("Associations v4",
  HubSpot-defined types): deal→contact 3, contact→deal 4, deal→company 5 (341 for the
  primary company), company→deal 6, contact→company 279 (1 primary), company→contact
  280 (2 primary); some deals also name a partner company, listed first.
"""

from __future__ import annotations

import numpy as np

from lifecycle.sandbox.accounts import (
    HUBSPOT_CONSENT_PROPERTY,
    accounts,
    ad_consent_as_recorded,
)
from lifecycle.sandbox.common import _iso_array, _records, iso
from lifecycle.sandbox.world import HUBSPOT_STAGE, World

#: HubSpot-defined association type ids ("Associations v4"): (from, to) -> unlabeled id,
#: and the primary type where HubSpot has one.
ASSOCIATION_TYPES = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
}
PRIMARY_TYPES = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 341,
}

HS_STAGE_DATE_PROPS = {
    "subscriber": "hs_lifecyclestage_subscriber_date",
    "lead": "hs_lifecyclestage_lead_date",
    "mql": "hs_lifecyclestage_marketingqualifiedlead_date",
    "sql": "hs_lifecyclestage_salesqualifiedlead_date",
    "opportunity": "hs_lifecyclestage_opportunity_date",
    "customer": "hs_lifecyclestage_customer_date",
    "advocate": "hs_lifecyclestage_evangelist_date",
}


def _gone(world: World, now: float) -> tuple[np.ndarray, np.ndarray]:
    """Per world person: archived in the portal by ``now``, deleted for good by ``now``."""
    hs = accounts(world).hubspot
    n = len(world.contacts)
    archived = np.zeros(n, dtype=bool)
    deleted = np.zeros(n, dtype=bool)
    p = hs.person.to_numpy()
    archived[p] = np.nan_to_num(hs.archived_at.to_numpy(), nan=np.inf) < now
    deleted[p] = np.nan_to_num(hs.deleted_at.to_numpy(), nan=np.inf) < now
    return archived & ~deleted, deleted


def consent_history(world: World, now: float) -> dict[str, list[dict]]:
    """``marketing_ads_consent`` history per contact id, newest first (HubSpot's order)."""
    rec = ad_consent_as_recorded(world, "hubspot")
    rec = rec[rec.ts.to_numpy() < now]
    ids = world.contacts.hubspot_id.to_numpy()[rec.person.to_numpy()]
    out: dict[str, list[dict]] = {}
    for cid, ts, granted in zip(ids, rec.ts.to_numpy(), rec.granted.to_numpy(), strict=True):
        out.setdefault(str(cid), []).insert(
            0,
            {
                "value": "true" if granted else "false",
                "timestamp": iso(ts),
                "sourceType": "FORM" if not out.get(str(cid)) else "CRM_UI",
                "sourceId": None,
            },
        )
    return out


def _contact_records(world: World, now: float, which: str) -> list[dict]:
    """Contacts as the list endpoint returns them: ``active`` or ``archived`` ones."""
    c = world.contacts
    archived, deleted = _gone(world, now)
    keep = c.subscriber_at.to_numpy() < now
    keep &= archived if which == "archived" else ~(archived | deleted)
    c = c[keep]
    comp = world.companies.set_index("company_id").name
    person = c.person.to_numpy()
    hs = accounts(world).hubspot.set_index("person").reindex(person)
    props: dict[str, np.ndarray] = {
        "hs_object_id": c.hubspot_id.to_numpy(),
        "email": c.email_typed.to_numpy(),
        "firstname": c.firstname.to_numpy(),
        "lastname": c.lastname.to_numpy(),
        "phone": c.phone.to_numpy(),
        "country": c.country.to_numpy(),
        "jobtitle": c.jobtitle.to_numpy(),
        "company": comp.reindex(c.company_id).to_numpy(),
        "associatedcompanyid": c.company_id.to_numpy(),
        "createdate": _iso_array(c.subscriber_at.to_numpy()),
    }
    stage = np.full(len(c), "subscriber", dtype=object)
    modified = c.subscriber_at.to_numpy().copy()
    for name, prop in HS_STAGE_DATE_PROPS.items():
        t = c[f"{name}_at"].to_numpy()
        reached = np.nan_to_num(t, nan=np.inf) < now
        props[prop] = np.where(reached, _iso_array(t), None)
        stage[reached] = HUBSPOT_STAGE[name]
        modified = np.where(reached, np.fmax(modified, t), modified)
    for extra in ("unsubscribed_at", "cleaned_at"):
        t = c[extra].to_numpy()
        modified = np.where(np.nan_to_num(t, nan=np.inf) < now, np.fmax(modified, t), modified)
    ids = c.hubspot_id.to_numpy()
    rec = ad_consent_as_recorded(world, "hubspot")
    last = (
        rec[rec.ts.to_numpy() < now]
        .groupby("person")
        .agg(ts=("ts", "max"), granted=("granted", "last"))
    )
    last = last.reindex(person)
    consent = np.where(
        last.ts.notna().to_numpy(),
        np.where(last.granted.fillna(False).to_numpy(dtype=bool), "true", "false"),
        None,
    ).astype(object)
    modified = np.fmax(modified, last.ts.to_numpy(dtype=float))
    props[HUBSPOT_CONSENT_PROPERTY] = consent
    props["lifecyclestage"] = stage
    props["lastmodifieddate"] = _iso_array(modified)
    created = props["createdate"]
    updated = props["lastmodifieddate"]
    records = _records(props)
    phone_unset = hs.phone_unset.to_numpy(dtype=bool)
    name_unset = hs.name_unset.to_numpy(dtype=bool)
    as_null = hs.unset_as_null.to_numpy(dtype=bool)
    archived_at = accounts(world).hubspot.set_index("person").archived_at.reindex(person)
    archived_iso = _iso_array(archived_at.to_numpy())
    out = []
    for i, r in enumerate(records):
        unset = [k for k, v in r.items() if v is None]
        if phone_unset[i]:
            unset.append("phone")
        if name_unset[i]:
            unset += ["firstname", "lastname"]
        for k in unset:
            # HubSpot shows a property without a value as null or leaves it out
            if as_null[i]:
                r[k] = None
            else:
                r.pop(k, None)
        rec = {
            "id": ids[i],
            "properties": r,
            "createdAt": created[i],
            "updatedAt": updated[i],
            "archived": which == "archived",
        }
        if which == "archived":
            rec["archivedAt"] = archived_iso[i]
        out.append(rec)
    return out


def contacts(world: World, now: float) -> list[dict]:
    """HubSpot CRM v3 contact objects as the list endpoint returns them, sorted by id.

    Archived and deleted contacts are not among them (see :func:`archived_contacts`).
    """
    return _contact_records(world, now, "active")


def archived_contacts(world: World, now: float) -> list[dict]:
    """What ``GET /crm/v3/objects/contacts?archived=true`` returns: archived contacts."""
    return _contact_records(world, now, "archived")


def companies(world: World, now: float) -> list[dict]:
    """Companies: created with their first visitor, modified when a contact joins them."""
    comp = world.companies
    people = world.contacts
    first_seen = people.groupby("company_id").first_seen_at.min()
    joined = people[people.subscriber_at.to_numpy() < now].groupby("company_id").subscriber_at.max()
    created = first_seen.reindex(comp.company_id).fillna(float(world.start_ts)).to_numpy()
    modified = np.fmax(created, joined.reindex(comp.company_id).to_numpy())
    frame = _records(
        {
            "hs_object_id": comp.company_id.to_numpy(),
            "name": comp.name.to_numpy(),
            "domain": comp.domain.to_numpy(),
            "industry": comp.industry.to_numpy(),
            "numberofemployees": comp.numberofemployees.to_numpy().astype(str),
            "country": comp.country.to_numpy(),
            "createdate": _iso_array(created),
            "hs_lastmodifieddate": _iso_array(modified),
        }
    )
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": r["createdate"],
            "updatedAt": r["hs_lastmodifieddate"],
            "archived": False,
        }
        for r in frame
    ]


def associations(world: World, now: float) -> dict[tuple[str, str], dict[str, list[tuple]]]:
    """``{(from, to): {from_id: [(to_id, [association types]), ...]}}``.

    Each association type is ``{"category", "typeId", "label"}`` as v4 returns it: the
    unlabeled type always, plus the primary type for a record's primary company.
    """
    c = world.contacts[world.contacts.subscriber_at.to_numpy() < now]
    d = world.deals[world.deals.createdate.to_numpy() < now]
    company_of = dict(zip(world.contacts.hubspot_id, world.contacts.company_id, strict=True))
    partners = accounts(world).deal_partners

    def types(pair: tuple[str, str], primary: bool) -> list[dict]:
        out = [{"category": "HUBSPOT_DEFINED", "typeId": ASSOCIATION_TYPES[pair], "label": None}]
        if primary and pair in PRIMARY_TYPES:
            out.append(
                {"category": "HUBSPOT_DEFINED", "typeId": PRIMARY_TYPES[pair], "label": "Primary"}
            )
        return out

    pairs: dict[tuple[str, str], dict[str, list[tuple]]] = {}

    def add(a: str, b: str, x: str, y: str, primary: bool) -> None:
        pairs.setdefault((a, b), {}).setdefault(str(x), []).append((str(y), types((a, b), primary)))
        pairs.setdefault((b, a), {}).setdefault(str(y), []).append((str(x), types((b, a), primary)))

    for deal, contact in zip(d.deal_id, d.hubspot_contact_id, strict=True):
        add("deals", "contacts", deal, contact, False)
        if deal in partners.index:  # the reseller is listed before the buyer's company
            add("deals", "companies", deal, partners[deal], False)
        add("deals", "companies", deal, company_of[contact], True)
    for contact, company in zip(c.hubspot_id, c.company_id, strict=True):
        add("contacts", "companies", contact, company, True)
    return pairs


def deals(world: World, now: float) -> list[dict]:
    d = world.deals
    d = d[d.createdate.to_numpy() < now]
    won = np.nan_to_num(d.won_at.to_numpy(), nan=np.inf) < now
    lost = np.nan_to_num(d.lost_at.to_numpy(), nan=np.inf) < now
    stage = np.where(won, "closedwon", np.where(lost, "closedlost", "presentationscheduled"))
    close = np.where(won | lost, d.closedate.to_numpy(), np.nan)
    modified = np.fmax(d.createdate.to_numpy(), close)
    frame = _records(
        {
            "hs_object_id": d.deal_id.to_numpy(),
            "dealname": np.char.add("Deal ", d.deal_id.to_numpy().astype(str)),
            "dealstage": stage,
            "pipeline": "default",
            "amount": np.char.mod("%.2f", d.amount.to_numpy()),
            "createdate": _iso_array(d.createdate.to_numpy()),
            "closedate": _iso_array(close),
            "hs_lastmodifieddate": _iso_array(modified),
        }
    )
    contact = d.hubspot_contact_id.to_numpy()
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": r["createdate"],
            "updatedAt": r["hs_lastmodifieddate"],
            "archived": False,
            "associations": {
                "contacts": {"results": [{"id": contact[i], "type": "deal_to_contact"}]}
            },
        }
        for i, r in enumerate(frame)
    ]
