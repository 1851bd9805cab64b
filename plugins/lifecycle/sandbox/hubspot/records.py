"""What the emulated HubSpot portal holds, derived from a simulated world as of its clock.

Records in HubSpot CRM v3's own shapes (every property a string, ``properties`` keyed by
internal name); ``api.py`` pages, searches and authenticates over them.
"""

from __future__ import annotations

import numpy as np

from lifecycle.sandbox.common import _iso_array, _records
from lifecycle.sandbox.world import HUBSPOT_STAGE, World

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
    """HubSpot CRM v3 contact objects as the list endpoint returns them, sorted by id."""
    c = world.contacts
    c = c[c.subscriber_at.to_numpy() < now]
    comp = world.companies.set_index("company_id").name
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
    props["lifecyclestage"] = stage
    props["lastmodifieddate"] = _iso_array(modified)
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


def associations(world: World, now: float) -> dict[tuple[str, str], dict[str, list[str]]]:
    """``{(from, to): {from_id: [to_id, ...]}}`` for deals, contacts and companies."""
    c = world.contacts[world.contacts.subscriber_at.to_numpy() < now]
    d = world.deals[world.deals.createdate.to_numpy() < now]
    company_of = dict(zip(world.contacts.hubspot_id, world.contacts.company_id, strict=True))
    deal_contact = dict(zip(d.deal_id, d.hubspot_contact_id, strict=True))
    out: dict[tuple[str, str], dict[str, list[str]]] = {
        ("deals", "contacts"): {k: [v] for k, v in deal_contact.items()},
        ("deals", "companies"): {k: [company_of[v]] for k, v in deal_contact.items()},
        ("contacts", "companies"): {
            k: [v] for k, v in zip(c.hubspot_id, c.company_id, strict=True)
        },
    }
    for (a, b), m in list(out.items()):
        rev: dict[str, list[str]] = {}
        for k, vs in m.items():
            for v in vs:
                rev.setdefault(v, []).append(k)
        out[(b, a)] = rev
    return out


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
