"""How many records each emulated source serves: what a full load must land."""

from __future__ import annotations

import numpy as np

from lifecycle.sandbox.accounts import accounts
from lifecycle.sandbox.noise import crm_as_of
from lifecycle.sandbox.segment.landing import _segment_layout
from lifecycle.sandbox.world import World


def _before(values, now: float) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=float), nan=np.inf) < now


def expected_counts(
    world: World,
    now: float,
    segment_anomalies: bool = False,
    purged: np.ndarray | None = None,
) -> dict[str, int]:
    """How many records each source serves as of ``now``: what a full load must land.

    HubSpot contacts: the portal's active CRM records then (duplicates until merged,
    none before it was created; archived and deleted people's records are served by no
    search); Mailchimp members: every list's members (permanently deleted ones are gone,
    archived ones stay with their status). ``purged``: people whose rows an erasure
    purge removed after the load (their contacts, members, email activity and web
    events are not counted; deals stay, without their contact).
    """
    out_people = np.zeros(len(world.contacts), dtype=bool)
    if purged is not None and len(purged):
        out_people[np.asarray(purged, dtype=np.int64)] = True

    def out(person: np.ndarray) -> np.ndarray:
        """Whether each row's person was purged (bots, person -1, never are)."""
        person = np.asarray(person, dtype=np.int64)
        return (person >= 0) & out_people[np.maximum(person, 0)]

    a = world.email_activity
    a = a[(a.ts.to_numpy() < now) & ~out(a.person.to_numpy())]
    acc = accounts(world)
    hs = acc.hubspot
    gone = out_people.copy()
    gone[hs.person.to_numpy()] |= _before(hs.archived_at, now) | _before(hs.deleted_at, now)
    crm = crm_as_of(world, now)
    m = acc.members
    members = _before(m.joined_at, now) & ~_before(m.deleted_at, now) & ~out(m.person.to_numpy())
    rows = _segment_layout(world, now, segment_anomalies)["row"]
    events = int((~out(world.events.person.to_numpy()[rows])).sum())
    return {
        "hubspot_contacts": int((~gone[crm.person.to_numpy()]).sum()),
        "hubspot_deals": int((world.deals.createdate.to_numpy() < now).sum()),
        "hubspot_companies": len(world.companies),
        "segment_events": events,
        "mailchimp_members": int(members.sum()),
        "mailchimp_campaigns": int((world.campaigns.send_time.to_numpy() < now).sum()),
        "mailchimp_activity": len(a),
    }
