"""Google Ads Customer Match through ``OfflineUserDataJobService``.

Per engine batch, one offline user data job: ``:create`` (type
``CUSTOMER_MATCH_USER_LIST`` on the target user list, consent GRANTED) ->
``:addOperations`` (``create`` / ``remove`` of ``UserData``, at most 10,000 identifiers
per request, partial failure enabled so one bad row does not sink the request) -> ``:run``
-> poll the job with ``googleAds:search`` until ``SUCCESS`` or ``FAILED``. The job's
``matchRateRange`` is reported as the midpoint of the range.

Identifiers: email (trimmed, lowercased, dots removed before @gmail.com) and phone (E.164),
SHA-256 hex. Only contacts with ad consent reach this module (the engine's consent
filter); every ``UserData`` also carries ``consent`` GRANTED for both fields, as Google
requires for EEA users. Connection ``google_ads_default``: ``password`` = OAuth access
token, ``extra.developer_token``, optional ``extra.login_customer_id``.
"""

from __future__ import annotations

import logging
import re
import time

import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Member, SendResult, canonical, chunks
from lifecycle.activation.hashing import normalize_email_google, normalize_phone_e164, sha256
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient

log = logging.getLogger(__name__)

MAX_IDENTIFIERS_PER_REQUEST = 10_000
GRANTED = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}


class JobFailed(RuntimeError):
    """The offline user data job ended FAILED or did not finish in time."""


def match_rate(range_name: str | None) -> float | None:
    """``MATCH_RANGE_51_TO_60`` -> 0.555; ``MATCH_RANGE_LESS_THAN_20`` -> 0.1."""
    if not range_name:
        return None
    nums = [int(n) for n in re.findall(r"\d+", range_name)]
    if "LESS_THAN" in range_name and nums:
        return nums[0] / 200.0
    return sum(nums) / len(nums) / 100.0 if nums else None


class GoogleAdsCustomerMatch:
    name = "google_ads"
    batch_size = 10_000

    def __init__(self, conn_id: str = "google_ads_default", poll_timeout_s: float = 300.0):
        self.conn_id = conn_id
        self.poll_timeout_s = poll_timeout_s
        self._api: ApiClient | None = None

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            headers = {
                "Authorization": f"Bearer {ep.password}",
                "developer-token": str(ep.extra.get("developer_token", "")),
            }
            if ep.extra.get("login_customer_id"):
                headers["login-customer-id"] = str(ep.extra["login_customer_id"])
            self._api = ApiClient("Google Ads", ep.base_url, headers=headers, conn_id=self.conn_id)
        return self._api

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        n = len(rows)
        emails = (
            [sha256(normalize_email_google(e)) if isinstance(e, str) else None for e in rows.email]
            if "email" in sync.identifiers
            else [None] * n
        )
        phones = (
            [sha256(normalize_phone_e164(p)) if isinstance(p, str) else None for p in rows.phone]
            if "phone" in sync.identifiers
            else [None] * n
        )
        payloads = []
        for e, p in zip(emails, phones, strict=True):
            ids = {}
            if e:
                ids["hashedEmail"] = e
            if p:
                ids["hashedPhoneNumber"] = p
            payloads.append(canonical(ids))
        out = pd.DataFrame(
            {
                "contact_id": rows["contact_id"].to_numpy(),
                "member_key": [e or p for e, p in zip(emails, phones, strict=True)],
                "payload": payloads,
            }
        )
        return out[out.member_key.notna()].reset_index(drop=True)

    def prepare(self, sync: Sync) -> None:
        return None

    # ---- one job per batch -----------------------------------------------------------
    def _job(self, sync: Sync, ops: list[tuple[str, str, dict]]) -> SendResult:
        """Run one job of ``(member_key, "create"|"remove", identifiers)`` operations."""
        cid = str(sync.target["customer_id"])
        user_list = f"customers/{cid}/userLists/{sync.target['user_list_id']}"
        job = self.api.json(
            "POST",
            f"customers/{cid}/offlineUserDataJobs:create",
            json={
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": {"userList": user_list, "consent": GRANTED},
                }
            },
        )
        resource = job["resourceName"]
        failed: dict[int, str] = {}
        start = 0
        for request in _by_identifiers(ops):
            body = self.api.json(
                "POST",
                f"{resource}:addOperations",
                json={
                    "enablePartialFailure": True,
                    "operations": [
                        {op: {"userIdentifiers": _identifiers(ids), "consent": GRANTED}}
                        for _, op, ids in request
                    ],
                },
            )
            for index, reason in _partial_failures(body).items():
                failed[start + index] = reason
            start += len(request)
        self.api.json("POST", f"{resource}:run", json={})
        status, rate = self._poll(cid, resource)
        result = SendResult(match_rate=match_rate(rate))
        for i, (key, _, _) in enumerate(ops):
            if status != "SUCCESS":
                result.rejected[key] = f"offline user data job {resource} ended {status}"
            elif i in failed:
                result.rejected.setdefault(key, failed[i])
            elif key not in result.rejected:
                result.accepted.append(key)
        result.accepted = [k for k in dict.fromkeys(result.accepted) if k not in result.rejected]
        return result

    def _poll(self, cid: str, resource: str) -> tuple[str, str | None]:
        query = (
            "SELECT offline_user_data_job.status, "
            "offline_user_data_job.operation_metadata.match_rate_range "
            f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{resource}'"
        )
        deadline = time.monotonic() + self.poll_timeout_s
        delay = 0.05
        while True:
            body = self.api.json("POST", f"customers/{cid}/googleAds:search", json={"query": query})
            job = (body.get("results") or [{}])[0].get("offlineUserDataJob", {})
            status = job.get("status", "UNKNOWN")
            if status in ("SUCCESS", "FAILED"):
                rate = (job.get("operationMetadata") or {}).get("matchRateRange")
                if status == "FAILED":
                    log.error("Google Ads job %s FAILED: %s", resource, job.get("failureReason"))
                return status, rate
            if time.monotonic() > deadline:
                raise JobFailed(f"Google Ads job {resource} still {status} after polling")
            self.api._sleep(delay)
            delay = min(delay * 2, 5.0)

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        return self._job(sync, [(m.key, "create", m.payload) for m in members])

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        ops = [
            (m.key, "remove", m.previous) for m in members if m.previous and m.previous != m.payload
        ]
        return self._job(sync, ops + [(m.key, "create", m.payload) for m in members])

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        return self._job(sync, [(m.key, "remove", m.previous or m.payload) for m in members])


def _identifiers(ids: dict) -> list[dict]:
    return [{k: v} for k, v in sorted(ids.items())]


def _by_identifiers(ops: list, limit: int = MAX_IDENTIFIERS_PER_REQUEST):
    """Consecutive slices of operations holding at most ``limit`` identifiers each."""
    per_op = max((len(ids) for _, _, ids in ops), default=1) or 1
    yield from chunks(ops, max(1, limit // per_op))


def _partial_failures(body: dict) -> dict[int, str]:
    """Operation index -> error message from a ``partialFailureError``."""
    out: dict[int, str] = {}
    error = body.get("partialFailureError") or {}
    for detail in error.get("details") or []:
        for err in detail.get("errors") or []:
            for element in (err.get("location") or {}).get("fieldPathElements") or []:
                if element.get("fieldName") == "operations" and "index" in element:
                    code = ",".join(f"{k}={v}" for k, v in (err.get("errorCode") or {}).items())
                    out[int(element["index"])] = f"{code}: {err.get('message', '')}".strip(": ")
    return out
