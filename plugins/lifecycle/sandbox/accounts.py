"""What real vendor accounts do that is not the person's journey.

The world (``world.py``) is people and what they do. Real HubSpot portals, Mailchimp
accounts and Segment workspaces add facts of their own, and connectors that only ever
saw a tidy emulator break on them (issue 10). This module draws those facts from a
world, with its own random stream (``np.random.default_rng([seed, ACCOUNTS_TAG])``), so
changes to the world's streams do not move them and these do not move the world:

- **Mailchimp lists.** Two audiences: the main list (``lst0001``, the one syncs write
  to) and a second list with an opaque id. Each list has its own opaque marketing
  permission ids with the account's own texts (Mailchimp "Manage GDPR fields": the
  texts are custom, the ids differ per list). About 40% of the main list was imported
  (``timestamp_signup`` is ``""`` for every imported member; ``timestamp_opt`` is the
  import time, and imported members gave no marketing permission); members of the
  second list carry no ``timestamp_signup`` at all. Some members are archived (status
  ``archived``) and some permanently deleted (they vanish from the list).
- **HubSpot portal.** A custom checkbox property ``marketing_ads_consent`` (``"true"`` /
  ``"false"``, set by forms for about half the contacts, with its change history),
  optional properties that are absent from ``properties`` or ``null``, contacts
  archived (only ``GET /crm/v3/objects/contacts?archived=true`` returns them) and
  contacts deleted for good (gone from every endpoint).
- **Consent decisions.** Each person decides on ad targeting at sign-up and some
  withdraw later, through one of three channels: the Mailchimp preference centre (the
  permission turns off), the CRM (a rep unticks the checkbox) or the website's consent
  banner (a Segment ``Segment Consent Preference Updated`` track event with
  ``context.consent.categoryPreferences``). A few re-consent on the website. Vendors
  record what they saw; :attr:`Accounts.decisions` is what each person chose (the
  oracle of the consent tests), never served by any vendor.

Rates are deliberately small: the point is that every shape exists in every world.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lifecycle.sandbox.world import DAY, DESKTOP_AGENTS, World, _categorical

#: Fixed tag of this module's random stream (independent of the world's own streams).
ACCOUNTS_TAG = 1010
MAIN_LIST = "lst0001"
#: Texts of the marketing permissions, as the account wrote them in its GDPR fields.
AD_PERMISSION_TEXT = "Customized Online Advertising"
#: The HubSpot portal's custom checkbox property holding ad consent.
HUBSPOT_CONSENT_PROPERTY = "marketing_ads_consent"
#: Segment's consent event and the consent category the banner uses for ads.
SEGMENT_CONSENT_EVENT = "Segment Consent Preference Updated"
SEGMENT_AD_CATEGORY = "Advertising"

IMPORTED_SHARE = 0.4
SECOND_LIST_SHARE = 0.3
AD_GRANT_P = 0.7
WITHDRAW_P = 0.15
RECONSENT_P = 0.2
HUBSPOT_FORM_SHARE = 0.5
BANNER_SHARE = 0.5
HUBSPOT_ARCHIVED_P = 0.006
HUBSPOT_DELETED_P = 0.003
MAILCHIMP_ARCHIVED_P = 0.006
MAILCHIMP_DELETED_P = 0.003
#: Share of contacts whose optional properties are unset, and how HubSpot shows an unset
#: property: absent from ``properties`` or present as ``null``.
PHONE_UNSET_P = 0.25
#: Share of deals associated with a second (partner) company besides the buyer's.
DEAL_PARTNER_P = 0.15
NAME_UNSET_P = 0.03


@dataclass(frozen=True)
class MailchimpList:
    """One Mailchimp audience: its id, name and marketing permissions (id, text)."""

    list_id: str
    name: str
    permissions: tuple[tuple[str, str], ...]
    #: False: members of this list carry no ``timestamp_signup`` field at all.
    has_signup_field: bool = True

    @property
    def ad_permission_id(self) -> str:
        return next(pid for pid, text in self.permissions if text == AD_PERMISSION_TEXT)


@dataclass(frozen=True)
class Accounts:
    """Account facts of one world (see the module docstring)."""

    lists: tuple[MailchimpList, ...]
    #: One row per (list, person): ``list_id, person, joined_at, imported, opt_at,
    #: archived_at, deleted_at`` (epoch seconds, NaN = never).
    members: pd.DataFrame
    #: One row per known person: ``person, archived_at, deleted_at, phone_unset,
    #: name_unset, unset_as_null`` (HubSpot).
    hubspot: pd.DataFrame
    #: Every ad-consent decision a person made: ``person, ts, granted, channel``
    #: (``signup`` | ``mailchimp`` | ``hubspot`` | ``segment``); ``captured_by`` says which
    #: vendors recorded a sign-up decision.
    decisions: pd.DataFrame
    #: Per known person: which vendors captured the sign-up decision.
    captured: pd.DataFrame
    #: Deals that also name a partner (reseller) company, listed before the buyer's own:
    #: ``deal_id -> company_id``.
    deal_partners: pd.Series


def _opaque(seed: int, *parts: str) -> str:
    """A stable 10-hex-digit id (Mailchimp's list and permission ids look like this)."""
    return hashlib.blake2b(":".join([str(seed), *parts]).encode(), digest_size=5).hexdigest()


def _lists(seed: int) -> tuple[MailchimpList, ...]:
    main = MailchimpList(
        MAIN_LIST,
        "Newsletter",
        (
            (_opaque(seed, MAIN_LIST, "email"), "Email"),
            (_opaque(seed, MAIN_LIST, "ads"), AD_PERMISSION_TEXT),
        ),
    )
    second_id = _opaque(seed, "list", "product-updates")
    second = MailchimpList(
        second_id,
        "Product updates",
        (
            (_opaque(seed, second_id, "email"), "Product news by email"),
            (_opaque(seed, second_id, "mail"), "Direct Mail"),
            (_opaque(seed, second_id, "ads"), AD_PERMISSION_TEXT),
        ),
        has_signup_field=False,
    )
    return main, second


def _build(world: World) -> Accounts:
    cfg = world.config
    rng = np.random.default_rng([cfg.seed, ACCOUNTS_TAG])
    c = world.contacts
    t_end = world.now_ts + cfg.horizon_days * DAY
    known = np.flatnonzero(c.is_known.to_numpy())
    n = len(known)
    sub = c.subscriber_at.to_numpy()[known]

    # -- ad-consent decisions ---------------------------------------------------------
    granted0 = rng.random(n) < AD_GRANT_P
    withdraws = granted0 & (rng.random(n) < WITHDRAW_P)
    t_w = sub + rng.exponential(90, n) * DAY
    withdraws &= t_w < t_end
    channel = np.array(["mailchimp", "hubspot", "segment"], dtype=object)[rng.integers(0, 3, n)]
    reconsents = withdraws & (rng.random(n) < RECONSENT_P)
    t_r = t_w + rng.exponential(60, n) * DAY
    reconsents &= t_r < t_end
    imported = rng.random(n) < IMPORTED_SHARE
    # imported members never saw a Mailchimp form: their withdrawals go elsewhere
    channel = np.where(imported & (channel == "mailchimp"), "hubspot", channel)
    hubspot_form = rng.random(n) < HUBSPOT_FORM_SHARE
    banner = rng.random(n) < BANNER_SHARE
    decisions = pd.concat(
        [
            pd.DataFrame({"person": known, "ts": sub, "granted": granted0, "channel": "signup"}),
            pd.DataFrame(
                {
                    "person": known[withdraws],
                    "ts": t_w[withdraws],
                    "granted": False,
                    "channel": channel[withdraws],
                }
            ),
            pd.DataFrame(
                {
                    "person": known[reconsents],
                    "ts": t_r[reconsents],
                    "granted": True,
                    "channel": "segment",
                }
            ),
        ],
        ignore_index=True,
    ).sort_values(["person", "ts"], kind="stable", ignore_index=True)
    captured = pd.DataFrame(
        {
            "person": known,
            "mailchimp": ~imported,
            "hubspot": hubspot_form,
            "segment": banner,
        }
    )

    # -- Mailchimp list members -------------------------------------------------------
    lists = _lists(cfg.seed)
    # the draws are made either way, so a world without removals keeps every other fact
    removals = world.__dict__.get("_account_removals", True)
    removed = np.where(removals, rng.random(n), 1.0)
    archived_at = np.where(
        removed < MAILCHIMP_ARCHIVED_P, sub + rng.exponential(120, n) * DAY, np.nan
    )
    deleted_at = np.where(
        (removed >= MAILCHIMP_ARCHIVED_P) & (removed < MAILCHIMP_ARCHIVED_P + MAILCHIMP_DELETED_P),
        sub + rng.exponential(120, n) * DAY,
        np.nan,
    )
    main = pd.DataFrame(
        {
            "list_id": lists[0].list_id,
            "person": known,
            "joined_at": sub,
            "imported": imported,
            # the import ran a few hours after the contact reached the CRM export
            "opt_at": np.where(imported, sub + rng.uniform(1, 12, n) * 3600, sub + 60),
            "archived_at": archived_at,
            "deleted_at": deleted_at,
        }
    )
    on_second = rng.random(n) < SECOND_LIST_SHARE
    joined = sub + rng.exponential(20, n) * DAY
    second = pd.DataFrame(
        {
            "list_id": lists[1].list_id,
            "person": known[on_second],
            "joined_at": joined[on_second],
            "imported": False,
            "opt_at": joined[on_second] + 30,
            "archived_at": np.nan,
            "deleted_at": np.nan,
        }
    )
    members = pd.concat([main, second], ignore_index=True)

    # -- HubSpot portal -----------------------------------------------------------------
    gone = np.where(removals, rng.random(n), 1.0)
    hs_archived = np.where(gone < HUBSPOT_ARCHIVED_P, sub + rng.exponential(150, n) * DAY, np.nan)
    hs_deleted = np.where(
        (gone >= HUBSPOT_ARCHIVED_P) & (gone < HUBSPOT_ARCHIVED_P + HUBSPOT_DELETED_P),
        sub + rng.exponential(150, n) * DAY,
        np.nan,
    )
    hubspot = pd.DataFrame(
        {
            "person": known,
            "archived_at": hs_archived,
            "deleted_at": hs_deleted,
            "phone_unset": rng.random(n) < PHONE_UNSET_P,
            "name_unset": rng.random(n) < NAME_UNSET_P,
            "unset_as_null": rng.random(n) < 0.5,
        }
    )
    deals = world.deals
    partnered = rng.random(len(deals)) < DEAL_PARTNER_P
    comp_ids = world.companies.company_id.to_numpy()
    partner = comp_ids[rng.integers(0, len(comp_ids), len(deals))]
    own = world.contacts.company_id.to_numpy()[deals.person.to_numpy()]
    partnered &= partner != own
    deal_partners = pd.Series(partner[partnered], index=deals.deal_id.to_numpy()[partnered])
    return Accounts(lists, members, hubspot, decisions, captured, deal_partners)


def accounts(world: World) -> Accounts:
    """The account facts of ``world`` (built once per world object, kept on it)."""
    built = world.__dict__.get("_accounts")
    if built is None:
        built = world.__dict__["_accounts"] = _build(world)
    return built


# --- what each vendor recorded -----------------------------------------------------------


def ad_consent_as_recorded(world: World, channel: str) -> pd.DataFrame:
    """The ad-consent history one vendor holds: ``person, ts, granted`` per change.

    ``channel`` is ``mailchimp``, ``hubspot`` or ``segment``. A vendor holds the sign-up
    decision when it captured it (a Mailchimp form, a HubSpot form, the website banner)
    and every later decision made through it; re-consent happens on the website only.
    """
    a = accounts(world)
    d = a.decisions
    took_signup = a.captured.set_index("person")[channel]
    signup = d[d.channel == "signup"]
    signup = signup[took_signup.reindex(signup.person).to_numpy()]
    return pd.concat([signup, d[d.channel == channel]], ignore_index=True).sort_values(
        ["person", "ts"], kind="stable", ignore_index=True
    )[["person", "ts", "granted"]]


def ad_consent_at(world: World, ts: float) -> pd.Series:
    """What each known person last decided on ad targeting by ``ts`` (True = granted).

    Whatever channel they used: the truth the consent model should arrive at.
    """
    d = accounts(world).decisions
    d = d[d.ts <= ts]
    return d.groupby("person").granted.last()


#: The values ``context.consent.categoryPreferences`` takes in the sandbox.
CONSENT_VALUES = [
    '{"Advertising": true, "Analytics": true}',
    '{"Advertising": false, "Analytics": true}',
]


def segment_consent_events(world: World) -> pd.DataFrame:
    """Consent-banner track events in ``world.events``' columns (plus ``consent``).

    One ``Segment Consent Preference Updated`` event per decision made on the website
    (sign-up for the people who saw the banner, withdrawals and re-consents through it),
    stamped with the person's ``user_id`` (they are logged in) and their first device.
    ``consent`` holds the JSON of ``context.consent.categoryPreferences``.
    """
    recorded = ad_consent_as_recorded(world, "segment")
    c = world.contacts
    p = recorded.person.to_numpy()
    n = len(recorded)
    granted = recorded.granted.to_numpy()
    consent = np.where(granted, CONSENT_VALUES[0], CONSENT_VALUES[1]).astype(object)
    seed = world.config.seed
    ids = [f"msg-consent-{_opaque(seed, 'consent', str(i))}" for i in range(n)]
    return pd.DataFrame(
        {
            "message_id": ids,
            "type": "track",
            "event": SEGMENT_CONSENT_EVENT,
            "anonymous_id": c.anonymous_id.to_numpy()[p],
            "user_id": c.user_id.to_numpy()[p],
            "person": p,
            # a few seconds after the decision, as the banner's callback fires
            "ts": recorded.ts.to_numpy() + 5,
            "path": "/",
            "utm_source": None,
            "utm_medium": None,
            "utm_campaign": None,
            "email": None,
            "revenue": np.nan,
            "order_id": None,
            "detail": None,
            # on the person's first device (a desktop browser)
            "ua": (p % len(DESKTOP_AGENTS)).astype(np.int8),
            "device": np.ones(n, dtype=np.int8),
            "consent": consent,
        }
    )


def with_account_events(world: World, *, removals: bool = True) -> World:
    """``world`` with its consent-banner events appended to ``world.events``.

    Called once at the end of ``world.simulate()``. ``removals=False`` builds the
    accounts without archived or deleted records (the CDNOW replay: every real customer
    stays a contact); every other account fact is drawn the same. The new ``consent`` column (a
    categorical: a code per event) is null on every other event; the landing writes it
    to ``context.consent``. The events keep ``world.events``' column types.
    """
    if world.__dict__.get("_account_removals", True) != removals:
        world.__dict__.pop("_accounts", None)
    world.__dict__["_account_removals"] = removals
    extra = segment_consent_events(world)
    extra = extra[extra.ts < world.now_ts + world.config.horizon_days * DAY]
    like = world.events
    dtypes = like.dtypes.to_dict()
    for col, dtype in dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            extra[col] = _categorical(
                col, extra[col].to_numpy(dtype=object), list(dtype.categories)
            )
    extra = extra.astype(dtypes)
    extra["consent"] = _categorical("consent", extra.consent.to_numpy(dtype=object), CONSENT_VALUES)
    none = pd.Categorical.from_codes(np.full(len(like), -1, dtype=np.int8), CONSENT_VALUES)
    world.events = pd.concat([like.assign(consent=none), extra], ignore_index=True)
    return world


def erased_at_first_load(world: World, now: float) -> np.ndarray:
    """Known people a first load at ``now`` records as erased: archived in the HubSpot
    portal (listed by ``?archived=true``) or archived in Mailchimp (status ``archived``).
    Their rows are purged from every raw table that night."""
    acc = accounts(world)
    hs = acc.hubspot
    hs_archived = hs.person.to_numpy()[
        (np.nan_to_num(hs.archived_at.to_numpy(), nan=np.inf) < now)
        & ~(np.nan_to_num(hs.deleted_at.to_numpy(), nan=np.inf) < now)
        & (world.contacts.subscriber_at.to_numpy()[hs.person.to_numpy()] < now)
    ]
    m = acc.members
    mc_archived = m.person.to_numpy()[
        (np.nan_to_num(m.archived_at.to_numpy(), nan=np.inf) < now)
        & (m.joined_at.to_numpy() < now)
        & ~(np.nan_to_num(m.deleted_at.to_numpy(), nan=np.inf) < now)
    ]
    return np.union1d(hs_archived, mc_archived)


def gone_at_first_load(world: World, now: float) -> np.ndarray:
    """Known people a first load at ``now`` leaves out of every mart: those it records
    as erased (:func:`erased_at_first_load`) and those the HubSpot portal deleted for
    good (no endpoint serves them). People deleted in Mailchimp before any load are
    never seen as erased. For scoring against ground truth: their absence is right.
    """
    hs = accounts(world).hubspot
    deleted = hs.person.to_numpy()[np.nan_to_num(hs.deleted_at.to_numpy(), nan=np.inf) < now]
    return np.union1d(erased_at_first_load(world, now), deleted)
