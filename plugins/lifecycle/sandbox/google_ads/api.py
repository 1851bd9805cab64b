"""Google Ads Customer Match emulator: OAuth tokens and slow offline user data jobs.

Written from Google's documentation, not from the connector:

- OAuth 2.0 token endpoint (Google Identity, "Using OAuth 2.0 for Web Server
  Applications", "Refreshing an access token"): ``POST /token`` with a form
  ``grant_type=refresh_token, client_id, client_secret, refresh_token`` answers
  ``{access_token, expires_in, scope, token_type: Bearer}``; a wrong refresh token is
  ``400 {"error": "invalid_grant"}``, a wrong client ``401 {"error": "invalid_client"}``.
  Access tokens expire after ``google_ads_token_ttl_s`` (default 3599 s, as Google's);
  an expired or unknown token is ``401 UNAUTHENTICATED``.
- Versions ("Sunset dates"): ``/{version}/…`` answers only for a version whose sunset
  date is after the sandbox clock; a sunset or unknown version is 404.
- ``POST /{version}/customers/{cid}/offlineUserDataJobs:create`` -> ``{resourceName}``
  (status PENDING); ``…:addOperations`` (``create``/``remove`` of ``UserData``, at most
  10,000 identifiers per request here, 20 per ``UserData``; a ``create`` needs consent
  ``adUserData`` and ``adPersonalization`` GRANTED, per user or on the job — "Consent";
  with ``enablePartialFailure`` bad operations come back in ``partialFailureError`` by
  index); ``…:run`` (RUNNING); ``POST /{version}/customers/{cid}/googleAds:search`` on
  ``offline_user_data_job.resource_name`` reports the status
  ("OfflineUserDataJobStatus"). A job runs for ``google_ads_job_runtime_s`` (default 60 s)
  of vendor time, then its operations take effect and it is SUCCESS with a
  ``matchRateRange``.

Vendor time is the wall clock plus ``vendor_clock_offset_s``; tests move it forward with
``POST /_sandbox/limits`` instead of waiting. Headers ``developer-token`` (and optional
``login-customer-id``) are checked.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import time
from datetime import UTC, date, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from lifecycle.sandbox.state import HEX64, SandboxState

# Fixed sandbox credentials (not secrets: the sandbox serves fake data).
GOOGLE_ADS_CLIENT_ID = "sandbox-client.apps.example"
GOOGLE_ADS_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105
GOOGLE_ADS_REFRESH_TOKEN = "sandbox-refresh-token"  # noqa: S105
GOOGLE_ADS_DEVELOPER_TOKEN = "sandbox-developer-token"  # noqa: S105
MAX_IDENTIFIERS = 10_000
DEFAULT_TOKEN_TTL_S = 3599.0
DEFAULT_JOB_RUNTIME_S = 60.0
RESOURCE = re.compile(r"offline_user_data_job\.resource_name\s*=\s*'([^']+)'")

#: Sunset dates from Google's "Sunset dates" page and sunset reminders (v23-v26:
#: projected months from the 2026 release schedule post).
SUNSET = {
    "v17": date(2025, 6, 4),
    "v18": date(2025, 8, 20),
    "v19": date(2026, 2, 11),
    "v20": date(2026, 6, 10),
    "v21": date(2026, 8, 5),
    "v22": date(2026, 10, 7),
    "v23": date(2027, 2, 1),
    "v24": date(2027, 5, 1),
    "v25": date(2027, 8, 1),
    "v26": date(2027, 11, 1),
}


def _error(status: int, code: str, message: str, reason: str | None = None) -> HTTPException:
    return HTTPException(
        status,
        detail={
            "error": {
                "code": status,
                "message": message,
                "status": code,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.ads.googleads.v26.errors."
                        "GoogleAdsFailure",
                        "errors": [
                            {"errorCode": {"requestError": reason or code}, "message": message}
                        ],
                    }
                ],
            }
        },
    )


def _match_range(rate: float) -> str:
    if rate < 0.2:
        return "MATCH_RANGE_LESS_THAN_20"
    low = min(int(rate * 10) * 10, 90)
    return f"MATCH_RANGE_{low + 1 if low > 20 else low}_TO_{low + 10}"


def router(state: SandboxState) -> APIRouter:
    router = APIRouter()
    ids = itertools.count(1)

    def store() -> dict:
        return state.destination("google_ads", lambda: {"jobs": {}, "lists": {}, "tokens": {}})

    def vendor_now() -> float:
        return time.time() + float(getattr(state, "vendor_clock_offset_s", 0.0))

    def known_emails() -> set[str]:
        def build():
            emails = state.world.contacts.email.dropna()
            return {hashlib.sha256(e.strip().lower().encode()).hexdigest() for e in emails}

        return state.destination("google_ads_known", build)

    def version_ok(version: str) -> None:
        sunset = SUNSET.get(version)
        today = datetime.fromtimestamp(state.now, tz=UTC).date()
        if sunset is None or sunset <= today:
            state.count("google_ads_sunset_version")
            raise _error(
                404,
                "NOT_FOUND",
                f"Google Ads API {version} is not available (sunset "
                f"{sunset.isoformat() if sunset else 'unknown version'}); "
                f"see the 'Sunset dates' page",
            )

    def auth(request: Request, version: str) -> None:
        version_ok(version)
        header = request.headers.get("authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        tokens = store()["tokens"]
        with state.lock:
            expires = tokens.get(token)
        if expires is None or vendor_now() >= expires:
            state.count("google_ads_401")
            raise _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "AUTHENTICATION_ERROR",
            )
        if request.headers.get("developer-token") != GOOGLE_ADS_DEVELOPER_TOKEN:
            raise _error(401, "UNAUTHENTICATED", "The developer token is not valid.")

    @router.post("/token")
    async def token(request: Request) -> JSONResponse:
        form = dict(await request.form())
        state.record("google_ads", {"call": "token", "grant_type": form.get("grant_type")})
        if (
            form.get("client_id") != GOOGLE_ADS_CLIENT_ID
            or form.get("client_secret") != GOOGLE_ADS_CLIENT_SECRET
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Unauthorized"}, 401
            )
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != GOOGLE_ADS_REFRESH_TOKEN
        ):
            return JSONResponse({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        ttl = float(getattr(state, "google_ads_token_ttl_s", DEFAULT_TOKEN_TTL_S))
        access = "ya29.sandbox-" + secrets.token_urlsafe(24)
        with state.lock:
            store()["tokens"][access] = vendor_now() + ttl
        state.count("google_ads_tokens_issued")
        return JSONResponse(
            {
                "access_token": access,
                "expires_in": int(ttl),
                "scope": "https://www.googleapis.com/auth/adwords",
                "token_type": "Bearer",
            }
        )

    @router.post("/{version}/customers/{cid}/offlineUserDataJobs:create")
    async def create(version: str, cid: str, request: Request) -> dict:
        auth(request, version)
        body = await request.json()
        job = body.get("job") or {}
        meta = job.get("customerMatchUserListMetadata") or {}
        if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or not meta.get("userList"):
            raise _error(400, "INVALID_ARGUMENT", "job.type and userList are required")
        resource = f"customers/{cid}/offlineUserDataJobs/{next(ids)}"
        jobs = store()["jobs"]
        with state.lock:
            jobs[resource] = {
                "userList": meta["userList"],
                "consent": meta.get("consent") or {},
                "status": "PENDING",
                "operations": [],
                "polls": 0,
            }
        state.record(
            "google_ads", {"call": "create", "version": version, "resource": resource, "job": job}
        )
        return {"resourceName": resource}

    def validate(op: dict, job_consent: dict) -> tuple[str, dict] | str:
        kind = "create" if "create" in op else "remove" if "remove" in op else None
        if kind is None:
            return "operation has neither create nor remove"
        data = op[kind] or {}
        identifiers = data.get("userIdentifiers") or []
        if not identifiers or len(identifiers) > 20:
            return "UserData needs 1-20 userIdentifiers"
        flat = {}
        for ident in identifiers:
            for k, v in ident.items():
                if k not in ("hashedEmail", "hashedPhoneNumber"):
                    return f"unsupported identifier {k}"
                if not HEX64.match(str(v)):
                    return f"{k} is not a lowercase SHA-256 hex digest"
                flat[k] = v
        consent = data.get("consent") or job_consent
        if kind == "create" and not (
            consent.get("adUserData") == "GRANTED" and consent.get("adPersonalization") == "GRANTED"
        ):
            return "consent adUserData and adPersonalization must be GRANTED"
        key = flat.get("hashedEmail") or flat.get("hashedPhoneNumber")
        reason = state.take_rejection("google_ads", key)
        if reason:
            return reason
        return kind, flat

    @router.post("/{version}/customers/{cid}/offlineUserDataJobs/{job_id}:addOperations")
    async def add_operations(version: str, cid: str, job_id: str, request: Request) -> dict:
        auth(request, version)
        body = await request.json()
        resource = f"customers/{cid}/offlineUserDataJobs/{job_id}"
        ops = body.get("operations") or []
        count = sum(
            len((op.get("create") or op.get("remove") or {}).get("userIdentifiers") or [])
            for op in ops
        )
        if count > MAX_IDENTIFIERS:
            raise _error(
                400,
                "TOO_MANY_OPERATIONS",
                f"{count} identifiers in one request (max {MAX_IDENTIFIERS})",
            )
        jobs = store()["jobs"]
        with state.lock:
            job = jobs.get(resource)
        if job is None:
            raise _error(404, "NOT_FOUND", f"{resource} not found")
        if job["status"] != "PENDING":
            raise _error(400, "INVALID_ARGUMENT", f"{resource} is {job['status']}")
        errors, good = [], []
        for i, op in enumerate(ops):
            checked = validate(op, job["consent"])
            if isinstance(checked, str):
                errors.append(
                    {
                        "errorCode": {"offlineUserDataJobError": "INVALID_USER_DATA"},
                        "message": checked,
                        "location": {
                            "fieldPathElements": [{"fieldName": "operations", "index": i}]
                        },
                    }
                )
            else:
                good.append(checked)
        if errors and not body.get("enablePartialFailure"):
            raise _error(400, "INVALID_ARGUMENT", errors[0]["message"])
        with state.lock:
            job["operations"].extend(good)
        state.record(
            "google_ads", {"call": "addOperations", "resource": resource, "operations": ops}
        )
        if not errors:
            return {}
        return {
            "partialFailureError": {
                "code": 3,
                "message": f"{len(errors)} operations failed",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.ads.googleads.v26.errors."
                        "GoogleAdsFailure",
                        "errors": errors,
                    }
                ],
            }
        }

    @router.post("/{version}/customers/{cid}/offlineUserDataJobs/{job_id}:run")
    async def run(version: str, cid: str, job_id: str, request: Request) -> dict:
        auth(request, version)
        resource = f"customers/{cid}/offlineUserDataJobs/{job_id}"
        jobs = store()["jobs"]
        with state.lock:
            job = jobs.get(resource)
            if job is None:
                raise _error(404, "NOT_FOUND", f"{resource} not found")
            job["status"] = "RUNNING"
            job["started"] = vendor_now()
        state.record("google_ads", {"call": "run", "resource": resource})
        return {"name": f"customers/{cid}/operations/{job_id}"}

    @router.post("/{version}/customers/{cid}/googleAds:search")
    async def search(version: str, cid: str, request: Request) -> dict:
        auth(request, version)
        query = (await request.json()).get("query", "")
        found = RESOURCE.search(query)
        if not found:
            raise _error(400, "INVALID_ARGUMENT", "query must filter on a job resource_name")
        resource = found.group(1)
        known = known_emails()
        runtime = float(getattr(state, "google_ads_job_runtime_s", DEFAULT_JOB_RUNTIME_S))
        s = store()
        with state.lock:
            job = s["jobs"].get(resource)
            if job is None:
                return {"results": []}
            job["polls"] += 1
            if job["status"] == "RUNNING" and vendor_now() >= job["started"] + runtime:
                members = s["lists"].setdefault(job["userList"], {})
                creates = 0
                matched = 0
                for kind, flat in job["operations"]:
                    key = flat.get("hashedEmail") or flat.get("hashedPhoneNumber")
                    if kind == "create":
                        members[key] = flat
                        creates += 1
                        matched += flat.get("hashedEmail") in known
                    else:
                        members.pop(key, None)
                job["status"] = "SUCCESS"
                job["matchRateRange"] = _match_range(matched / creates if creates else 0.0)
            row = {"resourceName": resource, "status": job["status"]}
            if job.get("matchRateRange"):
                row["operationMetadata"] = {"matchRateRange": job["matchRateRange"]}
        state.record(
            "google_ads", {"call": "search", "resource": resource, "status": row["status"]}
        )
        return {"results": [{"offlineUserDataJob": row}]}

    return router
