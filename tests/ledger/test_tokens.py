"""API tokens: creation, hashing, authentication, revocation, roles, CLI."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from ledger import InputError
from ledger.store import ApiToken
from ledger.tokens import (
    PERMISSIONS,
    ROLES,
    AuthenticationError,
    PermissionDeniedError,
    authenticate,
    authorize,
    create_token,
    list_tokens,
    revoke_token,
)
from tests.ledger._service_harness import ROOT, create_ledger, govledger_command

TOKEN_FORM = re.compile(r"glt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def ledger(db_url: str, key_dir: Path):
    ledger, _ = create_ledger(db_url, key_dir)
    with ledger:
        yield ledger


def _rows(ledger) -> list[ApiToken]:
    with ledger.engine.connect() as connection:
        return [
            ApiToken.model_validate(row._mapping)
            for row in connection.execute(select(ApiToken)).all()
        ]


def test_create_token_stores_only_sha256(ledger) -> None:
    info, token = create_token(ledger, name="annotation-tool", role="appender")
    (row,) = _rows(ledger)
    assert TOKEN_FORM.fullmatch(token)
    assert token.startswith(f"glt_{info.id}_")
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(row.model_dump())
    assert (row.name, row.role, row.revoked_at) == ("annotation-tool", "appender", None)


def test_create_token_draws_new_secrets(ledger) -> None:
    _, first = create_token(ledger, name="a", role="auditor")
    _, second = create_token(ledger, name="a", role="auditor")
    assert first != second


def test_authenticate_accepts_active_token(ledger) -> None:
    info, token = create_token(ledger, name="review-queue", role="officer")
    assert authenticate(ledger, token) == info


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        (None, "missing-token"),
        ("", "missing-token"),
        ("not-a-token", "invalid-token"),
        ("glt_000000000000_" + "A" * 43, "invalid-token"),
    ],
)
def test_authenticate_rejects_bad_token(ledger, presented, reason) -> None:
    create_token(ledger, name="a", role="admin")
    with pytest.raises(AuthenticationError) as caught:
        authenticate(ledger, presented)
    assert caught.value.reason == reason


def test_authenticate_rejects_tampered_secret(ledger) -> None:
    _, token = create_token(ledger, name="a", role="admin")
    last = token[-1]
    tampered = token[:-1] + ("A" if last != "A" else "B")
    with pytest.raises(AuthenticationError) as caught:
        authenticate(ledger, tampered)
    assert caught.value.reason == "invalid-token"
    assert tampered not in caught.value.message


def test_authenticate_rejects_revoked_token(ledger) -> None:
    info, token = create_token(ledger, name="a", role="appender")
    revoke_token(ledger, info.id)
    with pytest.raises(AuthenticationError) as caught:
        authenticate(ledger, token)
    assert caught.value.reason == "revoked-token"
    assert info.id in caught.value.message


def test_revoke_twice_keeps_first_time(ledger) -> None:
    info, _ = create_token(ledger, name="a", role="appender")
    first = revoke_token(ledger, info.id)
    second = revoke_token(ledger, info.id)
    assert first.revoked_at is not None
    assert second.revoked_at == first.revoked_at


def test_revoke_unknown_token_is_not_found(ledger) -> None:
    with pytest.raises(InputError) as caught:
        revoke_token(ledger, "0123456789ab")
    assert caught.value.reason == "token-not-found"


def test_list_tokens_includes_revoked(ledger) -> None:
    kept, _ = create_token(ledger, name="kept", role="auditor")
    gone, _ = create_token(ledger, name="gone", role="auditor")
    revoke_token(ledger, gone.id)
    listed = {info.id: info for info in list_tokens(ledger)}
    assert listed[kept.id].active
    assert not listed[gone.id].active


@pytest.mark.parametrize(
    ("name", "role", "reason"),
    [
        ("a", "superuser", "unknown-role"),
        ("", "admin", "invalid-token-name"),
        ("tab\tname", "admin", "invalid-token-name"),
        ("nul\x00name", "admin", "invalid-token-name"),
        ("x" * 256, "admin", "invalid-token-name"),
    ],
)
def test_create_token_rejects_bad_input_and_writes_nothing(
    ledger, name, role, reason
) -> None:
    with pytest.raises(InputError) as caught:
        create_token(ledger, name=name, role=role)
    assert caught.value.reason == reason
    assert _rows(ledger) == []


# The permissions each role must have, and must not have.
EXPECTED = {
    "appender": {"append"},
    "auditor": {"read", "verify"},
    "officer": {"read", "verify", "evaluate", "report", "read-personal"},
    "admin": {
        "append",
        "read",
        "verify",
        "evaluate",
        "report",
        "read-personal",
        "manage-tokens",
        "erase",
    },
}
ALL_PERMISSIONS = set().union(*EXPECTED.values())


def test_roles_are_the_four_documented() -> None:
    assert ROLES == ("appender", "auditor", "officer", "admin")


@pytest.mark.parametrize("role", ROLES)
def test_role_grants_exactly_its_permissions(role: str) -> None:
    assert set(PERMISSIONS[role]) == EXPECTED[role]


@pytest.mark.parametrize("role", ROLES)
def test_authorize_denies_other_permissions(ledger, role: str) -> None:
    info, _ = create_token(ledger, name=role, role=role)
    for permission in sorted(ALL_PERMISSIONS - EXPECTED[role]):
        with pytest.raises(PermissionDeniedError) as caught:
            authorize(info, permission)
        assert "admin" in caught.value.message
    for permission in sorted(EXPECTED[role]):
        authorize(info, permission)


# -- CLI ---------------------------------------------------------------------


def _govledger(url: str, key_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*govledger_command(), "--db", url, "--key-dir", str(key_dir), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_cli_tokens_create_list_revoke(sqlite_url: str, key_dir: Path) -> None:
    create_ledger(sqlite_url, key_dir)[0].close()

    created = _govledger(
        sqlite_url, key_dir, "tokens", "create", "tool", "--role", "auditor"
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert TOKEN_FORM.fullmatch(token)
    token_id = token[4:16]
    assert token_id in created.stderr

    listed = _govledger(sqlite_url, key_dir, "tokens", "list")
    assert listed.returncode == 0, listed.stderr
    assert token_id in listed.stdout
    assert "auditor" in listed.stdout
    assert token not in listed.stdout
    assert token.split("_", 2)[2] not in listed.stdout

    revoked = _govledger(sqlite_url, key_dir, "--json", "tokens", "revoke", token_id)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"] is not None


def test_cli_tokens_revoke_unknown_exits_2(sqlite_url: str, key_dir: Path) -> None:
    create_ledger(sqlite_url, key_dir)[0].close()
    result = _govledger(sqlite_url, key_dir, "tokens", "revoke", "0123456789ab")
    assert result.returncode == 2
    assert "tokens list" in result.stderr


def test_cli_tokens_create_rejects_unknown_role(sqlite_url: str, key_dir: Path) -> None:
    create_ledger(sqlite_url, key_dir)[0].close()
    result = _govledger(sqlite_url, key_dir, "tokens", "create", "x", "--role", "root")
    assert result.returncode == 2
    assert "appender" in result.stderr
