"""compact_json: the fast writer, and the values it hands to the standard library."""
import json

import pytest

from leadflow.core import compact_json


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
