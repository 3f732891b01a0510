"""RFC 8785 canonical JSON: public vectors and every rejection."""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_bytes, parse_json
from ledger.errors import CanonicalJSONError

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "jcs"
CYBERPHONE = VECTORS / "cyberphone" / "testdata"
CASES = sorted(path.name for path in (CYBERPHONE / "input").glob("*.json"))


def _double(hex_bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_bits.rjust(16, "0")))[0]


@pytest.mark.parametrize("name", CASES)
def test_cyberphone_vector(name: str) -> None:
    value = parse_json((CYBERPHONE / "input" / name).read_bytes())
    expected = (CYBERPHONE / "output" / name).read_bytes()
    expected_hex = (CYBERPHONE / "outhex" / name.replace(".json", ".txt")).read_text()
    assert canonical_bytes(value) == expected
    assert canonical_bytes(value).hex() == "".join(expected_hex.split())


def _rfc_vectors() -> dict:
    return json.loads((VECTORS / "rfc8785_vectors.json").read_text())


@pytest.mark.parametrize(
    "vector",
    _rfc_vectors()["number_serialization_samples"]["vectors"],
    ids=lambda vector: vector["ieee754_hex"],
)
def test_rfc8785_number_table(vector: dict) -> None:
    number = _double(vector["ieee754_hex"])
    if vector["expected"] is None:
        with pytest.raises(CanonicalJSONError) as error:
            canonical_bytes({"n": number})
        assert error.value.path == "n"
        return
    assert canonical_bytes(number).decode() == vector["expected"]
    assert canonical_bytes([number]).decode() == f"[{vector['expected']}]"


def test_es6_number_samples() -> None:
    samples = json.loads(
        (VECTORS / "cyberphone" / "es6_number_samples.json").read_text()
    )
    for sample in samples["samples"]:
        number = _double(sample["ieee_hex"])
        if sample["expected"] is None:
            assert not math.isfinite(number)
            with pytest.raises(CanonicalJSONError):
                canonical_bytes(number)
        else:
            assert canonical_bytes(number).decode() == sample["expected"], sample


def test_rfc8785_primitive_example() -> None:
    example = _rfc_vectors()["primitive_serialization_example"]
    output = canonical_bytes(parse_json(example["input_json"]))
    assert output.decode() == example["expected_canonical"]
    assert output.hex() == example["expected_utf8_hex"]


def test_rfc8785_property_sorting_by_utf16() -> None:
    example = _rfc_vectors()["property_sorting_example"]
    output = canonical_bytes(parse_json(example["input_json"]))
    values = list(json.loads(output).values())
    assert values == example["expected_value_order"]


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        ('{"confidence": NaN}', "confidence", "non-finite-number"),
        ('{"confidence": Infinity}', "confidence", "non-finite-number"),
        ('{"a": [1, -Infinity]}', "a[1]", "non-finite-number"),
        ('{"x": 1e400}', "x", "non-finite-number"),
        ('{"output": {"count": 9007199254740993}}', "output.count", "unsafe-integer"),
        ('{"output": {"count": -9007199254740992}}', "output.count", "unsafe-integer"),
        ('{"label": "\\ud800"}', "label", "lone-surrogate"),
        ('{"label": ["ok", "\\udc00x"]}', "label[1]", "lone-surrogate"),
        ('{"actor": "user:a", "actor": "user:b"}', "", "duplicate-key"),
        ('{"item": {"id": 1, "id": 2}}', "item", "duplicate-key"),
        ('{"a": 1', "", "invalid-json"),
    ],
)
def test_parse_json_rejects_with_path(text: str, path: str, reason: str) -> None:
    with pytest.raises(CanonicalJSONError) as error:
        parse_json(text)
    assert error.value.reason == reason
    assert error.value.path == path


def test_parse_json_accepts_max_safe_integer() -> None:
    assert parse_json("[9007199254740991, -9007199254740991]") == [
        2**53 - 1,
        -(2**53 - 1),
    ]


def test_canonical_rejects_non_string_key() -> None:
    with pytest.raises(CanonicalJSONError) as error:
        canonical_bytes({"output": {1: "x"}})
    assert error.value.reason == "non-string-key"
    assert error.value.path == "output"


def test_canonical_rejects_lone_surrogate_key() -> None:
    with pytest.raises(CanonicalJSONError) as error:
        canonical_bytes({"label": {"\udfff": 1}})
    assert error.value.reason == "lone-surrogate"


def test_canonical_rejects_non_json_type() -> None:
    with pytest.raises(CanonicalJSONError) as error:
        canonical_bytes({"when": object()})
    assert error.value.reason == "not-json"


def test_parse_json_rejects_deep_nesting() -> None:
    with pytest.raises(CanonicalJSONError) as error:
        parse_json("[" * 100_000 + "]" * 100_000)
    assert error.value.reason == "too-deep"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fast_path_matches_reference_implementation(value: object) -> None:
    # rfc8785 (the reference package) runs the full algorithm on every value;
    # our fast path must agree byte for byte.
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trips_through_canonical_form(number: float) -> None:
    assert float(canonical_bytes(number)) == number


# Characters where JSON encoders differ: every ASCII control character, DEL,
# quote and backslash, the JavaScript line separators, a byte order mark,
# private-use and last-BMP characters, and characters outside the BMP.
_EDGE_TEXT = [chr(code) for code in range(0x80)] + list(
    "\u00e9\u2028\u2029\ufeff\ue000\uffff\u0800\U0001f600\U0010ffff"
)


def _random_value(rng: random.Random, depth: int = 0) -> object:
    choice = rng.random()
    if depth < 3 and choice < 0.15:
        return {_random_text(rng): _random_value(rng, depth + 1) for _ in range(4)}
    if depth < 3 and choice < 0.25:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if choice < 0.5:
        return _random_text(rng)
    if choice < 0.65:
        return rng.randint(-(2**53 - 1), 2**53 - 1)
    if choice < 0.9:
        return _random_float(rng)
    return rng.choice([True, False, None])


def _random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_EDGE_TEXT) for _ in range(rng.randint(0, 6)))


def _random_float(rng: random.Random) -> float:
    if rng.random() < 0.5:
        return round(
            10 ** rng.uniform(-6, 22) * rng.choice([1, -1]), rng.randint(0, 17)
        )
    while True:
        bits = struct.pack("<Q", rng.getrandbits(64))
        number = struct.unpack("<d", bits)[0]
        if math.isfinite(number):
            return number


def test_random_values_match_reference_implementation() -> None:
    # The fast path hands most values to orjson. Compare it byte for byte
    # with the rfc8785 package on values built from the characters and
    # numbers where encoders differ.
    rng = random.Random(8785)
    for _ in range(20_000):
        value = {_random_text(rng): _random_value(rng) for _ in range(3)}
        assert canonical_bytes(value) == rfc8785.dumps(value), value


def test_deep_nesting_beyond_orjson_limit() -> None:
    # orjson 3.13 rejects 255 or more levels of nesting, so the standard
    # encoder takes over.
    value: object = "leaf"
    for _ in range(400):
        value = [value]
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_lone_surrogate_value_names_path() -> None:
    with pytest.raises(CanonicalJSONError) as error:
        canonical_bytes({"label": {"text": "a\ud800b"}})
    assert error.value.reason == "lone-surrogate"
    assert error.value.path == "label.text"
