"""Builders shared by the policy tests: ledgers at known times, records, evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ledger import Ledger, LedgerConfig
from ledger.entries import format_timestamp
from policies.config import PolicyConfig
from policies.evidence import Evidence, Period

ORIGIN = "test.example/ledger"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand, so that every recorded_at is known."""

    def __init__(self, moment: datetime = T0) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def at(self, moment: datetime) -> Clock:
        self.moment = moment
        return self


def create_ledger(url: str, key_dir: Path, clock: Clock) -> Ledger:
    return Ledger.create(
        url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir), clock=clock
    )


def stamp(moment: datetime) -> str:
    """RFC 3339 text of a time, as records carry it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def text(moment: datetime) -> str:
    """The ledger's recorded_at text of a time."""
    return format_timestamp(moment)


def annotation(
    item: str,
    label: Any,
    *,
    actor: str = "user:ann-1",
    occurred: datetime = T0,
    guideline: str | None = "v1",
    dataset: str = "ds",
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "annotation",
        "actor": actor,
        "occurred_at": stamp(occurred),
        "item": {"dataset": dataset, "id": item},
        "label": label,
    }
    if guideline is not None:
        record["guideline"] = guideline
    return record


def decision(
    item: str,
    confidence: float,
    *,
    output: Any = "approve",
    actor: str = "svc:scorer",
    occurred: datetime = T0,
    model: str = "scorer",
    version: str = "1.0",
    explanation: Any = None,
    input_sha256: str | None = "ab" * 32,
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": "decision",
        "actor": actor,
        "occurred_at": stamp(occurred),
        "item": {"dataset": "cases", "id": item},
        "model": {"name": model, "version": version},
        "output": output,
        "confidence": confidence,
        **extra,
    }
    if explanation is not None:
        record["explanation"] = explanation
    if input_sha256 is not None:
        record["input_sha256"] = input_sha256
    return record


def review(
    target: int | str,
    verdict: str = "accept",
    *,
    actor: str = "user:rev-1",
    occurred: datetime = T0,
) -> dict[str, Any]:
    where = {"seq": target} if isinstance(target, int) else {"entry_hash": target}
    return {
        "kind": "review",
        "actor": actor,
        "occurred_at": stamp(occurred),
        "target": where,
        "verdict": verdict,
    }


def evidence(
    ledger: Ledger,
    *,
    policy: PolicyConfig | None = None,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    verification: Any = None,
) -> Evidence:
    """An Evidence over the whole ledger; use it in a `with` block."""
    return Evidence(
        ledger,
        period=Period.from_bounds(start, end),
        policy=policy or PolicyConfig(),
        tree_size=ledger.size,
        now=now or T0 + timedelta(days=30),
        verification=verification,
    )
