"""Meta Custom Audiences: ``POST``/``DELETE /{audience_id}/users`` with hashed schema rows.

At most 10,000 rows per call. Meta reports how many entries were invalid and samples of
them, not which ones: rows whose identifiers hash to nothing are rejected before sending,
and when Meta reports invalid entries the sampled rows are rejected and the rest accepted.
Error codes 4, 17 and 613 are rate limits and are retried by the shared client.
"""

from __future__ import annotations

import json
import logging

from lifecycle.activation.base import Member, SendResult
from lifecycle.activation.hashing import hashed
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, ApiError

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = {4, 17, 613}
COLUMN_FOR = {
    "EMAIL": "email",
    "PHONE": "phone",
    "FN": "first_name",
    "LN": "last_name",
    "COUNTRY": "country_code",
}


class MetaCustomAudiences:
    name = "meta"
    batch_size = 10_000

    def __init__(self, conn_id: str = "meta_default"):
        ep = get_endpoint(conn_id)
        self.token = ep.password
        self.api = ApiClient("Meta", ep.base_url, conn_id=conn_id)

    def members(self, rows: list[dict], target: dict) -> list[Member]:
        schema = target.get("schema", ["EMAIL"])
        out = []
        for row in rows:
            ids = {k: hashed(k, row.get(COLUMN_FOR[k])) for k in schema}
            key = ids.get("EMAIL") or ids.get("PHONE")
            if key:
                out.append(Member(str(row["contact_id"]), key, ids))
        return out

    def _send(self, method: str, members: list[Member], target: dict) -> SendResult:
        schema = target.get("schema", ["EMAIL"])
        payload = {
            "schema": schema,
            "data": [[m.identifiers.get(k) or "" for k in schema] for m in members],
        }
        path = f"{target['audience_id']}/users"
        for attempt in range(5):
            try:
                body = self.api.json(
                    method, path, data={"payload": json.dumps(payload), "access_token": self.token}
                )
                break
            except ApiError as exc:
                code = _error_code(exc.body)
                if code in RATE_LIMIT_CODES and attempt < 4:
                    log.warning("Meta rate limit (code %s); backing off", code)
                    self.api._sleep(self.api._delay(attempt + 2, None))
                    continue
                raise
        result = SendResult()
        invalid = {tuple(v) for v in (body.get("invalid_entry_samples") or {}).values()}
        for m, row in zip(members, payload["data"], strict=True):
            if tuple(row) in invalid:
                result.rejected[m.key] = "invalid entry (Meta invalid_entry_samples)"
            else:
                result.accepted.append(m.key)
        return result

    def add(self, members: list[Member], target: dict) -> SendResult:
        return self._send("POST", members, target)

    def remove(self, members: list[Member], target: dict) -> SendResult:
        return self._send("DELETE", members, target)


def _error_code(body: str) -> int | None:
    try:
        return int(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
