"""Mailchimp audience (list) members with a tag: batch subscribe, then tag membership.

Vendor docs (Mailchimp Marketing API v3): "Batch subscribe or unsubscribe"
(``POST /lists/{list_id}``: ``members[]`` each with ``email_address`` and ``status``,
plus ``update_existing``; at most 500 members; 200 with per-member ``errors``), "List
members info" (``GET /lists/{list_id}/members``, ``count`` at most 1000), "Add or update
list member" (``PUT /lists/{list_id}/members/{subscriber_hash}``: the only place
``status_if_new`` exists), "Archive list member" (``DELETE …/members/{hash}``), "Delete
list member" (``POST …/members/{hash}/actions/delete-permanent``), "Batch add or remove
members" (static segments = tags), "Manage Subscribers with the Mailchimp API" (member id
= md5 of the lowercased address) and "Errors" ("Member In Compliance State").

- Status per member, never ``status_if_new`` on the batch call. Before a sync sends, the
  list's current statuses are read once (``prepare``). A member the list holds as
  ``unsubscribed`` or ``cleaned`` is never sent (never as ``subscribed`` or
  ``pending``): it is recorded as rejected with that reason. A ``pending`` member stays
  ``pending`` (double opt-in in progress). A new (or archived) address is added as
  ``subscribed`` — or the target's ``new_member_status: pending`` — and only because the
  engine let it through: its ``email_marketing`` consent is granted in
  ``marts.dim_contact_consent``.
- Tag: the target ``tag`` is a static segment; accepted members are added with
  ``members_to_add``. A member who left (``mirror``) is untagged and stays on the list; a
  member whose email consent was withdrawn is untagged and set ``unsubscribed``.
- Erasure (Contract B): origin ``request`` (a data-subject request) -> permanent delete
  (irreversible; Mailchimp then refuses to re-import the address); any other origin ->
  archive (reversible, keeps the member's history out of sends). 404 = already gone.
- Member key: the subscriber hash, md5 of the lowercased address.

Connection ``mailchimp_default`` (Basic auth: any user, the API key as password).
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from lifecycle.activation.base import Destination, Member, SendResult
from lifecycle.activation.hashing import quoted
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, ApiError

if TYPE_CHECKING:
    from lifecycle.activation.audiences import Sync

log = logging.getLogger(__name__)

MAX_MEMBERS = 500
MAX_PAGE = 1000
#: Statuses Mailchimp keeps an address in for compliance: never (re-)subscribed.
COMPLIANCE = ("unsubscribed", "cleaned")
NEW_MEMBER_STATUSES = ("subscribed", "pending")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the lowercased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


class MailchimpAudience(Destination):
    name = "mailchimp"
    channel = "email"
    target_keys = ("list_id", "tag")
    optional_target_keys = ("new_member_status",)
    identifiers = frozenset({"email", "first_name", "last_name"})
    match_on = frozenset({"email"})
    purposes = ("email_marketing",)
    batch_size = MAX_MEMBERS
    payload_email = ("email_address", "plain")

    def __init__(self, conn_id: str = "mailchimp_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self._segments: dict[tuple[str, str], int] = {}
        self._statuses: dict[str, dict[str, str]] = {}

    @classmethod
    def check_target(cls, target: dict) -> str | None:
        status = target.get("new_member_status")
        if status is not None and status not in NEW_MEMBER_STATUSES:
            return f"new_member_status must be one of {', '.join(NEW_MEMBER_STATUSES)}"
        return None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            # the key's connection budget has one home, next to the source that shares it
            from lifecycle.sources import mailchimp as mailchimp_source  # noqa: PLC0415

            ep = get_endpoint(self.conn_id)
            self._api = ApiClient(
                "Mailchimp",
                ep.base_url,
                auth=(ep.login or "anystring", ep.password or ""),
                conn_id=self.conn_id,
                # the key's connections the source leaves free
                max_concurrency=mailchimp_source.KEY_CONNECTIONS - mailchimp_source.CONNECTIONS,
            )
        return self._api

    def members_sql(self, rows: str, sync: Sync) -> str:
        """Normalised email (plain), the subscriber hash and merge fields, in DuckDB."""
        merge = {"FNAME": "first_name", "LNAME": "last_name"}
        fields = [
            f"case when {quoted(c)}::varchar <> '' "
            f"""then '"{k}":' || lc_json_str({quoted(c)}::varchar) end"""
            for k, c in sorted(merge.items())
            if c in sync.identifiers
        ]
        merged = f"concat_ws(',', {', '.join(fields)})" if fields else "''"
        return f"""
            select contact_id, md5(e) as member_key,
                   '{{"email_address":' || lc_json_str(e) || ',"merge_fields":{{' || m || '}}}}'
                   as payload
            from (select contact_id::varchar as contact_id, lc_email(email::varchar) as e,
                         {merged} as m
                  from {rows})
            where e is not null"""

    def prepare(self, sync: Sync) -> None:
        self._segment(sync)
        self.statuses(str(sync.target["list_id"]))

    def statuses(self, list_id: str) -> dict[str, str]:
        """Subscriber hash -> current status of every member of the list (read once)."""
        if list_id not in self._statuses:
            found: dict[str, str] = {}
            offset = 0
            while True:
                page = self.api.json(
                    "GET",
                    f"lists/{list_id}/members",
                    params={
                        "count": MAX_PAGE,
                        "offset": offset,
                        "fields": "members.id,members.email_address,members.status,total_items",
                    },
                )
                members = page.get("members") or []
                for m in members:
                    key = m.get("id") or subscriber_hash(str(m.get("email_address", "")))
                    found[str(key)] = str(m.get("status") or "")
                offset += len(members)
                if not members or offset >= int(page.get("total_items") or 0):
                    break
            self._statuses[list_id] = found
            log.info(
                "Mailchimp list %s: %d members read, %d unsubscribed or cleaned",
                list_id,
                len(found),
                sum(s in COMPLIANCE for s in found.values()),
            )
        return self._statuses[list_id]

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

    def _batch(self, list_id: str, entries: list[tuple[Member, str]]) -> dict[str, str]:
        """``POST /lists/{id}`` with a status per member; member key -> refusal reason."""
        body = self.api.json(
            "POST",
            f"lists/{list_id}",
            json={
                "members": [
                    {
                        "email_address": m.payload["email_address"],
                        "status": status,
                        "merge_fields": m.payload.get("merge_fields") or {},
                    }
                    for m, status in entries
                ],
                "update_existing": True,
            },
        )
        by_email = {m.payload["email_address"]: m.key for m, _ in entries}
        refused: dict[str, str] = {}
        for err in body.get("errors") or []:
            key = by_email.get(str(err.get("email_address", "")).lower())
            if key:
                code = err.get("error_code")
                refused[key] = f"{err.get('error')}" + (f" ({code})" if code else "")
        return refused

    def _upsert(self, members: list[Member], sync: Sync) -> SendResult:
        list_id = str(sync.target["list_id"])
        known = self.statuses(list_id)
        new_status = str(sync.target.get("new_member_status") or "subscribed")
        result = SendResult()
        entries = []
        for m in members:
            now = known.get(m.key)
            if now in COMPLIANCE:
                result.rejected[m.key] = (
                    f"{now} in Mailchimp: never re-subscribed (Member In Compliance State)"
                )
            elif now == "pending":
                entries.append((m, "pending"))
            elif now in ("subscribed", "transactional"):
                entries.append((m, "subscribed"))
            else:  # not on the list (or archived): a new member, with email consent
                entries.append((m, new_status))
        if entries:
            result.rejected.update(self._batch(list_id, entries))
            for m, status in entries:
                if m.key not in result.rejected:
                    known[m.key] = status
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
        """Untag; a member whose email consent was withdrawn is also unsubscribed."""
        for m in members:  # removes carry the last accepted payload
            m.payload = m.previous or m.payload
        list_id = str(sync.target["list_id"])
        result = self._tag(members, sync, "members_to_remove")
        withdrawn = [m for m in members if m.cause == "consent" and m.key not in result.rejected]
        if withdrawn:
            known = self.statuses(list_id)
            todo = [(m, "unsubscribed") for m in withdrawn if known.get(m.key) not in COMPLIANCE]
            if todo:
                refused = self._batch(list_id, todo)
                result.rejected.update({k: f"unsubscribe: {v}" for k, v in refused.items()})
                for m, _ in todo:
                    if m.key not in refused:
                        known[m.key] = "unsubscribed"
        result.accepted = [m.key for m in members if m.key not in result.rejected]
        return result

    def erase(self, members: list[Member], sync: Sync, origin: str) -> SendResult:
        """Permanent delete for a data-subject request; archive for any other origin."""
        list_id = str(sync.target["list_id"])
        result = SendResult()
        for m in members:
            path = f"lists/{list_id}/members/{m.key}"
            try:
                if origin == "request":
                    self.api.request("POST", f"{path}/actions/delete-permanent")
                else:
                    self.api.request("DELETE", path)
            except ApiError as exc:
                if exc.status != 404:  # 404: not (or no longer) on the list
                    result.rejected[m.key] = f"HTTP {exc.status}: {exc.body[:200]}"
                    continue
            result.accepted.append(m.key)
        return result
