"""The evidence layer: SQL aggregates over the ledger's tables for policy checks.

Checks never read entries one by one. Each question, such as how many
decisions needed review or the label coincidences of an inter-annotator
agreement, is one SQLAlchemy Core statement that runs the same on SQLite
and PostgreSQL and returns counts. An evaluation thus issues a bounded
number of statements whatever the size of the ledger.
Findings cite at most ``SAMPLE_SIZE`` seqs each, read by bounded queries.

Every statement is scoped to the first ``tree_size`` entries, so an
evaluation describes one ledger state even while appends go on, and most
are scoped to a period on ``recorded_at`` (RFC 3339 UTC text, which sorts
in time order; start inclusive, end exclusive).

Record fields that have no derived column (a label, a verdict, an
explanation) are read from the entry's canonical bytes with the database's
JSON functions: ``json_extract`` on SQLite, the ``json`` type on
PostgreSQL, whose ``#>`` operator returns the member's text verbatim.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Float,
    Integer,
    Text,
    and_,
    case,
    cast,
    distinct,
    exists,
    extract,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSON, TIMESTAMP
from sqlalchemy.engine import Connection, Result
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.selectable import CTE, FromClause

from ledger.canonical import canonical_bytes
from ledger.entries import format_timestamp
from ledger.errors import InputError, StoreError
from ledger.records import parse_occurred_at
from ledger.retention import retention_cutoff
from ledger.store import CheckpointRow, EntryRow, PersonalValue

from .config import PolicyConfig

if TYPE_CHECKING:
    from ledger import Ledger

__all__ = [
    "CONFIDENCE_BINS",
    "SAMPLE_SIZE",
    "ActorCount",
    "ClockSkew",
    "Coincidences",
    "DriftCounts",
    "DriftWindows",
    "Erasures",
    "Evidence",
    "Explanations",
    "KindCount",
    "ModelOverrides",
    "Oversight",
    "Period",
    "Provenance",
    "Reports",
    "Retention",
    "ReviewPair",
    "Traceability",
    "parse_time_bound",
]

logger = logging.getLogger(__name__)

# Seqs cited per finding; a finding's ``count`` gives the full number.
SAMPLE_SIZE = 10
# Equal-width bins of decision confidence over [0, 1] for drift (PSI).
CONFIDENCE_BINS = 10

ENTRIES = EntryRow.__table__
PERSONAL_VALUES = PersonalValue.__table__
CHECKPOINTS = CheckpointRow.__table__

# Time zone-aware RFC 3339 date-time, the only text cast to a timestamp.
_RFC3339_PG = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*"
)
_JSON_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")

T = TypeVar("T")


def parse_time_bound(value: str | datetime | None, name: str) -> str | None:
    """Normalise a period bound to RFC 3339 UTC text with microseconds.

    Accepts a timezone-aware ``datetime``, RFC 3339 text with a time zone,
    or a date ``YYYY-MM-DD`` (midnight UTC).

    Raises:
        InputError: the value is not such a time; the message names ``name``.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError(
                f"{name}: {value.isoformat()} has no time zone; give an aware time",
                reason="invalid-time",
            )
        return format_timestamp(value)
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += "T00:00:00Z"
    try:
        return format_timestamp(parse_occurred_at(text))
    except ValueError as error:
        raise InputError(
            f"{name}: {value!r} is not a time: {error}; use 2026-01-31 or "
            "2026-01-31T00:00:00Z",
            reason="invalid-time",
        ) from None


def _parse_stored_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    """The evaluated period on ``recorded_at``: start inclusive, end exclusive."""

    start: str | None = None
    end: str | None = None

    @classmethod
    def from_bounds(
        cls, start: str | datetime | None, end: str | datetime | None
    ) -> Period:
        """Build a period from user bounds.

        Raises:
            InputError: a bound is not a time, or start is not before end.
        """
        period = cls(parse_time_bound(start, "start"), parse_time_bound(end, "end"))
        if period.start and period.end and period.start >= period.end:
            raise InputError(
                f"the period start {period.start} is not before its end "
                f"{period.end}; give --from earlier than --to",
                reason="invalid-period",
            )
        return period


@dataclass(frozen=True)
class KindCount:
    """Entries of one kind in the period, with their seq and time span."""

    kind: str
    entries: int
    first_seq: int
    last_seq: int
    first_recorded_at: str
    last_recorded_at: str


@dataclass(frozen=True)
class ActorCount:
    """Entries in the period by one actor id, exactly as recorded."""

    actor: str | None
    entries: int


@dataclass(frozen=True)
class Oversight:
    """Decisions in the period that needed human review, and their reviews.

    Delays are in seconds: the first human review's ``occurred_at`` minus
    the decision's ``recorded_at``. ``overdue`` decisions have no human
    review and their deadline has passed at evaluation time; ``pending``
    ones have none but are still within it.
    """

    decisions: int
    low_confidence: int
    adverse: int
    needing_review: int
    reviewed: int
    reviewed_by_service_only: int
    within_deadline: int
    late: int
    overdue: int
    pending: int
    max_delay_s: float | None
    mean_delay_s: float | None


@dataclass(frozen=True)
class ModelOverrides:
    """Human-reviewed decisions of one model version and how many were overridden."""

    model_name: str | None
    model_version: str | None
    reviewed: int
    overridden: int


@dataclass(frozen=True)
class DriftWindows:
    """The baseline and current windows that drift compares.

    The windows bound ``split_on``: ``recorded_at`` for ``previous-period``,
    ``occurred_at`` for ``first-half``, so that decisions imported in bulk
    are still split by when they were made. Either way the decisions are
    those recorded in the evaluation period.
    """

    method: str
    baseline_start: str | None
    baseline_end: str | None
    current_start: str | None
    current_end: str | None
    split_on: str = "recorded_at"


@dataclass(frozen=True)
class DriftCounts:
    """Decision counts per confidence bin of one model, in both windows."""

    model_name: str | None
    baseline: tuple[int, ...]
    current: tuple[int, ...]


