"""HubSpot write-back: lifecycle stage, lifecycle state, lead score, grade and reasons.

Vendor docs (HubSpot CRM API): "Read a property" (``GET /crm/v3/properties/contacts/
lifecyclestage``: the portal's options, each ``label``, ``value``, ``displayOrder``,
``hidden``), "Create a property" (``POST /crm/v3/properties/contacts``), "Update a batch
of contacts" (``POST /crm/v3/objects/contacts/batch/update``, at most 100 inputs, 207
multi-status), "Permanently delete a contact (GDPR-compliant)" (``POST
/crm/v3/objects/contacts/gdpr-delete``) and the knowledge-base article on lifecycle stages
(custom stages; moving a stage backward needs a clear first).

- The target's ``properties`` maps a HubSpot property to an audience column.
- ``lifecyclestage``: the model's stage is mapped through the stage seed
  ``dbt_project/seeds/lifecycle_stages.csv`` (Contract D: its ``hubspot_stage``), then to
  an option *this portal has*: an option whose internal ``value`` is that name, or whose
  label spells it (``Marketing Qualified Lead`` = ``marketingqualifiedlead``; portals may
  use ids as internal names), or the target's ``stage_options`` override. A stage whose
  option the portal lacks is never written; the sync warns which stage has no mapping.
- Stages of kind ``state`` in the seed (lapsed, churned) never touch ``lifecyclestage``:
  they go to the target's ``state_property`` (default ``lifecycle_state``, created as an
  enumeration of the seed's state stages if missing; ``""`` for a contact in a forward
  stage). So ``customer`` stays ``customer`` — sales rely on it.
- ``lifecyclestage`` only moves forward in the portal's option order (``displayOrder``):
  when HubSpot holds a later stage (column ``hubspot_lifecycle_stage``) it is left alone
  unless the move is listed in ``allow_backward`` (``"<from>><to>"``), never out of
  ``customer``; an allowed backward move is a clear (``""``) then a set.
- Erasure (Contract B): only a data-subject request (origin ``request``) is sent, as a
  GDPR delete of the contact; other origins (a contact deleted or archived in a source)
  are not the CRM's to delete.
- Member key: the contact id. Write-back is CRM housekeeping: no marketing consent
  purpose applies.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lifecycle.activation.base import Destination, Member, SendResult, SyncAborted, canonical
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, ApiError

if TYPE_CHECKING:
    from lifecycle.activation.audiences import Sync

log = logging.getLogger(__name__)

MAX_INPUTS = 100
BACKWARD = "__backward_from"  # payload marker: clear lifecyclestage before setting it
STAGE_PROPERTY = "lifecyclestage"
DEFAULT_STATE_PROPERTY = "lifecycle_state"
#: HubSpot's default internal name of the stage sales never want moved back from.
CUSTOMER = "customer"


def seed_path() -> Path:
    from lifecycle.config import settings  # noqa: PLC0415

    return settings().dbt_project_dir / "seeds" / "lifecycle_stages.csv"


def seed_stages(path: Path | None = None) -> dict[str, dict]:
    """The stage seed (Contract D), keyed by the model's stage name."""
    with open(path or seed_path(), newline="") as fh:
        return {row["stage"]: row for row in csv.DictReader(fh)}


def _spelled(label: str) -> str:
    return re.sub(r"[^a-z]", "", str(label).lower())


