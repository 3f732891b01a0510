"""The govledger command line: a thin click adapter over ledger, policies and reports.

Exit codes: 0 success, 1 verification failed, 2 invalid input or usage,
3 any other failure. Errors print one line (or a JSON object with
``--json``); tracebacks appear only with ``--verbose``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from ledger import GovLedgerError, InputError, Ledger, LedgerConfig, VerificationError
from ledger.canonical import parse_json
from ledger.errors import CanonicalJSONError

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_USAGE = 2
EXIT_FAILURE = 3

DEFAULT_DB = "sqlite:///govledger.db"

logger = logging.getLogger("govledger.cli")


class Context:
    """Options shared by every command."""

    def __init__(self, db: str, as_json: bool, verbose: bool, key_dir: str | None):
        self.db = db
        self.as_json = as_json
        self.verbose = verbose
        self.key_dir = Path(key_dir) if key_dir else None

    def config(self, **overrides: Any) -> LedgerConfig:
        # A key written with `init --unsafe-unencrypted-key` loads only when
        # GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1 allows it again, with a warning.
        unsafe = os.environ.get("GOVLEDGER_UNSAFE_UNENCRYPTED_KEY") == "1"
        overrides.setdefault("unsafe_unencrypted_key", unsafe)
        return LedgerConfig(key_dir=self.key_dir, **overrides)

    def open(self, **overrides: Any) -> Ledger:
        return Ledger.open(self.db, config=self.config(**overrides))

    def emit(self, data: Any, text: str | Callable[[], str]) -> None:
        """Print ``data`` as JSON with --json, else the human text."""
        if self.as_json:
            click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            click.echo(text() if callable(text) else text)


pass_context = click.make_pass_decorator(Context)


def _exit_code(error: GovLedgerError) -> int:
    if isinstance(error, VerificationError):
        return EXIT_VERIFY_FAILED
    if isinstance(error, InputError):
        return EXIT_USAGE
    return EXIT_FAILURE


def _fail(ctx: Context | None, error: GovLedgerError) -> NoReturn:
    if ctx is not None and ctx.as_json:
        click.echo(json.dumps(error.to_dict(), ensure_ascii=False), err=True)
    else:
        click.echo(f"error: {error}", err=True)
    raise SystemExit(_exit_code(error))


@contextmanager
def _progress(length: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """Yield an update(position) callback drawing a bar on a terminal only."""
    if not sys.stderr.isatty():
        yield lambda _position: None
        return
    with click.progressbar(
        length=length or 0, label=label, file=sys.stderr, show_pos=True
    ) as bar:
        state = {"position": 0}

        def update(position: int) -> None:
            bar.update(position - state["position"])
            state["position"] = position

        yield update


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="GOVLEDGER_DB",
    default=DEFAULT_DB,
    show_default=True,
    help="Ledger database URL (sqlite:///PATH or postgresql+psycopg://...).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Log progress; show tracebacks.")
@click.option(
    "--key-dir",
    envvar="GOVLEDGER_KEY_DIR",
    default=None,
    help="Directory of the log's private keys [default: NAME-keys/ beside a "
    "SQLite file, else ./govledger-keys].",
)
@click.pass_context
def cli(
    click_ctx: click.Context, db: str, as_json: bool, verbose: bool, key_dir: str | None
) -> None:
    """govledger: an append-only, verifiable compliance ledger for AI programs."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    click_ctx.obj = Context(db, as_json, verbose, key_dir)


# -- ledger core ------------------------------------------------------------


@cli.command()
@click.option(
    "--origin",
    default="govledger.local/ledger",
    show_default=True,
    help="Log name in checkpoints and receipts, e.g. example.org/ai-ledger.",
)
@click.option(
    "--unsafe-unencrypted-key",
    is_flag=True,
    help="Store the log key without a passphrase (not for production).",
)
@pass_context
def init(ctx: Context, origin: str, unsafe_unencrypted_key: bool) -> None:
    """Create the ledger and its log key; print the verifier key."""
    ledger = Ledger.create(
        ctx.db,
        origin=origin,
        config=ctx.config(unsafe_unencrypted_key=unsafe_unencrypted_key),
    )
    with ledger:
        verifier_key = ledger.signer().verifier_key()
        _ensure_pack_signing_identity(ctx, ledger, unsafe_unencrypted_key)
    ctx.emit(
        {"origin": origin, "verifier_key": verifier_key},
        f"created ledger {origin}\nverifier key: {verifier_key}",
    )
    if unsafe_unencrypted_key and not os.environ.get("GOVLEDGER_KEY_PASSPHRASE"):
        click.echo(
            "warning: the private keys are not encrypted; later commands load "
            "them only with GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1",
            err=True,
        )


def _read_input(source: str) -> str:
    if source == "-":
        data = sys.stdin.buffer.read()
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(
                f"standard input is not UTF-8 text (invalid byte at offset "
                f"{error.start})"
            ) from None
    return _read_text_file(Path(source), "record file")


@cli.command()
@click.argument("source", default="-", metavar="[FILE|-]")
@pass_context
def append(ctx: Context, source: str) -> None:
    """Append one record (a JSON object) or a batch (a JSON array)."""
    try:
        data = parse_json(_read_input(source))
    except CanonicalJSONError as error:
        raise InputError(f"invalid record JSON: {error}") from None
    if data == []:
        raise InputError("the batch is empty; give at least one record")
    with ctx.open() as ledger:
        if isinstance(data, list):
            receipts = ledger.append_many(data)
        else:
            receipts = [ledger.append(data)]
    ctx.emit(
        receipts if isinstance(data, list) else receipts[0],
        lambda: "\n".join(
            f"appended seq {r['seq']} entry_hash {r['entry_hash']}" for r in receipts
        ),
    )


