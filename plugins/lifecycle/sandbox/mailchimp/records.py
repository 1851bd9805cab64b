"""What the emulated Mailchimp account holds, derived from a simulated world as of its clock.

Lists, members, campaigns and per-campaign email activity in Mailchimp Marketing API
v3's shapes; ``api.py`` pages and authenticates over them. What the account holds
beyond the people's journey (two lists, imported members, opaque permission ids,
archived and deleted members) comes from ``sandbox/accounts.py``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from lifecycle.sandbox.accounts import (
    AD_PERMISSION_TEXT,
    MAIN_LIST,
    accounts,
    ad_consent_as_recorded,
)
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

#: The main list: campaigns go to it and syncs write to it.
LIST_ID = MAIN_LIST


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def _last_decision(recorded: pd.DataFrame, people: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The latest recorded decision of ``people[i]`` at or before ``at[i]`` (False if none)."""
    if recorded.empty or len(people) == 0:
        return np.zeros(len(people), dtype=bool)
    left = pd.DataFrame({"person": people, "ts": at.astype(float), "i": np.arange(len(people))})
    right = recorded.astype({"ts": float}).sort_values("ts")
    got = pd.merge_asof(
        left.sort_values("ts"), right, on="ts", by="person", direction="backward"
    ).sort_values("i")
    return got.granted.fillna(False).to_numpy(dtype=bool)


def _iso_or_empty(a: np.ndarray) -> np.ndarray:
    out = _iso_array(a)
    return np.where(pd.isna(out), "", out)


def members(world: World, now: float) -> list[dict]:
    """Members of every list as ``GET /lists/{id}/members`` returns them (all lists).

    Mailchimp's "List members" reference: ``status`` is subscribed, unsubscribed,
    cleaned, pending, transactional or archived (an archived member stays listed with
    that status; a permanently deleted one is gone); ``timestamp_signup`` and
    ``timestamp_opt`` are ``""`` when unknown (every imported member has no sign-up
    time), and the second list's members carry no ``timestamp_signup`` field at all (as
    a list fed by an integration that never sets it); ``marketing_permissions`` lists the
    list's own permissions with their opaque ids, custom texts and ``enabled``. The
    address is the one as of ``now`` (after any change; the member id is the hash of the
    current address), while ``unique_email_id`` stays: on the main list it is the one
    the world's email click-throughs carry as ``mc_eid``.
    """
    acc = accounts(world)
    c = world.contacts
    mem = acc.members
    mem = mem[(mem.joined_at.to_numpy() < now)]
    mem = mem[~(np.nan_to_num(mem.deleted_at.to_numpy(), nan=np.inf) < now)]
    person = mem.person.to_numpy()
    by_list = {lst.list_id: lst for lst in acc.lists}
    unsub = np.nan_to_num(c.unsubscribed_at.to_numpy()[person], nan=np.inf)
    cleaned = np.nan_to_num(c.cleaned_at.to_numpy()[person], nan=np.inf)
    archived = np.nan_to_num(mem.archived_at.to_numpy(), nan=np.inf)
    status = np.where(
        archived < now,
        "archived",
        np.where(cleaned < now, "cleaned", np.where(unsub < now, "unsubscribed", "subscribed")),
    )
    joined = mem.joined_at.to_numpy()
    opt_at = mem.opt_at.to_numpy()
    imported = mem.imported.to_numpy(dtype=bool)
    is_main = (mem.list_id == MAIN_LIST).to_numpy()
    # what the member's ad permission says: the main list follows the preference centre
    # (the sign-up form's answer, then changes made there); the second list keeps the
    # answer given when joining it
    via_mailchimp = ad_consent_as_recorded(world, "mailchimp")
    via_mailchimp = via_mailchimp[via_mailchimp.ts < now]
    main_ads = _last_decision(via_mailchimp, person, np.full(len(person), now))
    truth = accounts(world).decisions
    joined_ads = _last_decision(truth[["person", "ts", "granted"]], person, joined)
    ads = np.where(is_main, main_ads & ~imported, joined_ads)
    changes = [opt_at]
    email_changed = np.nan_to_num(c.email_changed_at.to_numpy()[person], nan=np.inf)
    for t in (unsub, cleaned, archived, email_changed):
        changes.append(np.where(t < now, t, np.nan))
    last_pref = via_mailchimp.groupby("person").ts.max()
    changes.append(np.where(is_main, last_pref.reindex(person).to_numpy(), np.nan))
    changed = np.nanmax(np.vstack(changes), axis=0)
    signup = np.where(imported, "", _iso_or_empty(joined))
    opt = _iso_or_empty(opt_at)
    changed_iso = _iso_array(changed)
    emails = world.email_at(now)[person]
    # the member record keeps its unique_email_id when the address changes (its ``id``,
    # the hash of the address, does not): keyed by the address it joined with
    first_emails = c.email.to_numpy()[person]
    world_unique_ids = c.unique_email_id.to_numpy()[person]
    first = c.firstname.to_numpy()[person]
    last = c.lastname.to_numpy()[person]
    list_ids = mem.list_id.to_numpy()
    out = []
    for i in range(len(mem)):
        lst = by_list[list_ids[i]]
        member = {
            "id": subscriber_hash(emails[i]),
            "email_address": str(emails[i]),
            "unique_email_id": str(world_unique_ids[i])
            if is_main[i]
            else _unique_email_id(lst.list_id, first_emails[i]),
            "status": str(status[i]),
            "merge_fields": {"FNAME": str(first[i]), "LNAME": str(last[i])},
            "timestamp_signup": str(signup[i]),
            "timestamp_opt": str(opt[i]),
            "last_changed": changed_iso[i],
            "list_id": lst.list_id,
            "tags": [],
            "marketing_permissions": [
                {
                    "marketing_permission_id": pid,
                    "text": text,
                    "enabled": bool(ads[i])
                    if text == AD_PERMISSION_TEXT
                    else bool(not imported[i] and text != "Direct Mail"),
                }
                for pid, text in lst.permissions
            ],
        }
        if not lst.has_signup_field:
            del member["timestamp_signup"]
        out.append(member)
    return out


def _unique_email_id(list_id: str, email: str) -> str:
    """Mailchimp's per-list ``unique_email_id``: opaque, stable (also across a change of
    the member's address: pass the address the member joined with)."""
    return hashlib.md5(f"{list_id}:{email}".encode()).hexdigest()[:10]


def lists(world: World, now: float) -> list[dict]:
    """``GET /lists``: every audience with its id, name and member count."""
    served = members(world, now)
    count: dict[str, int] = {}
    for m in served:
        count[m["list_id"]] = count.get(m["list_id"], 0) + 1
    return [
        {
            "id": lst.list_id,
            "name": lst.name,
            "marketing_permissions": True,
            "stats": {"member_count": count.get(lst.list_id, 0)},
        }
        for lst in accounts(world).lists
    ]


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
