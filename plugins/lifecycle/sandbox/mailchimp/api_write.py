"""Mailchimp Marketing v3 emulator (destination side), mounted at ``/mailchimp``.

- ``POST /3.0/lists/{list_id}``: batch subscribe/update, at most 500 ``members``;
  answers 200 with ``new_members``, ``updated_members`` and per-member ``errors``.
  Subscribing (``status: subscribed``) an address that is unsubscribed or cleaned is
  refused ("Member In Compliance State"); ``status_if_new`` only applies to new members.
- ``GET/POST /3.0/lists/{list_id}/segments``: static segments (tags); ``POST
  /3.0/lists/{list_id}/segments/{id}`` with ``members_to_add`` / ``members_to_remove``
  (at most 500 each) answers ``members_added``, ``members_removed`` and ``errors``.

The list starts with the world's members (so unsubscribed and cleaned addresses exist).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re

from fastapi import APIRouter, HTTPException, Request

from lifecycle.sandbox.mailchimp import records
from lifecycle.sandbox.state import MAILCHIMP_KEY, SandboxState

MAX_MEMBERS = 500
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
            for m in records.members(state.world, state.now):
                lists.setdefault(m["list_id"], {})[m["id"]] = {
                    "email_address": m["email_address"],
                    "status": m["status"],
                    "merge_fields": dict(m["merge_fields"]),
                }
            return {"lists": lists, "segments": {}}

        return state.destination("mailchimp", build)

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
        members = body.get("members") or []
        if len(members) > MAX_MEMBERS:
            raise too_many(len(members))
        update = bool(body.get("update_existing"))
        s = store()
        new, updated, errors = [], [], []
        for m in members:
            email = str(m.get("email_address", "")).strip().lower()
            h = _hash(email)
            injected = state.take_rejection("mailchimp", h)
            with state.lock:
                lst = s["lists"].setdefault(list_id, {})
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
                elif (
                    existing
                    and m.get("status") == "subscribed"
                    and existing["status"] in ("unsubscribed", "cleaned")
                ):
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_GENERIC",
                            "error": f"{email} is in a compliance state due to "
                            "unsubscribe, bounce, or compliance review and "
                            "cannot be subscribed. (Member In Compliance State)",
                        }
                    )
                elif existing and not update:
                    errors.append(
                        {
                            "email_address": email,
                            "error_code": "ERROR_CONTACT_EXISTS",
                            "error": f"{email} is already a list member.",
                        }
                    )
                elif existing:
                    existing["merge_fields"].update(m.get("merge_fields") or {})
                    if m.get("status"):
                        existing["status"] = m["status"]
                    updated.append({"id": h, "email_address": email, "status": existing["status"]})
                else:
                    status = m.get("status") or m.get("status_if_new") or "subscribed"
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

    @router.get("/3.0/lists/{list_id}/segments")
    def list_segments(
        list_id: str, request: Request, count: int = 10, offset: int = 0, type: str | None = None
    ) -> dict:  # noqa: A002 - Mailchimp's name
        auth(request)
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
                if _hash(email) in lst:
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