@cli.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "source_format",
    type=click.Choice(["records", "prodigy", "label-studio", "decisions-csv"]),
    required=True,
    help="records: JSON Lines of input records; prodigy: a Prodigy JSONL export; "
    "label-studio: a Label Studio JSON export; decisions-csv: a CSV log of model "
    "decisions.",
)
@click.option(
    "--dataset",
    default=None,
    help="Dataset name for items [default: label-studio: label-studio-project-N, "
    "others: the file name].",
)
@click.option(
    "--model-name",
    default=None,
    help="label-studio: model name of the predictions [default: label-studio-model].",
)
@click.option("--id-col", default=None, help="decisions-csv: column of the item id.")
@click.option(
    "--score-col", default=None, help="decisions-csv: column of the score in [0, 1]."
)
@click.option(
    "--prediction-col", default=None, help="decisions-csv: column of the output."
)
@click.option(
    "--time-col", default=None, help="decisions-csv: column of the decision time."
)
@click.option(
    "--truth-col",
    default=None,
    help="decisions-csv: column of the ground truth, if any.",
)
@click.option(
    "--truth-time-col",
    default=None,
    help="decisions-csv: column of the time the truth became known "
    "[default: the import time].",
)
@click.option(
    "--model", default=None, help="decisions-csv: the model, as NAME@VERSION."
)
@click.option(
    "--timezone",
    default=None,
    help="decisions-csv: IANA time zone of times without an offset [default: UTC].",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="decisions-csv: decision threshold in [0, 1].",
)
@pass_context
def import_(ctx: Context, path: Path, source_format: str, **options: Any) -> None:
    """Import a file in one transaction; records already imported are skipped."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    _check_import_options(source_format, options)
    with ctx.open() as ledger:
        reader = _import_reader(ledger, path, source_format, options)
        records = []
        with _progress(None, f"reading {path.name}") as update:
            for record in reader:
                records.append(record)
                if len(records) % 500 == 0:
                    update(len(records))
        receipts = ledger.append_many(
            records,
            skip_known_sources=True,
            sign_receipts=False,
            resolve_source_targets=True,
        )
        size = ledger.size
    kinds: dict[str, int] = {}
    for record in records:
        kind = record.get("kind") if isinstance(record, dict) else None
        kinds[str(kind)] = kinds.get(str(kind), 0) + 1
    summary = {
        "file": str(path),
        "records": len(records),
        "kinds": kinds,
        "appended": len(receipts),
        "skipped": len(records) - len(receipts),
        "ledger_size": size,
    }
    read = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    text = (
        f"{path.name}: {len(records)} records read ({read or 'none'}), "
        f"{len(receipts)} appended, {summary['skipped']} already in the ledger; "
        f"ledger has {size} entries"
    )
    if source_format == "decisions-csv":
        summary["timezone"] = options["timezone"] or "UTC"
        text += f"\ntimes without an offset were read in {summary['timezone']}"
    ctx.emit(summary, text)


_CSV_REQUIRED = ("id_col", "score_col", "prediction_col", "time_col", "model")
_CSV_ONLY = (*_CSV_REQUIRED, "truth_col", "truth_time_col", "timezone", "threshold")


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_import_options(source_format: str, options: dict[str, Any]) -> None:
    """Reject options that the format does not use, and missing required ones."""
    own = {"label-studio": ("model_name",), "decisions-csv": _CSV_ONLY}
    allowed = own.get(source_format, ())
    for name, value in options.items():
        if value is not None and name != "dataset" and name not in allowed:
            users = [fmt for fmt, names in own.items() if name in names]
            raise InputError(
                f"{_option_flag(name)} applies only to --format {users[0]}; "
                f"remove it for --format {source_format}",
                reason="invalid-option",
            )
    if source_format == "decisions-csv":
        missing = [_option_flag(name) for name in _CSV_REQUIRED if not options[name]]
        if missing:
            raise InputError(
                f"--format decisions-csv needs {', '.join(missing)}, e.g. --id-col id "
                "--score-col y_pred_proba --prediction-col y_pred --time-col "
                "timestamp --model NAME@VERSION",
                reason="invalid-option",
            )


def _import_reader(
    ledger: Ledger, path: Path, source_format: str, options: dict[str, Any]
) -> Iterator[Any]:
    """Return the record generator of the importer of ``source_format``."""
    from ledger import importers

    dataset = options["dataset"]
    if source_format == "prodigy":
        return importers.read_prodigy(path, dataset=dataset)
    if source_format == "label-studio":
        from ledger.core import default_key_dir
        from ledger.importers.pseudonyms import load_or_create_pseudonym_key

        key_dir = ledger.config.key_dir or default_key_dir(ledger.url)
        return importers.read_label_studio(
            path,
            dataset=dataset,
            model_name=options["model_name"] or "label-studio-model",
            pseudonym_key=load_or_create_pseudonym_key(key_dir, ledger.origin),
        )
    if source_format == "decisions-csv":
        return importers.read_decisions_csv(
            path,
            id_col=options["id_col"],
            score_col=options["score_col"],
            prediction_col=options["prediction_col"],
            time_col=options["time_col"],
            truth_col=options["truth_col"],
            truth_time_col=options["truth_time_col"],
            model=options["model"],
            dataset=dataset,
            threshold=options["threshold"],
            timezone=options["timezone"] or "UTC",
        )
    return importers.read_records(path)


@cli.command()
@click.option("--kind", default=None, help="Only entries of this kind.")
@click.option("--actor", default=None, help="Only entries by this actor.")
@click.option(
    "--since", default=None, help="Recorded at or after: a date or RFC 3339 time."
)
@click.option("--until", default=None, help="Recorded before: a date or RFC 3339 time.")
@click.option(
    "--start",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="First seq.",
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="Max entries; 0 for all.",
)
@pass_context
def log(
    ctx: Context,
    kind: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
    start: int,
    limit: int,
) -> None:
    """List entries in seq order."""
    from policies.evidence import parse_time_bound

    since = parse_time_bound(since, "--since")
    until = parse_time_bound(until, "--until")
    with ctx.open() as ledger:
        entries = ledger.entries(
            kind=kind,
            actor=actor,
            since=since,
            until=until,
            start=start,
            limit=limit or None,
        )
        for entry in entries:
            if ctx.as_json:
                click.echo(json.dumps(entry.to_json(), ensure_ascii=False))
            else:
                actor_id = str(entry.record.get("actor", ""))
                click.echo(
                    f"{entry.seq:>8}  {entry.recorded_at}  {entry.kind:<13} "
                    f"{entry.entry_hash[:16]}  {actor_id!r}"
                )


@cli.command()
@click.argument("seq", type=int)
@click.option(
    "--personal",
    is_flag=True,
    help="Also show the personal values with their salts, or when and why "
    "they were erased (the local CLI reads as an admin).",
)
@pass_context
def show(ctx: Context, seq: int, personal: bool) -> None:
    """Show one entry with its hash."""
    with ctx.open() as ledger:
        entry = ledger.get(seq)
        data = entry.to_json()
        if personal:
            from ledger.erasure import personal_view

            data["personal"] = personal_view(ledger, seq, "admin")
    ctx.emit(data, json.dumps(data, ensure_ascii=False, indent=2))


@cli.command()
@click.option(
    "--trusted-checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A signed checkpoint kept outside the ledger: prove the ledger only grew.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Verifier key (note form) to check the trusted checkpoint with; "
    "repeatable [default: the keys stored in the ledger].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0, max=64),
    default=None,
    help="Worker processes that check ranges of entries; 0 checks in this "
    "process [default: one per CPU, up to 8, for ledgers of 32,768 entries "
    "or more].",
)
@pass_context
def verify(
    ctx: Context,
    trusted_checkpoint: Path | None,
    keys: tuple[str, ...],
    workers: int | None,
) -> None:
    """Verify every entry, link, Merkle node and checkpoint; exit 1 on a fault."""
    note = (
        _read_text_file(trusted_checkpoint, "trusted checkpoint")
        if trusted_checkpoint
        else None
    )
    with ctx.open() as ledger:
        size = ledger.size
        with _progress(size, "verifying") as update:
            result = ledger.verify(
                trusted_checkpoint=note,
                trusted_keys=[item for key in keys for item in _read_keys(key)],
                progress=update,
                workers=workers,
            )
    if result.ok:
        text = (
            f"ok: {result.entries_checked} entries, "
            f"{result.checkpoints_checked} checkpoints verified\n"
            f"root {result.root}\nhead {result.head_hash}"
        )
        if result.trusted_checkpoint_consistent:
            text += (
                f"\nthe ledger extends the trusted checkpoint of size "
                f"{result.trusted_checkpoint_size}"
            )
        for warning in result.warnings:
            text += f"\nwarning: {warning}"
        ctx.emit(result.to_dict(), text)
        return
    fault = result.fault
    ctx.emit(
        result.to_dict(),
        f"FAILED: {fault.kind} at seq {fault.seq}: {fault.message}"
        if fault.seq is not None
        else f"FAILED: {fault.kind}: {fault.message}",
    )
    raise SystemExit(EXIT_VERIFY_FAILED)


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["jsonl", "oscal-ar"]),
    default="jsonl",
    show_default=True,
    help="jsonl: every entry, exactly the hashed bytes; oscal-ar: a policy "
    "evaluation as OSCAL 1.1.2 assessment results.",
)
@click.option(
    "--framework",
    "frameworks",
    multiple=True,
    help="oscal-ar: framework to evaluate, e.g. gdpr; repeatable [default: all].",
)
@click.option("--from", "period_from", default=None, help="oscal-ar: period start.")
@click.option(
    "--to", "period_to", default=None, help="oscal-ar: period end (exclusive)."
)
@click.option(
    "--organisation", default=None, help="oscal-ar: issuing party [default: origin]."
)
@pass_context
def export(
    ctx: Context,
    out: Path | None,
    export_format: str = "jsonl",
    frameworks: tuple[str, ...] = (),
    period_from: str | None = None,
    period_to: str | None = None,
    organisation: str | None = None,
) -> None:
    """Export every entry as JSON Lines: exactly the hashed bytes, one per line.

    With --format oscal-ar, export a policy evaluation as OSCAL assessment
    results instead.
    """
    if export_format == "oscal-ar":
        _export_oscal(ctx, out, frameworks, period_from, period_to, organisation)
        return
    with ctx.open() as ledger:
        try:
            handle = out.open("wb") if out else sys.stdout.buffer
        except OSError as error:
            raise InputError(f"cannot write {out}: {error.strerror}") from None
        try:
            count = 0
            for _seq, _stored, body, _columns in ledger.iter_raw():
                handle.write(body + b"\n")
                count += 1
        finally:
            if out:
                handle.close()
    if out:
        click.echo(f"exported {count} entries to {out}", err=True)


@cli.command()
@pass_context
def stats(ctx: Context) -> None:
    """Summarise the ledger: entries, kinds, actors, items, time span, head."""
    with ctx.open() as ledger:
        data = ledger.stats()
    kinds = ", ".join(
        f"{count} {kind}" for kind, count in sorted(data["kinds"].items())
    )
    ctx.emit(
        data,
        f"ledger {data['origin']}\n"
        f"entries:     {data['entries']} ({kinds or 'none'})\n"
        f"actors:      {data['actors']}\n"
        f"items:       {data['items']}\n"
        f"time span:   {data['first_occurred_at']} to {data['last_occurred_at']}\n"
        f"checkpoints: {data['checkpoints']}\n"
        f"chain head:  {data['head_hash']}",
    )


# -- Merkle tree, checkpoints, proofs, keys -----------------------------------


@cli.command()
@click.option(
    "--publish",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for witnesses: writes DIR/checkpoint and DIR/history/SIZE.",
)
@click.option(
    "--list", "list_all", is_flag=True, help="List the stored checkpoints instead."
)
@pass_context
def checkpoint(ctx: Context, publish: Path | None, list_all: bool) -> None:
    """Sign and store a checkpoint of the current tree; print it."""
    from ledger.checkpoints import publish_checkpoint

    if list_all:
        with ctx.open() as ledger:
            rows = ledger.checkpoints()
        ctx.emit(
            [
                {
                    "tree_size": row.tree_size,
                    "root": row.root_hash,
                    "key_id": row.key_id,
                    "created_at": row.created_at,
                }
                for row in rows
            ],
            "\n".join(
                f"{row.tree_size:>10}  {row.created_at}  {row.key_id}  {row.root_hash}"
                for row in rows
            )
            or "no checkpoint stored yet",
        )
        return
    with ctx.open() as ledger:
        row = ledger.make_checkpoint()
    if publish is not None:
        publish_checkpoint(publish, row.tree_size, row.note)
    ctx.emit(
        {"tree_size": row.tree_size, "root": row.root_hash, "note": row.note},
        row.note.rstrip("\n"),
    )


@cli.group()
def prove() -> None:
    """Build inclusion and consistency proofs (JSON, RFC 9162)."""


@prove.command()
@click.argument("seq", type=int)
@click.option(
    "--tree-size",
    type=int,
    default=None,
    help="Tree size [default: latest checkpoint].",
)
@pass_context
def inclusion(ctx: Context, seq: int, tree_size: int | None) -> None:
    """Prove that entry SEQ is in the tree."""
    with ctx.open() as ledger:
        proof = ledger.inclusion_proof(seq, tree_size)
    click.echo(json.dumps(proof, indent=2))


@prove.command()
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@pass_context
def consistency(ctx: Context, old: int, new: int | None) -> None:
    """Prove that the tree of size NEW extends the tree of size OLD."""
    with ctx.open() as ledger:
        proof = ledger.consistency_proof(old, new)
    click.echo(json.dumps(proof, indent=2))


@cli.command(name="verify-proof")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key",
    required=True,
    help="The log's verifier key (note form) or a file holding it.",
)
@pass_context
def verify_proof_command(ctx: Context, path: Path, key: str) -> None:
    """Check a proof file offline against the log's verifier key; exit 1 if invalid."""
    from ledger.proofs import verify_proof_document

    try:
        document = parse_json(path.read_bytes())
    except CanonicalJSONError as error:
        raise InputError(f"{path} is not a proof file: {error}") from None
    summary = verify_proof_document(document, _read_keys(key))
    ctx.emit({"ok": True, **summary}, f"ok: {summary['description']}")


