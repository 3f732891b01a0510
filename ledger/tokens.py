"""Bearer tokens of the HTTP service: create, list, revoke, authenticate.

A token reads ``glt_<id>_<secret>``. ``id`` is 12 lowercase hex digits that
name the token in listings, logs and ``govledger tokens revoke``; ``secret``
is 32 random bytes in URL-safe base64. The ledger stores only the SHA-256 of
the whole token, so a copy of the database does not yield a usable token,
and the token is shown once, when it is created.

Each token has one role, and a role grants a fixed set of permissions:

- ``appender``: append records;
- ``auditor``: read entries, proofs and checkpoints, and run ``verify``;
- ``officer``: what an auditor may do, plus policy evaluation, reports and
  reading personal values;
- ``admin``: everything, including tokens and erasure.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from .entries import format_timestamp
from .errors import GovLedgerError, InputError, StoreError
from .store import ApiToken

if TYPE_CHECKING:
    from .core import Ledger

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "AuthenticationError",
    "PermissionDeniedError",
    "TokenInfo",
    "authenticate",
    "authorize",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
]

logger = logging.getLogger(__name__)

_READ = frozenset({"read", "verify"})
_OFFICER = _READ | {"evaluate", "report", "read-personal"}
PERMISSIONS: dict[str, frozenset[str]] = {
    "appender": frozenset({"append"}),
    "auditor": _READ,
    "officer": _OFFICER,
    "admin": _OFFICER | {"append", "manage-tokens", "erase"},
}
ROLES = tuple(PERMISSIONS)
# The action each permission allows, for error messages.
PERMISSION_TITLES = {
    "append": "append records",
    "read": "read entries, proofs and checkpoints",
    "verify": "verify the ledger",
    "evaluate": "evaluate policies",
    "report": "generate audit packs",
    "read-personal": "read personal values",
    "manage-tokens": "manage API tokens",
    "erase": "erase personal data",
}

TOKEN_PREFIX = "glt_"
_TOKEN = re.compile(r"glt_(?P<id>[0-9a-f]{12})_[A-Za-z0-9_-]{43}")
_ID_BYTES = 6
_SECRET_BYTES = 32
_MAX_NAME_LENGTH = 255


class AuthenticationError(GovLedgerError):
    """A request carries no token, or one that is malformed, unknown or revoked.

    The HTTP service responds 401 with ``WWW-Authenticate: Bearer``.
    """

    reason = "unauthenticated"


class PermissionDeniedError(GovLedgerError):
    """A valid token's role does not grant the permission a request needs.

    The HTTP service responds 403.
    """

    reason = "forbidden"


@dataclass(frozen=True)
class TokenInfo:
    """The public facts of a token: never the token itself or its hash."""

    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """True until the token is revoked."""
        return self.revoked_at is None

    def can(self, permission: str) -> bool:
        """Tell whether the token's role grants ``permission``."""
        return permission in PERMISSIONS.get(self.role, frozenset())

    def to_dict(self) -> dict[str, Any]:
        """Return the token's public facts as a JSON-ready object."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def hash_token(token: str) -> str:
    """Return the lowercase hex SHA-256 of a token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def _check_role(role: str) -> None:
    if role not in PERMISSIONS:
        raise InputError(
            f"role {role!r} is unknown; use one of {', '.join(ROLES)}",
            reason="unknown-role",
        )


def _check_name(name: str) -> None:
    if not name or len(name) > _MAX_NAME_LENGTH or not name.isprintable():
        raise InputError(
            f"token name {name!r} is invalid; use 1 to {_MAX_NAME_LENGTH} "
            "printable characters, such as annotation-tool",
            reason="invalid-token-name",
        )


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


def _store_error(action: str, error: DBAPIError) -> StoreError:
    return StoreError(f"{action} failed: {error.orig}; retry")


