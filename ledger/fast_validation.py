"""A faster validator derived from a pydantic core schema, for valid input.

``fast_validator`` copies a core schema with two changes that let
pydantic-core accept common input without calling into Python:

- A string whose last checks are Python functions gets a pattern that
  pydantic-core tries first. A string that matches is accepted at once. Any
  other string goes through the original checks.
- A model becomes a typed dict with the same fields, configuration and
  unknown-field rule, so no model instance is built and thrown away.

The copy accepts only input that the original schema accepts, but its errors
differ. So the caller validates rejected input again with the original
schema, which gives the usual errors and accepts what only a model accepts,
such as a model instance in place of a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_core import SchemaValidator, core_schema

__all__ = ["fast_validator"]

# Keys of a model schema that the typed dict reproduces or safely drops
# (references and JSON schema hooks do not affect validation).
_MODEL_KEYS = {"type", "cls", "schema", "config", "custom_init", "root_model"}
_MODEL_IGNORED_KEYS = {"ref", "metadata", "serialization"}
_MODEL_FIELDS_KEYS = {"type", "fields", "model_name", "computed_fields"}
_MODEL_FIELD_KEYS = {"type", "schema", "metadata"}
_FUNCTION_TYPES = {
    "function-after",
    "function-before",
    "function-wrap",
    "function-plain",
}


def fast_validator(
    schema: Mapping[str, Any], patterns: Mapping[Callable[..., Any], str]
) -> SchemaValidator:
    """Build a validator of ``schema`` that skips Python calls for common input.

    ``patterns`` maps a check function, the last ``AfterValidator`` of a
    string type, to a pattern (Rust regex syntax, as pydantic-core uses) that
    accepts only strings which pass every check of that type: the length
    limits and each Python check. A string type with several Python checks
    is keyed by its last one.

    Raises:
        ValueError: the schema uses a model feature that the copy cannot
            reproduce (a custom ``__init__``, a root model, aliases).
    """
    return SchemaValidator(_copy(schema, patterns))


def _copy(schema: Any, patterns: Mapping[Callable[..., Any], str]) -> Any:
    if isinstance(schema, list):
        return [_copy(value, patterns) for value in schema]
    if isinstance(schema, tuple):
        return tuple(_copy(value, patterns) for value in schema)
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "function-after":
        pattern = patterns.get(schema["function"].get("function"))
        if pattern is not None:
            return _with_pattern_first(schema, pattern)
    if kind in _FUNCTION_TYPES and schema.get("schema", {}).get("type") == "model":
        # A model validator receives the model instance, so the model stays.
        return schema
    if kind == "model":
        return _typed_dict(schema, patterns)
    return {name: _copy(value, patterns) for name, value in schema.items()}


def _with_pattern_first(schema: dict[str, Any], pattern: str) -> dict[str, Any]:
    """Return a left-to-right union: the bare string with ``pattern``, then ``schema``.

    The bare string keeps the length limits of ``schema``'s innermost str
    schema, so a match passes every check that ``schema`` makes.
    """
    inner = schema
    while inner["type"] == "function-after":
        inner = inner["schema"]
    if inner["type"] != "str":
        raise ValueError(f"a pattern needs a str schema inside, not {inner!r}")
    bare = {**inner, "pattern": pattern}
    return core_schema.union_schema([bare, schema], mode="left_to_right")


def _typed_dict(
    schema: dict[str, Any], patterns: Mapping[Callable[..., Any], str]
) -> dict[str, Any]:
    """Return a typed dict schema that validates a dict as the model ``schema`` does."""
    _check_keys(schema, _MODEL_KEYS | _MODEL_IGNORED_KEYS, "model")
    if schema.get("custom_init") or schema.get("root_model"):
        raise ValueError(f"model {schema['cls'].__name__} has a custom init or root")
    fields_schema = schema["schema"]
    _check_keys(fields_schema, _MODEL_FIELDS_KEYS, "model fields")
    if fields_schema["type"] != "model-fields" or fields_schema.get("computed_fields"):
        raise ValueError(f"model {schema['cls'].__name__} has computed fields")
    config = schema.get("config", {})
    fields = {}
    for name, field in fields_schema["fields"].items():
        _check_keys(field, _MODEL_FIELD_KEYS, f"model field {name}")
        field_schema = field["schema"]
        # A model field is required unless its schema supplies a default.
        fields[name] = core_schema.typed_dict_field(
            _copy(field_schema, patterns),
            required=field_schema["type"] != "default",
        )
    return core_schema.typed_dict_schema(
        fields,
        extra_behavior=config.get("extra_fields_behavior", "ignore"),
        strict=config.get("strict"),
        config=config,
    )


def _check_keys(schema: Mapping[str, Any], known: set[str], label: str) -> None:
    unknown = set(schema) - known
    if unknown:
        raise ValueError(f"{label} schema has keys {sorted(unknown)} the copy ignores")