@cli.group()
def keys() -> None:
    """Show and rotate the log key."""


@keys.command(name="show")
@pass_context
def keys_show(ctx: Context) -> None:
    """Print the verifier keys of the log, the current one last."""
    with ctx.open() as ledger:
        rows = ledger.key_rows()
        current = ledger.current_key_id()
    data = [
        {
            "key_id": row.key_id,
            "verifier_key": row.verifier_key,
            "current": row.key_id == current,
        }
        for row in rows
    ]
    ordered = [item for item in data if not item["current"]]
    ordered += [item for item in data if item["current"]]
    ctx.emit(data, "\n".join(item["verifier_key"] for item in ordered))


@keys.command(name="rotate")
@pass_context
def keys_rotate(ctx: Context) -> None:
    """Create a new log key; a key_rotated entry signed by the old key records it."""
    with ctx.open() as ledger:
        receipt, verifier_key = ledger.rotate_key()
    ctx.emit(
        {"receipt": receipt, "verifier_key": verifier_key},
        f"rotated: new verifier key {verifier_key} "
        f"(key_rotated entry seq {receipt['seq']})",
    )


def _read_text_file(path: Path, what: str) -> str:
    """Read a UTF-8 text file given on the command line.

    Raises:
        InputError: the file is missing, a directory, unreadable or not
            UTF-8 text.
    """
    try:
        return path.read_bytes().decode("utf-8")
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory; give a file") from None
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"{what} {path} is not UTF-8 text (invalid byte at offset "
            f"{error.start}); give the text file, not a binary one"
        ) from None


