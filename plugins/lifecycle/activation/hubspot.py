"""HubSpot write-back: lifecycle stage, lead score, grade and reasons onto contacts.

- ``POST /crm/v3/objects/contacts/batch/update`` with ``inputs: [{id, properties}]``, at
  most 100 per call. 200 means all updated; 207 (multi-status) lists ``errors`` with the
  ids they concern: those members are rejected with HubSpot's message, the rest accepted.
- The target's ``properties`` maps a HubSpot property to an audience column.
  ``lifecyclestage`` takes the model's stage mapped to HubSpot's stages (``STAGE_MAP``)
  and only moves forward: when HubSpot holds a later stage (column
  ``hubspot_lifecycle_stage``), the stage is left alone unless the move is listed in the
  target's ``allow_backward`` (``"<from>><to>"``, e.g. ``"customer>salesqualifiedlead"``);
  an allowed backward move is a clear (``""``) then a set, in separate requests.
- Custom properties that do not exist yet are created first
  (``POST /crm/v3/properties/contacts``).
- Member key: the contact id. Write-back is CRM housekeeping, not marketing: no channel
  consent applies (the engine's ``crm`` channel).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Member, SendResult, canonical
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient

log = logging.getLogger(__name__)

MAX_INPUTS = 100
#: the model's stages -> HubSpot's default lifecycle stages (as in the seed
#: ``lifecycle_stages.hubspot_stage``; a unit test keeps them equal). None: not written.
STAGE_MAP = {
    "awareness": None,
    "subscriber": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
    "repeat_customer": "customer",
    "loyal": "customer",
    "advocate": "evangelist",
    "lapsed": "customer",
    "churned": "other",
}
HUBSPOT_ORDER = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
]
BACKWARD = "__backward_from"  # payload marker: clear lifecyclestage before setting it


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


def stage_move(current: str | None, wanted: str, allowed: set[str]) -> str:
    """``set`` (forward or same), ``clear_then_set`` (allowed backward) or ``hold``."""
    if not current or current not in HUBSPOT_ORDER or wanted not in HUBSPOT_ORDER:
        return "set"
    if HUBSPOT_ORDER.index(wanted) >= HUBSPOT_ORDER.index(current):
        return "set"
    return "clear_then_set" if f"{current}>{wanted}" in allowed else "hold"


class HubSpotWriteBack:
    name = "hubspot"
    batch_size = MAX_INPUTS

    def __init__(self, conn_id: str = "hubspot_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self.held_backward = 0

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

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        mapping: dict = sync.target["properties"]
        missing = [c for c in mapping.values() if c not in rows.columns]
        if missing:
            from lifecycle.activation.engine import SyncAborted  # noqa: PLC0415 - no cycle

            raise SyncAborted(
                f"{sync.audience} -> hubspot: audiences.{sync.model} has no column(s) "
                f"{', '.join(missing)} named in target.properties"
            )
        allowed = set(sync.target.get("allow_backward") or [])
        current = (
            rows["hubspot_lifecycle_stage"].tolist()
            if "hubspot_lifecycle_stage" in rows.columns
            else [None] * len(rows)
        )
        columns = {prop: rows[col].tolist() for prop, col in mapping.items()}
        payloads = []
        self.held_backward = 0
        for i in range(len(rows)):
            props = {}
            for prop, values in columns.items():
                if prop == "lifecyclestage":
                    wanted = STAGE_MAP.get(values[i], values[i])
                    if not wanted:
                        continue
                    move = stage_move(current[i], wanted, allowed)
                    if move == "hold":
                        self.held_backward += 1
                        continue
                    if move == "clear_then_set":
                        props[BACKWARD] = current[i]
                    props[prop] = wanted
                else:
                    props[prop] = _value(values[i])
            payloads.append(canonical(props))
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
        for prop in sync.target["properties"]:
            if prop in existing:
                continue
            kind = ("number", "number") if prop in numeric else ("string", "text")
            self.api.json(
                "POST",
                "crm/v3/properties/contacts",
                json={
                    "name": prop,
                    "label": prop.replace("_", " ").title(),
                    "type": kind[0],
                    "fieldType": kind[1],
                    "groupName": "contactinformation",
                    "description": "Written by lifecycle-pipeline (audience write-back).",
                },
            )
            log.info("created HubSpot contact property %s (%s)", prop, kind[0])

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
                [{"id": m.key, "properties": {"lifecyclestage": ""}} for m in backward]
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
            m.payload = {p: "" for p in props if p not in ("lifecyclestage", BACKWARD)}
        return self._write(members)