def create_token(ledger: Ledger, *, name: str, role: str) -> tuple[TokenInfo, str]:
    """Create a token with a role; return its public facts and the token.

    The token itself is returned only here; the ledger keeps its SHA-256.

    Raises:
        InputError: the role is unknown (``unknown-role``) or the name is
            empty, too long or not printable (``invalid-token-name``).
        StoreError: the database failed; no token was created.
    """
    _check_role(role)
    _check_name(name)
    for _attempt in range(3):
        token_id = secrets.token_hex(_ID_BYTES)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        info = TokenInfo(id=token_id, name=name, role=role, created_at=_now())
        try:
            with ledger.engine.begin() as connection:
                connection.execute(
                    insert(ApiToken).values(
                        id=info.id,
                        name=info.name,
                        role=info.role,
                        token_sha256=hash_token(token),
                        created_at=info.created_at,
                        revoked_at=None,
                    )
                )
        except IntegrityError:
            # A 48-bit id collided with an existing one: draw another.
            continue
        except DBAPIError as error:
            raise _store_error("creating the token", error) from None
        logger.info("created API token %s (%s) with role %s", info.id, name, role)
        return info, token
    raise StoreError("creating the token failed: no free token id; retry")


def list_tokens(ledger: Ledger) -> list[TokenInfo]:
    """Return every token's public facts, oldest first, revoked ones included.

    Raises:
        StoreError: the database failed.
    """
    try:
        with ledger.engine.connect() as connection:
            rows = connection.execute(
                select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
            ).all()
    except DBAPIError as error:
        raise _store_error("listing tokens", error) from None
    return [_info(row) for row in rows]


def revoke_token(ledger: Ledger, token_id: str) -> TokenInfo:
    """Revoke a token by its id; return its public facts.

    Revoking a revoked token changes nothing and returns it as it is.
    Processes of the HTTP service stop accepting the token on its next use.

    Raises:
        InputError: no token has that id (``token-not-found``).
        StoreError: the database failed.
    """
    try:
        with ledger.engine.begin() as connection:
            row = connection.execute(
                select(ApiToken).where(ApiToken.id == token_id)
            ).one_or_none()
            if row is None:
                raise InputError(
                    f"no API token has id {token_id!r}; run `govledger tokens "
                    "list` to see the ids",
                    reason="token-not-found",
                )
            info = _info(row)
            if info.active:
                revoked_at = _now()
                connection.execute(
                    update(ApiToken)
                    .where(ApiToken.id == token_id)
                    .values(revoked_at=revoked_at)
                )
                info = TokenInfo(**{**info.to_dict(), "revoked_at": revoked_at})
                logger.info("revoked API token %s (%s)", info.id, info.name)
    except DBAPIError as error:
        raise _store_error("revoking the token", error) from None
    return info


def authenticate(ledger: Ledger, token: str | None) -> TokenInfo:
    """Return the public facts of an active token (RFC 6750 bearer token).

    The stored SHA-256 is compared in constant time.

    Raises:
        AuthenticationError: the token is missing (``missing-token``),
            malformed or unknown (``invalid-token``), or revoked
            (``revoked-token``). The message never repeats the token.
        StoreError: the database failed.
    """
    if not token:
        raise AuthenticationError(
            "no bearer token; send the header Authorization: Bearer <token>",
            reason="missing-token",
        )
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise AuthenticationError(
            "the bearer token is malformed; a token reads glt_<id>_<secret> as "
            "printed by `govledger tokens create`",
            reason="invalid-token",
        )
    try:
        with ledger.engine.connect() as connection:
            row = connection.execute(
                select(ApiToken).where(ApiToken.id == match["id"])
            ).one_or_none()
    except DBAPIError as error:
        raise _store_error("checking the token", error) from None
    if row is None or not hmac.compare_digest(row.token_sha256, hash_token(token)):
        raise AuthenticationError(
            "the bearer token is not known to this ledger; ask an admin for a "
            "token with `govledger tokens create`",
            reason="invalid-token",
        )
    info = _info(row)
    if not info.active:
        raise AuthenticationError(
            f"API token {info.id} was revoked at {info.revoked_at}; ask an "
            "admin for a new token",
            reason="revoked-token",
        )
    return info


def authorize(info: TokenInfo, permission: str) -> None:
    """Check that a token's role grants ``permission``.

    Raises:
        PermissionDeniedError: the role lacks the permission; the message
            names the roles that have it.
    """
    if info.can(permission):
        return
    allowed = [role for role, granted in PERMISSIONS.items() if permission in granted]
    title = PERMISSION_TITLES.get(permission, permission)
    raise PermissionDeniedError(
        f"API token {info.id} has role {info.role}, which may not {title}; "
        f"use a token with role {' or '.join(allowed)}",
    )