@dataclass(frozen=True)
class ReviewPair:
    """Reviews in the period by one reviewer of entries by one actor."""

    reviewer: str | None
    target_actor: str | None
    target_kind: str
    reviews: int


@dataclass(frozen=True)
class Provenance:
    """Annotations in the period and the provenance fields they lack."""

    annotations: int
    incomplete: int
    missing_dataset: int
    missing_item: int
    missing_guideline: int
    with_source: int
    guideline_versions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Coincidences:
    """The coincidence matrix of annotation labels (Krippendorff, nominal).

    ``cells[(c, k)]`` is the exact number of c-k pairs of values within
    items, each pair weighted 1 / (m - 1) for an item with m values. Labels
    are the canonical JSON text of the annotation's ``label``.
    """

    units: int
    values: int
    disagreeing_units: int
    cells: dict[tuple[str, str], Fraction]


@dataclass(frozen=True)
class ClockSkew:
    """Skew (``recorded_at`` minus ``occurred_at``, seconds) of entries in the period.

    ``future`` entries have a skew below minus the tolerance (they occurred
    after they were recorded); ``late`` ones above the tolerance.
    """

    entries: int
    future: int
    late: int
    min_skew_s: float | None
    max_skew_s: float | None


@dataclass(frozen=True)
class Retention:
    """Personal values kept, per record kind, and those past retention.

    ``per_kind[kind] = (entries with personal values, of them expired)``.
    """

    per_kind: dict[str, tuple[int, int]]
    personal_values: int
    personal_fields: tuple[str, ...]
    entries_with_subject: int


@dataclass(frozen=True)
class Erasures:
    """Erasures on request in the period and their time to fulfil (seconds).

    ``retention_runs`` counts the erasure entries of expired retention.
    """

    erasures: int
    retention_runs: int
    measured: int
    within_deadline: int
    late: int
    max_delay_s: float | None
    mean_delay_s: float | None
    personal_data_present: bool


@dataclass(frozen=True)
class Explanations:
    """Decisions in the period carrying a non-empty ``explanation``."""

    decisions: int
    explained: int
    adverse: int
    adverse_explained: int


@dataclass(frozen=True)
class Traceability:
    """Decisions in the period and the identifying fields they lack."""

    decisions: int
    incomplete: int
    missing_model_version: int
    missing_input_hash: int
    missing_item: int


@dataclass(frozen=True)
class Reports:
    """``report_issued`` entries (audit packs) that reviewed the period.

    ``reviews`` counts those recorded in the period or covering it, each
    once; ``last_recorded_at`` is the latest of them.
    """

    reviews: int
    recorded_in_period: int
    covering_period: int
    last_recorded_at: str | None


@dataclass(frozen=True)
class Checkpoints:
    """Signed checkpoints of the evaluated tree."""

    count: int
    latest_tree_size: int | None
    latest_created_at: str | None


def _number(value: Any) -> float | None:
    """Convert a SQL aggregate (float, or Decimal from PostgreSQL) to float."""
    return None if value is None else float(value)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


