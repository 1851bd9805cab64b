"""What the emulated Mailchimp account holds, derived from a simulated world as of its clock.

Members, campaigns and per-campaign email activity in Mailchimp Marketing API v3's
shapes; ``api.py`` pages and authenticates over them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lifecycle.sandbox.common import _iso_array, iso
from lifecycle.sandbox.world import World

LIST_ID = "lst0001"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def members(world: World, now: float) -> list[dict]:
    c = world.contacts
    c = c[c.subscriber_at.to_numpy() < now]
    unsub = np.nan_to_num(c.unsubscribed_at.to_numpy(), nan=np.inf)
    cleaned = np.nan_to_num(c.cleaned_at.to_numpy(), nan=np.inf)
    status = np.where(cleaned < now, "cleaned", np.where(unsub < now, "unsubscribed", "subscribed"))
    changed = c.subscriber_at.to_numpy()
    changed = np.where(unsub < now, np.fmax(changed, unsub), changed)
    changed = np.where(cleaned < now, np.fmax(changed, cleaned), changed)
    signup = _iso_array(c.subscriber_at.to_numpy())
    changed_iso = _iso_array(changed)
    out = []
    for i, (email, first, last, ad) in enumerate(
        zip(
            c.email.to_numpy(),
            c.firstname.to_numpy(),
            c.lastname.to_numpy(),
            c.ad_consent.to_numpy(),
            strict=True,
        )
    ):
        out.append(
            {
                "id": subscriber_hash(email),
                "email_address": email,
                "status": str(status[i]),
                "merge_fields": {"FNAME": first, "LNAME": last},
                "timestamp_signup": signup[i],
                "last_changed": changed_iso[i],
                "list_id": LIST_ID,
                "marketing_permissions": [
                    {"marketing_permission_id": "perm_email", "text": "Email", "enabled": True},
                    {
                        "marketing_permission_id": "perm_ads",
                        "text": "Customized online advertising",
                        "enabled": bool(ad),
                    },
                ],
            }
        )
    return out


def campaigns(world: World, now: float) -> list[dict]:
    cp = world.campaigns
    cp = cp[cp.send_time.to_numpy() < now]
    return [
        {
            "id": r.campaign_id,
            "type": "regular",
            "status": "sent",
            "send_time": iso(r.send_time),
            "settings": {"subject_line": r.subject},
            "recipients": {"list_id": LIST_ID},
        }
        for r in cp.itertuples(index=False)
    ]


def activity(world: World, now: float, campaign_id: str | None = None) -> dict[str, list[dict]]:
    """Email activity per campaign (or of one): an entry per recipient with their actions."""
    a = world.email_activity
    keep = a.ts.to_numpy() < now
    if campaign_id is not None:
        keep &= (a.campaign_id == campaign_id).to_numpy()
    a = a[keep]
    if a.empty:
        return {}
    a = a.sort_values(["campaign_id", "person", "ts"], kind="stable")
    camp = a.campaign_id.to_numpy()
    person = a.person.to_numpy()
    emails = world.contacts.email.to_numpy()
    hashes = {p: subscriber_hash(emails[p]) for p in np.unique(person)}
    actions = [
        {"action": x, "timestamp": t, "type": "hard" if x == "bounce" else None}
        for x, t in zip(a.action.to_numpy(), _iso_array(a.ts.to_numpy()), strict=True)
    ]
    new_group = np.r_[True, (camp[1:] != camp[:-1]) | (person[1:] != person[:-1])]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(a)]
    out: dict[str, list[dict]] = {}
    for s0, s1 in zip(starts, ends, strict=True):
        p, c = person[s0], str(camp[s0])
        out.setdefault(c, []).append(
            {
                "campaign_id": c,
                "list_id": LIST_ID,
                "email_id": hashes[p],
                "email_address": str(emails[p]),
                "activity": actions[s0:s1],
            }
        )
    return out
