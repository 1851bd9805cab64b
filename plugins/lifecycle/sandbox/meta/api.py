"""Meta Custom Audiences emulator: hashed schema rows, 10,000 rows per call.

From Meta's Marketing API reference "Custom Audience Users" (``POST`` adds, ``DELETE``
removes; ``payload={schema, data}``; at most 10,000 rows per call; the answer counts
``num_received`` / ``num_invalid_entries`` and samples invalid rows) and the Graph API
changelog "Versions" page: a call to a version expired by the sandbox clock fails with
error #2635 ("You are calling a deprecated version of the Ads API"), an unknown version
with #2500. Rows that are not SHA-256 hex (or whose first value a test asked to refuse
with ``state.reject_next("meta", ...)``) count as invalid entries and are sampled back.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime

from fastapi import APIRouter, HTTPException, Request

from lifecycle.sandbox.state import HEX64, META_TOKEN, SandboxState

#: Expiration dates of the "Versions" page (None: not set yet).
EXPIRES = {
    "v17.0": date(2025, 9, 12),
    "v18.0": date(2026, 1, 26),
    "v19.0": date(2026, 5, 21),
    "v20.0": date(2026, 9, 24),
    "v21.0": date(2027, 1, 21),
    "v22.0": date(2027, 5, 20),
    "v23.0": date(2027, 10, 8),
    "v24.0": date(2028, 2, 18),
    "v25.0": date(2028, 7, 29),
    "v26.0": None,
}
_VERSION = re.compile(r"^v\d+\.\d+$")


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()

    def version_ok(version: str) -> None:
        today = datetime.fromtimestamp(state.now, tz=UTC).date()
        if not _VERSION.match(version) or version not in EXPIRES:
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": f"Unknown path components: /{version}",
                        "type": "OAuthException",
                        "code": 2500,
                    }
                },
            )
        expires = EXPIRES[version]
        if expires is not None and expires <= today:
            state.count("meta_deprecated_version")
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": "(#2635) You are calling a deprecated version of the Ads "
                        "API. Please update to the latest version: v26.0.",
                        "type": "OAuthException",
                        "code": 2635,
                    }
                },
            )

    # ---- Meta custom audiences ----------------------------------------------------------
    async def meta_payload(request: Request) -> tuple[str, dict]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            body = await request.json()
        else:
            body = dict(await request.form())
        token = body.get("access_token") or request.query_params.get("access_token")
        if token != META_TOKEN:
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": "Invalid OAuth access token.",
                        "type": "OAuthException",
                        "code": 190,
                    }
                },
            )
        payload = body.get("payload")
        if isinstance(payload, str):
            payload = json.loads(payload)
        if not payload or "schema" not in payload or "data" not in payload:
            raise HTTPException(
                400,
                detail={"error": {"message": "(#100) Missing payload schema or data", "code": 100}},
            )
        if len(payload["data"]) > 10_000:
            raise HTTPException(
                400,
                detail={
                    "error": {
                        "message": "(#100) Too many users in one request (max 10000)",
                        "code": 100,
                    }
                },
            )
        return token, payload

    def meta_apply(audience_id: str, payload: dict, method: str, version: str) -> dict:
        schema = payload["schema"] if isinstance(payload["schema"], list) else [payload["schema"]]
        valid, invalid = [], []
        for row in payload["data"]:
            row = row if isinstance(row, list) else [row]
            ok = (
                len(row) == len(schema)
                and all(v == "" or HEX64.match(str(v)) for v in row)
                and any(row)
                and not state.take_rejection("meta", str(row[0]))
            )
            (valid if ok else invalid).append(tuple(row))
        with state.lock:
            members = state.meta_audiences.setdefault(audience_id, set())
            if method == "POST":
                members.update(valid)
            else:
                members.difference_update(valid)
        state.record(
            "meta",
            {
                "audience_id": audience_id,
                "version": version,
                "method": method,
                "schema": schema,
                "data": [list(r) for r in payload["data"]],
            },
        )
        return {
            "audience_id": audience_id,
            "session_id": str(int(time.time() * 1000)),
            "num_received": len(payload["data"]),
            "num_invalid_entries": len(invalid),
            "invalid_entry_samples": {str(i): list(r) for i, r in enumerate(invalid[:5])},
        }

    @router.post("/{version}/{audience_id}/users")
    async def meta_add(version: str, audience_id: str, request: Request) -> dict:
        version_ok(version)
        _, payload = await meta_payload(request)
        return meta_apply(audience_id, payload, "POST", version)

    @router.delete("/{version}/{audience_id}/users")
    async def meta_remove(version: str, audience_id: str, request: Request) -> dict:
        version_ok(version)
        _, payload = await meta_payload(request)
        return meta_apply(audience_id, payload, "DELETE", version)

    return router