def _read_keys(value: str) -> list[str]:
    """Read verifier keys (note form) given as text or as a file of keys.

    A file may hold several keys, one per line, such as `keys show`
    prints them; blank lines are ignored.

    Raises:
        InputError: the value is empty, names an unreadable file, or a key
            is malformed.
    """
    from ledger.errors import NoteError
    from ledger.note import parse_verifier_key

    text = value.strip()
    if not text:
        raise InputError("--key is empty; give a verifier key or a file holding one")
    if "+" in text and not Path(text).is_file():
        keys = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        content = _read_text_file(Path(value), "key file")
        keys = [line.strip() for line in content.splitlines() if line.strip()]
        if not keys:
            raise InputError(f"key file {value} contains no verifier key")
    for key in keys:
        try:
            parse_verifier_key(key)
        except NoteError as error:
            raise InputError(f"invalid verifier key {key[:80]!r}: {error}") from None
    return keys


def _read_key(value: str) -> str:
    """Read one verifier key (the last one, when a file contains several)."""
    return _read_keys(value)[-1]


# -- personal data and erasure (GDPR Art. 17) ----------------------------------


def _default_actor() -> str:
    """Return GOVLEDGER_ACTOR, else user:<login name>."""
    import getpass

    configured = os.environ.get("GOVLEDGER_ACTOR")
    if configured:
        return configured
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "svc:govledger-cli"


