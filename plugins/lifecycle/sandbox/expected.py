"""How many records each emulated source serves: what a full load must land."""

from __future__ import annotations

import numpy as np

from lifecycle.sandbox.accounts import accounts
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

    HubSpot contacts: the portal's active contacts (archived and deleted ones are served
    by no search); Mailchimp members: every list's members (permanently deleted ones are
    gone, archived ones stay with their status). ``purged``: people whose rows an
    erasure purge removed after the load (their contacts, members, email activity and
    web events are not counted; deals stay, without their contact).
    """
    out_people = np.zeros(len(world.contacts), dtype=bool)
    if purged is not None and len(purged):
        out_people[np.asarray(purged, dtype=np.int64)] = True
    a = world.email_activity
    a = a[(a.ts.to_numpy() < now) & ~out_people[a.person.to_numpy()]]
    acc = accounts(world)
    hs = acc.hubspot
    gone = out_people.copy()
    gone[hs.person.to_numpy()] |= _before(hs.archived_at, now) | _before(hs.deleted_at, now)
    known = world.contacts.subscriber_at.to_numpy() < now
    m = acc.members
    members = (
        _before(m.joined_at, now) & ~_before(m.deleted_at, now) & ~out_people[m.person.to_numpy()]
    )
    rows = _segment_layout(world, now, segment_anomalies)["row"]
    events = int((~out_people[world.events.person.to_numpy()[rows]]).sum())
    return {
        "hubspot_contacts": int((known & ~gone).sum()),
        "hubspot_deals": int((world.deals.createdate.to_numpy() < now).sum()),
        "hubspot_companies": len(world.companies),
        "segment_events": events,
        "mailchimp_members": int(members.sum()),
        "mailchimp_campaigns": int((world.campaigns.send_time.to_numpy() < now).sum()),
        "mailchimp_activity": len(a),
    }
