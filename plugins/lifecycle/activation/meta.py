"""Meta Custom Audiences: ``POST``/``DELETE /{audience_id}/users`` with hashed schema rows.

At most 10,000 rows per call. The schema comes from the audience's identifiers (email ->
EMAIL, phone -> PHONE, first_name -> FN, last_name -> LN, country_code -> COUNTRY) or
the target's ``schema``. A member is keyed by its hashed email (or phone when it has no
email). Meta reports how many entries were invalid and samples of them, not which ones:
rows whose match keys hash to nothing are never sent, and sampled invalid rows are
rejected. Error codes 4, 17 and 613 are rate limits: back off and retry.
An update (changed identifiers) deletes the previous row and adds the new one.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Member, SendResult, canonical
from lifecycle.activation.hashing import META_SCHEMA, hash_column
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, ApiError

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = {4, 17, 613}
MAX_ROWS = 10_000


def schema_for(sync: Sync) -> list[str]:
    return list(sync.target.get("schema") or [META_SCHEMA[i] for i in sync.identifiers])


class MetaCustomAudiences:
    name = "meta"
    batch_size = MAX_ROWS

    def __init__(self, conn_id: str = "meta_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            self.token = ep.password
            self._api = ApiClient("Meta", ep.base_url, conn_id=self.conn_id)
        return self._api

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        schema = schema_for(sync)
        column = {v: k for k, v in META_SCHEMA.items()}
        hashed = {k: hash_column(k, rows[column[k]]) for k in schema}
        keys = hashed.get("EMAIL") or [None] * len(rows)
        if "PHONE" in hashed:
            keys = [e or p for e, p in zip(keys, hashed["PHONE"], strict=True)]
        payloads = [
            canonical({k: hashed[k][i] for k in schema if hashed[k][i]}) for i in range(len(rows))
        ]
        out = pd.DataFrame(
            {"contact_id": rows["contact_id"].to_numpy(), "member_key": keys, "payload": payloads}
        )
        return out[out.member_key.notna()].reset_index(drop=True)

    def prepare(self, sync: Sync) -> None:
        return None

    def _send(self, method: str, payloads: list[dict], sync: Sync) -> dict:
        schema = schema_for(sync)
        data = [[p.get(k) or "" for k in schema] for p in payloads]
        path = f"{sync.target['audience_id']}/users"
        body = {"payload": json.dumps({"schema": schema, "data": data})}
        for attempt in range(6):
            try:
                api = self.api
                return api.json(method, path, data={**body, "access_token": self.token})
            except ApiError as exc:
                code = _error_code(exc.body)
                if code in RATE_LIMIT_CODES and attempt < 5:
                    delay = api._delay(attempt + 1, None)
                    log.warning("Meta rate limit (code %s); retrying in %.1fs", code, delay)
                    api._sleep(delay)
                    continue
                raise
        raise AssertionError("unreachable")

    def _outcome(self, members: list[Member], body: dict, sync: Sync) -> SendResult:
        schema = schema_for(sync)
        invalid = {tuple(v) for v in (body.get("invalid_entry_samples") or {}).values()}
        result = SendResult()
        for m in members:
            if tuple(m.payload.get(k) or "" for k in schema) in invalid:
                result.rejected[m.key] = "invalid entry (Meta invalid_entry_samples)"
            else:
                result.accepted.append(m.key)
        unexplained = int(body.get("num_invalid_entries") or 0) - len(result.rejected)
        if unexplained > 0:
            log.warning("Meta reported %d invalid entries it did not sample", unexplained)
        return result

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        body = self._send("POST", [m.payload for m in members], sync)
        return self._outcome(members, body, sync)

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        old = [m.previous for m in members if m.previous and m.previous != m.payload]
        if old:
            self._send("DELETE", old, sync)
        return self.add(members, sync)

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        body = self._send("DELETE", [m.previous or m.payload for m in members], sync)
        return self._outcome(members, body, sync)


def _error_code(body: str) -> int | None:
    try:
        return int(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
