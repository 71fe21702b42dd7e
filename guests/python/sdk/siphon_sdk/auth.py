"""Credentials on requests: OAuth2 client credentials, a static header, or none.

An `Auth` adds credentials to each request the driver (or `send`) sends,
except requests marked `Request.unauthenticated`. Tokens are kept in memory
for the run only: never in the checkpoint, never in a log line.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from .errors import AuthError, CollectError, VendorError
from .http import Request, Response, excerpt
from .log import Level


class Auth:
    """Adds credentials to requests."""

    def authorize(self, io, request: Request) -> Request:  # noqa: ANN001
        """`request` with credentials, logging in first when needed. An error
        here is about the credentials themselves: the run ends with it."""
        return request

    def invalidate(self) -> bool:
        """The vendor answered 401: forget the credentials. True when fresh
        ones can be had, i.e. one retry makes sense."""
        return False


class NoAuth(Auth):
    """No credentials at all."""


class StaticHeader(Auth):
    """A fixed header on every request, e.g. an API key."""

    def __init__(self, name: str, value: str) -> None:
        self._name, self._value = name, value

    @classmethod
    def bearer(cls, token: str) -> "StaticHeader":
        return cls("authorization", f"Bearer {token}")

    def authorize(self, io, request: Request) -> Request:  # noqa: ANN001
        return request.header(self._name, self._value) if request.authenticated else request

    def __repr__(self) -> str:
        return f"StaticHeader({self._name}: <redacted>)"


@dataclass
class Token:
    """Credentials a login obtained."""

    header: str
    value: str
    expires_at_ms: int | None = None
    refresh_token: str | None = None

    @classmethod
    def bearer(cls, access_token: str, expires_at_ms: int | None) -> "Token":
        return cls("authorization", f"Bearer {access_token}", expires_at_ms)

    def __repr__(self) -> str:
        return f"Token({self.header}: <redacted>, expires_at_ms: {self.expires_at_ms})"


class Login:
    """How to obtain a `Token`: the vendor-specific part of a `Session`."""

    def login(self, io) -> Token:  # noqa: ANN001
        raise NotImplementedError

    def refresh(self, io, refresh_token: str) -> Token:  # noqa: ANN001
        """Exchanges a refresh token; the default logs in again."""
        return self.login(io)


class Session(Auth):
    """A token from a `Login`, kept for the run: renewed `renew_ahead_s`
    before it expires, dropped after a 401 so that one retry gets a fresh one."""

    def __init__(self, login: Login, renew_ahead_s: float = 60) -> None:
        self.login, self._token, self._ahead_ms = login, None, int(renew_ahead_s * 1000)

    def token(self, io) -> Token:  # noqa: ANN001
        now = io.now_ms()
        t = self._token
        if t is not None and (t.expires_at_ms is None or now + self._ahead_ms < t.expires_at_ms):
            return t
        if t is not None and t.refresh_token:
            try:
                t = self.login.refresh(io, t.refresh_token)
            except CollectError as e:
                io.log(Level.WARN, f"Token refresh failed ({e}); logging in again")
                t = self.login.login(io)
        else:
            t = self.login.login(io)
        self._token = t
        return t

    def authorize(self, io, request: Request) -> Request:  # noqa: ANN001
        if not request.authenticated:
            return request
        t = self.token(io)
        return request.header(t.header, t.value)

    def invalidate(self) -> bool:
        if self._token is not None:
            self._token.expires_at_ms = 0
        return True


class ClientCredentials(Login):
    """OAuth2 client credentials (RFC 6749 §4.4): `style` is `form` (id and
    secret in the form body), `basic` (HTTP Basic) or `json`."""

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, default_lifetime_s: int, style: str = "form", scope: str | None = None
    ) -> None:
        self.token_url, self._id, self._secret = token_url, client_id, client_secret
        self.default_lifetime_s, self.style, self.scope = default_lifetime_s, style, scope

    def request(self) -> Request:
        """The token request (no secret in the URL)."""
        r = Request.post(self.token_url).header("accept", "application/json").unauthenticated()
        if self.style == "basic":
            pair = base64.b64encode(f"{self._id}:{self._secret}".encode()).decode()
            form = [("grant_type", "client_credentials")] + ([("scope", self.scope)] if self.scope else [])
            return r.header("authorization", f"Basic {pair}").form(form)
        if self.style == "json":
            body = {"grant_type": "client_credentials", "client_id": self._id, "client_secret": self._secret}
            if self.scope:
                body["scope"] = self.scope
            return r.json(body)
        form = [("grant_type", "client_credentials"), ("client_id", self._id), ("client_secret", self._secret)]
        return r.form(form + ([("scope", self.scope)] if self.scope else []))

    def login(self, io) -> Token:  # noqa: ANN001
        response = io.send(self.request())
        return parse_token_response(self.token_url, response, io.now_ms(), self.default_lifetime_s)

    def __repr__(self) -> str:
        return f"ClientCredentials({self.token_url}, <redacted>)"


def parse_token_response(token_url: str, response: Response, now_ms: int, default_lifetime_s: int) -> Token:
    """Reads an OAuth2 token response (`access_token`, optional `expires_in`
    as a number or numeric text, optional `refresh_token`)."""
    if response.status in (400, 401, 403):
        raise AuthError(
            f"the token endpoint {token_url} refused the client credentials (HTTP {response.status}: {response.vendor_message()})"
        )
    response.error_for_status(f"token endpoint {token_url}")
    try:
        body = json.loads(response.body)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise VendorError(f"the token endpoint {token_url} sent no JSON token ({e}): {excerpt(response.body, 80)}") from None
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise AuthError(f"the token endpoint {token_url} answered without an access_token")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float, str)):
        lifetime = default_lifetime_s
    elif isinstance(lifetime, str):
        lifetime = int(lifetime.strip()) if lifetime.strip().isdigit() else default_lifetime_s
    token = Token.bearer(access, now_ms + max(0, int(lifetime)) * 1000)
    refresh = body.get("refresh_token")
    token.refresh_token = refresh if isinstance(refresh, str) else None
    return token


def send(io, auth: Auth, request: Request) -> Response:  # noqa: ANN001
    """Sends `request` with credentials; a 401 makes `auth` forget them and,
    when it can get fresh ones, the request is sent once more."""
    retry = request.copy() if request.authenticated else None
    response = io.send(auth.authorize(io, request))
    if retry is not None and response.status == 401 and auth.invalidate():
        io.log(Level.INFO, "HTTP 401: the token was refused; authenticating again")
        response = io.send(auth.authorize(io, retry))
    return response
