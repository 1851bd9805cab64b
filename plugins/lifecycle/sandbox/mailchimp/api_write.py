"""Mailchimp Marketing v3 emulator (destination side), mounted at ``/mailchimp``.

From Mailchimp's Marketing API reference, not from the connector:

- ``POST /3.0/lists/{list_id}`` ("Batch subscribe or unsubscribe"): at most 500
  ``members``, each with ``email_address`` and a ``status`` (subscribed, unsubscribed,
  cleaned, pending, transactional; a member without one fails the request with 400
  "Invalid Resource" — ``status_if_new`` belongs to ``PUT …/members/{hash}`` only), and
  ``update_existing``; answers 200 with ``new_members``, ``updated_members`` and
  per-member ``errors``. Subscribing or re-pending an address that is unsubscribed or
  cleaned is refused per member ("Member In Compliance State"); a permanently deleted
  address cannot be re-imported.
- Unknown list ids are 404 "Resource Not Found" on every list path.
- ``GET/POST /3.0/lists/{list_id}/segments``: static segments (tags); ``POST
  /3.0/lists/{list_id}/segments/{id}`` with ``members_to_add`` / ``members_to_remove``
  (at most 500 each) answers ``members_added``, ``members_removed`` and ``errors``.
- ``DELETE /3.0/lists/{list_id}/members/{hash}`` ("Archive list member"): 204, the member
  becomes ``archived``; ``POST …/members/{hash}/actions/delete-permanent`` ("Delete list
  member"): 204, the member and its data are gone for good. Both 404 for an unknown member.

The list starts with the world's members (so unsubscribed and cleaned addresses exist).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from lifecycle.sandbox.mailchimp import records
from lifecycle.sandbox.state import MAILCHIMP_KEY, SandboxState

MAX_MEMBERS = 500
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
COMPLIANCE = ("unsubscribed", "cleaned")


def _hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    segment_ids = itertools.count(1001)

    def auth(request: Request) -> None:
        header = request.headers.get("authorization", "")
        ok = False
        if header.startswith("Basic "):
            try:
                ok = base64.b64decode(header[6:]).decode().split(":", 1)[1] == MAILCHIMP_KEY
            except (ValueError, IndexError):
                ok = False
        if not ok:
            raise HTTPException(
                401,
                detail={
                    "title": "API Key Invalid",
                    "status": 401,
                    "detail": "Your API key may be invalid.",
                },
            )

    def store() -> dict:
        def build():
            lists: dict = {}
            if getattr(records, "LIST_ID", None):
                lists[records.LIST_ID] = {}
            for m in records.members(state.world, state.now):
                lists.setdefault(m["list_id"], {})[m["id"]] = {
                    "email_address": m["email_address"],
                    "status": m["status"],
                    "merge_fields": dict(m["merge_fields"]),
                }
            return {"lists": lists, "segments": {}, "forgotten": {}}

        return state.destination("mailchimp", build)

    def the_list(list_id: str) -> dict:
        """The members of a list that exists (404 otherwise, as Mailchimp answers)."""
        s = store()
        with state.lock:
            lst = s["lists"].get(list_id)
        if lst is None:
            state.count("mailchimp_unknown_list")
            raise HTTPException(
                404,
                detail={
                    "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                    "title": "Resource Not Found",
                    "status": 404,
                    "detail": "The requested resource could not be found.",
                },
            )
        return lst

    def too_many(n: int) -> HTTPException:
        return HTTPException(
            400,
            detail={
                "title": "Invalid Resource",
                "status": 400,
                "detail": f"{n} members in one call (max 500)",
            },
        )

    @router.post("/3.0/lists/{list_id}")
    async def batch_members(list_id: str, request: Request) -> dict:
        auth(request)
        body = await request.json()
        lst = the_list(list_id)
        members = body.get("members") or []
        if len(members) > MAX_MEMBERS:
            raise too_many(len(members))
        bad = [
            {"field": f"members.item:{i}.status", "message": "Required field not provided"}
            if not m.get("status")
            else {
                "field": f"members.item:{i}.status",
                "message": "Data presented is not one of the accepted values",
            }
            for i, m in enumerate(members)
            if m.get("status") not in STATUSES
        ]
        if bad:
            raise HTTPException(
                400,
                detail={
                    "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                    "title": "Invalid Resource",
                    "status": 400,
                    "detail": "The resource submitted could not be validated.",
                    "errors": bad,
                },
            )
        update = bool(body.get("update_existing"))
        s = store()
        forgotten = s["forgotten"].setdefault(list_id, set())
        new, updated, errors = [], [], []
        for m in members:
            email = str(m.get("email_address", "")).strip().lower()
            status = m["status"]
            h = _hash(email)
            injected = state.take_rejection("mailchimp", h)
            with state.lock:
                existing = lst.get(h)
                if not EMAIL.match(email):
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_GENERIC",
                            "error": "Please provide a valid email address.",
                        }
                    )
                elif injected:
                    errors.append(
                        {"email_address": email, "error_code": "ERROR_GENERIC", "error": injected}
                    )
                elif h in forgotten:
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_GENERIC",
                            "error": f"{email} was permanently deleted and cannot be "
                            "re-imported. The contact must re-subscribe to get back on the "
                            "list.",
                        }
                    )
                elif (
                    existing
                    and status in ("subscribed", "pending")
                    and existing["status"] in COMPLIANCE
                ):
                    state.count("mailchimp_compliance_refusals")
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_GENERIC",
                            "error": f"{email} is in a compliance state due to "
                            "unsubscribe, bounce, or compliance review and "
                            "cannot be subscribed. (Member In Compliance State)",
                        }
                    )
                elif existing and existing["status"] != "archived" and not update:
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_CONTACT_EXISTS",
                            "error": f"{email} is already a list member.",
                        }
                    )
                elif existing and existing["status"] != "archived":
                    existing["merge_fields"].update(m.get("merge_fields") or {})
                    existing["status"] = status
                    updated.append({"id": h, "email_address": email, "status": status})
                else:  # new, or an archived member added back
                    lst[h] = {
                        "email_address": email,
                        "status": status,
                        "merge_fields": dict(m.get("merge_fields") or {}),
                    }
                    new.append({"id": h, "email_address": email, "status": status})
        state.record("mailchimp", {"call": "batch_members", "list_id": list_id, "body": body})
        return {
            "new_members": new,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(new),
            "total_updated": len(updated),
            "error_count": len(errors),
        }

    def member_or_404(list_id: str, subscriber_hash: str) -> dict:
        lst = the_list(list_id)
        with state.lock:
            member = lst.get(subscriber_hash)
        if member is None:
            raise HTTPException(
                404,
                detail={
                    "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                    "title": "Resource Not Found",
                    "status": 404,
                    "detail": "The requested resource could not be found.",
                },
            )
        return member

    @router.delete("/3.0/lists/{list_id}/members/{subscriber_hash}")
    def archive_member(list_id: str, subscriber_hash: str, request: Request) -> Response:
        auth(request)
        member = member_or_404(list_id, subscriber_hash)
        with state.lock:
            member["status"] = "archived"
            for seg in store()["segments"].get(list_id, {}).values():
                seg["members"].discard(subscriber_hash)
        state.record(
            "mailchimp", {"call": "archive", "list_id": list_id, "subscriber_hash": subscriber_hash}
        )
        return Response(status_code=204)

    @router.post("/3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent")
    def delete_permanent(list_id: str, subscriber_hash: str, request: Request) -> Response:
        auth(request)
        member_or_404(list_id, subscriber_hash)
        s = store()
        with state.lock:
            s["lists"][list_id].pop(subscriber_hash, None)
            s["forgotten"].setdefault(list_id, set()).add(subscriber_hash)
            for seg in s["segments"].get(list_id, {}).values():
                seg["members"].discard(subscriber_hash)
        state.record(
            "mailchimp",
            {"call": "delete_permanent", "list_id": list_id, "subscriber_hash": subscriber_hash},
        )
        return Response(status_code=204)

    @router.get("/3.0/lists/{list_id}/segments")
    def list_segments(
        list_id: str, request: Request, count: int = 10, offset: int = 0, type: str | None = None
    ) -> dict:  # noqa: A002 - Mailchimp's name
        auth(request)
        the_list(list_id)
        s = store()
        with state.lock:
            segs = [
                {
                    "id": sid,
                    "name": seg["name"],
                    "type": "static",
                    "member_count": len(seg["members"]),
                }
                for sid, seg in s["segments"].get(list_id, {}).items()
            ]
        return {"segments": segs[offset : offset + count], "total_items": len(segs)}

    @router.post("/3.0/lists/{list_id}/segments")
    async def create_segment(list_id: str, request: Request) -> dict:
        auth(request)
        the_list(list_id)
        body = await request.json()
        s = store()
        sid = next(segment_ids)
        with state.lock:
            s["segments"].setdefault(list_id, {})[sid] = {"name": body["name"], "members": set()}
        state.record("mailchimp", {"call": "create_segment", "list_id": list_id, "body": body})
        return {"id": sid, "name": body["name"], "type": "static", "member_count": 0}

    @router.post("/3.0/lists/{list_id}/segments/{segment_id}")
    async def segment_members(list_id: str, segment_id: int, request: Request) -> dict:
        auth(request)
        the_list(list_id)
        body = await request.json()
        add = [str(e).lower() for e in body.get("members_to_add") or []]
        remove = [str(e).lower() for e in body.get("members_to_remove") or []]
        if max(len(add), len(remove)) > MAX_MEMBERS:
            raise too_many(max(len(add), len(remove)))
        s = store()
        added, removed, missing = [], [], []
        with state.lock:
            seg = s["segments"].get(list_id, {}).get(segment_id)
            if seg is None:
                raise HTTPException(
                    404,
                    detail={
                        "title": "Resource Not Found",
                        "status": 404,
                        "detail": f"segment {segment_id} not found",
                    },
                )
            lst = s["lists"].get(list_id, {})
            for email in add:
                if _hash(email) in lst and lst[_hash(email)]["status"] != "archived":
                    seg["members"].add(_hash(email))
                    added.append({"email_address": email})
                else:
                    missing.append(email)
            for email in remove:
                seg["members"].discard(_hash(email))
                removed.append({"email_address": email})
        state.record(
            "mailchimp",
            {"call": "segment_members", "list_id": list_id, "segment_id": segment_id, "body": body},
        )
        errors = (
            [{"email_addresses": missing, "error": "Email addresses are not list members"}]
            if missing
            else []
        )
        return {
            "members_added": added,
            "members_removed": removed,
            "errors": errors,
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": len(missing),
        }

    return router
