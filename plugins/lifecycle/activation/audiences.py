"""Audience declarations (``include/audiences.yml``), validated on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODES = {"upsert", "mirror", "add_only"}
DESTINATIONS = {"meta"}


class AudienceConfigError(ValueError):
    """``audiences.yml`` says something that cannot be synced."""


@dataclass(frozen=True)
class Sync:
    audience: str
    model: str
    primary_key: str
    destination: str
    mode: str
    target: dict = field(default_factory=dict)
    max_removal_pct: float = 20.0


def load(path: Path, known_models: set[str] | None = None) -> list[Sync]:
    """Every (audience, destination) pair declared in ``path``."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise AudienceConfigError(f"{path}: file not found") from exc
    out = []
    for name, spec in (doc.get("audiences") or {}).items():
        where = f"{path.name}: audience '{name}'"
        model = spec.get("model")
        if not model:
            raise AudienceConfigError(f"{where} has no 'model'")
        if known_models is not None and model not in known_models:
            raise AudienceConfigError(
                f"{where}: unknown dbt model '{model}' (known: {', '.join(sorted(known_models))})"
            )
        for dest, target in (spec.get("destinations") or {}).items():
            if dest not in DESTINATIONS:
                known = ", ".join(sorted(DESTINATIONS))
                raise AudienceConfigError(f"{where}: unknown destination '{dest}' (known: {known})")
            mode = (target or {}).get("mode", "upsert")
            if mode not in MODES:
                raise AudienceConfigError(
                    f"{where} -> {dest}: mode '{mode}' is not one of {', '.join(sorted(MODES))}"
                )
            out.append(
                Sync(
                    name,
                    model,
                    spec.get("primary_key", "contact_id"),
                    dest,
                    mode,
                    dict(target or {}),
                    float(spec.get("guards", {}).get("max_removal_pct", 20.0)),
                )
            )
    return out
