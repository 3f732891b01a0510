"""Rendering fetches nothing: record text is printed, and no URL is ever loaded.

Each test opens a listening socket on 127.0.0.1 and counts the connections
that arrive while a pack renders; any connection would be a request that
record text made the renderer send.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.pack import issue_pack
from reports.render import EmbeddedFile, NoFetchURLFetcher, html_to_pdf
from reports.verify_pack import read_embedded_files, verify_pack

from .support import (
    START,
    ConnectionCounter,
    attachment_names,
    create_ledger,
    evaluation_for,
    other_identity,
    pdf_text,
    populate,
    unwrap,
    write_certificate,
)


@pytest.fixture
def listener() -> Iterator[ConnectionCounter]:
    counter = ConnectionCounter()
    try:
        yield counter
    finally:
        counter.close()


def _hostile_text(port: int) -> str:
    return (
        f'<img src="http://127.0.0.1:{port}/img"> '
        '<link rel=attachment href="file:///etc/hostname"> '
        f"<div style=\"background: url('http://127.0.0.1:{port}/css')\">x</div> "
        f"<style>@import url(http://127.0.0.1:{port}/import);</style> "
        '<img src="file:///etc/passwd">'
    )


def test_record_text_is_printed_not_loaded(
    listener: ConnectionCounter, tmp_path: Path, key_dir: Path
) -> None:
    hostile = _hostile_text(listener.port)
    with create_ledger(f"sqlite:///{tmp_path / 'l.db'}", key_dir) as ledger:
        populate(ledger, days=1)
        receipt = ledger.append(
            {
                "kind": "annotation",
                "actor": "user:annotator-9",
                "occurred_at": "2026-03-02T07:00:00Z",
                "item": {"dataset": "triage", "id": "case-x"},
                "label": hostile,
            }
        )
        identity = other_identity()
        issued = issue_pack(
            ledger,
            evaluation_for(ledger, cited=(receipt["seq"],), message=hostile),
            out=tmp_path / "pack.pdf",
            identity=identity,
            organisation="Example Health",
        )
        log_key = ledger.signer().verifier_key()
    text = unwrap(pdf_text(issued.path))
    files = read_embedded_files(issued.path.read_bytes())
    line = files["entries.jsonl"].split(b"\n")[receipt["seq"]]
    assert listener.connections == 0
    assert set(attachment_names(issued.path)) == {
        "entries.jsonl",
        "merkle-range.json",
        "checkpoint.txt",
        "log-key.txt",
        "signing-cert.pem",
        "oscal-assessment-results.json",
        "manifest.json",
    }
    # The finding message is printed verbatim; the entry as canonical JSON.
    assert "".join(hostile.split()) in "".join(text.split())
    assert b'<img src=\\"http://127.0.0.1:' in line
    assert "".join(line.decode().split()) in "".join(text.split())
    cert = write_certificate(tmp_path / "cert.pem", identity.certificate)
    assert verify_pack(issued.path, trust=[cert], verifier_key=log_key).ok


def test_fetcher_rejects_every_url_in_raw_html(
    listener: ConnectionCounter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Markup that escaped Jinja2 would still load nothing: the fetcher is
    # the second wall.
    port = listener.port
    html = (
        "<html><head>"
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">'
        '<link rel="attachment" href="file:///etc/hostname">'
        f'<link rel="attachment" href="http://127.0.0.1:{port}/attach">'
        f"<style>@import url(http://127.0.0.1:{port}/import.css);"
        f"body {{ background: url(http://127.0.0.1:{port}/bg.png); }}</style>"
        "</head><body>"
        f'<img src="http://127.0.0.1:{port}/img.png">'
        '<img src="file:///etc/passwd">'
        '<img src="data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E">'
        f'<object data="http://127.0.0.1:{port}/object"></object>'
        "<p>body text</p></body></html>"
    )
    with caplog.at_level(logging.WARNING, logger="reports.render"):
        pdf = html_to_pdf(
            html,
            [EmbeddedFile(name="ours.txt", data=b"ours\n", description="ours")],
            moment=START,
        )
    path = tmp_path / "raw.pdf"
    path.write_bytes(pdf)
    rejected = " ".join(record.getMessage() for record in caplog.records)
    assert listener.connections == 0
    assert attachment_names(path) == ["ours.txt"]
    assert "file:///etc/passwd" in rejected
    assert "data:image/svg+xml" in rejected
    assert f"http://127.0.0.1:{port}/img.png" in rejected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "https://example.org/",
        "file:///etc/hostname",
        "ftp://127.0.0.1/x",
        "data:text/plain,hello",
    ],
)
def test_fetcher_raises_url_fetching_error(url: str) -> None:
    from weasyprint.urls import URLFetcher, URLFetchingError

    fetcher = NoFetchURLFetcher()
    assert isinstance(fetcher, URLFetcher)
    with pytest.raises(URLFetchingError):
        fetcher.fetch(url)
