"""Who may call what: API keys with roles, console sign-in, rate and body limits."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fraudline.errors import ConfigError
from fraudline.keys import ROLE_RANK, ApiKey, Role, check_unique, key_digest, parse_keys
from serve_app.body_limits import BodyLimits, BodyRefused, needs_body_check, read_checked_body
from serve_app.limits import RateLimitConfig, RateLimiter

logger = logging.getLogger(__name__)

KEYS_ENV = "FRAUDLINE_API_KEYS"
SESSION_COOKIE = "fraudline_session"
LOGIN_PATH = "/auth/login"
LOGOUT_PATH = "/auth/logout"
CONSOLE_PATH = "/console"
DISABLED_HEADER = (b"x-fraudline-auth", b"disabled")

# Longest matching prefix wins; a path matching none needs admin, so a route added
# later is closed until someone decides who may use it. None means public.
ROUTE_ROLES: dict[str, Role | None] = {
    "/healthz": None,
    LOGIN_PATH: None,
    LOGOUT_PATH: None,
    "/v1/analyze": "client",
    "/mcp/transaction_risk": "client",
    "/mcp/identity_verifier": "client",
    "/mcp/geolocation_checker": "client",
    "/mcp": "analyst",
    "/v1/cases": "analyst",
    "/v1/reports": "analyst",
    "/v1/metrics": "analyst",
    "/v1/summaries": "analyst",
    "/v1/chat": "analyst",
    CONSOLE_PATH: "analyst",
    "/docs": "client",
    "/redoc": "client",
    "/openapi.json": "client",
    "/v1/customers": "analyst",
    "/v1/audit": "admin",
    "/v1/config": "admin",
}


class AuthConfig(BaseModel):
    """How callers prove who they are.

    `mode: disabled` turns every check off for local development only: each
    replica logs a warning at start and every response says so in a header.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["keys", "disabled"] = "keys"
    keys: list[ApiKey] = Field(default_factory=list)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    body: BodyLimits = Field(default_factory=BodyLimits)
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    secure_cookies: bool = Field(
        default=True, description="Send the console cookie over HTTPS only."
    )

    @model_validator(mode="after")
    def _usable(self) -> AuthConfig:
        check_unique(self.keys)
        if self.mode == "keys" and not self.keys:
            raise ConfigError(
                f"auth mode 'keys' has no keys; set {KEYS_ENV} to entries from "
                "`python -m fraudline.keys new`, or set auth mode 'disabled' for "
                "local development"
            )
        return self

    @classmethod
    def from_args(
        cls, args: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> AuthConfig:
        """Validates the YAML `auth:` block; `FRAUDLINE_API_KEYS` replaces its keys."""
        data = dict(args or {})
        listed = (env if env is not None else os.environ).get(KEYS_ENV, "").strip()
        if listed:
            data["keys"] = parse_keys(listed)
        return cls.model_validate(data)


@dataclass(frozen=True)
class Principal:
    """The caller, once known: the key holder's name and role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


DEV_PRINCIPAL = Principal(name="auth-disabled", role="admin")


def required_role(path: str, rules: Mapping[str, Role | None] = ROUTE_ROLES) -> Role | None:
    """The role a path needs (None: public), by its longest matching prefix."""
    best: str | None = None
    for prefix in rules:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            if best is None or len(prefix) > len(best):
                best = prefix
    return "admin" if best is None else rules[best]


class Authenticator:
    """Checks API keys and console sessions against the configured key hashes.

    Args:
        config: Mode, keys, limits and session settings.
        clock: Wall-clock seconds, for session expiry; injectable for tests.
    """

    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._keys = list(config.keys)
        self._by_name = {key.name: key for key in self._keys}
        if self.disabled:
            logger.warning(
                "AUTHENTICATION IS DISABLED: every caller acts as admin. This mode is "
                "for local development only; set auth mode 'keys' and %s anywhere else",
                KEYS_ENV,
            )
        else:
            logger.info("API keys loaded: %d", len(self._keys))

    @property
    def disabled(self) -> bool:
        return self.config.mode == "disabled"

    def identify_key(self, key: str) -> Principal | None:
        """The holder of a presented key, or None; compares every hash in constant time."""
        presented = key_digest(key)
        found: ApiKey | None = None
        for candidate in self._keys:
            # No early exit: the time taken does not tell which entry matched.
            if hmac.compare_digest(presented, candidate.digest):
                found = candidate
        return Principal(found.name, found.role) if found else None

    def identify(self, headers: Mapping[bytes, bytes], *, allow_session: bool) -> Principal | None:
        """The caller of a request from its bearer key or, where allowed, its console cookie."""
        if self.disabled:
            return DEV_PRINCIPAL
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return self.identify_key(value.strip().decode("latin-1"))
        if allow_session:
            token = _cookie(headers.get(b"cookie", b""), SESSION_COOKIE)
            if token:
                return self.read_session(token)
        return None

    def issue_session(self, principal: Principal) -> str:
        """A console session token for a signed-in key holder; it holds no key."""
        expires = int(self._clock()) + self.config.session_ttl_s
        payload = f"{principal.name}:{principal.role}:{expires}"
        return f"{payload}:{self._sign(principal.name, payload)}"

    def read_session(self, token: str) -> Principal | None:
        """The holder of a valid, unexpired session whose key is still configured."""
        parts = token.split(":")
        if len(parts) != 4:
            return None
        name, role, expires, signature = parts
        key = self._by_name.get(name)
        if key is None or key.role != role or not expires.isdigit():
            return None
        expected = self._sign(name, f"{name}:{role}:{expires}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        if int(expires) < self._clock():
            return None
        return Principal(key.name, key.role)

    def require(self, role: Role) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency that returns the caller or refuses with 401/403."""

        async def dependency(request: Request) -> Principal:
            known = request.scope.get("state", {}).get("principal")
            principal = known or self.identify(
                {k.lower(): v for k, v in request.scope["headers"]},
                allow_session=request.url.path.startswith(CONSOLE_PATH),
            )
            if principal is None:
                raise HTTPException(
                    status_code=401,
                    detail=_UNAUTHENTICATED,
                    headers={"WWW-Authenticate": 'Bearer realm="fraudline"'},
                )
            if not principal.may(role):
                raise HTTPException(status_code=403, detail=_forbidden(principal, role))
            return principal

        return dependency

    def _sign(self, name: str, payload: str) -> str:
        # Per-key session secret: removing a key from the config ends its sessions,
        # and a session cookie reveals nothing about the key.
        secret = hmac.new(self._by_name[name].digest, b"console-session", hashlib.sha256)
        return hmac.new(secret.digest(), payload.encode(), hashlib.sha256).hexdigest()


class AccessControl:
    """ASGI middleware: role check, per-key rate limit and body limits, in that order.

    It runs before routing, so it also guards mounted apps (MCP, the console)
    that FastAPI dependencies never see, and refuses before any body is parsed.

    Args:
        app: The application behind it.
        auth: The authenticator.
        limiter: Per-key rate limits; None turns them off.
        rules: Path prefix -> role needed (None: public).
    """

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        limiter: RateLimiter | None = None,
        rules: Mapping[str, Role | None] = ROUTE_ROLES,
    ) -> None:
        self.app = app
        self._auth = auth
        self._limiter = limiter
        self._rules = dict(rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self._auth.disabled:
            send = _with_header(send, DISABLED_HEADER)

        path = _route_path(scope)
        headers = {key.lower(): value for key, value in scope["headers"]}
        needed = required_role(path, self._rules)
        if needed is not None:
            principal = self._auth.identify(headers, allow_session=_is_console(path))
            refusal = self._refusal(scope, headers, path, needed, principal)
            if refusal is not None:
                await _refuse(scope, receive, send, refusal)
                return
            assert principal is not None
            scope.setdefault("state", {})["principal"] = principal

        if scope["type"] == "http" and needs_body_check(scope["method"]):
            try:
                body = await read_checked_body(headers, receive, self._auth.config.body)
            except BodyRefused as refused:
                await _refuse(scope, receive, send, _json(refused.status_code, refused.detail))
                return
            receive = body.receive
        await self.app(scope, receive, send)

    def _refusal(
        self,
        scope: Scope,
        headers: Mapping[bytes, bytes],
        path: str,
        needed: Role,
        principal: Principal | None,
    ) -> Response | None:
        if principal is None:
            if _is_console(path) and b"text/html" in headers.get(b"accept", b""):
                return RedirectResponse(LOGIN_PATH, status_code=303)
            return _json(
                401, _UNAUTHENTICATED, {"WWW-Authenticate": 'Bearer realm="fraudline"'}
            )
        if not principal.may(needed):
            logger.info("refused %s for key %s: needs %s", path, principal.name, needed)
            return _json(403, _forbidden(principal, needed))
        if self._limiter is not None and not self._auth.disabled:
            verdict = self._limiter.check(principal.name, principal.role)
            if not verdict.allowed:
                assert verdict.limit is not None
                return _json(
                    429,
                    f"rate limit of {verdict.limit.per_s:g} requests/s (burst "
                    f"{verdict.limit.burst}) reached for key {principal.name!r}; "
                    f"retry after {verdict.retry_after_s} s",
                    {"Retry-After": str(verdict.retry_after_s)},
                )
        return None


def protect(
    app: FastAPI,
    auth: Authenticator,
    *,
    rules: Mapping[str, Role | None] = ROUTE_ROLES,
) -> FastAPI:
    """Puts every route of an app behind `auth` and adds the console sign-in pages.

    Call it once, right after building the app and before it serves.
    """
    limiter = RateLimiter(auth.config.rate_limits) if auth.config.rate_limits.enabled else None
    app.add_middleware(AccessControl, auth=auth, limiter=limiter, rules=rules)
    _add_sign_in(app, auth)
    return app


def _add_sign_in(app: FastAPI, auth: Authenticator) -> None:
    @app.get(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse(_login_html(""))

    @app.post(LOGIN_PATH, include_in_schema=False)
    async def login(request: Request) -> Response:
        """Signs an analyst in to the console with their API key."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        principal = auth.identify_key(key) if key else None
        if auth.disabled:
            principal = DEV_PRINCIPAL
        if principal is None or not principal.may("analyst"):
            logger.info("console sign-in refused")
            return HTMLResponse(
                _login_html("That key is not an analyst's key."), status_code=401
            )
        logger.info("console sign-in: %s", principal.name)
        response = RedirectResponse(CONSOLE_PATH, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            auth.issue_session(principal),
            max_age=auth.config.session_ttl_s,
            httponly=True,
            secure=auth.config.secure_cookies,
            samesite="strict",
        )
        return response

    @app.post(LOGOUT_PATH, include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response


_UNAUTHENTICATED = "missing or unknown API key; send it as 'Authorization: Bearer <key>'"


def _forbidden(principal: Principal, needed: Role) -> str:
    return f"key {principal.name!r} has role {principal.role}; this needs {needed} or above"


def _is_console(path: str) -> bool:
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


def _route_path(scope: Scope) -> str:
    # Starlette routes on the path below root_path; check the same path.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def _cookie(header: bytes, name: str) -> str | None:
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps({"detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    if scope["type"] == "websocket":
        # 1008: policy violation, the close code for a refused connection.
        await send({"type": "websocket.close", "code": 1008})
        return
    await response(scope, receive, send)


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", []), header]
        await send(message)

    return sending


def _login_html(error: str) -> str:
    note = f'<p role="alert">{html.escape(error)}</p>' if error else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Fraudline console sign-in</title></head><body>"
        "<h1>Fraudline console</h1>"
        f"{note}"
        f'<form method=post action="{LOGIN_PATH}">'
        '<label for=key>Analyst API key</label> '
        '<input id=key name=key type=password autocomplete=current-password required> '
        "<button type=submit>Sign in</button></form></body></html>"
    )
