"""What the emulated Mailchimp account holds, derived from a simulated world as of its clock.

Members, campaigns and per-campaign email activity in Mailchimp Marketing API v3's
shapes; ``api.py`` pages and authenticates over them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from lifecycle.sandbox.common import _iso_array, iso
from lifecycle.sandbox.world import (
    CLICK_PAGES,
    IP_HOME,
    IP_PROXY,
    IP_RELAY,
    IP_SCANNER,
    IP_VPN,
    World,
)

LIST_ID = "lst0001"


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def members(world: World, now: float) -> list[dict]:
    """List members as of ``now``: the address after any change (the member id is the
    hash of the current address; ``unique_email_id`` stays, Mailchimp docs "List
    members": "An identifier for the address across all of Mailchimp"), and the opt-in
    time (``timestamp_opt``) beside the sign-up time."""
    c = world.contacts
    current = world.email_at(now)
    keep = c.subscriber_at.to_numpy() < now
    current = current[keep]
    c = c[keep]
    unsub = np.nan_to_num(c.unsubscribed_at.to_numpy(), nan=np.inf)
    cleaned = np.nan_to_num(c.cleaned_at.to_numpy(), nan=np.inf)
    status = np.where(cleaned < now, "cleaned", np.where(unsub < now, "unsubscribed", "subscribed"))
    changed = c.subscriber_at.to_numpy()
    changed = np.where(unsub < now, np.fmax(changed, unsub), changed)
    changed = np.where(cleaned < now, np.fmax(changed, cleaned), changed)
    email_changed = np.nan_to_num(c.email_changed_at.to_numpy(), nan=np.inf)
    changed = np.where(email_changed < now, np.fmax(changed, email_changed), changed)
    signup = _iso_array(c.subscriber_at.to_numpy())
    opt_in = _iso_array(c.subscriber_at.to_numpy())
    changed_iso = _iso_array(changed)
    unique_ids = c.unique_email_id.to_numpy()
    out = []
    for i, (email, first, last, ad) in enumerate(
        zip(
            current,
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
                "unique_email_id": str(unique_ids[i]),
                "timestamp_signup": signup[i],
                "timestamp_opt": opt_in[i],
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
    emails = world.email_at(now)
    hashes = {p: subscriber_hash(emails[p]) for p in np.unique(person)}
    ips = activity_ips(person, a.ip_kind.to_numpy(), a.ts.to_numpy())
    pages = a.page.to_numpy()
    urls = np.where(
        pages >= 0,
        "https://www.example.com" + CLICK_PAGES[np.maximum(pages, 0)].astype(object),
        None,
    )
    actions = [
        {
            "action": x,
            "timestamp": t,
            "type": "hard" if x == "bounce" else None,
            "ip": ip,
            **({"url": u} if x == "click" else {}),
        }
        for x, t, ip, u in zip(
            a.action.to_numpy(), _iso_array(a.ts.to_numpy()), ips, urls, strict=True
        )
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


#: First octets of each source of an email action (``World.email_activity.ip_kind``):
#: readers' own networks; Apple's Mail Privacy Protection proxies (17.0.0.0/8, Apple's
#: own block); relay egress ranges that VPN services share (so an open from there may
#: be a person); mail-security gateways that fetch links.
_IP_PREFIX = {
    IP_HOME: None,
    IP_PROXY: "17.{a}.{b}.{c}",
    IP_RELAY: "104.28.{b}.{c}",
    IP_VPN: "104.28.{b}.{c}",
    IP_SCANNER: "64.235.{b}.{c}",
}


def activity_ips(person: np.ndarray, kind: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The ``ip`` of each email action: a reader's home address (stable per person) or
    an address in the range of the proxy, relay, VPN or scanner it came through."""
    p = person.astype(np.int64)
    jitter = (np.floor(ts).astype(np.int64) // 7) % 250
    a, b, c = (p * 7 + jitter) % 250, (p // 3 + jitter) % 250, (p + jitter) % 253 + 1
    home = np.char.add(
        np.char.add(np.char.add((81 + p % 40).astype(str), "."), ((p // 40) % 250).astype(str)),
        np.char.add(
            np.char.add(".", ((p // 10_000) % 250).astype(str)),
            np.char.add(".", (p % 253 + 1).astype(str)),
        ),
    ).astype(object)
    out = home.copy()
    for k, pattern in _IP_PREFIX.items():
        sel = kind == k
        if pattern is None or not sel.any():
            continue
        out[sel] = [
            pattern.format(a=x, b=y, c=z) for x, y, z in zip(a[sel], b[sel], c[sel], strict=True)
        ]
    return out
