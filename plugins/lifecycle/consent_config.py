"""Where consent comes from: the rules in ``dbt_project/seeds/consent_sources.csv``.

The seed is the one home of the consent configuration (issue 10, contract A). dbt reads
it as a table (``marts.dim_contact_consent`` derives consent from it); Python reads the
same file for what it must fetch, e.g. the HubSpot properties the connector requests.
Nothing in Python restates a property name, a permission text or an event name.

Columns: ``purpose`` (``email_marketing`` | ``ad_user_data`` | ``ad_personalization``),
``channel`` (``email`` | ``ads``), ``source_kind`` (``hubspot_property`` |
``mailchimp_permission`` | ``mailchimp_status`` | ``segment_event``), ``source_key``
(the property's internal name, the permission's text, ``status``, or the Segment consent
category), ``event_name`` (Segment only), ``granted_values`` and ``withdrawn_values``
(``|``-separated, compared case-insensitively), ``on_conflict``
(``most_recent_withdrawal_wins`` or ``any_withdrawal_wins``) and ``description``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lifecycle.config import settings

PURPOSES = {"email_marketing": "email", "ad_user_data": "ads", "ad_personalization": "ads"}
SOURCE_KINDS = ("hubspot_property", "mailchimp_permission", "mailchimp_status", "segment_event")
CONFLICT_RULES = ("most_recent_withdrawal_wins", "any_withdrawal_wins")
COLUMNS = (
    "purpose",
    "channel",
    "source_kind",
    "source_key",
    "event_name",
    "granted_values",
    "withdrawn_values",
    "on_conflict",
    "description",
)


class ConsentConfigError(ValueError):
    """The consent seed is malformed: which row, which column, what was expected."""


@dataclass(frozen=True)
class ConsentSource:
    """One row of the consent seed: a purpose read from one source."""

    purpose: str
    channel: str
    source_kind: str
    source_key: str
    event_name: str
    granted_values: tuple[str, ...]
    withdrawn_values: tuple[str, ...]
    on_conflict: str
    description: str = ""


def seed_path() -> Path:
    return settings().dbt_project_dir / "seeds" / "consent_sources.csv"


def _values(text: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in (text or "").split("|") if v.strip())


def load(path: Path | None = None) -> list[ConsentSource]:
    """Every row of the consent seed, validated (raises :class:`ConsentConfigError`)."""
    path = path or seed_path()
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConsentConfigError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    out = []
    for line, r in enumerate(rows, start=2):
        where = f"{path}:{line}"
        if r["purpose"] not in PURPOSES:
            raise ConsentConfigError(
                f"{where}: purpose {r['purpose']!r} is not one of {', '.join(PURPOSES)}"
            )
        if r["channel"] != PURPOSES[r["purpose"]]:
            raise ConsentConfigError(
                f"{where}: purpose {r['purpose']} belongs to channel "
                f"{PURPOSES[r['purpose']]!r}, not {r['channel']!r}"
            )
        if r["source_kind"] not in SOURCE_KINDS:
            raise ConsentConfigError(
                f"{where}: source_kind {r['source_kind']!r} is not one of {', '.join(SOURCE_KINDS)}"
            )
        if not r["source_key"].strip():
            raise ConsentConfigError(f"{where}: source_key is empty")
        if r["source_kind"] == "segment_event" and not r["event_name"].strip():
            raise ConsentConfigError(f"{where}: a segment_event source needs an event_name")
        if r["on_conflict"] not in CONFLICT_RULES:
            raise ConsentConfigError(
                f"{where}: on_conflict {r['on_conflict']!r} is not one of "
                f"{', '.join(CONFLICT_RULES)}"
            )
        if not _values(r["granted_values"]):
            raise ConsentConfigError(f"{where}: granted_values is empty")
        out.append(
            ConsentSource(
                r["purpose"],
                r["channel"],
                r["source_kind"],
                r["source_key"].strip(),
                r["event_name"].strip(),
                _values(r["granted_values"]),
                _values(r["withdrawn_values"]),
                r["on_conflict"],
                r.get("description") or "",
            )
        )
    missing = sorted(set(PURPOSES) - {s.purpose for s in out})
    if missing:
        raise ConsentConfigError(f"{path}: no source for purpose(s) {', '.join(missing)}")
    for purpose in PURPOSES:
        rules = {s.on_conflict for s in out if s.purpose == purpose}
        if len(rules) > 1:
            raise ConsentConfigError(
                f"{path}: purpose {purpose} has more than one on_conflict rule: {sorted(rules)}"
            )
    return out


def hubspot_properties(path: Path | None = None) -> list[str]:
    """The HubSpot contact properties the seed reads consent from (to request them)."""
    return sorted({s.source_key for s in load(path) if s.source_kind == "hubspot_property"})
