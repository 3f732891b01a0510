"""Render the audit pack: Jinja2 HTML to a PDF/A-3b file with embedded files.

Rendering fetches nothing. Jinja2 escapes every value (autoescape is on for
every template), so record text such as ``<img src="file:///etc/passwd">``
is printed as text. WeasyPrint also gets a URL fetcher that rejects every
URL, so even markup that reached the renderer could not load a file or
contact a host. Fonts come from the system through fontconfig (DejaVu).

With ``SOURCE_DATE_EPOCH`` set, the same document and files render to the
same bytes: the PDF dates, the attachment dates and the document
identifier are all derived from the content and that time.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from weasyprint import CSS, HTML, Attachment
from weasyprint.urls import URLFetcher, URLFetchingError

from ledger.errors import ReportError

__all__ = [
    "PDF_VARIANT",
    "EmbeddedFile",
    "NoFetchURLFetcher",
    "html_to_pdf",
    "render_html",
    "break_opportunities",
    "render_pdf",
    "source_date",
    "source_date_epoch_is_set",
    "template_environment",
]

logger = logging.getLogger(__name__)

PDF_VARIANT = "pdf/a-3b"
TEMPLATES = Path(__file__).resolve().parent / "templates"


class NoFetchURLFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that rejects every URL: http, file, data, any.

    WeasyPrint 70 reads attributes of its own ``URLFetcher`` while fetching,
    so the fetcher must be an instance of a subclass. A plain function that
    raises crashes the render. ``URLFetchingError`` makes WeasyPrint skip
    the resource and go on.
    """

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        logger.warning("rejected a request to load %.80s while rendering", url)
        raise URLFetchingError(f"audit pack rendering loads no URL: {url[:80]}")


@dataclass(frozen=True)
class EmbeddedFile:
    """A file to embed in the PDF: its name, bytes and a one-line description."""

    name: str
    data: bytes
    description: str


def source_date(now: datetime | None = None) -> datetime:
    """Return the time to stamp into the pack: SOURCE_DATE_EPOCH, else now (UTC).

    Raises:
        ReportError: SOURCE_DATE_EPOCH is set but is not a whole number of
            seconds since 1970-01-01T00:00:00Z.
    """
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    try:
        seconds = int(value)
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        raise ReportError(
            f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since "
            "1970-01-01T00:00:00Z; unset it or give an integer such as 1700000000",
            reason="bad-source-date",
        ) from None


def source_date_epoch_is_set() -> bool:
    """Return whether SOURCE_DATE_EPOCH is set, so ``source_date`` is not now."""
    return bool(os.environ.get("SOURCE_DATE_EPOCH"))


# After every underscore, and after a dot that a letter or symbol follows
# (so 0.667 does not break after its point).
_BREAK_AFTER = re.compile(r"(_|\.(?=[^\d\s]))")


def break_opportunities(value: Any) -> Markup:
    """Escape ``value`` as text, then allow line breaks after ``_`` and ``.``.

    A ``<wbr>`` goes after each underscore and each dot not followed by a
    digit, so that long keys such as ``clock_skew_tolerance_s`` wrap
    between words in a narrow column instead of in the middle of one.
    Escaping comes first: the only markup in the result is ``<wbr>``.
    """
    escaped = str(escape(str(value)))
    return Markup(_BREAK_AFTER.sub(r"\1<wbr>", escaped))


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def template_environment() -> jinja2.Environment:
    """Return the Jinja2 environment of the pack templates.

    Autoescaping is on for every template whatever its name, and an
    undefined variable is an error rather than empty text.
    """
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["value"] = _format_value
    environment.filters["percent"] = _percent
    environment.filters["breakable"] = break_opportunities
    return environment


def render_html(context: Mapping[str, Any], template: str = "pack.html") -> str:
    """Render the pack's HTML from ``context``.

    Raises:
        ReportError: the template refers to a value the context lacks.
    """
    try:
        return template_environment().get_template(template).render(**context)
    except jinja2.UndefinedError as error:
        raise ReportError(
            f"the audit pack template needs a value the report lacks: {error}",
            reason="template-error",
        ) from None


def html_to_pdf(
    html: str, attachments: Sequence[EmbeddedFile], *, moment: datetime
) -> bytes:
    """Lay out ``html`` as PDF/A-3b with ``attachments`` embedded; return the bytes.

    Every attachment's creation and modification date is ``moment``. Only
    the files given are embedded: the fetcher rejects anything the HTML
    might ask to attach or load.
    """
    fetcher = NoFetchURLFetcher()
    stamp = moment.astimezone(UTC).replace(tzinfo=None)
    files = [
        Attachment(
            string=item.data,
            name=item.name,
            description=item.description,
            created=stamp,
            modified=stamp,
            relationship="Data",
            url_fetcher=fetcher,
        )
        for item in attachments
    ]
    stylesheet = CSS(
        string=(TEMPLATES / "pack.css").read_text(encoding="utf-8"),
        url_fetcher=fetcher,
    )
    document = HTML(string=html, url_fetcher=fetcher, base_url=None)
    return document.write_pdf(  # type: ignore[no-any-return]
        pdf_variant=PDF_VARIANT,
        attachments=files,
        stylesheets=[stylesheet],
        uncompressed_pdf=False,
    )


def render_pdf(
    context: Mapping[str, Any],
    attachments: Sequence[EmbeddedFile],
    *,
    moment: datetime,
) -> bytes:
    """Render the pack's HTML from ``context`` and lay it out as PDF/A-3b.

    ``moment`` dates the PDF and its attachments (see ``source_date``).

    Raises:
        ReportError: the template lacks a value.
    """
    return html_to_pdf(render_html(context), attachments, moment=moment)
