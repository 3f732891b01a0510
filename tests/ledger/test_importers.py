"""Importers of Label Studio exports and decision logs, run on the bundled data.

The counts pinned here were taken by hand from the files in data/:

- labelstudio_export_reviews_predictions.json: tasks 1 and 2, each with one
  prediction (ids 1, 2), one annotation (ids 7, 8) and one review of it
  (ids 28, 27, both ``accepted: false``): 2 decisions, 2 annotations and 2
  reviews, both rejections.
- labelstudio_export_history.json: task 6141 with one annotation (id
  18047), no review, no prediction (its embedded ``prediction`` is empty).
- nannyml_california_housing_reference.csv: 5,832 rows, whose ``y_pred``
  differs from ``clf_target`` in 1,922 of them (data/SOURCES.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from sqlalchemy import inspect, text

from ledger import Ledger, LedgerConfig, RecordError
from ledger.importers import (
    IMPORTERS,
    read_decisions_csv,
    read_label_studio,
    read_prodigy,
    read_records,
)
from ledger.importers.pseudonyms import email_actor, load_or_create_pseudonym_key

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
LS_REVIEWS = DATA / "labelstudio_export_reviews_predictions.json"
LS_HISTORY = DATA / "labelstudio_export_history.json"
NANNYML = DATA / "nannyml_california_housing_reference.csv"
ORIGIN = "test.example/ledger"
CSV_OPTIONS = (
    "--id-col",
    "id",
    "--score-col",
    "y_pred_proba",
    "--prediction-col",
    "y_pred",
    "--time-col",
    "timestamp",
    "--truth-col",
    "clf_target",
    "--model",
    "california-housing-clf@0.13.1",
)
# An email address anywhere in stored bytes: random hash bytes match this
# with negligible probability, unlike a bare "@" (see _assert_no_email).
EMAIL_PATTERN = re.compile(rb"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]{2,}\.[A-Za-z]{2,}")


def _create(url: str, key_dir: Path) -> Ledger:
    return Ledger.create(url, origin=ORIGIN, config=LedgerConfig(key_dir=key_dir))


def _run_cli(url: str, key_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--db", url, "--key-dir", str(key_dir)]
        + list(args),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )


def _import(url: str, key_dir: Path, path: Path, *args: str) -> dict[str, Any]:
    outcome = _run_cli(url, key_dir, "--json", "import", str(path), *args)
    assert outcome.returncode == 0, outcome.stderr
    return json.loads(outcome.stdout)


def _records(ledger: Ledger, kind: str) -> list[tuple[int, dict[str, Any]]]:
    return [(entry.seq, entry.record) for entry in ledger.entries(kind=kind)]


def _by_source(ledger: Ledger) -> dict[str, tuple[int, str, dict[str, Any]]]:
    return {
        entry.record["source"]["ref"]: (entry.seq, entry.kind, entry.record)
        for entry in ledger.entries()
        if "source" in entry.record
    }


def _sqlite_bytes(url: str) -> bytes:
    database = Path(url[len("sqlite:///") :])
    data = database.read_bytes()
    wal = database.with_name(database.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data


def _assert_no_email(ledger: Ledger, url: str, *emails: bytes) -> None:
    """Check that no email reached the database, by SQL and in the raw file.

    A bare "@" cannot be grepped for in the raw SQLite file: byte 21 of
    every SQLite header is 0x40, and hashes, salts and signatures are
    stored as raw bytes. So every stored text, and every byte value that is
    JSON text (entry bodies, personal values), is checked for "@" through
    SQL, and the raw .db and -wal bytes for the given emails and for
    anything shaped like an email.
    """
    json_values = 0
    with ledger.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            result = connection.execute(text(f'SELECT * FROM "{table}"'))
            for row in result.mappings():
                for column, value in row.items():
                    if isinstance(value, str):
                        assert "@" not in value, (table, column, value)
                    elif isinstance(value, (bytes, memoryview)):
                        data = _json_text(bytes(value))
                        if data is not None:
                            json_values += 1
                            assert "@" not in data, (table, column, data)
    assert json_values >= ledger.size
    if url.startswith("sqlite:///"):
        raw = _sqlite_bytes(url)
        for email in emails:
            assert email not in raw
        assert b"@example.invalid" not in raw
        assert EMAIL_PATTERN.search(raw) is None


def _json_text(value: bytes) -> str | None:
    """Return ``value`` as text if it is UTF-8 JSON, else None (binary data)."""
    try:
        data = value.decode("utf-8")
        json.loads(data)
    except ValueError:
        return None
    return data


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def _ls_tasks() -> list[dict[str, Any]]:
    return json.loads(LS_REVIEWS.read_text(encoding="utf-8"))


def _csv_rows() -> list[list[str]]:
    with NANNYML.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return path


# -- package -----------------------------------------------------------------


def test_importers_registry_names_every_format() -> None:
    assert IMPORTERS["records"] is read_records
    assert IMPORTERS["prodigy"] is read_prodigy
    assert IMPORTERS["label-studio"] is read_label_studio
    assert IMPORTERS["decisions-csv"] is read_decisions_csv


# -- Label Studio ------------------------------------------------------------


def test_label_studio_import_counts(db_url: str, key_dir: Path) -> None:
    _create(db_url, key_dir).close()

    first = _import(db_url, key_dir, LS_REVIEWS, "--format", "label-studio")
    second = _import(db_url, key_dir, LS_HISTORY, "--format", "label-studio")

    assert first["kinds"] == {"decision": 2, "annotation": 2, "review": 2}
    assert first["appended"] == 6
    assert second["kinds"] == {"annotation": 1}
    assert second["appended"] == 1
    with Ledger.open(db_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        stats = ledger.stats()
        assert stats["kinds"] == {"decision": 2, "annotation": 3, "review": 2}
        reviews = [record for _, record in _records(ledger, "review")]
        assert [review["verdict"] for review in reviews] == ["reject", "reject"]
        assert ledger.verify().ok


def test_label_studio_reimport_appends_nothing(db_url: str, key_dir: Path) -> None:
    _create(db_url, key_dir).close()
    _import(db_url, key_dir, LS_REVIEWS, "--format", "label-studio")

    again = _import(db_url, key_dir, LS_REVIEWS, "--format", "label-studio")

    assert again["appended"] == 0
    assert again["skipped"] == 6
    assert again["ledger_size"] == 6


def test_label_studio_reviews_target_annotations(db_url: str, key_dir: Path) -> None:
    _create(db_url, key_dir).close()
    _import(db_url, key_dir, LS_REVIEWS, "--format", "label-studio")

    with Ledger.open(db_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        sources = _by_source(ledger)
    for review_ref, annotation_ref in (
        ("review/28", "annotation/7"),
        ("review/27", "annotation/8"),
    ):
        review_seq, _, review = sources[review_ref]
        annotation_seq, kind, _ = sources[annotation_ref]
        assert kind == "annotation"
        assert review["target"] == {"seq": annotation_seq}
        assert annotation_seq < review_seq
        assert review["actor"] == "user:ls-2"


def test_label_studio_stores_no_email(db_url: str, key_dir: Path) -> None:
    ledger = _create(db_url, key_dir)
    try:
        for path in (LS_REVIEWS, LS_HISTORY):
            records = list(read_label_studio(path, pseudonym_key=b"\x01" * 32))
            ledger.append_many(
                records, skip_known_sources=True, resolve_source_targets=True
            )
        actors = {entry.record["actor"] for entry in ledger.entries()}
        # Checked while the ledger is open, so the -wal file still exists.
        _assert_no_email(
            ledger,
            db_url,
            b"user-1@example.invalid",
            b"user-2@example.invalid",
            b"user-14@example.invalid",
        )
    finally:
        ledger.close()
    assert actors == {"svc:label-studio-model", "user:ls-1", "user:ls-2", "user:ls-14"}


def test_label_studio_annotation_cites_prediction(
    sqlite_url: str, key_dir: Path
) -> None:
    _create(sqlite_url, key_dir).close()
    _import(
        sqlite_url,
        key_dir,
        LS_REVIEWS,
        "--format",
        "label-studio",
        "--model-name",
        "detector",
    )

    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        sources = _by_source(ledger)
    _, _, annotation = sources["annotation/7"]
    _, kind, decision = sources["prediction/1"]
    assert annotation["label"]["prediction"] == {
        "system": "label-studio",
        "ref": "prediction/1",
    }
    assert annotation["label"]["result"][0]["origin"] == "prediction-changed"
    assert annotation["label"]["was_cancelled"] is False
    assert annotation["lead_time_s"] == 7.662
    assert annotation["occurred_at"] == "2022-10-31T21:19:19.131290Z"
    assert kind == "decision"
    assert decision["model"] == {"name": "detector", "version": "model 0"}
    assert decision["confidence"] == 0.7212843313260696
    assert decision["actor"] == "svc:detector"
    assert decision["output"][0]["value"]["rectanglelabels"] == ["Car"]


def test_label_studio_item_hashes_task_data(sqlite_url: str, key_dir: Path) -> None:
    tasks = _ls_tasks()
    records = list(read_label_studio(LS_REVIEWS))

    items = {
        record["item"]["id"]: record["item"] for record in records if "item" in record
    }

    for task in tasks:
        expected = hashlib.sha256(rfc8785.dumps(task["data"])).hexdigest()
        assert items[str(task["id"])]["sha256"] == expected
        assert items[str(task["id"])]["dataset"] == "label-studio-project-1"
    history = next(iter(read_label_studio(LS_HISTORY)))
    assert history["item"]["dataset"] == "label-studio-project-24"
    assert history["item"]["id"] == "6141"


def test_label_studio_email_only_user_hashed(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    tasks = _ls_tasks()
    email = "MARKER-only-email@example.invalid"
    tasks[0]["annotations"][0]["completed_by"] = {
        "email": email,
        "first_name": "MARKER-FIRST-51c",
        "last_name": "MARKER-LAST-9e0",
    }
    export = _write_json(tmp_path / "email-only.json", tasks)
    _create(sqlite_url, key_dir).close()

    _import(sqlite_url, key_dir, export, "--format", "label-studio")

    key = load_or_create_pseudonym_key(key_dir, ORIGIN)
    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        _, _, annotation = _by_source(ledger)["annotation/7"]
        _assert_no_email(ledger, sqlite_url, email.encode())
    raw = _sqlite_bytes(sqlite_url)
    assert re.fullmatch(r"user:ls-hmac-[0-9a-f]{32}", annotation["actor"])
    assert annotation["actor"] == email_actor(email, key)
    assert b"MARKER-FIRST-51c" not in raw
    assert b"MARKER-LAST-9e0" not in raw


def test_pseudonym_differs_per_ledger(tmp_path: Path) -> None:
    email = "someone@example.invalid"
    first = load_or_create_pseudonym_key(tmp_path / "keys", "a.example/ledger")
    again = load_or_create_pseudonym_key(tmp_path / "keys", "a.example/ledger")
    other = load_or_create_pseudonym_key(tmp_path / "keys", "b.example/ledger")

    assert first == again
    assert email_actor(email, first) == email_actor(" SomeOne@Example.invalid ", first)
    assert email_actor(email, first) != email_actor(email, other)
    for path in (tmp_path / "keys").iterdir():
        assert path.stat().st_mode & 0o077 == 0


def test_label_studio_email_only_user_needs_key(tmp_path: Path) -> None:
    tasks = _ls_tasks()
    tasks[1]["annotations"][0]["reviews"][0]["created_by"] = "reviewer@example.invalid"
    export = _write_json(tmp_path / "email-only.json", tasks)

    with pytest.raises(RecordError) as caught:
        list(read_label_studio(export))

    assert "[1].annotations[0].reviews[0]: created_by" in str(caught.value)
    assert "@" not in str(caught.value)


def test_label_studio_missing_score_recorded_as_zero(tmp_path: Path) -> None:
    tasks = _ls_tasks()
    del tasks[0]["predictions"][0]["score"]
    export = _write_json(tmp_path / "no-score.json", tasks)

    decision = next(iter(read_label_studio(export)))

    assert decision["confidence"] == 0.0
    assert decision["explanation"] == {"score_missing": True}


def test_label_studio_cancelled_annotation_kept(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    tasks = _ls_tasks()
    tasks[1]["annotations"][0]["was_cancelled"] = True
    export = _write_json(tmp_path / "cancelled.json", tasks)
    _create(sqlite_url, key_dir).close()

    _import(sqlite_url, key_dir, export, "--format", "label-studio")

    with Ledger.open(sqlite_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        _, kind, annotation = _by_source(ledger)["annotation/8"]
    assert kind == "annotation"
    assert annotation["label"]["was_cancelled"] is True


def test_label_studio_accepted_fix_is_correction(tmp_path: Path) -> None:
    tasks = _ls_tasks()
    fixed = [{"type": "choices", "value": {"choices": ["Truck"]}}]
    tasks[0]["annotations"][0]["reviews"][0].update(accepted=True, result=fixed)
    tasks[1]["annotations"][0]["reviews"][0].update(accepted=True, result=None)
    export = _write_json(tmp_path / "accepted.json", tasks)

    reviews = [r for r in read_label_studio(export) if r["kind"] == "review"]

    assert reviews[0]["verdict"] == "correct"
    assert reviews[0]["correction"] == fixed
    assert reviews[1]["verdict"] == "accept"
    assert "correction" not in reviews[1]


# -- decision logs -----------------------------------------------------------


def test_nannyml_import_counts(db_url: str, key_dir: Path) -> None:
    _create(db_url, key_dir).close()

    summary = _import(
        db_url, key_dir, NANNYML, "--format", "decisions-csv", *CSV_OPTIONS
    )

    assert summary["kinds"] == {"decision": 5832, "review": 5832}
    assert summary["appended"] == 11664
    assert summary["timezone"] == "UTC"
    with Ledger.open(db_url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        with ledger.engine.connect() as connection:
            linked = connection.execute(
                text(
                    "SELECT count(*) FROM entries r JOIN entries d "
                    "ON r.target_seq = d.seq WHERE r.kind = 'review' "
                    "AND d.kind = 'decision' "
                    "AND r.source_ref = d.source_ref || '/ground-truth'"
                )
            ).scalar_one()
        reviews = [record for _, record in _records(ledger, "review")]
        decisions = {r["item"]["id"]: r for _, r in _records(ledger, "decision")}
    truth = {row[0]: int(row[10]) for row in _csv_rows()[1:]}
    corrections = [r for r in reviews if r["verdict"] == "correct"]
    assert len(decisions) == 5832
    assert len(reviews) == 5832
    assert linked == 5832
    assert len(corrections) == 1922
    assert sum(r["verdict"] == "accept" for r in reviews) == 3910
    assert all(r["actor"] == "svc:ground-truth" for r in reviews)
    assert all(type(d["output"]) is int for d in decisions.values())
    for review in corrections:
        item_id = review["source"]["ref"].split("/")[-2]
        assert review["correction"] == truth[item_id]
        assert review["correction"] != decisions[item_id]["output"]


def test_nannyml_decision_fields(sqlite_url: str, key_dir: Path) -> None:
    rows = _csv_rows()
    header, first = rows[0], rows[1]
    features = {
        column: cell
        for column, cell in zip(header, first, strict=True)
        if column not in ("id", "timestamp", "clf_target", "y_pred_proba", "y_pred")
    }

    decision = next(
        iter(
            read_decisions_csv(
                NANNYML,
                id_col="id",
                score_col="y_pred_proba",
                prediction_col="y_pred",
                time_col="timestamp",
                truth_col="clf_target",
                model="california-housing-clf@0.13.1",
                threshold=0.5,
            )
        )
    )

    assert list(features) == [
        "MedInc",
        "HouseAge",
        "AveRooms",
        "AveBedrms",
        "Population",
        "AveOccup",
        "Latitude",
        "Longitude",
    ]
    assert (
        decision["input_sha256"] == hashlib.sha256(rfc8785.dumps(features)).hexdigest()
    )
    assert decision["occurred_at"] == "2020-10-01T00:00:00Z"
    assert decision["confidence"] == 0.99
    assert decision["output"] == 1
    assert decision["threshold"] == 0.5
    assert decision["model"] == {"name": "california-housing-clf", "version": "0.13.1"}
    assert decision["item"] == {"dataset": NANNYML.stem, "id": "0"}


def test_nannyml_reimport_appends_nothing(sqlite_url: str, key_dir: Path) -> None:
    _create(sqlite_url, key_dir).close()
    _import(sqlite_url, key_dir, NANNYML, "--format", "decisions-csv", *CSV_OPTIONS)

    again = _import(
        sqlite_url, key_dir, NANNYML, "--format", "decisions-csv", *CSV_OPTIONS
    )

    assert again["appended"] == 0
    assert again["skipped"] == 11664
    assert again["ledger_size"] == 11664


def test_decisions_csv_naive_time_in_zone(tmp_path: Path) -> None:
    rows = [
        ["id", "t", "score", "pred", "truth"],
        ["a", "2020-10-01 00:00:00", "0.5", "yes", "yes"],
        ["b", "2020-12-01T08:30:00", "0.5", "1.0", "1"],
        ["c", "2020-10-01T00:00:00Z", "0.5", "no", ""],
    ]
    log = _write_csv(tmp_path / "log.csv", rows)

    records = list(
        read_decisions_csv(
            log,
            id_col="id",
            score_col="score",
            prediction_col="pred",
            time_col="t",
            truth_col="truth",
            model="m@1",
            timezone="Europe/Amsterdam",
        )
    )

    decisions = [r for r in records if r["kind"] == "decision"]
    reviews = [r for r in records if r["kind"] == "review"]
    assert [d["occurred_at"] for d in decisions] == [
        "2020-10-01T00:00:00+02:00",
        "2020-12-01T08:30:00+01:00",
        "2020-10-01T00:00:00Z",
    ]
    assert [d["output"] for d in decisions] == ["yes", 1.0, "no"]
    # An empty truth cell gives no review; 1 equals 1.0.
    assert [r["verdict"] for r in reviews] == ["accept", "accept"]


def test_decisions_csv_skipped_local_time(tmp_path: Path) -> None:
    rows = [["id", "t", "score", "pred"], ["a", "2021-03-28 02:30:00", "0.5", "1"]]
    log = _write_csv(tmp_path / "log.csv", rows)

    with pytest.raises(RecordError) as caught:
        list(
            read_decisions_csv(
                log,
                id_col="id",
                score_col="score",
                prediction_col="pred",
                time_col="t",
                model="m@1",
                timezone="Europe/Amsterdam",
            )
        )

    assert "log.csv line 2: t:" in str(caught.value)
    assert "does not exist" in str(caught.value)


def test_decisions_csv_duplicate_id(tmp_path: Path) -> None:
    rows = _csv_rows()[:4]
    rows[3][0] = rows[1][0]
    log = _write_csv(tmp_path / "dup.csv", rows)

    with pytest.raises(RecordError) as caught:
        list(
            read_decisions_csv(
                log,
                id_col="id",
                score_col="y_pred_proba",
                prediction_col="y_pred",
                time_col="timestamp",
                model="m@1",
            )
        )

    assert "dup.csv line 4: id:" in str(caught.value)
    assert "repeats line 2" in str(caught.value)


# -- bad input through the CLI: exit 2, the place named, nothing written -----


def _assert_rejected(
    url: str, key_dir: Path, path: Path, expected: list[str], *args: str
) -> None:
    outcome = _run_cli(url, key_dir, "import", str(path), *args)
    assert outcome.returncode == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr
    for fragment in expected:
        assert fragment in outcome.stderr
    with Ledger.open(url, config=LedgerConfig(key_dir=key_dir)) as ledger:
        assert ledger.size == 0


def test_import_malformed_json(db_url: str, key_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "broken.json"
    export.write_text('[\n  {"id": 1,\n   "data": }\n]\n', encoding="utf-8")
    _create(db_url, key_dir).close()

    _assert_rejected(
        db_url,
        key_dir,
        export,
        ["broken.json", "line 3 column 12"],
        "--format",
        "label-studio",
    )


def test_import_label_studio_score_out_of_range(
    db_url: str, key_dir: Path, tmp_path: Path
) -> None:
    tasks = _ls_tasks()
    tasks[1]["predictions"][0]["score"] = 1.5
    export = _write_json(tmp_path / "score.json", tasks)
    _create(db_url, key_dir).close()

    _assert_rejected(
        db_url,
        key_dir,
        export,
        ["score.json: [1].predictions[0]: score", "1.5"],
        "--format",
        "label-studio",
    )


def test_import_csv_missing_column(db_url: str, key_dir: Path) -> None:
    _create(db_url, key_dir).close()
    options = list(CSV_OPTIONS)
    options[options.index("y_pred_proba")] = "probability"

    _assert_rejected(
        db_url,
        key_dir,
        NANNYML,
        ["line 1", "probability", "--score-col", "y_pred_proba"],
        "--format",
        "decisions-csv",
        *options,
    )


def test_import_csv_score_out_of_range(
    db_url: str, key_dir: Path, tmp_path: Path
) -> None:
    rows = _csv_rows()
    rows[3][11] = "1.3"
    log = _write_csv(tmp_path / "range.csv", rows)
    _create(db_url, key_dir).close()

    _assert_rejected(
        db_url,
        key_dir,
        log,
        ["range.csv line 4: y_pred_proba:", "'1.3'", "[0, 1]"],
        "--format",
        "decisions-csv",
        *CSV_OPTIONS,
    )


def test_import_csv_score_not_a_number(
    sqlite_url: str, key_dir: Path, tmp_path: Path
) -> None:
    rows = _csv_rows()
    rows[5000][11] = "high"
    log = _write_csv(tmp_path / "nan.csv", rows)
    _create(sqlite_url, key_dir).close()

    _assert_rejected(
        sqlite_url,
        key_dir,
        log,
        ["nan.csv line 5001: y_pred_proba:", "'high'", "not a number"],
        "--format",
        "decisions-csv",
        *CSV_OPTIONS,
    )


def test_import_csv_short_row(sqlite_url: str, key_dir: Path, tmp_path: Path) -> None:
    rows = _csv_rows()[:10]
    rows[7] = rows[7][:5]
    log = _write_csv(tmp_path / "short.csv", rows)
    _create(sqlite_url, key_dir).close()

    _assert_rejected(
        sqlite_url,
        key_dir,
        log,
        ["short.csv line 8", "has 5 cells", "13 columns"],
        "--format",
        "decisions-csv",
        *CSV_OPTIONS,
    )


def test_import_csv_bad_model_option(sqlite_url: str, key_dir: Path) -> None:
    _create(sqlite_url, key_dir).close()
    options = list(CSV_OPTIONS)
    options[-1] = "no-version"

    _assert_rejected(
        sqlite_url,
        key_dir,
        NANNYML,
        ["'no-version'", "NAME@VERSION"],
        "--format",
        "decisions-csv",
        *options,
    )


def test_import_csv_options_required(sqlite_url: str, key_dir: Path) -> None:
    _create(sqlite_url, key_dir).close()

    _assert_rejected(
        sqlite_url,
        key_dir,
        NANNYML,
        ["--score-col", "--model"],
        "--format",
        "decisions-csv",
        "--id-col",
        "id",
    )


def test_import_option_of_other_format(sqlite_url: str, key_dir: Path) -> None:
    _create(sqlite_url, key_dir).close()

    _assert_rejected(
        sqlite_url,
        key_dir,
        LS_REVIEWS,
        ["--timezone", "decisions-csv"],
        "--format",
        "label-studio",
        "--timezone",
        "UTC",
    )


# -- reviews that name their target by source (Ledger.append_many) ----------


def _decision(ref: str) -> dict[str, Any]:
    return {
        "kind": "decision",
        "actor": "svc:model",
        "occurred_at": "2026-01-01T10:00:00Z",
        "source": {"system": "test", "ref": ref},
        "item": {"dataset": "d", "id": ref},
        "model": {"name": "model", "version": "1"},
        "output": 1,
        "confidence": 0.9,
    }


def _review_of(ref: str, own: str) -> dict[str, Any]:
    return {
        "kind": "review",
        "actor": "user:reviewer",
        "occurred_at": "2026-01-01T11:00:00Z",
        "source": {"system": "test", "ref": own},
        "target": {"source": {"system": "test", "ref": ref}},
        "verdict": "accept",
    }


def test_source_target_resolves_to_ledger_seq(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        ledger.append_many([_decision("x"), _decision("y")])

        ledger.append_many([_review_of("y", "r")], resolve_source_targets=True)

        review = ledger.get(2)
    assert review.record["target"] == {"seq": 1}


def test_source_target_later_in_batch_rejected(db_url: str, key_dir: Path) -> None:
    with _create(db_url, key_dir) as ledger:
        with pytest.raises(RecordError) as caught:
            ledger.append_many(
                [_decision("x"), _review_of("y", "r"), _decision("y")],
                resolve_source_targets=True,
            )

        assert ledger.size == 0
    assert caught.value.index == 1
    assert "target.source" in str(caught.value)
    assert "'y'" in str(caught.value)


def test_source_target_needs_opt_in(sqlite_url: str, key_dir: Path) -> None:
    with _create(sqlite_url, key_dir) as ledger:
        with pytest.raises(RecordError) as caught:
            ledger.append_many([_decision("x"), _review_of("x", "r")])

        assert ledger.size == 0
    assert "target.source" in str(caught.value)


def test_source_target_malformed_source(sqlite_url: str, key_dir: Path) -> None:
    review = _review_of("x", "r")
    review["target"] = {"source": {"system": "test"}}
    with _create(sqlite_url, key_dir) as ledger:
        with pytest.raises(RecordError) as caught:
            ledger.append_many([_decision("x"), review], resolve_source_targets=True)

    assert caught.value.index == 1
    assert "target.source" in str(caught.value)
