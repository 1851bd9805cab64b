"""What the emulated HubSpot portal holds, derived from a simulated world as of its clock.

Records in HubSpot CRM v3's own shapes (every property a string, ``properties`` keyed by
internal name); ``api.py`` pages, searches and authenticates over them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lifecycle.sandbox.common import _iso_array, _records
from lifecycle.sandbox.noise import crm_as_of
from lifecycle.sandbox.world import World

HS_STAGE_DATE_PROPS = {
    "subscriber": "hs_lifecyclestage_subscriber_date",
    "lead": "hs_lifecyclestage_lead_date",
    "mql": "hs_lifecyclestage_marketingqualifiedlead_date",
    "sql": "hs_lifecyclestage_salesqualifiedlead_date",
    "opportunity": "hs_lifecyclestage_opportunity_date",
    "customer": "hs_lifecyclestage_customer_date",
    "advocate": "hs_lifecyclestage_evangelist_date",
}


def contacts(world: World, now: float) -> list[dict]:
    """HubSpot CRM v3 contact objects as the list endpoint returns them, sorted by id.

    What the portal holds, not what happened: stage dates as the CRM recorded them
    (late, missing, wrong or frozen per the world's noise profile), duplicates until
    sales merges them, then the survivor's ``hs_merged_object_ids`` and
    ``hs_additional_emails`` (multi-value properties are ``;``-joined). HubSpot docs:
    "Merge two contacts" (POST /crm/v3/objects/contacts/merge) keeps the primary record.
    """
    c = crm_as_of(world, now)
    people = world.contacts
    person = c.person.to_numpy()
    comp = world.companies.set_index("company_id").name
    company_id = people.company_id.to_numpy()[person]
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
    props["lifecyclestage"] = c.lifecyclestage.to_numpy()
    props["lastmodifieddate"] = _iso_array(c.lastmodified.to_numpy())
    props["hs_merged_object_ids"] = c.merged_object_ids.to_numpy()
    props["hs_additional_emails"] = c.additional_emails.to_numpy()
    created = props["createdate"]
    updated = props["lastmodifieddate"]
    records = _records(props)
    return [
        {
            "id": r["hs_object_id"],
            "properties": r,
            "createdAt": created[i],
            "updatedAt": updated[i],
            "archived": False,
        }
        for i, r in enumerate(records)
    ]


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


def associations(world: World, now: float) -> dict[tuple[str, str], dict[str, list[str]]]:
    """``{(from, to): {from_id: [to_id, ...]}}`` for deals, contacts and companies."""
    c = crm_as_of(world, now)
    d, deal_contact_id = _deal_contact(world, now)
    company = world.contacts.company_id.to_numpy()[c.person.to_numpy()]
    company_of = dict(zip(c.hubspot_id, company, strict=True))
    deal_contact = dict(zip(d.deal_id, deal_contact_id, strict=True))
    out: dict[tuple[str, str], dict[str, list[str]]] = {
        ("deals", "contacts"): {k: [v] for k, v in deal_contact.items()},
        ("deals", "companies"): {k: [company_of[v]] for k, v in deal_contact.items()},
        ("contacts", "companies"): {k: [v] for k, v in company_of.items()},
    }
    for (a, b), m in list(out.items()):
        rev: dict[str, list[str]] = {}
        for k, vs in m.items():
            for v in vs:
                rev.setdefault(v, []).append(k)
        out[(b, a)] = rev
    return out


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
