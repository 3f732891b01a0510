"""RFC 8785 (JSON Canonicalization Scheme) bytes, and strict JSON parsing.

Entries are hashed over their JCS bytes, so anything that two parsers could
read differently, or that JCS cannot represent, is rejected with the JSON path
of the offending value:

- NaN and the infinities (RFC 8785 section 3.2.2.3 has no form for them);
- integers outside +-(2^53 - 1), which IEEE 754 doubles cannot hold exactly
  (RFC 8785 section 3.2.2.3 and I-JSON, RFC 7493 section 2.2);
- strings with lone surrogates, which have no UTF-8 form (RFC 7493 2.1);
- object keys that are not strings;
- duplicate keys in JSON text (RFC 7493 section 2.3).

The common case (BMP-only keys, integers within +-(2^53 - 1), floats that
Python's repr prints in fixed notation) is serialized by orjson with sorted
keys. For these values its output equals JCS, because strings get the same
minimal escapes and floats the same shortest digits. A test in
tests/ledger/test_canonical.py compares it with the ``rfc8785`` package on
random values. The standard library's C encoder takes what orjson rejects
(lone surrogates, deep nesting), and values with other floats after those
floats are rewritten in the ECMAScript form. Values that need the full
algorithm (keys outside the Basic Multilingual Plane, large integral
floats, floats in exponent form) go through the ``rfc8785`` package.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import rfc8785

from .errors import CanonicalJSONError

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonical_bytes",
    "check_canonicalizable",
    "parse_json",
]

MAX_SAFE_INTEGER = 2**53 - 1

# Floats below this magnitude that are integral print as integers in both
# ECMAScript and Python's int(), digit for digit.
_EXACT_INTEGRAL_FLOAT_LIMIT = 2.0**53

# Python's repr() uses fixed notation for 1e-4 <= |x| < 1e16, and within that
# range it produces the same shortest round-trip digits as ECMAScript's
# Number.prototype.toString.
_FIXED_REPR_MIN = 1e-4
_FIXED_REPR_MAX = 1e16

_encode = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    sort_keys=True,
    separators=(",", ":"),
).encode


def _make_plain_encoder() -> Any:
    """Return the C encoder behind ``_encode``, without circular-reference checks.

    It is called only on values that ``_scan`` walked to the end, so they
    contain no cycles, and without a markers dict it keeps no state between
    calls. It returns the output as a sequence of strings. ``_encode`` is the
    fallback where the C accelerator is missing.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython builds have it
        return lambda value, _level: (_encode(value),)
    return c_make_encoder(
        None,  # markers: no circular-reference check
        None,  # default: never called, every value has a JSON type
        json.encoder.encode_basestring,
        None,  # indent
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )


_encode_plain = _make_plain_encoder()


class _NonFinite:
    """A NaN or Infinity token read by ``parse_json``; rejected by the walk."""

    def __init__(self, token: str) -> None:
        self.token = token


class _DuplicateKey:
    """An object that had a repeated key in JSON text; rejected by the walk."""

    def __init__(self, key: str) -> None:
        self.key = key


def _too_deep(path: str) -> CanonicalJSONError:
    return CanonicalJSONError(
        "JSON nesting is too deep; flatten the value", path=path, reason="too-deep"
    )


def _join(path: str, key: str) -> str:
    if not path:
        return key
    return f"{path}.{key}"


def _prepare(value: Any, path: str) -> tuple[Any, bool]:
    """Check ``value`` and return (a copy the C encoder prints as JCS, exact).

    ``exact`` is False when the copy would not match JCS and the caller must
    use the full algorithm instead.
    """
    if isinstance(value, str):
        return value, True
    if value is None or isinstance(value, bool):
        return value, True
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value, True
        raise CanonicalJSONError(
            f"integer {value} is outside +-(2^53 - 1); send it as a string",
            path=path,
            reason="unsafe-integer",
        )
    if isinstance(value, float):
        return _prepare_float(value, path)
    if isinstance(value, dict):
        return _prepare_object(value, path)
    if isinstance(value, list):
        items = []
        exact = True
        for index, item in enumerate(value):
            prepared, item_exact = _prepare(item, f"{path}[{index}]")
            items.append(prepared)
            exact = exact and item_exact
        return items, exact
    if isinstance(value, _NonFinite):
        raise CanonicalJSONError(
            f"{value.token} is not a JSON number; send a finite number",
            path=path,
            reason="non-finite-number",
        )
    if isinstance(value, _DuplicateKey):
        raise CanonicalJSONError(
            f"duplicate key {value.key!r}: the object is ambiguous because "
            "parsers disagree on which value wins; send each key once",
            path=path,
            reason="duplicate-key",
        )
    raise CanonicalJSONError(
        f"a value of type {type(value).__name__} is not JSON",
        path=path,
        reason="not-json",
    )


def _prepare_float(value: float, path: str) -> tuple[Any, bool]:
    if not math.isfinite(value):
        raise CanonicalJSONError(
            f"{value} is not a JSON number; send a finite number",
            path=path,
            reason="non-finite-number",
        )
    magnitude = abs(value)
    if value.is_integer():
        if magnitude < _EXACT_INTEGRAL_FLOAT_LIMIT:
            return int(value), True
        return value, False
    if _FIXED_REPR_MIN <= magnitude < _FIXED_REPR_MAX:
        return value, True
    return value, False