class Evidence:
    """Evidence about one ledger state, one period and one policy.

    Use it as a context manager. It keeps one read connection open (a
    REPEATABLE READ transaction on PostgreSQL, a read transaction on
    SQLite in WAL mode), so all statements see the same data. Each
    aggregate is computed once and kept.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        period: Period,
        policy: PolicyConfig,
        tree_size: int,
        now: datetime,
        verification: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.period = period
        self.policy = policy
        self.tree_size = tree_size
        self.now = now
        self._verification = verification
        self._progress = progress
        self._sqlite = ledger.engine.dialect.name == "sqlite"
        self._connection: Connection | None = None
        self._cache: dict[str, Any] = {}

    def __enter__(self) -> Evidence:
        if not self._sqlite:
            self._refresh_statistics()
        connection = self.ledger.engine.connect()
        if not self._sqlite:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        self._connection = connection
        return self

    def _refresh_statistics(self) -> None:
        """Run ANALYZE on the ledger's tables when PostgreSQL's statistics are stale.

        Without statistics (right after a bulk import, before autovacuum
        runs) the planner takes each table for a few rows and joins by
        nested loops, which turns the aggregates quadratic. Statistics count
        as stale when a table was never analyzed or more than 10% of its
        rows (plus 50) changed since. A failure (no privilege) is logged and
        evaluation goes on.
        """
        stale = []
        try:
            with self.ledger.engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT relname, n_live_tup, n_mod_since_analyze, "
                        "coalesce(last_analyze, last_autoanalyze) IS NULL "
                        "FROM pg_stat_user_tables WHERE relname IN "
                        "('entries', 'personal_values')"
                    )
                ).all()
            for name, live, changed, never in rows:
                if never or changed > 0.1 * live + 50:
                    stale.append(str(name))
            if not stale:
                return
            engine = self.ledger.engine.execution_options(isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                for name in sorted(stale):
                    logger.debug("refreshing planner statistics of %s", name)
                    connection.execute(text(f"ANALYZE {name}"))
        except DBAPIError as error:
            logger.warning(
                "could not refresh the planner statistics of %s (%s); evaluation "
                "may be slow until `ANALYZE entries` runs",
                ", ".join(stale) or "the ledger tables",
                error.orig,
            )

    def __exit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- plumbing ----------------------------------------------------------

    def _run(self, statement: Any) -> Result[Any]:
        if self._connection is None:
            raise RuntimeError("Evidence is used outside its `with` block")
        try:
            return self._connection.execute(statement)
        except DBAPIError as error:
            raise StoreError(
                f"evidence query failed: {error.orig}; check the database and "
                "run `govledger verify`"
            ) from None

    def _memo(self, name: str, compute: Callable[[], T]) -> T:
        if name not in self._cache:
            self._cache[name] = compute()
        return self._cache[name]  # type: ignore[no-any-return]

    def _in_period(self, recorded_at: ColumnElement[Any]) -> list[ColumnElement[bool]]:
        """Conditions: ``recorded_at`` within the period."""
        conditions = []
        if self.period.start is not None:
            conditions.append(recorded_at >= self.period.start)
        if self.period.end is not None:
            conditions.append(recorded_at < self.period.end)
        return conditions

    def _scope(self, table: FromClause) -> list[ColumnElement[bool]]:
        """Conditions: within the evaluated tree and the period."""
        return [table.c.seq < self.tree_size, *self._in_period(table.c.recorded_at)]

    def _sample(
        self, statement: Select[Any], limit: int = SAMPLE_SIZE
    ) -> tuple[int, ...]:
        """Run a query of one seq column; return the first ``limit`` seqs."""
        column = statement.selected_columns[0]
        rows = self._run(statement.order_by(column).limit(limit)).scalars()
        return tuple(int(seq) for seq in rows)

    def _json_path(self, path: Sequence[str]) -> str:
        for key in path:
            if not _JSON_KEY.match(key):
                raise ValueError(f"JSON key {key!r} is not a plain member name")
        return ".".join(path)

    def json_text(self, body: ColumnElement[Any], *path: str) -> ColumnElement[str]:
        """Return the JSON text of a member of an entry body, ``'null'`` if absent.

        Within one database the text is a function of the canonical value,
        so it compares values exactly: on PostgreSQL it is the member's
        RFC 8785 text verbatim, on SQLite ``json_quote`` re-renders it.
        """
        dotted = self._json_path(path)
        if self._sqlite:
            return func.json_quote(func.json_extract(cast(body, Text), f"$.{dotted}"))
        member = cast(func.convert_from(body, "UTF8"), JSON).op("#>")(
            literal_column("'{" + dotted.replace(".", ",") + "}'")
        )
        return func.coalesce(cast(member, Text), "null")

    def json_scalar(self, body: ColumnElement[Any], *path: str) -> ColumnElement[str]:
        """Return a string member of an entry body as plain text, NULL if absent."""
        dotted = self._json_path(path)
        if self._sqlite:
            return func.json_extract(cast(body, Text), f"$.{dotted}")
        return cast(func.convert_from(body, "UTF8"), JSON).op("#>>")(
            literal_column("'{" + dotted.replace(".", ",") + "}'")
        )

    def epoch(self, column: ColumnElement[Any]) -> ColumnElement[float]:
        """Seconds since 1970 of a derived time column (``...SS.ffffffZ``), exact."""
        if self._sqlite:
            whole = cast(func.strftime("%s", column), Integer)
            return whole + cast(func.substr(column, 21, 6), Integer) / 1000000.0
        return cast(extract("epoch", cast(column, TIMESTAMP(timezone=True))), Float)

    def epoch_of_text(self, text: ColumnElement[Any]) -> ColumnElement[float]:
        """Seconds since 1970 of RFC 3339 text from a record; NULL if not such text.

        On SQLite the value comes from ``julianday``, exact to about a
        millisecond.
        """
        if self._sqlite:
            shaped = and_(
                text.op("GLOB")(_RFC3339_GLOB),
                or_(
                    text.op("GLOB")("*Z"),
                    text.op("GLOB")("*[+-][0-9][0-9]:[0-9][0-9]"),
                ),
            )
            seconds = (func.julianday(text) - 2440587.5) * 86400.0
            return case((shaped, seconds), else_=None)
        seconds = cast(extract("epoch", cast(text, TIMESTAMP(timezone=True))), Float)
        return case((text.op("~")(_RFC3339_PG), seconds), else_=None)

    # -- the ledger as a whole ----------------------------------------------

    def verification(self) -> Any:
        """Return the ``VerifyResult`` of the whole ledger, verifying it once."""
        if self._verification is None:
            logger.debug("verifying the ledger for the chain-integrity check")
            self._verification = self.ledger.verify(progress=self._progress)
        return self._verification

    def checkpoints(self) -> Checkpoints:
        """Count the signed checkpoints within the evaluated tree."""

        def compute() -> Checkpoints:
            table = CHECKPOINTS
            row = self._run(
                select(
                    func.count(),
                    func.max(table.c.tree_size),
                    func.max(table.c.created_at),
                ).where(table.c.tree_size <= self.tree_size)
            ).one()
            return Checkpoints(int(row[0]), row[1], row[2])

        return self._memo("checkpoints", compute)

    def kinds(self) -> dict[str, KindCount]:
        """Count the entries per kind in the period, with seq and time spans."""

        def compute() -> dict[str, KindCount]:
            e = ENTRIES.alias("e")
            rows = self._run(
                select(
                    e.c.kind,
                    func.count(),
                    func.min(e.c.seq),
                    func.max(e.c.seq),
                    func.min(e.c.recorded_at),
                    func.max(e.c.recorded_at),
                )
                .where(*self._scope(e))
                .group_by(e.c.kind)
            ).all()
            return {row[0]: KindCount(row[0], int(row[1]), *row[2:]) for row in rows}

        return self._memo("kinds", compute)

    def _report_conditions(self, e: FromClause) -> tuple[Any, Any]:
        """Return conditions on a pack: recorded in the period, covering it.

        A pack's ``period`` (``start`` and ``end``, RFC 3339 UTC text or
        null for open) covers the evaluated period when the two overlap.
        """
        in_period = and_(true(), *self._in_period(e.c.recorded_at))
        start = self.json_scalar(e.c.body, "record", "period", "start")
        end = self.json_scalar(e.c.body, "record", "period", "end")
        overlap = []
        if self.period.end is not None:
            overlap.append(or_(start.is_(None), start < self.period.end))
        if self.period.start is not None:
            overlap.append(or_(end.is_(None), end > self.period.start))
        covering = and_(true(), *overlap)
        return in_period, covering

    def reports(self) -> Reports:
        """Count the audit packs recorded in the period or covering it."""

        def compute() -> Reports:
            e = ENTRIES.alias("e")
            in_period, covering = self._report_conditions(e)
            row = self._run(
                select(
                    func.count(),
                    _count_if(in_period),
                    _count_if(covering),
                    func.max(e.c.recorded_at),
                ).where(
                    e.c.kind == "report_issued",
                    e.c.seq < self.tree_size,
                    or_(in_period, covering),
                )
            ).one()
            return Reports(int(row[0]), int(row[1]), int(row[2]), row[3])

        return self._memo("reports", compute)

    def report_samples(self) -> tuple[int, ...]:
        """Return the seqs of audit packs recorded in or covering the period."""
        e = ENTRIES.alias("e")
        in_period, covering = self._report_conditions(e)
        return self._sample(
            select(e.c.seq).where(
                e.c.kind == "report_issued",
                e.c.seq < self.tree_size,
                or_(in_period, covering),
            )
        )

    def entries_in_period(self) -> int:
        """Count all entries recorded in the period."""
        return sum(count.entries for count in self.kinds().values())

    # -- actors --------------------------------------------------------------

    def actors(self) -> list[ActorCount]:
        """Count the entries per distinct actor id in the period."""

        def compute() -> list[ActorCount]:
            e = ENTRIES.alias("e")
            rows = self._run(
                select(e.c.actor, func.count())
                .where(*self._scope(e))
                .group_by(e.c.actor)
            ).all()
            return [ActorCount(row[0], int(row[1])) for row in rows]

        return self._memo("actors", compute)

    def actor_samples(self, actors: Sequence[str | None]) -> tuple[int, ...]:
        """Return the first seqs in the period by any of ``actors`` (None: no actor)."""
        e = ENTRIES.alias("e")
        named = [actor for actor in actors if actor is not None]
        conditions = []
        if named:
            conditions.append(e.c.actor.in_(named))
        if len(named) < len(actors):
            conditions.append(e.c.actor.is_(None))
        if not conditions:
            return ()
        return self._sample(select(e.c.seq).where(*self._scope(e), or_(*conditions)))

    # -- decisions and reviews -------------------------------------------------

    def _adverse_texts(self) -> list[str]:
        """Render the configured adverse outputs as the database renders JSON."""

        def compute() -> list[str]:
            outputs = [
                canonical_bytes(value).decode("utf-8")
                for value in self.policy.adverse_outputs
            ]
            if not outputs or not self._sqlite:
                return outputs
            rendered = self._run(
                select(
                    *[func.json_quote(func.json_extract(text, "$")) for text in outputs]
                )
            ).one()
            return [str(value) for value in rendered]

        return self._memo("adverse_texts", compute)

    def adverse(self, decision: FromClause) -> ColumnElement[bool]:
        """Condition: the decision's ``output`` is one of the adverse outputs."""
        texts = self._adverse_texts()
        if not texts:
            return false()
        return self.json_text(decision.c.body, "record", "output").in_(texts)

    def needs_review(self, decision: FromClause) -> ColumnElement[bool]:
        """Condition: confidence below the policy threshold, or an adverse output."""
        return or_(
            decision.c.confidence < self.policy.review_confidence_below,
            self.adverse(decision),
        )

    def _materialized(self, statement: Select[Any], name: str, *, always: bool) -> CTE:
        """Wrap a statement as a CTE computed once.

        SQLite would otherwise flatten the subquery into the outer join and
        evaluate it per outer row, which is quadratic; PostgreSQL plans the
        inlined form better unless ``always`` (a per-row table whose columns
        the outer query repeats).
        """
        cte = statement.cte(name)
        if always:
            return cte.prefix_with("MATERIALIZED")
        return cte.prefix_with("MATERIALIZED", dialect="sqlite")

    def review_targets(self) -> CTE:
        """Reviews in the evaluated tree with the seq they target.

        A review that names its target by entry hash is resolved to the
        seq through the entry-hash index. Reviews count whenever they were
        recorded, also after the period, because a decision late in the
        period is often reviewed after it.
        """
        r = ENTRIES.alias("r")
        t = ENTRIES.alias("t")
        by_hash = and_(
            r.c.target_seq.is_(None),
            t.c.entry_hash == r.c.target_hash,
            t.c.seq < self.tree_size,
        )
        statement = (
            select(
                r.c.seq.label("review_seq"),
                r.c.actor.label("reviewer"),
                r.c.occurred_at.label("review_occurred_at"),
                r.c.recorded_at.label("review_recorded_at"),
                func.coalesce(r.c.target_seq, t.c.seq).label("target"),
                self.json_scalar(r.c.body, "record", "verdict").label("verdict"),
            )
            .select_from(r.outerjoin(t, by_hash))
            .where(r.c.kind == "review", r.c.seq < self.tree_size)
        )
        return self._materialized(statement, "review_targets", always=True)

    def _first_reviews(self) -> CTE:
        """Per reviewed seq: the first human review's time and the review count.

        Columns ``target``, ``first_human`` (epoch seconds of the earliest
        ``occurred_at`` of a review by a ``user:``, NULL if only services
        reviewed) and ``reviews``.
        """
        targets = self.review_targets()
        human = targets.c.reviewer.like("user:%")
        first_human = func.min(
            case((human, self.epoch(targets.c.review_occurred_at)), else_=None)
        )
        statement = (
            select(
                targets.c.target,
                first_human.label("first_human"),
                func.count().label("reviews"),
            )
            .where(targets.c.target.is_not(None))
            .group_by(targets.c.target)
        )
        return self._materialized(statement, "first_reviews", always=False)

    def _due(self, decision: FromClause) -> ColumnElement[bool]:
        """Condition: the review deadline of the decision has passed by now."""
        deadline_s = self.policy.review_deadline_hours * 3600.0
        return self.epoch(decision.c.recorded_at) + deadline_s < self.now.timestamp()

    def oversight(self) -> Oversight:
        """Count decisions needing human review and how they were reviewed.

        A review counts as human oversight when its actor is a ``user:``;
        reviews by a ``svc:`` actor are counted apart. Two statements: one
        over the decisions alone, one that walks the reviewed seqs and looks
        each decision up by seq, so neither joins two large sets row by row.
        """

        def compute() -> Oversight:
            d = ENTRIES.alias("d")
            needs = self.needs_review(d)
            totals = self._run(
                select(
                    func.count(),
                    _count_if(d.c.confidence < self.policy.review_confidence_below),
                    _count_if(self.adverse(d)),
                    _count_if(needs),
                    _count_if(and_(needs, self._due(d))),
                ).where(d.c.kind == "decision", *self._scope(d))
            ).one()
            first = self._first_reviews()
            deadline_s = self.policy.review_deadline_hours * 3600.0
            delay = first.c.first_human - self.epoch(d.c.recorded_at)
            human = first.c.first_human.is_not(None)
            reviewed = self._run(
                select(
                    _count_if(human),
                    _count_if(~human),
                    _count_if(delay <= deadline_s),
                    _count_if(delay > deadline_s),
                    _count_if(and_(human, self._due(d))),
                    func.max(delay),
                    func.avg(delay),
                )
                .select_from(first.join(d, d.c.seq == first.c.target))
                .where(d.c.kind == "decision", *self._scope(d), needs)
            ).one()
            decisions, low, adverse, needing, due = (int(v) for v in totals)
            human_reviewed, service_only, within, late, due_reviewed = (
                int(value) for value in reviewed[:5]
            )
            overdue = due - due_reviewed
            return Oversight(
                decisions=decisions,
                low_confidence=low,
                adverse=adverse,
                needing_review=needing,
                reviewed=human_reviewed,
                reviewed_by_service_only=service_only,
                within_deadline=within,
                late=late,
                overdue=overdue,
                pending=needing - human_reviewed - overdue,
                max_delay_s=_number(reviewed[5]),
                mean_delay_s=_number(reviewed[6]),
            )

        return self._memo("oversight", compute)

    def oversight_samples(self, which: str) -> tuple[int, ...]:
        """Return decision seqs that are ``overdue`` or were reviewed ``late``."""
        d = ENTRIES.alias("d")
        first = self._first_reviews()
        scope = [d.c.kind == "decision", *self._scope(d), self.needs_review(d)]
        if which == "late":
            deadline_s = self.policy.review_deadline_hours * 3600.0
            delay = first.c.first_human - self.epoch(d.c.recorded_at)
            return self._sample(
                select(d.c.seq)
                .select_from(first.join(d, d.c.seq == first.c.target))
                .where(*scope, delay > deadline_s)
            )
        if which != "overdue":
            raise ValueError(f"unknown oversight sample {which!r}")
        human_reviewed = select(first.c.target).where(first.c.first_human.is_not(None))
        return self._sample(
            select(d.c.seq).where(
                *scope, self._due(d), d.c.seq.not_in(human_reviewed.scalar_subquery())
            )
        )

    def overrides(self, reviewers: str = "user:") -> list[ModelOverrides]:
        """Count reviewed decisions per model and those rejected or corrected.

        Only reviews whose actor starts with ``reviewers`` count: ``user:``
        for human reviews, ``svc:`` for services such as a ground-truth
        feed. A decision counts as overridden when at least one such review
        of it has the verdict ``reject`` or ``correct``.
        """

        def compute() -> list[ModelOverrides]:
            d = ENTRIES.alias("d")
            targets = self.review_targets()
            overridden = case(
                (targets.c.verdict.in_(("reject", "correct")), d.c.seq), else_=None
            )
            rows = self._run(
                select(
                    d.c.model_name,
                    d.c.model_version,
                    func.count(distinct(d.c.seq)),
                    func.count(distinct(overridden)),
                )
                .select_from(d.join(targets, targets.c.target == d.c.seq))
                .where(
                    d.c.kind == "decision",
                    *self._scope(d),
                    targets.c.reviewer.like(f"{reviewers}%"),
                )
                .group_by(d.c.model_name, d.c.model_version)
                .order_by(d.c.model_name, d.c.model_version)
            ).all()
            return [ModelOverrides(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

        return self._memo(f"overrides:{reviewers}", compute)

    def override_samples(self, reviewers: str = "user:") -> tuple[int, ...]:
        """Return the seqs of reviews by ``reviewers`` that rejected or
        corrected a decision."""
        d = ENTRIES.alias("d")
        targets = self.review_targets()
        return self._sample(
            select(targets.c.review_seq)
            .select_from(d.join(targets, targets.c.target == d.c.seq))
            .where(
                d.c.kind == "decision",
                *self._scope(d),
                targets.c.reviewer.like(f"{reviewers}%"),
                targets.c.verdict.in_(("reject", "correct")),
            )
        )

    def review_pairs(self) -> list[ReviewPair]:
        """Count reviews in the period per (reviewer, actor of the reviewed entry)."""

        def compute() -> list[ReviewPair]:
            targets = self.review_targets()
            t = ENTRIES.alias("target_entry")
            period = self._in_period(targets.c.review_recorded_at)
            rows = self._run(
                select(targets.c.reviewer, t.c.actor, t.c.kind, func.count())
                .select_from(
                    targets.join(
                        t, and_(t.c.seq == targets.c.target, t.c.seq < self.tree_size)
                    )
                )
                .where(*period)
                .group_by(targets.c.reviewer, t.c.actor, t.c.kind)
            ).all()
            return [ReviewPair(r[0], r[1], r[2], int(r[3])) for r in rows]

        return self._memo("review_pairs", compute)

    def reviews_in_period(self) -> int:
        """Count the review entries recorded in the period."""
        kind = self.kinds().get("review")
        return 0 if kind is None else kind.entries

    def review_pair_samples(self, reviewer: str, target_actor: str) -> tuple[int, ...]:
        """Return review seqs in the period by ``reviewer`` of ``target_actor``."""
        targets = self.review_targets()
        t = ENTRIES.alias("target_entry")
        period = self._in_period(targets.c.review_recorded_at)
        return self._sample(
            select(targets.c.review_seq)
            .select_from(targets.join(t, t.c.seq == targets.c.target))
            .where(
                *period,
                t.c.seq < self.tree_size,
                targets.c.reviewer == reviewer,
                t.c.actor == target_actor,
            )
        )

    # -- drift ---------------------------------------------------------------

    def drift_windows(self) -> DriftWindows | None:
        """Choose the baseline and current windows; None without decisions.

        ``previous-period`` compares the period with the one of equal length
        just before it, so it needs both period bounds. Otherwise, and with
        ``first-half``, the first half of the period is the baseline and the
        second half the current window. An open bound is replaced by the
        first or last ``recorded_at`` of the period's decisions.
        """
        start, end = self.period.start, self.period.end
        if self.policy.drift_baseline == "previous-period" and start and end:
            begin, finish = _parse_stored_time(start), _parse_stored_time(end)
            before = format_timestamp(begin - (finish - begin))
            return DriftWindows("previous-period", before, start, start, end)
        decisions = self.kinds().get("decision")
        if decisions is None:
            return None
        first, last = self._decision_occurred_bounds()
        if first is None or last is None:
            return None
        begin, finish = _parse_stored_time(first), _parse_stored_time(last)
        middle = format_timestamp(begin + (finish - begin) / 2)
        method = "first-half"
        if self.policy.drift_baseline == "previous-period":
            method = "first-half (previous-period needs both period bounds)"
        return DriftWindows(method, first, middle, middle, last, "occurred_at")

    def _decision_occurred_bounds(self) -> tuple[str | None, str | None]:
        """Return the first and last ``occurred_at`` of the period's decisions."""

        def compute() -> tuple[str | None, str | None]:
            d = ENTRIES.alias("d")
            row = self._run(
                select(func.min(d.c.occurred_at), func.max(d.c.occurred_at)).where(
                    d.c.kind == "decision", *self._scope(d)
                )
            ).one()
            return row[0], row[1]

        return self._memo("decision_occurred_bounds", compute)

    def confidence_bin(self, confidence: ColumnElement[Any]) -> ColumnElement[int]:
        """Return the bin (0 to 9) of a confidence: bin i is [i/10, (i+1)/10).

        A confidence of exactly 1.0 falls in the last bin.
        """
        edges = [
            (confidence < index / CONFIDENCE_BINS, index - 1)
            for index in range(1, CONFIDENCE_BINS)
        ]
        return case(*edges, else_=CONFIDENCE_BINS - 1)

    def drift_counts(self) -> list[DriftCounts]:
        """Count decisions per model, window and confidence bin."""

        def compute() -> list[DriftCounts]:
            windows = self.drift_windows()
            if windows is None:
                return []
            d = ENTRIES.alias("d")
            conditions = [
                d.c.kind == "decision",
                d.c.seq < self.tree_size,
                d.c.confidence.is_not(None),
            ]
            split = (
                d.c.occurred_at
                if windows.split_on == "occurred_at"
                else d.c.recorded_at
            )
            if windows.split_on == "occurred_at":
                # Decisions of the period, split where they were made.
                conditions.extend(self._scope(d))
            else:
                if windows.baseline_start is not None:
                    conditions.append(split >= windows.baseline_start)
                if windows.current_end is not None:
                    conditions.append(split < windows.current_end)
            assert windows.current_start is not None
            window = case((split < windows.current_start, 0), else_=1)
            bin_index = self.confidence_bin(d.c.confidence)
            rows = self._run(
                select(d.c.model_name, window, bin_index, func.count())
                .where(*conditions)
                .group_by(d.c.model_name, window, bin_index)
            ).all()
            per_model: dict[str | None, list[list[int]]] = {}
            for model, which, index, count in rows:
                bins = per_model.setdefault(
                    model, [[0] * CONFIDENCE_BINS, [0] * CONFIDENCE_BINS]
                )
                bins[int(which)][int(index)] += int(count)
            return [
                DriftCounts(model, tuple(bins[0]), tuple(bins[1]))
                for model, bins in sorted(
                    per_model.items(), key=lambda item: item[0] or ""
                )
            ]

        return self._memo("drift_counts", compute)

    # -- annotations -----------------------------------------------------------

    def provenance(self) -> Provenance:
        """Count annotations in the period lacking dataset, item or guideline."""

        def compute() -> Provenance:
            a = ENTRIES.alias("a")
            guideline = self.json_scalar(a.c.body, "record", "guideline")
            scope = [a.c.kind == "annotation", *self._scope(a)]
            row = self._run(
                select(
                    func.count(),
                    _count_if(
                        or_(
                            a.c.item_dataset.is_(None),
                            a.c.item_id.is_(None),
                            guideline.is_(None),
                        )
                    ),
                    _count_if(a.c.item_dataset.is_(None)),
                    _count_if(a.c.item_id.is_(None)),
                    _count_if(guideline.is_(None)),
                    _count_if(a.c.source_system.is_not(None)),
                ).where(*scope)
            ).one()
            versions = self._run(
                select(guideline, func.count())
                .where(*scope, guideline.is_not(None))
                .group_by(guideline)
                .order_by(func.count().desc(), guideline)
                .limit(20)
            ).all()
            return Provenance(
                *(int(value) for value in row),
                guideline_versions={str(name): int(count) for name, count in versions},
            )

        return self._memo("provenance", compute)

    def provenance_samples(self) -> tuple[int, ...]:
        """Return seqs of annotations in the period without a guideline or item."""
        a = ENTRIES.alias("a")
        guideline = self.json_scalar(a.c.body, "record", "guideline")
        return self._sample(
            select(a.c.seq).where(
                a.c.kind == "annotation",
                *self._scope(a),
                or_(
                    guideline.is_(None),
                    a.c.item_id.is_(None),
                    a.c.item_dataset.is_(None),
                ),
            )
        )

    def _labels(self) -> FromClause:
        a = ENTRIES.alias("a")
        return (
            select(
                a.c.seq.label("seq"),
                a.c.item_dataset.label("dataset"),
                a.c.item_id.label("item"),
                self.json_text(a.c.body, "record", "label").label("label"),
            )
            .where(
                a.c.kind == "annotation",
                a.c.item_id.is_not(None),
                a.c.item_dataset.is_not(None),
                *self._scope(a),
            )
            .subquery("labels")
        )

    def coincidences(self) -> Coincidences:
        """Build the nominal coincidence matrix of annotation labels in SQL.

        Items with at least two annotations in the period are the units; each
        annotation is one value (two by the same annotator count as two).
        For labels c and k the statement sums n_c * (n_k - [c == k]) per item
        size m; the division by m - 1 is done exactly here (Krippendorff,
        "Computing Krippendorff's Alpha-Reliability", 2011).
        """

        def compute() -> Coincidences:
            labels = self._labels()
            counts = (
                select(
                    labels.c.dataset,
                    labels.c.item,
                    labels.c.label,
                    func.count().label("n"),
                )
                .group_by(labels.c.dataset, labels.c.item, labels.c.label)
                .cte("label_counts")
            )
            units = (
                select(counts.c.dataset, counts.c.item, func.sum(counts.c.n).label("m"))
                .group_by(counts.c.dataset, counts.c.item)
                .having(func.sum(counts.c.n) >= 2)
                .cte("units")
            )
            first, second = counts.alias("c1"), counts.alias("c2")

            def same_unit(side: FromClause) -> ColumnElement[bool]:
                return and_(
                    side.c.dataset == units.c.dataset, side.c.item == units.c.item
                )

            pairs = first.c.n * (
                second.c.n - case((first.c.label == second.c.label, 1), else_=0)
            )
            rows = self._run(
                select(first.c.label, second.c.label, units.c.m, func.sum(pairs))
                .select_from(
                    units.join(first, same_unit(first)).join(second, same_unit(second))
                )
                .group_by(first.c.label, second.c.label, units.c.m)
            ).all()
            cells: dict[tuple[str, str], Fraction] = {}
            for label_c, label_k, size, total in rows:
                key = (str(label_c), str(label_k))
                cells[key] = cells.get(key, Fraction(0)) + Fraction(
                    int(total), int(size) - 1
                )
            per_unit = self._unit_table()
            summary = self._run(
                select(
                    func.count(),
                    func.coalesce(func.sum(per_unit.c.m), 0),
                    _count_if(per_unit.c.k > 1),
                )
            ).one()
            return Coincidences(
                units=int(summary[0]),
                values=int(summary[1]),
                disagreeing_units=int(summary[2]),
                cells=cells,
            )

        return self._memo("coincidences", compute)

    def _unit_table(self) -> FromClause:
        labels = self._labels()
        return (
            select(
                labels.c.dataset,
                labels.c.item,
                func.count().label("m"),
                func.count(distinct(labels.c.label)).label("k"),
            )
            .group_by(labels.c.dataset, labels.c.item)
            .having(func.count() >= 2)
            .subquery("units_summary")
        )

    def disagreement_samples(self) -> tuple[int, ...]:
        """Return the first annotation seq of each item whose labels disagree."""
        labels = self._labels()
        first = func.min(labels.c.seq)
        return self._sample(
            select(first)
            .group_by(labels.c.dataset, labels.c.item)
            .having(func.count() >= 2, func.count(distinct(labels.c.label)) > 1)
        )

    # -- times ---------------------------------------------------------------

    def _skew_parts(self) -> tuple[FromClause, ColumnElement[float], list[Any]]:
        e = ENTRIES.alias("e")
        skew = self.epoch(e.c.recorded_at) - self.epoch(e.c.occurred_at)
        return e, skew, [*self._scope(e), e.c.occurred_at.is_not(None)]

    def clock_skew(self) -> ClockSkew:
        """Summarise ``recorded_at - occurred_at`` over the period's entries."""

        def compute() -> ClockSkew:
            _, skew, scope = self._skew_parts()
            tolerance = self.policy.clock_skew_tolerance_s
            row = self._run(
                select(
                    func.count(),
                    _count_if(skew < -tolerance),
                    _count_if(skew > tolerance),
                    func.min(skew),
                    func.max(skew),
                ).where(*scope)
            ).one()
            return ClockSkew(
                int(row[0]), int(row[1]), int(row[2]), _number(row[3]), _number(row[4])
            )

        return self._memo("clock_skew", compute)

    def clock_skew_samples(self, which: str) -> tuple[int, ...]:
        """Return seqs of entries that occurred in the ``future`` or were ``late``."""
        e, skew, scope = self._skew_parts()
        tolerance = self.policy.clock_skew_tolerance_s
        condition = skew < -tolerance if which == "future" else skew > tolerance
        return self._sample(select(e.c.seq).where(*scope, condition))

    # -- personal data ---------------------------------------------------------

    def _retention_parts(self) -> tuple[FromClause, Any, ColumnElement[bool]]:
        e = ENTRIES.alias("e")
        p = PERSONAL_VALUES.alias("p")
        expired = [
            and_(e.c.kind == kind, e.c.recorded_at < self.retention_cutoff(years))
            for kind, years in self.policy.retention.years().items()
        ]
        joined = e.join(p, p.c.seq == e.c.seq)
        return e, joined, or_(*expired)

    def retention_cutoff(self, years: float) -> str:
        """Return the ``recorded_at`` before which ``years`` of retention have ended.

        The calendar rule is that of ``govledger erase --expired``
        (``ledger.retention.retention_cutoff``), so both agree on what expired.
        """
        return format_timestamp(retention_cutoff(self.now, years))

    def _before_period_end(self, table: FromClause) -> list[ColumnElement[bool]]:
        conditions = [table.c.seq < self.tree_size]
        if self.period.end is not None:
            conditions.append(table.c.recorded_at < self.period.end)
        return conditions

    def retention(self) -> Retention:
        """Count stored personal values per kind and those past retention.

        Retention runs from ``recorded_at`` to the evaluation time. Entries
        recorded before the period end count, also those before its start,
        because a value kept past retention is a fault now whenever its entry
        was recorded.
        """

        def compute() -> Retention:
            e, joined, expired = self._retention_parts()
            rows = self._run(
                select(
                    e.c.kind,
                    func.count(distinct(e.c.seq)),
                    func.count(distinct(case((expired, e.c.seq), else_=None))),
                )
                .select_from(joined)
                .where(*self._before_period_end(e))
                .group_by(e.c.kind)
            ).all()
            p = PERSONAL_VALUES.alias("p")
            values = self._run(
                select(func.count()).where(p.c.seq < self.tree_size)
            ).scalar_one()
            names = self._run(
                select(p.c.name)
                .where(p.c.seq < self.tree_size)
                .group_by(p.c.name)
                .order_by(p.c.name)
                .limit(50)
            ).scalars()
            s = ENTRIES.alias("s")
            subjects = self._run(
                select(func.count()).where(*self._scope(s), s.c.subject.is_not(None))
            ).scalar_one()
            return Retention(
                per_kind={row[0]: (int(row[1]), int(row[2])) for row in rows},
                personal_values=int(values),
                personal_fields=tuple(names),
                entries_with_subject=int(subjects),
            )

        return self._memo("retention", compute)

    def retention_samples(self) -> tuple[int, ...]:
        """Return seqs of entries whose personal values are past retention."""
        e, joined, expired = self._retention_parts()
        return self._sample(
            select(e.c.seq)
            .select_from(joined)
            .where(*self._before_period_end(e), expired)
            .group_by(e.c.seq)
        )

    def _erasure_parts(self) -> tuple[FromClause, ColumnElement[float], list[Any]]:
        """Erasures on request in the period and their time to fulfil.

        Erasure entries with ``trigger`` ``retention`` (from `govledger erase
        --expired`) are not requests, so they are left out.
        """
        e = ENTRIES.alias("e")
        received = self.epoch_of_text(
            self.json_scalar(e.c.body, "record", "request_received_at")
        )
        fulfilled = func.coalesce(
            self.epoch(e.c.occurred_at), self.epoch(e.c.recorded_at)
        )
        trigger = self.json_scalar(e.c.body, "record", "trigger")
        scope = [
            e.c.kind == "erasure",
            *self._scope(e),
            or_(trigger.is_(None), trigger != "retention"),
        ]
        return e, fulfilled - received, scope

    def erasures(self) -> Erasures:
        """Summarise the erasure entries of the period and their time to fulfil.

        Time to fulfil runs from the entry's ``request_received_at`` to its
        ``occurred_at`` (else ``recorded_at``); entries without a readable
        ``request_received_at`` are counted but not measured.
        """

        def compute() -> Erasures:
            e, delay, scope = self._erasure_parts()
            deadline_s = self.policy.erasure_deadline_days * 86400.0
            row = self._run(
                select(
                    func.count(),
                    func.count(delay),
                    _count_if(delay <= deadline_s),
                    _count_if(delay > deadline_s),
                    func.max(delay),
                    func.avg(delay),
                ).where(*scope)
            ).one()
            p = PERSONAL_VALUES.alias("p")
            s = ENTRIES.alias("s")
            retention_runs = self._run(
                select(func.count()).where(
                    s.c.kind == "erasure",
                    *self._scope(s),
                    self.json_scalar(s.c.body, "record", "trigger") == "retention",
                )
            ).scalar_one()
            present = self._run(
                select(
                    exists().where(p.c.seq < self.tree_size),
                    exists().where(s.c.seq < self.tree_size, s.c.subject.is_not(None)),
                    exists().where(s.c.seq < self.tree_size, s.c.kind == "erasure"),
                )
            ).one()
            return Erasures(
                erasures=int(row[0]),
                retention_runs=int(retention_runs),
                measured=int(row[1]),
                within_deadline=int(row[2]),
                late=int(row[3]),
                max_delay_s=_number(row[4]),
                mean_delay_s=_number(row[5]),
                personal_data_present=any(bool(flag) for flag in present),
            )

        return self._memo("erasures", compute)

    def erasure_samples(self, which: str) -> tuple[int, ...]:
        """Return seqs of erasure entries fulfilled ``late`` or ``unmeasured``."""
        e, delay, scope = self._erasure_parts()
        deadline_s = self.policy.erasure_deadline_days * 86400.0
        condition = delay > deadline_s if which == "late" else delay.is_(None)
        return self._sample(select(e.c.seq).where(*scope, condition))

    # -- decisions' content ------------------------------------------------------

    def _explained(self, d: FromClause) -> ColumnElement[bool]:
        text = self.json_text(d.c.body, "record", "explanation")
        return text.not_in(("null", '""', "{}", "[]"))

    def explanations(self) -> Explanations:
        """Count decisions in the period with a non-empty explanation."""

        def compute() -> Explanations:
            d = ENTRIES.alias("d")
            explained = self._explained(d)
            adverse = self.adverse(d)
            row = self._run(
                select(
                    func.count(),
                    _count_if(explained),
                    _count_if(adverse),
                    _count_if(and_(adverse, explained)),
                ).where(d.c.kind == "decision", *self._scope(d))
            ).one()
            return Explanations(*(int(value) for value in row))

        return self._memo("explanations", compute)

    def explanation_samples(self, *, adverse_only: bool) -> tuple[int, ...]:
        """Return seqs of unexplained decisions, adverse ones or the others."""
        d = ENTRIES.alias("d")
        conditions = [d.c.kind == "decision", *self._scope(d), ~self._explained(d)]
        adverse = self.adverse(d)
        conditions.append(adverse if adverse_only else ~adverse)
        return self._sample(select(d.c.seq).where(*conditions))

    def _untraceable(self, d: FromClause) -> dict[str, ColumnElement[bool]]:
        return {
            "model_version": d.c.model_version.is_(None),
            "input_hash": self.json_scalar(d.c.body, "record", "input_sha256").is_(
                None
            ),
            "item": d.c.item_id.is_(None),
        }

    def traceability(self) -> Traceability:
        """Count decisions in the period lacking model version, input hash or item."""

        def compute() -> Traceability:
            d = ENTRIES.alias("d")
            missing = self._untraceable(d)
            row = self._run(
                select(
                    func.count(),
                    _count_if(or_(*missing.values())),
                    _count_if(missing["model_version"]),
                    _count_if(missing["input_hash"]),
                    _count_if(missing["item"]),
                ).where(d.c.kind == "decision", *self._scope(d))
            ).one()
            return Traceability(*(int(value) for value in row))

        return self._memo("traceability", compute)

    def traceability_samples(self) -> tuple[int, ...]:
        """Return seqs of decisions lacking a model version, input hash or item."""
        d = ENTRIES.alias("d")
        return self._sample(
            select(d.c.seq).where(
                d.c.kind == "decision",
                *self._scope(d),
                or_(*self._untraceable(d).values()),
            )
        )
