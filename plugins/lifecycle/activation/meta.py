"""Meta Custom Audiences: ``POST``/``DELETE /{version}/{audience_id}/users``, hashed rows.

Vendor docs (Meta Marketing API): "Custom Audience Users" (add and remove, at most
10,000 rows per call), "Custom Audiences from CRM Data" (normalisation and hashing),
"Versioning" and the Graph API changelog "Versions" page (release and expiration dates),
"Marketing API Rate Limiting" (error codes 4, 17, 613).

The Graph API version is one setting: the connection's ``extra.api_version``, default
:data:`GRAPH_API_VERSION` (v26.0, released 29 July 2026, the newest on the "Versions"
page; versions expire about two years after release and a call to an expired Marketing
API version fails with error #2635). A base URL that still ends in a version is read as
the API root and warned about.

The schema comes from the audience's identifiers (email -> EMAIL, phone -> PHONE,
first_name -> FN, last_name -> LN, country_code -> COUNTRY) or the target's ``schema``.
A member is keyed by its hashed email (or phone when it has no email). Meta reports how
many entries were invalid and samples of them, not which ones: rows whose match keys
hash to nothing are never sent, and sampled invalid rows are rejected. Error codes 4, 17
and 613 are rate limits: back off and retry. An update (changed identifiers) deletes the
previous row and adds the new one. Sent only with ``ad_user_data`` and
``ad_personalization`` granted in the consent model.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING

from lifecycle.activation.base import Destination, Member, SendResult
from lifecycle.activation.hashing import META_SCHEMA, quoted, sql_hashed
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, ApiError

if TYPE_CHECKING:
    from lifecycle.activation.audiences import Sync

log = logging.getLogger(__name__)

RATE_LIMIT_CODES = {4, 17, 613}
MAX_ROWS = 10_000
#: Default Graph / Marketing API version (override: connection ``extra.api_version``).
GRAPH_API_VERSION = "v26.0"
_VERSION_SEGMENT = re.compile(r"/v\d+(\.\d+)?$")


def schema_for(sync: Sync) -> list[str]:
    return list(sync.target.get("schema") or [META_SCHEMA[i] for i in sync.identifiers])


class MetaCustomAudiences(Destination):
    name = "meta"
    channel = "ads"
    target_keys = ("audience_id",)
    optional_target_keys = ("schema",)
    identifiers = frozenset(META_SCHEMA)
    match_on = frozenset({"email", "phone"})
    purposes = ("ad_user_data", "ad_personalization")
    batch_size = MAX_ROWS
    payload_email = ("EMAIL", "sha256")

    def __init__(self, conn_id: str = "meta_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self.version = GRAPH_API_VERSION

    @classmethod
    def check_target(cls, target: dict) -> str | None:
        schema = target.get("schema")
        if schema is None:
            return None
        known = set(META_SCHEMA.values())
        bad = [k for k in schema if k not in known] if isinstance(schema, list) else [schema]
        if bad:
            return f"schema {bad} is not a list of {', '.join(sorted(known))}"
        return None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            self.token = ep.password
            self.version = str(ep.extra.get("api_version") or GRAPH_API_VERSION)
            base = ep.base_url
            if _VERSION_SEGMENT.search(base):
                log.warning(
                    "connection %s: base_url %s ends in an API version; the version is "
                    "extra.api_version (using %s)",
                    self.conn_id,
                    base,
                    self.version,
                )
                base = _VERSION_SEGMENT.sub("", base)
            self._api = ApiClient("Meta", base, conn_id=self.conn_id)
        return self._api

    def members_sql(self, rows: str, sync: Sync) -> str:
        """Hashed schema fields in DuckDB; keyed by hashed email, else hashed phone."""
        column = {v: k for k, v in META_SCHEMA.items()}
        kinds = sorted(dict.fromkeys(schema_for(sync)))  # canonical JSON: sorted keys
        hashed = ", ".join(f'{sql_hashed(k, quoted(column[k]))} as "h_{k}"' for k in kinds)
        key = '"h_EMAIL"' if "EMAIL" in kinds else "null::varchar"
        if "PHONE" in kinds:
            key = f'coalesce({key}, "h_PHONE")'
        fields = ", ".join(
            f"""case when "h_{k}" is not null then '"{k}":"' || "h_{k}" || '"' end""" for k in kinds
        )
        return f"""
            select contact_id, {key} as member_key,
                   '{{' || concat_ws(',', {fields}) || '}}' as payload
            from (select contact_id::varchar as contact_id, {hashed} from {rows})
            where {key} is not null"""

    def prepare(self, sync: Sync) -> None:
        return None

    def _send(self, method: str, payloads: list[dict], sync: Sync) -> dict:
        schema = schema_for(sync)
        data = [[p.get(k) or "" for k in schema] for p in payloads]
        api = self.api
        path = f"{self.version}/{sync.target['audience_id']}/users"
        body = {"payload": json.dumps({"schema": schema, "data": data})}
        for attempt in range(6):
            try:
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