def _retention_for_erasure(
    ledger: Ledger, config_path: Path | None
) -> tuple[dict[str, float], int | None]:
    """Return the retention years for `erase --expired` and the seq that set them.

    ``--config`` wins. Otherwise the policy in force in the ledger applies
    (set by `policies set` or `policies apply`), and without one
    ./govledger.toml or the defaults.
    """
    from ledger.retention import load_retention

    if config_path is not None:
        return load_retention(config_path), None
    from policies.config import policy_in_force

    policy, seq = policy_in_force(ledger)
    if seq is None:
        return load_retention(), None
    return policy.retention.years(), seq


@cli.command()
@click.option("--subject", default=None, help="Pseudonymous data-subject id to erase.")
@click.option(
    "--expired",
    is_flag=True,
    help="Erase the personal values of entries older than their kind's retention.",
)
@click.option(
    "--reason", default=None, help="Why the values are erased (no personal data)."
)
@click.option(
    "--request-ref",
    default=None,
    help="Reference of the erasure request, e.g. a ticket id.",
)
@click.option(
    "--received-at",
    default=None,
    help="When the request was received (RFC 3339) [default: now].",
)
@click.option(
    "--actor",
    default=None,
    help="Who performs the erasure: user:<id> or svc:<id> "
    "[default: GOVLEDGER_ACTOR, else user:<login name>].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with a [retention] table of years per kind [default: the "
    "policy in force in the ledger, else ./govledger.toml, else 6 years].",
)
@click.option(
    "--max-entries",
    type=int,
    default=10_000,
    show_default=True,
    help="With --expired: at most this many entries per run.",
)
@pass_context
def erase(
    ctx: Context,
    subject: str | None,
    expired: bool,
    reason: str | None,
    request_ref: str | None,
    received_at: str | None,
    actor: str | None,
    config_path: Path | None,
    max_entries: int,
) -> None:
    """Erase personal values and append an erasure entry (GDPR Art. 17)."""
    from ledger.erasure import RETENTION_REASON, erase_expired, erase_subject

    if (subject is None) == (not expired):
        raise InputError("give either --subject ID or --expired, not both or neither")
    actor = actor or _default_actor()
    with ctx.open() as ledger:
        if expired:
            if received_at is not None:
                raise InputError("--received-at applies only with --subject")
            retention, policy_seq = _retention_for_erasure(ledger, config_path)
            result = erase_expired(
                ledger,
                actor=actor,
                retention=retention,
                reason=reason or RETENTION_REASON,
                request_ref=request_ref,
                max_entries=max_entries,
                policy_seq=policy_seq,
            )
        else:
            if reason is None or request_ref is None:
                missing = "--reason" if reason is None else "--request-ref"
                raise InputError(f"{missing} is required with --subject")
            result = erase_subject(
                ledger,
                subject or "",
                reason=reason,
                request_ref=request_ref,
                actor=actor,
                requested_at=received_at,
            )
    if result.erasure_seq is None:
        text = "no personal values are past their retention; nothing was erased"
    else:
        text = (
            f"erased {result.count} personal field(s) of {len(result.seqs)} "
            f"entries; erasure entry seq {result.erasure_seq}"
        )
        if result.remaining:
            text += f"\n{result.remaining} expired entries remain: run again"
        if result.wal_truncated is False:
            text += "\nwarning: the SQLite -wal file could not be emptied; run again"
    ctx.emit(result.to_dict(), text)


@cli.command(name="check-commitment")
@click.argument("seq", type=int)
@click.argument("field")
@click.option("--value", "value_json", required=True, help="The value as JSON text.")
@click.option("--salt", "salt_hex", required=True, help="The salt: 64 hex digits.")
@pass_context
def check_commitment_command(
    ctx: Context, seq: int, field: str, value_json: str, salt_hex: str
) -> None:
    """Check a personal value and salt against entry SEQ's commitment; exit 1 if not."""
    from ledger.erasure import check_commitment

    try:
        value = parse_json(value_json, path="--value")
    except CanonicalJSONError as error:
        raise InputError(
            f"--value is not valid JSON: {error}; quote a string as '\"text\"'"
        ) from None
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        raise InputError(
            f"--salt {salt_hex!r} is not hex; give the 64 hex digits of the salt"
        ) from None
    with ctx.open() as ledger:
        result = check_commitment(ledger, seq, field, value, salt)
    if result.matches:
        ctx.emit(
            result.to_dict(),
            f"ok: the value and salt match the commitment of {field} in entry {seq}",
        )
        return
    ctx.emit(
        result.to_dict(),
        f"MISMATCH: {field} in entry {seq}: expected commitment {result.expected}, "
        f"got {result.actual}",
    )
    raise SystemExit(EXIT_VERIFY_FAILED)


# -- HTTP service and API tokens ----------------------------------------------


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option(
    "--port",
    default=8600,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; each has its own group-commit writer.",
)
@click.option(
    "--max-body-bytes",
    default=1024 * 1024,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body in bytes; a larger one gets 413.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Level of the service's log on standard error (--verbose: debug).",
)
@pass_context
def serve(
    ctx: Context,
    host: str,
    port: int,
    workers: int,
    max_body_bytes: int,
    log_level: str,
) -> None:
    """Run the HTTP service until interrupted (FastAPI under uvicorn)."""
    import uvicorn

    from ledger.service import create_app, logging_config

    log_config = logging_config("DEBUG" if ctx.verbose else log_level.upper())
    if workers == 1:
        app = create_app(ctx.db, ctx.config(), max_body_bytes=max_body_bytes)
        uvicorn.run(app, host=host, port=port, log_config=log_config)
        return
    # Fail here, before any worker starts, if the ledger or its key is wrong.
    with ctx.open() as ledger:
        ledger.signer()
    os.environ["GOVLEDGER_DB"] = ctx.db
    if ctx.key_dir is not None:
        os.environ["GOVLEDGER_KEY_DIR"] = str(ctx.key_dir)
    os.environ["GOVLEDGER_MAX_BODY_BYTES"] = str(max_body_bytes)
    uvicorn.run(
        "ledger.service:app_from_environment",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_config=log_config,
    )


