"""How many records each emulated source serves: what a full load must land."""

from __future__ import annotations

from lifecycle.sandbox.noise import crm_as_of
from lifecycle.sandbox.segment.landing import _segment_layout
from lifecycle.sandbox.world import World


def expected_counts(world: World, now: float, segment_anomalies: bool = False) -> dict[str, int]:
    """How many records each source serves as of ``now``: what a full load must land."""
    a = world.email_activity
    a = a[a.ts.to_numpy() < now]
    return {
        # CRM records visible then: duplicates until merged, none before it was created
        "hubspot_contacts": len(crm_as_of(world, now)),
        "hubspot_deals": int((world.deals.createdate.to_numpy() < now).sum()),
        "hubspot_companies": len(world.companies),
        "segment_events": len(_segment_layout(world, now, segment_anomalies)["row"]),
        "mailchimp_members": int((world.contacts.subscriber_at.to_numpy() < now).sum()),
        "mailchimp_campaigns": int((world.campaigns.send_time.to_numpy() < now).sum()),
        "mailchimp_activity": len(a),
    }