def _value(v) -> str:
    """A HubSpot property value: text; lists joined with ';'; missing -> '' (clears)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, list | tuple | np.ndarray):
        return ";".join(str(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    return str(v)


def stage_move(
    current: str | None,
    wanted: str,
    allowed: set[str],
    order: dict[str, int],
    protected: str = CUSTOMER,
) -> str:
    """``set`` (forward or same), ``clear_then_set`` (allowed backward) or ``hold``.

    ``order`` is the portal's option order (``displayOrder`` per internal value);
    ``protected`` (the portal's customer option) is never moved back from.
    """
    if not current or current not in order or wanted not in order:
        return "set"
    if order[wanted] >= order[current]:
        return "set"
    if current == protected:
        return "hold"  # never moved out of customer
    return "clear_then_set" if f"{current}>{wanted}" in allowed else "hold"


class HubSpotWriteBack(Destination):
    name = "hubspot"
    channel = "crm"
    target_keys = ("properties",)
    optional_target_keys = (
        "numeric_properties",
        "allow_backward",
        "state_property",
        "stage_options",
    )
    identifiers = frozenset({"email"})
    match_on = frozenset()
    purposes = ()
    batch_size = MAX_INPUTS

    def __init__(self, conn_id: str = "hubspot_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self._options: list[dict] | None = None
        self.held_backward = 0
        self.warnings: list[str] = []

    @classmethod
    def check_target(cls, target: dict) -> str | None:
        props = target.get("properties")
        if not isinstance(props, dict) or not props:
            return "properties must map HubSpot property names to audience columns"
        for move in target.get("allow_backward") or []:
            if not re.fullmatch(r"[^>]+>[^>]+", str(move)):
                return f"allow_backward entry {move!r} is not '<from>><to>'"
            if str(move).split(">", 1)[0] == CUSTOMER:
                return (
                    f"allow_backward {move!r}: lifecyclestage is never moved out of "
                    f"'customer' (lapsed and churned go to the state property)"
                )
        return None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            self._api = ApiClient(
                "HubSpot",
                ep.base_url,
                headers={"Authorization": f"Bearer {ep.password}"},
                conn_id=self.conn_id,
            )
        return self._api

    # ---- the portal's lifecycle options -------------------------------------------------
    def options(self) -> list[dict]:
        """The portal's ``lifecyclestage`` options (visible ones), in display order."""
        if self._options is None:
            body = self.api.json("GET", f"crm/v3/properties/contacts/{STAGE_PROPERTY}")
            opts = [o for o in body.get("options") or [] if not o.get("hidden")]
            self._options = sorted(opts, key=lambda o: (o.get("displayOrder", 0), o["value"]))
        return self._options

    def resolve(self, hubspot_stage: str, overrides: dict | None = None) -> str | None:
        """The portal's option value for a seed ``hubspot_stage`` name, or None."""
        opts = self.options()
        wanted = (overrides or {}).get(hubspot_stage, hubspot_stage)
        for o in opts:
            if o["value"] == wanted:
                return o["value"]
        for o in opts:
            if _spelled(o.get("label", "")) == _spelled(wanted):
                return o["value"]
        return None

    def _state_property(self, sync: Sync) -> str:
        return str(sync.target.get("state_property") or DEFAULT_STATE_PROPERTY)

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        mapping: dict = sync.target["properties"]
        missing = [c for c in mapping.values() if c not in rows.columns]
        if missing:
            raise SyncAborted(
                f"{sync.audience} -> hubspot: audiences.{sync.model} has no column(s) "
                f"{', '.join(missing)} named in target.properties"
            )
        self.warnings = []
        allowed = set(sync.target.get("allow_backward") or [])
        current = (
            rows["hubspot_lifecycle_stage"].tolist()
            if "hubspot_lifecycle_stage" in rows.columns
            else [None] * len(rows)
        )
        if STAGE_PROPERTY in mapping:  # the warehouse may hold labels or default names
            overrides = sync.target.get("stage_options") or {}
            known = {}
            for c in set(current):
                if isinstance(c, str) and c:
                    known[c] = self.resolve(c, overrides) or c
            current = [known.get(c, c) if isinstance(c, str) else None for c in current]
        columns = {prop: rows[col].tolist() for prop, col in mapping.items()}
        stage_col = columns.pop(STAGE_PROPERTY, None)
        seed, order, wanted_for, state_prop = {}, {}, {}, self._state_property(sync)
        protected = CUSTOMER
        unmapped: dict[str, list] = {}
        if stage_col is not None:
            seed = seed_stages()
            order = {o["value"]: i for i, o in enumerate(self.options())}
            overrides = sync.target.get("stage_options") or {}
            protected = self.resolve(CUSTOMER, overrides) or CUSTOMER
            for stage, row in seed.items():
                if row.get("stage_kind") == "state" or not row.get("hubspot_stage"):
                    wanted_for[stage] = None
                    continue
                wanted_for[stage] = self.resolve(row["hubspot_stage"], overrides)
                if wanted_for[stage] is None:
                    unmapped[stage] = [row["hubspot_stage"], 0]
        payloads = []
        self.held_backward = 0
        unknown: dict[str, int] = {}
        for i in range(len(rows)):
            props: dict = {}
            if stage_col is not None:
                stage = stage_col[i]
                row = seed.get(stage)
                if row is None:
                    unknown[str(stage)] = unknown.get(str(stage), 0) + 1
                else:
                    props[state_prop] = stage if row.get("stage_kind") == "state" else ""
                    wanted = wanted_for.get(stage)
                    if stage in unmapped:
                        unmapped[stage][1] += 1
                    if wanted:
                        move = stage_move(current[i], wanted, allowed, order, protected)
                        if move == "hold":
                            self.held_backward += 1
                        else:
                            if move == "clear_then_set":
                                props[BACKWARD] = current[i]
                            props[STAGE_PROPERTY] = wanted
            for prop, values in columns.items():
                props[prop] = _value(values[i])
            payloads.append(canonical(props))
        for stage, (name, n) in unmapped.items():
            if n:
                self.warnings.append(
                    f"stage '{stage}' (seed hubspot_stage '{name}') has no lifecycle option "
                    f"in this HubSpot portal: lifecyclestage not written for {n} contacts "
                    f"(map it with target.stage_options)"
                )
        for stage, n in unknown.items():
            self.warnings.append(
                f"stage '{stage}' is not in the stage seed: lifecyclestage not written for "
                f"{n} contacts"
            )
        if self.held_backward:
            log.info(
                "%s -> hubspot: %d contacts hold a later lifecycle stage in HubSpot; "
                "stage left unchanged (forward-only; see target.allow_backward)",
                sync.audience,
                self.held_backward,
            )
        return pd.DataFrame(
            {
                "contact_id": rows["contact_id"].to_numpy(),
                "member_key": rows["contact_id"].astype(str).to_numpy(),
                "payload": payloads,
            }
        )

    def prepare(self, sync: Sync) -> None:
        """Create the target's custom properties that HubSpot does not have yet."""
        body = self.api.json("GET", "crm/v3/properties/contacts")
        existing = {p["name"] for p in body.get("results", [])}
        numeric = set(sync.target.get("numeric_properties") or [])
        wanted = {p: None for p in sync.target["properties"]}
        if STAGE_PROPERTY in sync.target["properties"]:
            wanted[self._state_property(sync)] = "state"
        for prop, kind in wanted.items():
            if prop in existing:
                continue
            definition = {
                "name": prop,
                "label": prop.replace("_", " ").title(),
                "groupName": "contactinformation",
                "description": "Written by lifecycle-pipeline (audience write-back).",
            }
            if kind == "state":
                states = [s for s, r in seed_stages().items() if r.get("stage_kind") == "state"]
                definition.update(
                    type="enumeration",
                    fieldType="select",
                    description="Lifecycle state a customer is in (lapsed, churned); empty "
                    "while active. Written by lifecycle-pipeline; lifecyclestage stays.",
                    options=[
                        {"label": s.replace("_", " ").title(), "value": s, "displayOrder": i}
                        for i, s in enumerate(states)
                    ],
                )
            elif prop in numeric:
                definition.update(type="number", fieldType="number")
            else:
                definition.update(type="string", fieldType="text")
            self.api.json("POST", "crm/v3/properties/contacts", json=definition)
            log.info("created HubSpot contact property %s (%s)", prop, definition["type"])

    def _batch_update(self, inputs: list[dict]) -> dict[str, str]:
        """Send one batch; return id -> error message for the inputs HubSpot refused."""
        response = self.api.request(
            "POST", "crm/v3/objects/contacts/batch/update", json={"inputs": inputs}
        )
        body = response.json()
        errors: dict[str, str] = {}
        if response.status_code == 207 or body.get("errors"):
            for err in body.get("errors") or []:
                ids = (err.get("context") or {}).get("ids") or []
                for cid in ids:
                    errors[str(cid)] = f"{err.get('category', 'error')}: {err.get('message', '')}"
        return errors

    def _write(self, members: list[Member]) -> SendResult:
        result = SendResult()
        backward = [m for m in members if BACKWARD in m.payload]
        if backward:  # a backward move that is allowed: clear first, in its own request
            cleared = self._batch_update(
                [{"id": m.key, "properties": {STAGE_PROPERTY: ""}} for m in backward]
            )
            result.rejected.update({k: f"clearing lifecyclestage: {v}" for k, v in cleared.items()})
        inputs = [
            {"id": m.key, "properties": {k: v for k, v in m.payload.items() if k != BACKWARD}}
            for m in members
            if m.key not in result.rejected
        ]
        if inputs:
            result.rejected.update(self._batch_update(inputs))
        result.accepted = [m.key for m in members if m.key not in result.rejected]
        return result

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        return self._write(members)

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        return self._write(members)

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        """Clear the written properties (never the lifecycle stage) of members who left."""
        for m in members:
            props = (m.previous or m.payload).keys()
            m.payload = {p: "" for p in props if p not in (STAGE_PROPERTY, BACKWARD)}
        return self._write(members)

    @classmethod
    def erases(cls, origin: str) -> bool:
        return origin == "request"

    def erase(self, members: list[Member], sync: Sync, origin: str) -> SendResult:
        """GDPR delete of each contact (data-subject requests only; see :meth:`erases`)."""
        result = SendResult()
        if not self.erases(origin):
            return result
        for m in members:
            try:
                self.api.request(
                    "POST", "crm/v3/objects/contacts/gdpr-delete", json={"objectId": m.key}
                )
            except ApiError as exc:
                if exc.status != 404:  # 404: the contact is already gone
                    result.rejected[m.key] = f"HTTP {exc.status}: {exc.body[:200]}"
                    continue
            result.accepted.append(m.key)
        return result