def _token_roles() -> list[str]:
    from ledger.tokens import ROLES

    return list(ROLES)


@cli.group()
def tokens() -> None:
    """Create, list and revoke API tokens of the HTTP service."""


@tokens.command(name="create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(_token_roles()),
    required=True,
    help="appender: append only; auditor: read, proofs, verify; officer: auditor "
    "plus evaluation and reports; admin: everything, including tokens.",
)
@pass_context
def tokens_create(ctx: Context, name: str, role: str) -> None:
    """Create a token and print it once; the ledger keeps only its SHA-256."""
    from ledger.tokens import create_token

    with ctx.open() as ledger:
        info, token = create_token(ledger, name=name, role=role)
    if ctx.as_json:
        ctx.emit({**info.to_dict(), "token": token}, "")
        return
    click.echo(token)
    click.echo(
        f"created API token {info.id} ({info.name}, role {info.role}); it is "
        "shown only this once",
        err=True,
    )


@tokens.command(name="list")
@pass_context
def tokens_list(ctx: Context) -> None:
    """List every API token: id, role, creation and revocation time, name."""
    from ledger.tokens import list_tokens

    with ctx.open() as ledger:
        infos = list_tokens(ledger)
    ctx.emit(
        [info.to_dict() for info in infos],
        lambda: (
            "\n".join(
                f"{info.id}  {info.role:<8}  {info.created_at}  "
                f"{info.revoked_at or 'active':<27}  {info.name}"
                for info in infos
            )
            or "no API tokens"
        ),
    )


@tokens.command(name="revoke")
@click.argument("token_id", metavar="ID")
@pass_context
def tokens_revoke(ctx: Context, token_id: str) -> None:
    """Revoke the token ID; every service process rejects it from its next use."""
    from ledger.tokens import revoke_token

    with ctx.open() as ledger:
        info = revoke_token(ledger, token_id)
    ctx.emit(
        info.to_dict(),
        f"revoked API token {info.id} ({info.name}) at {info.revoked_at}",
    )


# -- policies and evaluation ----------------------------------------------------


@cli.group(name="policies")
def policies_group() -> None:
    """List frameworks and their controls; set the policy thresholds."""


@policies_group.command(name="list")
@pass_context
def policies_list(ctx: Context) -> None:
    """List the frameworks: built-in and plug-ins."""
    from policies import list_frameworks

    data = [
        {
            "id": framework.id,
            "title": framework.title,
            "version": framework.version,
            "controls": len(framework.controls),
        }
        for framework in list_frameworks()
    ]
    ctx.emit(
        data,
        lambda: "\n".join(
            f"{item['id']:<12} {item['controls']:>3} controls  {item['title']} "
            f"({item['version']})"
            for item in data
        ),
    )


@policies_group.command(name="show")
@click.argument("framework_id", metavar="FRAMEWORK")
@pass_context
def policies_show(ctx: Context, framework_id: str) -> None:
    """Show a framework's controls and the checks that serve each."""
    from policies import get_framework

    framework = get_framework(framework_id)
    controls = [
        {
            "id": control.id,
            "title": control.title,
            "description": control.description,
            "checks": list(control.checks),
            "other_evidence": control.other_evidence,
            "ledger_evidences_part": control.ledger_evidences_part,
        }
        for control in framework.controls
    ]
    data = {
        "id": framework.id,
        "title": framework.title,
        "version": framework.version,
        "controls": controls,
    }

    def text() -> str:
        lines = [f"{framework.id}: {framework.title} ({framework.version})"]
        for control in controls:
            lines.append(f"\n{control['id']}  {control['title']}")
            lines.append(f"    {control['description']}")
            lines.append(f"    checks: {', '.join(control['checks'])}")
            if control["other_evidence"]:
                lines.append(f"    beyond the ledger: {control['other_evidence']}")
        return "\n".join(lines)

    ctx.emit(data, text)


@policies_group.command(name="current")
@pass_context
def policies_current(ctx: Context) -> None:
    """Print the policy in force and the policy_config entry that set it."""
    from policies.config import policy_in_force

    with ctx.open() as ledger:
        policy, seq = policy_in_force(ledger)
    data = {"policy_seq": seq, "policy": policy.to_record()}
    source = "defaults" if seq is None else f"policy_config entry seq {seq}"
    ctx.emit(
        data,
        lambda: (
            f"policy in force: {source}\n"
            + json.dumps(policy.to_record(), ensure_ascii=False, indent=2)
        ),
    )


def _policy_receipt_text(receipt: dict[str, Any] | None, what: str) -> str:
    if receipt is None:
        return f"{what}: the policy in force is unchanged; nothing appended"
    return f"{what}: appended policy_config entry seq {receipt['seq']}"


@policies_group.command(name="set")
@click.argument("key")
@click.argument("value")
@click.option(
    "--actor",
    default=None,
    help="Who changes the policy: user:<id> or svc:<id> "
    "[default: GOVLEDGER_ACTOR, else user:<login name>].",
)
@pass_context
def policies_set(ctx: Context, key: str, value: str, actor: str | None) -> None:
    """Set one threshold (KEY VALUE, VALUE as JSON) and record it in the ledger.

    KEY is a [policy] key such as review_deadline_hours, or retention.KIND;
    see `govledger policies current` for the keys and values in force.
    """
    from policies.config import policy_in_force, record_policy, set_policy_value

    with ctx.open() as ledger:
        current, _seq = policy_in_force(ledger)
        policy = set_policy_value(current, key, value)
        receipt = record_policy(
            ledger, policy, actor=actor or _default_actor(), source=f"set {key}"
        )
    ctx.emit(
        {"receipt": receipt, "policy": policy.to_record()},
        _policy_receipt_text(receipt, f"{key} = {value}"),
    )


