"""Audience declarations (``include/audiences.yml``), validated on load.

One entry per audience: its dbt model, primary key, the identifiers it may send, guards,
and per destination a target and a sync mode. Every problem is reported with the
audience, the destination and what was expected, before anything is synced.

What a destination needs (its target keys, the identifiers it matches on, its consent
purposes and channel) is read from the destination class in
:mod:`lifecycle.activation.registry`; nothing here restates it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lifecycle.activation import registry

MODES = {"upsert", "mirror", "add_only"}

#: Identifiers an audience may declare, as audience-model columns.
IDENTIFIERS = {"email", "phone", "first_name", "last_name", "country_code"}

GUARD_DEFAULTS = {
    "max_removal_pct": 20.0,
    "allow_empty": False,
    "require_quality_gate": True,
    "max_attempts": 5,
    "retry_backoff_minutes": 60.0,
}


class AudienceConfigError(ValueError):
    """``audiences.yml`` says something that cannot be synced."""


@dataclass(frozen=True)
class Sync:
    """One (audience, destination) pair: what to read, what to send, how to guard it."""

    audience: str
    model: str
    primary_key: str
    destination: str
    mode: str
    target: dict = field(default_factory=dict)
    identifiers: tuple[str, ...] = ("email",)
    guards: dict = field(default_factory=lambda: dict(GUARD_DEFAULTS))

    @property
    def channel(self) -> str:
        return registry.get(self.destination).channel

    @property
    def purposes(self) -> tuple[str, ...]:
        """Consent purposes the destination requires (Contract A names)."""
        return registry.get(self.destination).purposes

    @property
    def max_removal_pct(self) -> float:
        return float(self.guards["max_removal_pct"])


def manifest_models(manifest: Path) -> set[str] | None:
    """Model names in a dbt ``manifest.json``, or None when there is no manifest yet."""
    if not manifest.exists():
        return None
    nodes = json.loads(manifest.read_text()).get("nodes", {})
    return {n["name"] for n in nodes.values() if n.get("resource_type") == "model"}


def load(path: Path, known_models: set[str] | None = None) -> list[Sync]:
    """Every (audience, destination) pair declared in ``path``.

    ``known_models`` (from :func:`manifest_models`) turns an unknown model into an error;
    without it model names are only checked for the ``aud_`` naming rule.
    """
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise AudienceConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise AudienceConfigError(f"{path}: not valid YAML: {exc}") from exc
    audiences = doc.get("audiences")
    if not isinstance(audiences, dict) or not audiences:
        raise AudienceConfigError(f"{path.name}: expected a mapping 'audiences:' with entries")
    out = []
    for name, spec in audiences.items():
        out.extend(_audience(path.name, name, spec or {}, known_models))
    return out


def _audience(file: str, name: str, spec: dict, known_models: set[str] | None) -> list[Sync]:
    where = f"{file}: audience '{name}'"
    model = spec.get("model")
    if not model:
        raise AudienceConfigError(f"{where} has no 'model' (the dbt model to read)")
    if known_models is not None and model not in known_models:
        near = sorted(m for m in known_models if m.startswith("aud_"))
        raise AudienceConfigError(
            f"{where}: unknown dbt model '{model}' (audience models in the manifest: "
            f"{', '.join(near) or 'none'})"
        )
    identifiers = spec.get("identifiers")
    if not identifiers or not isinstance(identifiers, list):
        raise AudienceConfigError(
            f"{where} has no 'identifiers' (a list out of {', '.join(sorted(IDENTIFIERS))})"
        )
    unknown = [i for i in identifiers if i not in IDENTIFIERS]
    if unknown:
        raise AudienceConfigError(
            f"{where}: unknown identifier(s) {', '.join(map(str, unknown))} "
            f"(known: {', '.join(sorted(IDENTIFIERS))})"
        )
    guards = dict(GUARD_DEFAULTS)
    for key, value in (spec.get("guards") or {}).items():
        if key not in GUARD_DEFAULTS:
            raise AudienceConfigError(
                f"{where}: unknown guard '{key}' (known: {', '.join(sorted(GUARD_DEFAULTS))})"
            )
        guards[key] = type(GUARD_DEFAULTS[key])(value)
    if not 0 <= guards["max_removal_pct"] <= 100:
        raise AudienceConfigError(f"{where}: guards.max_removal_pct must be within 0-100")
    destinations = spec.get("destinations") or {}
    if not destinations:
        raise AudienceConfigError(f"{where} has no 'destinations'")
    out = []
    for dest, target in destinations.items():
        if dest not in registry.names():
            known = ", ".join(sorted(registry.names()))
            raise AudienceConfigError(f"{where}: unknown destination '{dest}' (known: {known})")
        target = dict(target or {})
        here = f"{where} -> {dest}"
        mode = target.pop("mode", "upsert")
        if mode not in MODES:
            raise AudienceConfigError(
                f"{here}: mode '{mode}' is not one of {', '.join(sorted(MODES))}"
            )
        cls = registry.get(dest)
        missing = [k for k in cls.target_keys if not target.get(k)]
        if missing:
            raise AudienceConfigError(f"{here}: target needs {', '.join(missing)}")
        extra = sorted(set(target) - set(cls.target_keys) - set(cls.optional_target_keys))
        if extra:
            allowed = ", ".join((*cls.target_keys, *cls.optional_target_keys))
            raise AudienceConfigError(
                f"{here}: unknown target key(s) {', '.join(extra)} (known: {allowed})"
            )
        if cls.match_on and not cls.match_on & set(identifiers):
            raise AudienceConfigError(
                f"{here}: missing identifier: {dest} matches on "
                f"{' or '.join(sorted(cls.match_on))}, but the audience declares only "
                f"{', '.join(identifiers)}"
            )
        problem = cls.check_target(target)
        if problem:
            raise AudienceConfigError(f"{here}: {problem}")
        out.append(
            Sync(
                audience=name,
                model=model,
                primary_key=spec.get("primary_key", "contact_id"),
                destination=dest,
                mode=mode,
                target=target,
                identifiers=tuple(identifiers),
                guards=guards,
            )
        )
    return out
