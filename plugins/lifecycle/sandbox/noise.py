"""Noise profiles: what the vendors record of a person's true journey.

A profile (``include/noise_profiles.yml``) says how late, missing or wrong the CRM is,
which devices identify, how many orders reach only one system, what bots and
mail-privacy proxies add. :func:`load_profile` reads and validates it; the simulator
(:mod:`lifecycle.sandbox.world`) draws the journey, then applies the profile with a
random stream of its own, so the truth of a seed is the same under every profile.

:func:`crm_records` turns true stage dates into the CRM's records (late, missing, wrong,
stale, duplicated) and :func:`crm_as_of` says what the portal shows at an instant (a
duplicate is gone once merged; the survivor lists it in ``hs_merged_object_ids``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

DAY = 86_400
#: CRM lifecycle stages with a HubSpot date property, in the CRM's order.
CRM_STAGES = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "advocate")
#: The chain a wrong date is drawn on (a phantom is the stage after the furthest reached).
_CHAIN = CRM_STAGES[:6]
#: First id of duplicate CRM records (primary contacts count from 1,000,001).
DUPLICATE_ID_BASE = 8_000_001
CRM_KINDS = ("exact", "missing", "late", "wrong_phantom", "wrong_skipped", "stale")


class NoiseProfileError(ValueError):
    """The noise profile file or a profile in it is not what the simulator can use."""


@dataclass(frozen=True)
class CrmNoise:
    dates_missing: float = 0.0
    dates_late: float = 0.0
    late_days: tuple[float, float] = (1.0, 21.0)
    dates_wrong: float = 0.0
    stage_stale: float = 0.0
    duplicates: float = 0.0
    duplicate_merge_after_days: float = 120.0


@dataclass(frozen=True)
class OrderNoise:
    deal_only: float = 0.0
    web_only: float = 0.0
    deal_close_lag_hours: float = 0.0


@dataclass(frozen=True)
class IntentNoise:
    never_converters_visiting: float | None = None
    converters_skipping: float = 0.0


@dataclass(frozen=True)
class IdentityNoise:
    second_device: float = 0.25
    second_device_identifies: float = 1.0
    click_through_on_second_device: float = 0.5
    email_change: float = 0.0
    shared_role_address: float = 0.0


@dataclass(frozen=True)
class BotNoise:
    web_event_share: float = 0.0
    link_scanned_recipients: float = 0.0


@dataclass(frozen=True)
class EmailNoise:
    machine_open_recipients: float = 0.15
    machine_open_delay_minutes: float = 20.0
    relay_proxy_share: float = 0.0
    human_opens_via_vpn: float = 0.0


@dataclass(frozen=True)
class NoiseProfile:
    name: str
    description: str
    crm: CrmNoise
    orders: OrderNoise
    intent_pages: IntentNoise
    identity: IdentityNoise
    bots: BotNoise
    email: EmailNoise


_SECTIONS = {
    "crm": CrmNoise,
    "orders": OrderNoise,
    "intent_pages": IntentNoise,
    "identity": IdentityNoise,
    "bots": BotNoise,
    "email": EmailNoise,
}
#: Fields that are not shares of a population (no 0..1 check).
_NOT_SHARES = {
    "late_days",
    "duplicate_merge_after_days",
    "deal_close_lag_hours",
    "machine_open_delay_minutes",
}


def profiles_path() -> Path:
    from lifecycle.config import settings  # noqa: PLC0415 - keep the world importable alone

    return settings().include_dir / "noise_profiles.yml"


def profile_names(path: Path | None = None) -> list[str]:
    return list(_read(path or profiles_path()))


def _read(path: Path) -> dict:
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise NoiseProfileError(f"no noise profile file at {path}") from exc
    profiles = (doc or {}).get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise NoiseProfileError(f"{path}: expected a top-level 'profiles' mapping")
    return profiles


def load_profile(name: str, path: Path | None = None) -> NoiseProfile:
    """The named profile, validated: every section and key known, every share in 0..1."""
    path = path or profiles_path()
    profiles = _read(path)
    if name not in profiles:
        raise NoiseProfileError(
            f"unknown noise profile {name!r} in {path}; known: {', '.join(profiles)}"
        )
    raw = profiles[name] or {}
    unknown = set(raw) - set(_SECTIONS) - {"description"}
    if unknown:
        raise NoiseProfileError(f"{path}: profile {name!r} has unknown sections {sorted(unknown)}")
    sections = {}
    for section, cls in _SECTIONS.items():
        values = raw.get(section) or {}
        known = {f.name for f in fields(cls)}
        bad = set(values) - known
        if bad:
            raise NoiseProfileError(
                f"{path}: {name}.{section} has unknown keys {sorted(bad)}; known: {sorted(known)}"
            )
        for key, v in values.items():
            if key in _NOT_SHARES or v is None:
                continue
            if not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
                raise NoiseProfileError(
                    f"{path}: {name}.{section}.{key} = {v!r}: expected a share between 0 and 1"
                )
        if "late_days" in values:
            values = {**values, "late_days": tuple(float(x) for x in values["late_days"])}
        sections[section] = cls(**values)
    crm = sections["crm"]
    total = crm.dates_missing + crm.dates_late + crm.dates_wrong + crm.stage_stale
    if total > 1.0:
        raise NoiseProfileError(
            f"{path}: {name}.crm: missing + late + wrong + stale = {total:.2f} > 1 "
            "(each CRM contact gets at most one of them)"
        )
    orders = sections["orders"]
    if orders.deal_only + orders.web_only > 1.0:
        raise NoiseProfileError(f"{path}: {name}.orders: deal_only + web_only > 1")
    return NoiseProfile(name=name, description=str(raw.get("description", "")).strip(), **sections)


def as_dict(profile: NoiseProfile) -> dict:
    return dataclasses.asdict(profile)


# ----------------------------------------------------------------------------- CRM


def crm_records(
    rng: np.random.Generator,
    contacts: pd.DataFrame,
    profile: NoiseProfile,
    t_end: float,
    lo: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CRM's contact records of one block of people, and the log of what went wrong.

    ``contacts`` holds the block's people (local ``person`` numbers) with their true stage
    dates. Every known person gets a primary record (``hubspot_id``); a share gets a
    duplicate record too. Stage dates are copied, set late, dropped, made wrong (a
    phantom stage never reached, or a reached stage skipped) or frozen (stale) per the
    profile, one kind per record. Times are epoch seconds; NaN = never.
    """
    noise = profile.crm
    k = contacts[contacts.is_known.to_numpy()]
    n = len(k)
    person = k.person.to_numpy()
    true = np.column_stack([k[f"{s}_at"].to_numpy() for s in CRM_STAGES])
    dates = true.copy()

    u = rng.random(n)
    cuts = np.cumsum([noise.dates_missing, noise.dates_late, noise.dates_wrong, noise.stage_stale])
    kind = np.full(n, "exact", dtype=object)
    kind[u < cuts[0]] = "missing"
    kind[(u >= cuts[0]) & (u < cuts[1])] = "late"
    wrong = (u >= cuts[1]) & (u < cuts[2])
    stale = (u >= cuts[2]) & (u < cuts[3])
    kind[stale] = "stale"

    late = kind == "late"
    lo_d, hi_d = noise.late_days
    dates[late] += rng.uniform(lo_d, hi_d, (int(late.sum()), len(CRM_STAGES))) * DAY
    dates[kind == "missing"] = np.nan

    # wrong: the stage after the furthest one reached, some days after it (a phantom), or
    # one reached stage between the first and the furthest left out (skipped)
    chain = true[:, : len(_CHAIN)]
    reached = ~np.isnan(chain) & (chain <= t_end)
    furthest = np.where(reached.any(axis=1), len(_CHAIN) - 1 - np.argmax(reached[:, ::-1], 1), -1)
    want_phantom = rng.random(n) < 0.8
    can_phantom = (furthest >= 0) & (furthest < len(_CHAIN) - 1)
    can_skip = reached[:, 1:].sum(axis=1) >= 2  # a stage other than the furthest to skip
    phantom = wrong & can_phantom & (want_phantom | ~can_skip)
    skipped = wrong & ~phantom & can_skip
    kind[phantom] = "wrong_phantom"
    kind[skipped] = "wrong_skipped"
    rows = np.flatnonzero(phantom)
    f = furthest[rows]
    phantom_stage = np.full(n, -1)
    phantom_stage[rows] = f + 1
    phantom_at = np.full(n, np.nan)
    phantom_at[rows] = chain[rows, f] + rng.uniform(1, 30, len(rows)) * DAY
    dates[rows, f + 1] = phantom_at[rows]
    rows = np.flatnonzero(skipped)
    # a reached stage strictly between subscriber and the furthest one
    cand = reached[rows, 1:] & (np.arange(1, len(_CHAIN)) < furthest[rows, None])
    cand_n = cand.sum(axis=1)
    pick = np.floor(rng.random(len(rows)) * np.maximum(cand_n, 1)).astype(int)
    order = np.cumsum(cand, axis=1) - 1
    col = 1 + np.argmax(cand & (order == pick[:, None]), axis=1)
    ok = cand_n > 0
    skipped_stage = np.full(n, -1)
    skipped_stage[rows[ok]] = col[ok]
    dates[rows[ok], col[ok]] = np.nan
    kind[rows[~ok]] = "exact"

    sub = k.subscriber_at.to_numpy()
    stale_at = np.where(stale, sub + rng.random(n) * (t_end - sub), np.nan)
    dates[stale] = np.where(dates[stale] <= stale_at[stale, None], dates[stale], np.nan)

    # duplicates: a second record sales made later from another address, merged months on
    dup = rng.random(n) < noise.duplicates
    dup_created = sub + rng.exponential(45, n) * DAY
    dup &= dup_created < t_end
    d = np.flatnonzero(dup)
    merged_at = dup_created + rng.exponential(noise.duplicate_merge_after_days, n) * DAY

    crm_cols = {f"crm_{s}_at": dates[:, i] for i, s in enumerate(CRM_STAGES)}
    first = np.char.lower(k.firstname.to_numpy().astype(str))
    primary = pd.DataFrame(
        {
            "hubspot_id": k.hubspot_id.to_numpy(),
            "person": person,
            "is_duplicate": False,
            "duplicate_of": None,
            "email": k.email_typed.to_numpy(),
            "createdate": sub + rng.uniform(5, 300, n),
            "crm_kind": kind,
            "stale_at": stale_at,
            "merged_at": np.nan,
            **crm_cols,
        }
    )
    dup_ids = (DUPLICATE_ID_BASE + lo + d).astype(str)
    duplicate = pd.DataFrame(
        {
            "hubspot_id": dup_ids,
            "person": person[d],
            "is_duplicate": True,
            "duplicate_of": k.hubspot_id.to_numpy()[d],
            "email": np.char.add(
                np.char.add(np.char.add(first[d], "."), (lo + person[d]).astype(str)),
                "@mail.example",
            ),
            "createdate": dup_created[d],
            "crm_kind": "duplicate",
            "stale_at": np.nan,
            "merged_at": merged_at[d],
            **{c: np.full(len(d), np.nan) for c in crm_cols},
        }
    )
    duplicate["crm_lead_at"] = dup_created[d]  # sales creates the second record as a lead
    primary["duplicate_id"] = None
    primary.loc[d, "duplicate_id"] = dup_ids
    primary["duplicate_merged_at"] = np.nan
    primary.loc[d, "duplicate_merged_at"] = merged_at[d]
    duplicate["duplicate_id"] = None
    duplicate["duplicate_merged_at"] = np.nan
    crm = pd.concat([primary, duplicate], ignore_index=True)

    log = pd.concat(
        [
            pd.DataFrame(
                {
                    "person": person[kind != "exact"],
                    "hubspot_id": k.hubspot_id.to_numpy()[kind != "exact"],
                    "kind": "crm_" + kind[kind != "exact"].astype(str),
                    "stage": _stage_names(
                        np.where(phantom, phantom_stage, skipped_stage)[kind != "exact"]
                    ),
                    "at": np.where(phantom, phantom_at, stale_at)[kind != "exact"],
                }
            ),
            pd.DataFrame(
                {
                    "person": person[d],
                    "hubspot_id": dup_ids,
                    "kind": "crm_duplicate",
                    "stage": None,
                    "at": merged_at[d],
                }
            ),
        ],
        ignore_index=True,
    )
    return crm, log