@policies_group.command(name="apply")
@click.argument(
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default="govledger.toml",
    required=False,
)
@click.option(
    "--actor",
    default=None,
    help="Who changes the policy: user:<id> or svc:<id> "
    "[default: GOVLEDGER_ACTOR, else user:<login name>].",
)
@pass_context
def policies_apply(ctx: Context, path: Path, actor: str | None) -> None:
    """Record the [policy] and [retention] tables of a TOML file as the policy.

    Keys the file leaves out take their defaults. [default FILE:
    ./govledger.toml]
    """
    from policies.config import apply_policy_file

    with ctx.open() as ledger:
        receipt, policy = apply_policy_file(
            ledger, path, actor=actor or _default_actor()
        )
    ctx.emit(
        {"receipt": receipt, "policy": policy.to_record()},
        _policy_receipt_text(receipt, str(path)),
    )


def _cited(seqs: tuple[int, ...], shown: int = 6) -> str:
    if not seqs:
        return "-"
    text = ",".join(str(seq) for seq in seqs[:shown])
    if len(seqs) > shown:
        text += f" +{len(seqs) - shown}"
    return text


def _evaluation_table(evaluation: Any) -> str:
    """Render an Evaluation as text: one table of controls per framework."""
    summaries = {check.id: check.summary for check in evaluation.checks}
    source = (
        "defaults"
        if evaluation.policy_seq is None
        else f"policy_config entry seq {evaluation.policy_seq}"
    )
    lines = [
        f"period: {evaluation.period_start or '(open)'} to "
        f"{evaluation.period_end or '(open)'}; tree size {evaluation.tree_size}, "
        f"root {evaluation.root[:16]}...",
        f"policy: {source}",
    ]
    width = 60
    for framework in evaluation.frameworks:
        lines.append("")
        lines.append(f"{framework.id}: {framework.title} ({framework.version})")
        header = f"  {'control':<22}{'status':<21}{'key figures':<{width + 2}}"
        lines.append(header + "cited seqs")
        for control in framework.controls:
            figures = "; ".join(summaries[check] for check in control.checks)
            if len(figures) > width:
                figures = figures[: width - 3] + "..."
            lines.append(
                f"  {control.control_id:<22}{control.status:<21}"
                f"{figures:<{width + 2}}{_cited(control.cited_seqs)}"
            )
        counts = framework.status_counts()
        lines.append(
            "  " + ", ".join(f"{status} {count}" for status, count in counts.items())
        )
    return "\n".join(lines)


@cli.command(name="evaluate")
@click.option(
    "--framework",
    "frameworks",
    multiple=True,
    help="Framework id, repeatable [default: all]; see `govledger policies list`.",
)
@click.option(
    "--from",
    "period_from",
    default=None,
    help="Period start on recorded_at, inclusive: a date or RFC 3339 time.",
)
@click.option(
    "--to",
    "period_to",
    default=None,
    help="Period end on recorded_at, exclusive: a date or RFC 3339 time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the evaluation as JSON.")
