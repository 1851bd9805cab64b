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
import pandas as pd

from lifecycle.sandbox.accounts import (
    HUBSPOT_CONSENT_PROPERTY,
    accounts,
    ad_consent_as_recorded,
)
from lifecycle.sandbox.common import _iso_array, _records, iso
from lifecycle.sandbox.noise import crm_as_of
from lifecycle.sandbox.world import World

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
    """``marketing_ads_consent`` history per contact id, newest first (HubSpot's order).

    The property lives on the person's own record (a duplicate sales created carries none).
    """
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
    """Contacts as the list endpoint returns them: ``active`` or ``archived`` ones.

    What the portal holds, not what happened: stage dates as the CRM recorded them
    (late, missing, wrong or frozen per the world's noise profile), duplicates until
    sales merges them, then the survivor's ``hs_merged_object_ids`` and
    ``hs_additional_emails`` (multi-value properties are ``;``-joined). HubSpot docs:
    "Merge two contacts" (POST /crm/v3/objects/contacts/merge) keeps the primary record.
    A person archived or deleted in the portal (``sandbox/accounts.py``) has every record
    of theirs archived or gone.
    """
    c = crm_as_of(world, now)
    archived, deleted = _gone(world, now)
    person = c.person.to_numpy()
    keep = archived[person] if which == "archived" else ~(archived | deleted)[person]
    c = c[keep]
    person = c.person.to_numpy()
    people = world.contacts
    own = c.hubspot_id.to_numpy() == people.hubspot_id.to_numpy()[person]
    comp = world.companies.set_index("company_id").name
    company_id = people.company_id.to_numpy()[person]
    hs = accounts(world).hubspot.set_index("person").reindex(person)
    props: dict[str, np.ndarray] = {
        "hs_object_id": c.hubspot_id.to_numpy(),
        "email": c.email.to_numpy(),
        "firstname": people.firstname.to_numpy()[person],
        "lastname": people.lastname.to_numpy()[person],
        "phone": people.phone.to_numpy()[person],
        "country": people.country.to_numpy()[person],
        "jobtitle": people.jobtitle.to_numpy()[person],
        "company": comp.reindex(company_id).to_numpy(),
        "associatedcompanyid": company_id,
        "createdate": _iso_array(c.createdate.to_numpy()),
    }
    for name, prop in HS_STAGE_DATE_PROPS.items():
        props[prop] = _iso_array(c[f"{name}_date"].to_numpy())
    ids = c.hubspot_id.to_numpy()
    rec = ad_consent_as_recorded(world, "hubspot")
    last = (
        rec[rec.ts.to_numpy() < now]
        .groupby("person")
        .agg(ts=("ts", "max"), granted=("granted", "last"))
    )
    last = last.reindex(person)
    recorded = last.ts.notna().to_numpy() & own
    consent = np.where(
        recorded,
        np.where(last.granted.fillna(False).to_numpy(dtype=bool), "true", "false"),
        None,
    ).astype(object)
    modified = np.fmax(c.lastmodified.to_numpy(), np.where(recorded, last.ts.to_numpy(), np.nan))
    props[HUBSPOT_CONSENT_PROPERTY] = consent
    props["lifecyclestage"] = c.lifecyclestage.to_numpy()
    props["lastmodifieddate"] = _iso_array(modified)
    props["hs_merged_object_ids"] = c.merged_object_ids.to_numpy()
    props["hs_additional_emails"] = c.additional_emails.to_numpy()
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


def _deal_contact(world: World, now: float) -> tuple[object, np.ndarray]:
    """Deals created before ``now`` and the contact each is associated with then: the
    duplicate record sales put it on, until the merge moves it to the survivor."""
    d = world.deals
    d = d[d.createdate.to_numpy() < now]
    on_dup = pd.notna(d.dup_contact_id.to_numpy(dtype=object)) & ~(
        np.nan_to_num(d.dup_merged_at.to_numpy(), nan=np.inf) < now
    )
    contact = np.where(on_dup, d.dup_contact_id.to_numpy(dtype=object), d.hubspot_contact_id)
    return d, contact


def associations(world: World, now: float) -> dict[tuple[str, str], dict[str, list[tuple]]]:
    """``{(from, to): {from_id: [(to_id, [association types]), ...]}}``.

    Each association type is ``{"category", "typeId", "label"}`` as v4 returns it: the
    unlabeled type always, plus the primary type for a record's primary company.
    """
    c = crm_as_of(world, now)
    d, deal_contact_id = _deal_contact(world, now)
    company = world.contacts.company_id.to_numpy()[c.person.to_numpy()]
    company_of = dict(zip(c.hubspot_id, company, strict=True))
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

    for deal, contact in zip(d.deal_id, deal_contact_id, strict=True):
        add("deals", "contacts", deal, contact, False)
        if deal in partners.index:  # the reseller is listed before the buyer's company
            add("deals", "companies", deal, partners[deal], False)
        if contact in company_of:
            add("deals", "companies", deal, company_of[contact], True)
    for contact, comp_id in company_of.items():
        add("contacts", "companies", contact, comp_id, True)
    return pairs


def deal_stage_history(world: World, now: float) -> dict[str, list[dict]]:
    """Per deal, its ``dealstage`` values before ``now``, newest first, as HubSpot returns
    ``propertiesWithHistory`` (HubSpot docs, "Read a batch of deals by internal ID":
    each version has ``value``, ``timestamp``, ``sourceType``)."""
    st = world.deal_stages
    st = st[st["at"].to_numpy() < now]
    st = st.sort_values(["deal_id", "at"], ascending=[True, False], kind="stable")
    stamps = _iso_array(st["at"].to_numpy())
    out: dict[str, list[dict]] = {}
    for deal, value, ts in zip(st.deal_id.to_numpy(), st.stage.to_numpy(), stamps, strict=True):
        out.setdefault(str(deal), []).append(
            {"value": str(value), "timestamp": ts, "sourceType": "CRM_UI"}
        )
    return out


def deals(world: World, now: float) -> list[dict]:
    """Deals created before ``now``; ``dealstage`` is the latest stage set before it."""
    d, contact = _deal_contact(world, now)
    ids = d.deal_id.to_numpy().astype(str)
    st = world.deal_stages
    st = st[st["at"].to_numpy() < now].sort_values(["deal_id", "at"], kind="stable")
    latest = st.groupby("deal_id").tail(1).set_index("deal_id")
    stage = latest.stage.reindex(ids).fillna("appointmentscheduled").to_numpy(dtype=object)
    changed = latest["at"].reindex(ids).to_numpy(dtype=float)
    won = stage == "closedwon"
    lost = stage == "closedlost"
    close = np.where(won, d.won_at.to_numpy(), np.where(lost, d.lost_at.to_numpy(), np.nan))
    modified = np.fmax(d.createdate.to_numpy(), changed)
    frame = _records(
        {
            "hs_object_id": ids,
            "dealname": np.char.add("Deal ", ids),
            "dealstage": stage,
            "pipeline": "default",
            "amount": np.char.mod("%.2f", d.amount.to_numpy()),
            "createdate": _iso_array(d.createdate.to_numpy()),
            "closedate": _iso_array(close),
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
            "associations": {
                "contacts": {"results": [{"id": contact[i], "type": "deal_to_contact"}]}
            },
        }
        for i, r in enumerate(frame)
    ]
