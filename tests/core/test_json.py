"""compact_json: the fast writer, and the values it hands to the standard library."""
import json
from typing import NamedTuple

import pytest

from leadflow.core import compact_json, read_json


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1.5, -0.0, 1e-07, 1e+22, 5e-324], "c": "é\u2028\x00"},
    {"big": 2 ** 70, "neg": -(2 ** 65)},  # past 64 bits: orjson refuses, the fallback writes it
    {"lone": "a\ud800b"},  # a lone surrogate in hostile text
    {1: "int key"},
])
def test_every_value_is_written_and_reads_back(value):
    text = compact_json(value)
    assert " " not in text.replace("int key", "")
    assert json.loads(text) == json.loads(json.dumps(value))


def test_fallback_keeps_escaping_unless_told_otherwise():
    assert compact_json({"s": "\ud800", "n": 2 ** 64}) == '{"s":"\\ud800","n":18446744073709551616}'
    assert compact_json({"s": "\ud800", "n": 2 ** 64}, ensure_ascii=False) == '{"s":"\ud800","n":18446744073709551616}'


def test_text_is_utf8_not_escaped_on_the_fast_path():
    assert compact_json({"name": "Zoë"}) == '{"name":"Zoë"}'


class Pair(NamedTuple):
    rule: str
    points: float


def test_a_named_tuple_is_an_array_on_the_fast_path():
    value = {"added": [Pair("zoë", 25.0)], "t": (1, 2)}
    assert json.loads(compact_json(value)) == json.loads(json.dumps(value))
    assert compact_json(value) == '{"added":[["zoë",25.0]],"t":[1,2]}'  # UTF-8: orjson wrote it, not the fallback
    assert compact_json({"added": [Pair("\ud800", 2 ** 70)]}) == '{"added":[["\\ud800",1180591620717411303424]]}'


# ---- read_json: json.loads, value for value and error for error -----------------------------------------

EDGES = [
    '{"a": 1, "b": 2, "a": 3}',  # duplicate keys: the last value, where the first stood
    "123456789012345678901234567890", "-18446744073709551616", "18446744073709551615", "9223372036854775808",
    '{"n": 1234567890123456789012}', "0.1234567890123456789", "1e400", "-1e400", "1e-400", "-0", "-0.0",
    "NaN", "Infinity", "-Infinity", '{"x": NaN}',
    '"\\ud800"', '"a\\udfffb"', '"\\ud83d\\ude00"', '"\ud800"',  # escaped lone, escaped pair, a raw surrogate
    "\ufeff{}", '"\x00"', '"\\u0000"', "[1,]", "{'a': 1}", "01", "1.", ".5", "[" * 1100 + "]" * 1100,
    "[" * 500 + "]" * 500, "", "  [1, 2.5, true, false, null]  ", '{"é": "Zoë\u2028"}', "[] []",
]


def _outcome(read, text):  # noqa: ANN001, ANN202
    try:
        value = read(text)
    except RecursionError:
        return ("RecursionError",)
    except ValueError as exc:
        return (type(exc).__name__ if not isinstance(exc, json.JSONDecodeError) else "JSONDecodeError", str(exc))
    return ("value", repr(value), [type(v).__name__ for v in (value.values() if isinstance(value, dict) else [value])])


def _strict(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


@pytest.mark.parametrize("text", EDGES)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_read_json_answers_as_the_standard_library_does(text, as_bytes):
    """Integers past 64 bits stay exact ints, what orjson refuses gets the standard library's own
    value or message (so intake's rejections read the same), constants go to parse_constant."""
    if as_bytes:
        try:
            text = text.encode("utf-8")
        except UnicodeEncodeError:
            return  # a raw surrogate has no UTF-8 form
    assert _outcome(read_json, text) == _outcome(json.loads, text)
    assert _outcome(lambda t: read_json(t, parse_constant=_strict), text) == \
        _outcome(lambda t: json.loads(t, parse_constant=_strict), text)


def test_read_json_matches_the_standard_library_on_generated_documents():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(min_value=-(2 ** 80), max_value=2 ** 80) | \
        st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
    documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                             st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(documents, st.sampled_from([{}, {"ensure_ascii": False}, {"separators": (",", ":")}]))
    def check(value, style):  # noqa: ANN001, ANN202
        try:
            text = json.dumps(value, **style)
        except (UnicodeEncodeError, ValueError):
            return
        assert _outcome(read_json, text) == _outcome(json.loads, text)

    check()
