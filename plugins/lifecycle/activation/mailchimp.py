"""Mailchimp audience (list) members with a tag: batch upsert, then tag membership.

- Upsert: ``POST /lists/{list_id}`` with ``members`` (at most 500) and
  ``update_existing: true``. Members carry ``status_if_new: subscribed`` and never a
  ``status``: an existing unsubscribed or cleaned member is never re-subscribed (and the
  engine's consent filter only lets ``has_email_consent and email_status = 'subscribed'``
  through in the first place). Mailchimp answers 200 with ``errors[]`` for the members it
  refused: those are rejected with its message, the rest accepted.
- Tag: the target ``tag`` is a static segment; accepted members are added with
  ``POST /lists/{list_id}/segments/{id}`` ``members_to_add`` and, in ``mirror`` mode,
  members who left are untagged with ``members_to_remove`` (they stay on the list).
- Member key: the subscriber hash, md5 of the lowercased address.

Connection ``mailchimp_default`` (Basic auth: any user, the API key as password).
"""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Member, SendResult, canonical
from lifecycle.activation.hashing import normalize_email
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient

log = logging.getLogger(__name__)

MAX_MEMBERS = 500


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class MailchimpAudience:
    name = "mailchimp"
    batch_size = MAX_MEMBERS

    def __init__(self, conn_id: str = "mailchimp_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self._segments: dict[tuple[str, str], int] = {}

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            self._api = ApiClient(
                "Mailchimp",
                ep.base_url,
                auth=(ep.login or "anystring", ep.password or ""),
                conn_id=self.conn_id,
                max_concurrency=10,
            )
        return self._api

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        emails = [normalize_email(e) if isinstance(e, str) else None for e in rows.email]
        merge = {"FNAME": "first_name", "LNAME": "last_name"}
        merge = {k: c for k, c in merge.items() if c in sync.identifiers}
        cols = {k: rows[c].tolist() for k, c in merge.items()}
        payloads = []
        for i, e in enumerate(emails):
            fields = {k: v[i] for k, v in cols.items() if isinstance(v[i], str) and v[i]}
            payloads.append(canonical({"email_address": e, "merge_fields": fields}))
        out = pd.DataFrame(
            {
                "contact_id": rows["contact_id"].to_numpy(),
                "member_key": [subscriber_hash(e) if e else None for e in emails],
                "payload": payloads,
            }
        )
        return out[out.member_key.notna()].reset_index(drop=True)

    def prepare(self, sync: Sync) -> None:
        self._segment(sync)

    def _segment(self, sync: Sync) -> int:
        """The static segment (tag) id for the target tag, created when missing."""
        list_id, tag = str(sync.target["list_id"]), str(sync.target["tag"])
        if (list_id, tag) not in self._segments:
            found = None
            offset = 0
            while found is None:
                page = self.api.json(
                    "GET",
                    f"lists/{list_id}/segments",
                    params={"type": "static", "count": 1000, "offset": offset},
                )
                found = next((s["id"] for s in page["segments"] if s["name"] == tag), None)
                offset += len(page["segments"])
                if not page["segments"] or offset >= page.get("total_items", 0):
                    break
            if found is None:
                created = self.api.json(
                    "POST", f"lists/{list_id}/segments", json={"name": tag, "static_segment": []}
                )
                found = created["id"]
                log.info("created Mailchimp tag %r (segment %s) on list %s", tag, found, list_id)
            self._segments[(list_id, tag)] = int(found)
        return self._segments[(list_id, tag)]

    def _upsert(self, members: list[Member], sync: Sync) -> SendResult:
        list_id = sync.target["list_id"]
        body = self.api.json(
            "POST",
            f"lists/{list_id}",
            json={
                "members": [
                    {
                        "email_address": m.payload["email_address"],
                        "status_if_new": "subscribed",
                        "merge_fields": m.payload.get("merge_fields") or {},
                    }
                    for m in members
                ],
                "update_existing": True,
            },
        )
        result = SendResult()
        by_email = {m.payload["email_address"]: m.key for m in members}
        for err in body.get("errors") or []:
            key = by_email.get(str(err.get("email_address", "")).lower())
            if key:
                code = err.get("error_code")
                result.rejected[key] = f"{err.get('error')}" + (f" ({code})" if code else "")
        ok = [m for m in members if m.key not in result.rejected]
        if ok:
            tagged = self._tag(ok, sync, "members_to_add")
            result.rejected.update(tagged.rejected)
        result.accepted = [m.key for m in members if m.key not in result.rejected]
        return result

    def _tag(self, members: list[Member], sync: Sync, field: str) -> SendResult:
        segment = self._segment(sync)
        body = self.api.json(
            "POST",
            f"lists/{sync.target['list_id']}/segments/{segment}",
            json={field: [m.payload["email_address"] for m in members]},
        )
        result = SendResult()
        by_email = {m.payload["email_address"]: m.key for m in members}
        for err in body.get("errors") or []:
            for email in err.get("email_addresses") or []:
                key = by_email.get(str(email).lower())
                if key:
                    result.rejected[key] = f"tag: {err.get('error')}"
        result.accepted = [m.key for m in members if m.key not in result.rejected]
        return result

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        return self._upsert(members, sync)

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        return self._upsert(members, sync)

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        for m in members:  # removes carry the last accepted payload
            m.payload = m.previous or m.payload
        return self._tag(members, sync, "members_to_remove")