@pass_context
def evaluate_command(
    ctx: Context,
    frameworks: tuple[str, ...],
    period_from: str | None,
    period_to: str | None,
    as_json: bool,
) -> None:
    """Evaluate the controls of frameworks over a period; exit 0 whatever the status.

    Evaluation is not verification: controls that are not satisfied are
    reported, not failed on. Bad input (an unknown framework or time)
    exits 2.
    """
    from policies import evaluate
    from policies.evidence import parse_time_bound

    start = parse_time_bound(period_from, "--from")
    end = parse_time_bound(period_to, "--to")
    with ctx.open() as ledger:
        with _progress(ledger.size, "verifying") as update:
            evaluation = evaluate(
                ledger, frameworks or None, start=start, end=end, progress=update
            )
    if as_json or ctx.as_json:
        click.echo(json.dumps(evaluation.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(_evaluation_table(evaluation))


# -- audit packs and OSCAL export -----------------------------------------------


def _ensure_pack_signing_identity(
    ctx: Context, ledger: Ledger, unsafe_unencrypted: bool
) -> None:
    """Create the self-signed certificate that signs audit packs, beside the log key."""
    from ledger.core import default_key_dir
    from reports.signing import ensure_signing_identity

    key_dir = ledger.config.key_dir or default_key_dir(ctx.db)
    # A certificate's organisation name holds at most 64 characters (X.520).
    files = ensure_signing_identity(
        key_dir, ledger.origin[:64], unsafe_unencrypted=unsafe_unencrypted
    )
    if files.created and not ctx.as_json:
        click.echo(f"audit pack signing certificate: {files.certificate}", err=True)


def _evaluate_period(
    ledger: Ledger,
    frameworks: tuple[str, ...],
    period_from: str | None,
    period_to: str | None,
) -> tuple[Any, Any]:
    """Verify the ledger once, then evaluate; return (evaluation, verification)."""
    from reports.pack import evaluate, parse_period_bound

    start = parse_period_bound(period_from, "--from")
    end = parse_period_bound(period_to, "--to")
    with _progress(ledger.size, "verifying") as update:
        verification = ledger.verify(progress=update)
    evaluation = evaluate(
        ledger, frameworks or None, start=start, end=end, verification=verification
    )
    return evaluation, verification


def _export_oscal(
    ctx: Context,
    out: Path | None,
    frameworks: tuple[str, ...],
    period_from: str | None,
    period_to: str | None,
    organisation: str | None,
) -> None:
    from reports.oscal import assessment_results_json

    with ctx.open() as ledger:
        evaluation, _ = _evaluate_period(ledger, frameworks, period_from, period_to)
        document = assessment_results_json(
            evaluation, origin=ledger.origin, organisation=organisation
        )
    if out is None:
        sys.stdout.buffer.write(document)
        return
    try:
        out.write_bytes(document)
    except OSError as error:
        raise InputError(f"cannot write {out}: {error.strerror}") from None
    click.echo(f"exported OSCAL assessment results to {out}", err=True)


@cli.command()
@click.option(
    "--framework",
    "frameworks",
    multiple=True,
    required=True,
    help="Framework to evaluate and report, e.g. gdpr; repeatable.",
)
@click.option(
    "--from",
    "period_from",
    default=None,
    help="Period start: entries recorded at or after this RFC 3339 time or "
    "YYYY-MM-DD (UTC) [default: the first entry].",
)
@click.option(
    "--to",
    "period_to",
    default=None,
    help="Period end, exclusive: RFC 3339 time or YYYY-MM-DD (UTC) "
    "[default: the tree head].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the signed PDF audit pack.",
)
@click.option(
    "--organisation",
    default=None,
    help="Organisation named on the cover [default: the log origin].",
)
@click.option(
    "--max-embedded",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    help="Embed every entry of the period up to this many entries; above it, "
    "only the cited entries, each with an inclusion proof.",
)
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The organisation's signing certificate (PEM, leaf first); needs --key.",
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Private key of --cert (PEM, mode 0600; passphrase from "
    "GOVLEDGER_SIGNING_PASSPHRASE, else GOVLEDGER_KEY_PASSPHRASE).",
)
@click.option(
    "--pkcs12",
    "pkcs12_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The organisation's certificate and key as one PKCS#12 file.",
)
@click.option(
    "--tsa-url",
    default=None,
    help="RFC 3161 timestamp server to timestamp the signature [default: none].",
)
@click.option(
    "--unsafe-unencrypted-key",
    is_flag=True,
    help="Accept an unencrypted signing key, as GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1 "
    "does (not for production).",
)
@click.option(
    "--actor",
    default=None,
    help="Who issues the pack, named in its report_issued entry: user:<id> or "
    "svc:<id> [default: GOVLEDGER_ACTOR, else user:<login name>].",
)
@pass_context
def report(
    ctx: Context,
    frameworks: tuple[str, ...],
    period_from: str | None,
    period_to: str | None,
    out: Path,
    organisation: str | None,
    max_embedded: int,
    cert: Path | None,
    key_path: Path | None,
    pkcs12_file: Path | None,
    tsa_url: str | None,
    unsafe_unencrypted_key: bool,
    actor: str | None,
) -> None:
    """Evaluate, render, sign and write a PDF audit pack; record it in the ledger."""
    from ledger.core import default_key_dir
    from reports.pack import issue_pack
    from reports.signing import select_identity

    with ctx.open() as ledger:
        name = organisation or ledger.origin[:64]
        identity = select_identity(
            ledger.config.key_dir or default_key_dir(ctx.db),
            name,
            cert=cert,
            key=key_path,
            pkcs12_file=pkcs12_file,
            # GOVLEDGER_UNSAFE_UNENCRYPTED_KEY=1 allows it as for the log key.
            unsafe_unencrypted=unsafe_unencrypted_key
            or ledger.config.unsafe_unencrypted_key,
        )
        evaluation, verification = _evaluate_period(
            ledger, frameworks, period_from, period_to
        )
        issued = issue_pack(
            ledger,
            evaluation,
            out=out,
            identity=identity,
            organisation=organisation or ledger.origin,
            max_embedded=max_embedded,
            tsa_url=tsa_url,
            verification=verification,
            actor=actor or _default_actor(),
        )
    ctx.emit(
        {
            "path": str(issued.path),
            "sha256": issued.sha256,
            "size": issued.size,
            "report_issued_seq": issued.receipt["seq"],
            "receipt": issued.receipt,
            "manifest": issued.manifest,
        },
        f"wrote audit pack {issued.path} ({issued.size:,} bytes)\n"
        f"sha256 {issued.sha256}\n"
        f"recorded as report_issued entry seq {issued.receipt['seq']}",
    )


@cli.command(name="verify-pack")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate (PEM or DER) to trust as the signer or its CA; repeatable.",
)
@click.option(
    "--key",
    "key",
    default=None,
    help="The log's verifier key (note form) or a file holding it "
    "[default: the key embedded in the pack, only as trustworthy as the pack].",
)
@pass_context
def verify_pack_command(
    ctx: Context, pack: Path, trust: tuple[Path, ...], key: str | None
) -> None:
    """Check an audit pack offline; exit 1 naming each check that fails."""
    from reports.verify_pack import verify_pack

    result = verify_pack(
        pack, trust=trust, verifier_key=_read_key(key) if key is not None else None
    )
    labels = {True: "ok  ", False: "FAIL", None: "SKIP"}
    lines = [
        f"{labels[check.passed]} {check.name}: {check.message}"
        for check in result.checks
    ]
    if result.ok:
        lines.append(f"ok: all {len(result.checks)} checks passed")
    else:
        lines.append(f"FAILED: {', '.join(result.failed)}")
    ctx.emit(result.to_dict(), "\n".join(lines))
    if not result.ok:
        raise SystemExit(EXIT_VERIFY_FAILED)


def main() -> None:
    """Run the CLI with govledger's error handling and exit codes."""
    verbose = "--verbose" in sys.argv or "-v" in sys.argv
    as_json = "--json" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(EXIT_FAILURE) from None
    except click.exceptions.ClickException as error:
        error.show()
        raise SystemExit(EXIT_USAGE) from None
    except click.exceptions.Exit as error:
        raise SystemExit(error.exit_code) from None
    except GovLedgerError as error:
        if verbose:
            logger.exception("command failed")
        _fail(Context(DEFAULT_DB, as_json, verbose, None), error)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - last resort: no traceback unless --verbose
        if verbose:
            raise
        click.echo(
            f"error: unexpected {type(error).__name__}: {error}; "
            "rerun with --verbose for details",
            err=True,
        )
        raise SystemExit(EXIT_FAILURE) from None
    raise SystemExit(EXIT_OK)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUTF8", "1")
    main()
