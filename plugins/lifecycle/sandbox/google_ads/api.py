"""Google Ads Customer Match emulator: offline user data jobs on customer-match lists.

``POST /{version}/customers/{cid}/offlineUserDataJobs:create`` -> ``{resourceName}``;
``POST .../offlineUserDataJobs/{id}:addOperations`` (``create``/``remove`` of
``UserData``; at most 10,000 identifiers per request, 20 per ``UserData``; with
``enablePartialFailure`` bad operations come back in ``partialFailureError`` by index);
``POST .../offlineUserDataJobs/{id}:run``; ``POST /{version}/customers/{cid}/googleAds:search``
with a query on ``offline_user_data_job.resource_name`` returns the job's status
(``RUNNING`` on the first poll, then ``SUCCESS``) and ``matchRateRange``. Operations take
effect when the job succeeds. Every ``UserData`` needs consent GRANTED for
``adUserData`` and ``adPersonalization``.
"""

from __future__ import annotations

import hashlib
import itertools
import re

from fastapi import APIRouter, HTTPException, Request

from lifecycle.sandbox.state import HEX64, SandboxState

GOOGLE_ADS_TOKEN = "sandbox-google-ads-token"  # noqa: S105 - fixed sandbox credential
GOOGLE_ADS_DEVELOPER_TOKEN = "sandbox-developer-token"  # noqa: S105
MAX_IDENTIFIERS = 10_000
RESOURCE = re.compile(r"offline_user_data_job\.resource_name\s*=\s*'([^']+)'")


def _error(status: int, code: str, message: str) -> HTTPException:
    return HTTPException(
        status,
        detail={
            "error": {
                "code": status,
                "message": message,
                "status": code,
                "details": [
                    {"errors": [{"errorCode": {"requestError": code}, "message": message}]}
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
        return state.destination("google_ads", lambda: {"jobs": {}, "lists": {}})

    def known_emails() -> set[str]:
        def build():
            emails = state.world.contacts.email.dropna()
            return {hashlib.sha256(e.strip().lower().encode()).hexdigest() for e in emails}

        return state.destination("google_ads_known", build)

    def auth(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {GOOGLE_ADS_TOKEN}":
            raise _error(401, "UNAUTHENTICATED", "Request is missing required authentication.")
        if request.headers.get("developer-token") != GOOGLE_ADS_DEVELOPER_TOKEN:
            raise _error(401, "DEVELOPER_TOKEN_INVALID", "The developer token is not valid.")

    @router.post("/{version}/customers/{cid}/offlineUserDataJobs:create")
    async def create(version: str, cid: str, request: Request) -> dict:
        auth(request)
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
                "status": "PENDING",
                "operations": [],
                "polls": 0,
            }
        state.record("google_ads", {"call": "create", "resource": resource, "job": job})
        return {"resourceName": resource}

    def validate(op: dict) -> tuple[str, dict] | str:
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
        consent = data.get("consent") or {}
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
        auth(request)
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
            checked = validate(op)
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
                        "@type": "type.googleapis.com/google.ads.googleads.v17.errors."
                        "GoogleAdsFailure",
                        "errors": errors,
                    }
                ],
            }
        }

    @router.post("/{version}/customers/{cid}/offlineUserDataJobs/{job_id}:run")
    async def run(version: str, cid: str, job_id: str, request: Request) -> dict:
        auth(request)
        resource = f"customers/{cid}/offlineUserDataJobs/{job_id}"
        jobs = store()["jobs"]
        with state.lock:
            job = jobs.get(resource)
            if job is None:
                raise _error(404, "NOT_FOUND", f"{resource} not found")
            job["status"] = "RUNNING"
        state.record("google_ads", {"call": "run", "resource": resource})
        return {"name": f"customers/{cid}/operations/{job_id}"}

    @router.post("/{version}/customers/{cid}/googleAds:search")
    async def search(version: str, cid: str, request: Request) -> dict:
        auth(request)
        query = (await request.json()).get("query", "")
        found = RESOURCE.search(query)
        if not found:
            raise _error(400, "INVALID_ARGUMENT", "query must filter on a job resource_name")
        resource = found.group(1)
        known = known_emails()
        s = store()
        with state.lock:
            job = s["jobs"].get(resource)
            if job is None:
                return {"results": []}
            job["polls"] += 1
            if job["status"] == "RUNNING" and job["polls"] >= 2:
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
        return {"results": [{"offlineUserDataJob": row}]}

    return router
