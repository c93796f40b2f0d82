"""Bearer tokens and roles.

Tokens are configured as their SHA-256 (``ADCLICK_API_TOKENS``), so neither the
configuration nor the database holds a usable secret; ``adclick api-token`` makes one.
Requests without a token read only when ``ADCLICK_API_ALLOW_ANONYMOUS`` is on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from adclick.settings import ApiToken, Role, Settings


@dataclass(frozen=True)
class Principal:
    """Who is asking: a role, or None with the reason there is none."""

    role: Role | None
    name: str = "anonymous"
    problem: str = ""

    def may(self, needed: Role) -> bool:
        if self.role is None:
            return False
        return self.role is Role.ADMIN or needed is Role.READER


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(name: str, role: Role) -> tuple[str, ApiToken]:
    """A fresh random token and the configuration entry that accepts it."""
    token = secrets.token_urlsafe(32)
    return token, ApiToken(name=name, role=role, sha256=token_digest(token))


def authenticate(authorization: str | None, settings: Settings) -> Principal:
    """The principal of an ``Authorization`` header value (or WebSocket init parameter)."""
    if not authorization:
        if settings.api_allow_anonymous:
            return Principal(Role.READER)
        return Principal(None, problem="no token: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return Principal(None, problem="the Authorization header must be 'Bearer <token>'")
    digest = token_digest(token.strip())
    for known in settings.api_tokens:
        # Constant time, so the digest cannot be found byte by byte.
        if hmac.compare_digest(digest, known.sha256):
            return Principal(known.role, name=known.name)
    return Principal(None, problem="the token is not valid")
