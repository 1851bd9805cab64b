"""Google Ads Customer Match through ``OfflineUserDataJobService``, asynchronously.

Vendor docs (Google Ads API): "OfflineUserDataJobService" (``create`` ->
``addOperations`` -> ``run``), "OfflineUserDataJobOperation" (``create`` / ``remove``
of ``UserData``), "Consent" (``ad_user_data`` and ``ad_personalization``, each its own
``ConsentStatus``), "OfflineUserDataJobStatus" (PENDING, RUNNING, SUCCESS, FAILED),
"Customer Match" upload guides (at most 100,000 identifiers per request, 20 per
``UserData``; lists take up to 24 hours to populate), "Sunset dates" (versions live
about a year); Google Identity "Using OAuth 2.0 for Web Server Applications" for the
refresh-token flow (:mod:`lifecycle.activation.oauth`).

Per engine batch, one offline user data job: ``:create`` (type
``CUSTOMER_MATCH_USER_LIST`` on the target user list) -> ``:addOperations`` (at most
10,000 identifiers per request, partial failure enabled so one bad row does not sink the
request) -> ``:run``. The job then runs for minutes to hours: :meth:`add` /
:meth:`remove` hand the job back to the engine (``SendResult.job``), which records it;
:meth:`poll` asks ``googleAds:search`` for its status once and returns the outcome when
it is ``SUCCESS`` or ``FAILED``. ``matchRateRange`` is reported as the midpoint.

Consent: the engine sends only contacts whose ``ad_user_data`` and ``ad_personalization``
are both granted in ``marts.dim_contact_consent``; each ``UserData`` carries both as read
from the model, one per purpose (never one flag for two). Removals carry no consent.

Identifiers: email (trimmed, lowercased, dots removed before @gmail.com) and phone
(E.164), SHA-256 hex.

Connection ``google_ads_default``: ``login`` = OAuth client id, ``password`` = client
secret, ``extra.refresh_token``, ``extra.token_url`` (Google's OAuth 2.0 token
endpoint), ``extra.developer_token``, optional ``extra.login_customer_id`` (manager
account), ``extra.base_url`` (API root, no version) and ``extra.api_version`` (default
:data:`GOOGLE_ADS_API_VERSION`).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from lifecycle.activation import consent
from lifecycle.activation.base import Destination, Member, SendResult, chunks
from lifecycle.activation.hashing import quoted
from lifecycle.activation.oauth import RefreshTokenAuth
from lifecycle.connections import get_endpoint
from lifecycle.httpclient import ApiClient, AuthError

if TYPE_CHECKING:
    from lifecycle.activation.audiences import Sync

log = logging.getLogger(__name__)

#: Default API version: v26 is the newest on Google's "Sunset dates" page (released
#: October 2026, projected sunset November 2027; v22 sunset on 7 October 2026 and the
#: page recommends starting with v26). Override with ``extra.api_version``.
GOOGLE_ADS_API_VERSION = "v26"
MAX_IDENTIFIERS_PER_REQUEST = 10_000
_VERSION_SEGMENT = re.compile(r"/v\d+$")


def match_rate(range_name: str | None) -> float | None:
    """``MATCH_RANGE_51_TO_60`` -> 0.555; ``MATCH_RANGE_LESS_THAN_20`` -> 0.1."""
    if not range_name:
        return None
    nums = [int(n) for n in re.findall(r"\d+", range_name)]
    if "LESS_THAN" in range_name and nums:
        return nums[0] / 200.0
    return sum(nums) / len(nums) / 100.0 if nums else None


def _status(granted) -> str:
    return "GRANTED" if bool(granted) else "DENIED"


class GoogleAdsCustomerMatch(Destination):
    name = "google_ads"
    channel = "ads"
    target_keys = ("customer_id", "user_list_id")
    identifiers = frozenset({"email", "phone"})
    match_on = frozenset({"email", "phone"})
    purposes = ("ad_user_data", "ad_personalization")
    batch_size = 10_000
    asynchronous = True

    def __init__(self, conn_id: str = "google_ads_default"):
        self.conn_id = conn_id
        self._api: ApiClient | None = None
        self.auth: RefreshTokenAuth | None = None
        self.version = GOOGLE_ADS_API_VERSION

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            ep = get_endpoint(self.conn_id)
            self.version = str(ep.extra.get("api_version") or GOOGLE_ADS_API_VERSION)
            base = ep.base_url
            if _VERSION_SEGMENT.search(base):
                log.warning(
                    "connection %s: base_url ends in an API version; the version is "
                    "extra.api_version (using %s)",
                    self.conn_id,
                    self.version,
                )
                base = _VERSION_SEGMENT.sub("", base)
            self.auth = RefreshTokenAuth(
                str(ep.extra.get("token_url") or ""),
                ep.login or "",
                ep.password or "",
                str(ep.extra.get("refresh_token") or ""),
                vendor="Google Ads OAuth",
                conn_id=self.conn_id,
            )
            headers = {"developer-token": str(ep.extra.get("developer_token", ""))}
            if ep.extra.get("login_customer_id"):
                headers["login-customer-id"] = str(ep.extra["login_customer_id"])
            self._api = ApiClient("Google Ads", base, headers=headers, conn_id=self.conn_id)
        return self._api

    def _call(self, path: str, body: dict) -> dict:
        """POST with a fresh access token; a 401 refreshes the token once and retries."""
        api = self.api
        assert self.auth is not None
        for attempt in (1, 2):
            api.session.headers["Authorization"] = f"Bearer {self.auth.token()}"
            try:
                return api.json("POST", f"{self.version}/{path}", json=body)
            except AuthError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                log.warning("Google Ads answered 401: refreshing the access token and retrying")
                self.auth.invalidate()
        raise AssertionError("unreachable")

    def members_sql(self, rows: str, sync: Sync) -> str:
        """Hashed email (gmail dots removed) and E.164 phone with both consents, in DuckDB."""
        # lc_email once in the inner select, the gmail rule on its result (see hashing)
        email = "sha256(lc_gmail(e0))" if "email" in sync.identifiers else "null::varchar"
        inner = (
            f"(select *, lc_email(email::varchar) as e0 from {rows})"
            if "email" in sync.identifiers
            else rows
        )
        phone = (
            "sha256(lc_phone_e164(phone::varchar))"
            if "phone" in sync.identifiers
            else "null::varchar"
        )
        status = {
            p: f"case when coalesce({quoted(consent.column(p))}, false) "
            "then 'GRANTED' else 'DENIED' end"
            for p in ("ad_user_data", "ad_personalization")
        }
        # canonical JSON: keys sorted (consent < hashedEmail < hashedPhoneNumber)
        return f"""
            select contact_id, coalesce(e, p) as member_key,
                   '{{"consent":{{"adPersonalization":"' || ap || '","adUserData":"' || ud
                   || '"}}' || coalesce(',"hashedEmail":"' || e || '"', '')
                   || coalesce(',"hashedPhoneNumber":"' || p || '"', '') || '}}' as payload
            from (select contact_id::varchar as contact_id, {email} as e, {phone} as p,
                         {status["ad_user_data"]} as ud, {status["ad_personalization"]} as ap
                  from {inner})
            where coalesce(e, p) is not null"""

    # ---- one job per batch -----------------------------------------------------------
    def _submit(self, sync: Sync, ops: list[tuple[str, str, dict]]) -> SendResult:
        """Create, fill and run one job of ``(member_key, "create"|"remove", payload)``."""
        cid = str(sync.target["customer_id"])
        user_list = f"customers/{cid}/userLists/{sync.target['user_list_id']}"
        job = self._call(
            f"customers/{cid}/offlineUserDataJobs:create",
            {
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": {"userList": user_list},
                }
            },
        )
        resource = job["resourceName"]
        failed: dict[int, str] = {}
        start = 0
        for request in _by_identifiers(ops):
            body = self._call(
                f"{resource}:addOperations",
                {
                    "enablePartialFailure": True,
                    "operations": [_operation(op, payload) for _, op, payload in request],
                },
            )
            for index, reason in _partial_failures(body).items():
                failed[start + index] = reason
            start += len(request)
        self._call(f"{resource}:run", {})
        result = SendResult()
        for i, (key, _, _) in enumerate(ops):
            if i in failed:
                result.rejected.setdefault(key, failed[i])
        keys = list(dict.fromkeys(k for k, _, _ in ops))
        result.job = {"id": resource, "customer_id": cid, "keys": keys}
        return result

    def poll(self, job: dict) -> SendResult | None:
        """The job's outcome once it is SUCCESS or FAILED; None while PENDING/RUNNING."""
        resource = job["id"]
        query = (
            "SELECT offline_user_data_job.status, "
            "offline_user_data_job.operation_metadata.match_rate_range "
            f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{resource}'"
        )
        body = self._call(f"customers/{job['customer_id']}/googleAds:search", {"query": query})
        row = (body.get("results") or [{}])[0].get("offlineUserDataJob", {})
        status = row.get("status", "UNKNOWN")
        if status not in ("SUCCESS", "FAILED"):
            return None
        rate = (row.get("operationMetadata") or {}).get("matchRateRange")
        result = SendResult(match_rate=match_rate(rate))
        if status == "FAILED":
            log.error("Google Ads job %s FAILED: %s", resource, row.get("failureReason"))
            result.rejected = {
                k: f"offline user data job {resource} ended FAILED" for k in job["keys"]
            }
        else:
            result.accepted = list(job["keys"])
        return result

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        return self._submit(sync, [(m.key, "create", m.payload) for m in members])

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        ops = [
            (m.key, "remove", m.previous)
            for m in members
            if m.previous and _ids(m.previous) != _ids(m.payload)
        ]
        return self._submit(sync, ops + [(m.key, "create", m.payload) for m in members])

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        return self._submit(sync, [(m.key, "remove", m.previous or m.payload) for m in members])


def _ids(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "consent"}


def _operation(op: str, payload: dict) -> dict:
    """One ``OfflineUserDataJobOperation``; consent only on ``create``."""
    data: dict = {"userIdentifiers": [{k: v} for k, v in sorted(_ids(payload).items())]}
    if op == "create":
        data["consent"] = payload.get("consent") or {
            "adUserData": "DENIED",
            "adPersonalization": "DENIED",
        }
    return {op: data}


def _by_identifiers(ops: list, limit: int = MAX_IDENTIFIERS_PER_REQUEST):
    """Consecutive slices of operations holding at most ``limit`` identifiers each."""
    per_op = max((len(_ids(p)) for _, _, p in ops), default=1) or 1
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
