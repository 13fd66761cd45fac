"""Helpers every error message uses: they must keep hostile text from forging output and keep the
caret under the right character."""
from __future__ import annotations

from leadflow.core import did_you_mean, excerpt, printable


def test_did_you_mean_names_the_closest_word_or_nothing():
    assert did_you_mean("scorng", ["scoring", "stages", "routing"]) == "did you mean 'scoring'?"
    assert did_you_mean("zzz", ["scoring", "stages"]) == ""


def test_printable_escapes_control_characters_and_leaves_out_the_middle_of_long_text():
    assert printable("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
    long = printable("x" * 10_000, 100)
    assert len(long) < 150 and "[9900 characters]" in long


def test_the_caret_stays_under_the_column_in_a_long_or_escaped_line():
    line = "k" * 500 + "!" + "v" * 500
    shown, caret = excerpt(line, 501)
    assert shown[caret] == "!" and len(shown) < 140
    shown, caret = excerpt("\tkey: !", 7)
    assert shown[caret] == "!" and shown.startswith("\\t")