def _prepare_object(value: dict[Any, Any], path: str) -> tuple[Any, bool]:
    result = {}
    exact = True
    for key, item in value.items():
        if not isinstance(key, str):
            raise CanonicalJSONError(
                f"object key {key!r} is a {type(key).__name__}; "
                "JSON object keys must be strings",
                path=path,
                reason="non-string-key",
            )
        if _has_lone_surrogate(key):
            raise CanonicalJSONError(
                "object key contains a lone UTF-16 surrogate; send valid Unicode text",
                path=_join(path, repr(key)),
                reason="lone-surrogate",
            )
        if exact and not key.isascii() and max(key) > "\uffff":
            # JCS sorts keys by UTF-16 code units, Python by code points: the
            # orders differ only for characters outside the BMP.
            exact = False
        prepared, item_exact = _prepare(item, _join(path, key))
        result[key] = prepared
        exact = exact and item_exact
    return result, exact


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _find_lone_surrogate(value: Any, path: str) -> str | None:
    """Return the path of the first string with a lone surrogate, if any."""
    if isinstance(value, str):
        return path if _has_lone_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_lone_surrogate(key):
                return _join(path, repr(key))
            found = _find_lone_surrogate(item, _join(path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_lone_surrogate(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


class _Rejected(Exception):
    """Raised by the fast scan; the precise walk then names the problem."""


def _scan(value: Any) -> bool:
    """Check ``value`` without building paths; return True if the output of
    orjson or the C encoder for ``value`` itself is already JCS.

    Returns False when floats need the ECMAScript form or keys need UTF-16
    ordering; raises _Rejected for anything JCS cannot represent. Lone
    surrogates are caught later by the UTF-8 encoding of the output.
    Strings, booleans and null inside a container are checked in the loop,
    because they are most of a record and a call each would cost more than
    the check.
    """
    kind = type(value)
    if kind is dict:
        plain = True
        for key, item in value.items():
            if type(key) is not str:
                raise _Rejected
            if not key.isascii() and max(key) > "\uffff":
                plain = False
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if not _scan(item):
                plain = False
        return plain
    if kind is list:
        plain = True
        for item in value:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if not _scan(item):
                plain = False
        return plain
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return True
        raise _Rejected
    if kind is float:
        if value != value or value in (math.inf, -math.inf):
            raise _Rejected
        if value.is_integer():
            return False
        return _FIXED_REPR_MIN <= abs(value) < _FIXED_REPR_MAX
    raise _Rejected


def canonical_bytes(value: Any, *, path: str = "") -> bytes:
    """Serialize ``value`` to its RFC 8785 canonical UTF-8 bytes.

    ``value`` is made of dict (string keys), list, str, int, float, bool and
    None. ``path`` prefixes the JSON path in error messages.

    Raises:
        CanonicalJSONError: a value has no canonical form; the error names
            its JSON path.
    """
    try:
        plain = _scan(value)
    except (_Rejected, RecursionError):
        plain = False
    if plain:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # encoded or reported by the standard encoder below
    try:
        if plain:
            text = "".join(_encode_plain(value, 0))
        else:
            prepared, exact = _prepare(value, path)
            if not exact:
                try:
                    return rfc8785.dumps(value)
                except rfc8785.CanonicalizationError as error:  # pragma: no cover
                    raise CanonicalJSONError(str(error), path=path) from error
            text = _encode(prepared)
    except RecursionError:
        raise _too_deep(path) from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        bad_path = _find_lone_surrogate(value, path)
        raise CanonicalJSONError(
            "string contains a lone UTF-16 surrogate; send valid Unicode text",
            path=bad_path or path,
            reason="lone-surrogate",
        ) from None


def check_canonicalizable(value: Any, *, path: str = "") -> None:
    """Raise CanonicalJSONError if ``value`` has no RFC 8785 form."""
    canonical_bytes(value, path=path)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> Any:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            return _DuplicateKey(key)
        result[key] = value
    return result


def parse_json(text: str | bytes, *, path: str = "") -> Any:
    """Parse JSON text strictly: duplicate keys, NaN and Infinity are errors.

    The result is also checked for a canonical form, so a value that parses
    here can always be hashed.

    Raises:
        CanonicalJSONError: the text is not JSON, or a value in it is
            ambiguous or has no canonical form; the error names its path.
    """
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_NonFinite,
        )
    except RecursionError:
        raise _too_deep(path) from None
    except json.JSONDecodeError as error:
        raise CanonicalJSONError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}",
            path=path,
            reason="invalid-json",
        ) from None
    except UnicodeDecodeError as error:
        raise CanonicalJSONError(
            f"JSON text is not valid UTF-8 ({error.reason} at byte {error.start})",
            path=path,
            reason="invalid-json",
        ) from None
    except ValueError as error:
        # Python refuses integers of more than 4300 digits while parsing.
        raise CanonicalJSONError(
            f"invalid JSON number: {error}", path=path, reason="unsafe-integer"
        ) from None
    check_canonicalizable(value, path=path)
    return value