def _stage_names(idx: np.ndarray) -> np.ndarray:
    names = np.array(list(CRM_STAGES) + [None], dtype=object)
    return names[np.where(idx >= 0, idx, len(CRM_STAGES))]


def crm_as_of(world, now: float) -> pd.DataFrame:
    """The CRM's contact records as the portal shows them at ``now``.

    One row per visible record (created before ``now``, not merged away), sorted by id,
    with the current email, ``additional_emails`` and ``merged_object_ids`` (``;``-joined,
    as HubSpot serves multi-value properties), the stage date properties set before
    ``now`` (a stale record stopped at its freeze time), ``lifecyclestage`` and
    ``lastmodified``.
    """
    from lifecycle.sandbox.world import HUBSPOT_STAGE  # noqa: PLC0415 - circular

    crm = world.crm
    c = world.contacts
    created = crm.createdate.to_numpy()
    merged = np.nan_to_num(crm.merged_at.to_numpy(), nan=np.inf) < now
    visible = (created < now) & ~(crm.is_duplicate.to_numpy() & merged)
    r = crm[visible]
    person = r.person.to_numpy()
    primary = ~r.is_duplicate.to_numpy()

    changed_at = np.nan_to_num(c.email_changed_at.to_numpy()[person], nan=np.inf)
    changed = primary & (changed_at < now)
    email = np.where(changed, c.email_new.to_numpy()[person], r.email.to_numpy())
    dup_merged = primary & (np.nan_to_num(r.duplicate_merged_at.to_numpy(), nan=np.inf) < now)
    dup_email = _dup_emails(crm, r.duplicate_id.to_numpy())
    old = np.where(changed, r.email.to_numpy(), None)
    extra = np.where(dup_merged, dup_email, None)
    additional = _join(old, extra)
    merged_ids = np.where(dup_merged, r.duplicate_id.to_numpy(), None)

    stale_at = np.nan_to_num(r.stale_at.to_numpy(), nan=np.inf)
    order = [HUBSPOT_STAGE[s] for s in CRM_STAGES]
    stage = np.full(len(r), "subscriber", dtype=object)
    modified = r.createdate.to_numpy().copy()
    props = {}
    for s, hs in zip(CRM_STAGES, order, strict=True):
        t = r[f"crm_{s}_at"].to_numpy()
        shown = (np.nan_to_num(t, nan=np.inf) < now) & (t <= stale_at)
        props[s] = np.where(shown, t, np.nan)
        stage[shown] = hs
        modified = np.where(shown, np.fmax(modified, t), modified)
    # records without dates (never maintained dates, e.g. imported) still carry the stage
    # their owner set by hand: the furthest stage the person reached before now
    undated = primary & (r.crm_kind.to_numpy() == "missing")
    if undated.any():
        true = world.contacts
        for s, hs in zip(CRM_STAGES, order, strict=True):
            t = true[f"{s}_at"].to_numpy()[person]
            stage[undated & (np.nan_to_num(t, nan=np.inf) < now)] = hs
    for col in ("unsubscribed_at", "cleaned_at", "email_changed_at"):
        t = c[col].to_numpy()[person]
        seen = primary & (np.nan_to_num(t, nan=np.inf) < now)
        modified = np.where(seen, np.fmax(modified, t), modified)
    modified = np.where(dup_merged, np.fmax(modified, r.duplicate_merged_at.to_numpy()), modified)
    out = pd.DataFrame(
        {
            "hubspot_id": r.hubspot_id.to_numpy(),
            "person": person,
            "is_duplicate": ~primary,
            "email": email,
            "additional_emails": additional,
            "merged_object_ids": merged_ids,
            "createdate": r.createdate.to_numpy(),
            "lastmodified": modified,
            "lifecyclestage": stage,
            **{f"{s}_date": v for s, v in props.items()},
        }
    )
    return out.sort_values("hubspot_id", kind="stable").reset_index(drop=True)


def _dup_emails(crm: pd.DataFrame, dup_ids: np.ndarray) -> np.ndarray:
    dups = crm[crm.is_duplicate.to_numpy()]
    by_id = pd.Series(dups.email.to_numpy(), index=dups.hubspot_id.to_numpy())
    return by_id.reindex(pd.Index(dup_ids)).to_numpy(dtype=object)


def _join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a;b`` per row, skipping missing parts (None when both are)."""
    out = np.full(len(a), None, dtype=object)
    for i in np.flatnonzero(pd.notna(a) | pd.notna(b)):
        out[i] = ";".join(str(x) for x in (a[i], b[i]) if x is not None and x == x)
    return out
