"""OAuth 2.0 refresh-token flow for a nightly job (Google Ads).

A nightly job holds a long-lived refresh token plus the OAuth client id and secret, and
exchanges them at the token endpoint for a short-lived access token (Google: about an
hour, ``expires_in`` seconds). Per Google Identity's "Using OAuth 2.0 for Web Server
Applications" (section "Refreshing an access token (offline access)"): ``POST`` the
token endpoint with ``grant_type=refresh_token``, ``client_id``, ``client_secret`` and
``refresh_token`` as a form; the answer is ``{access_token, expires_in, token_type,
scope}``; ``invalid_grant`` means the refresh token was revoked or expired.

:class:`RefreshTokenAuth` refreshes ``skew_s`` seconds before the token expires and again
when the API answers 401 (the caller calls :meth:`invalidate`). No token, secret or
refresh token is ever logged or put into an exception message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from lifecycle.httpclient import ApiClient, ApiError, AuthError

log = logging.getLogger(__name__)


class RefreshFailed(AuthError):
    """The token endpoint refused the refresh token or client credentials."""

    def __init__(self, vendor: str, url: str, status: int, body: str, conn_id: str | None):
        super().__init__(vendor, "POST", url, status, body, conn_id)
        reason = _oauth_error(body)
        self.args = (
            f"{vendor}: the token endpoint refused the OAuth refresh (HTTP {status}"
            f"{', ' + reason if reason else ''}). Re-authorise and update extra.refresh_token "
            f"(and the client id/secret in login/password) of Airflow connection '{conn_id}'.",
        )


def _oauth_error(body: str) -> str:
    import json  # noqa: PLC0415

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("error") or "") if isinstance(data, dict) else ""


class RefreshTokenAuth:
    """Access tokens from a refresh token, refreshed before expiry and on demand."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        vendor: str = "Google OAuth",
        conn_id: str | None = None,
        skew_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not (token_url and client_id and client_secret and refresh_token):
            missing = [
                n
                for n, v in (
                    ("extra.token_url", token_url),
                    ("login (client id)", client_id),
                    ("password (client secret)", client_secret),
                    ("extra.refresh_token", refresh_token),
                )
                if not v
            ]
            raise ValueError(
                f"Airflow connection '{conn_id}' lacks {', '.join(missing)} for the OAuth "
                f"refresh-token flow"
            )
        self.token_url = token_url
        self._client = (client_id, client_secret, refresh_token)
        self.vendor = vendor
        self.conn_id = conn_id
        self.skew_s = skew_s
        self.clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.refreshes = 0
        self._http = ApiClient(vendor, token_url, conn_id=conn_id, max_retries=4)

    def __repr__(self) -> str:  # never show a credential
        return f"RefreshTokenAuth(token_url={self.token_url!r}, conn_id={self.conn_id!r})"

    def token(self) -> str:
        """A valid access token (refreshed first when it expires within ``skew_s``)."""
        if self._token is None or self.clock() >= self._expires_at - self.skew_s:
            self._refresh()
        assert self._token is not None
        return self._token

    def invalidate(self) -> None:
        """Forget the access token (the API refused it); the next call refreshes."""
        self._token = None

    def _refresh(self) -> None:
        client_id, secret, refresh = self._client
        try:
            body = self._http.json(
                "POST",
                self.token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": client_id,
                    "client_secret": secret,
                    "refresh_token": refresh,
                },
            )
        except ApiError as exc:
            if exc.status in (400, 401, 403):
                raise RefreshFailed(
                    self.vendor, self.token_url, exc.status, exc.body, self.conn_id
                ) from None
            raise
        token = body.get("access_token")
        if not token:
            raise RefreshFailed(self.vendor, self.token_url, 200, "{}", self.conn_id)
        expires_in = float(body.get("expires_in") or 3600)
        self._token = str(token)
        self._expires_at = self.clock() + expires_in
        self.refreshes += 1
        log.info(
            "%s: access token refreshed for connection %s (valid %.0fs)",
            self.vendor,
            self.conn_id,
            expires_in,
        )
