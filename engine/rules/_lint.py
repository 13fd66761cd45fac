"""Warnings: rule sets that load and run, but probably not the way their author meant.

Errors stop a rule set from loading; these do not, and `rules check` still exits 0 for them. They are
judged only on a rule set without errors, because a file that did not load may be the one holding the
missing declaration or section. Each is a `Problem` with severity "warning", a code and a position.
"""
from __future__ import annotations

import difflib
from typing import Iterable

from leadflow.core import Problem, did_you_mean

from ._model import RuleSet


def rule_warnings(rs: RuleSet, sections: dict, on_uses: list, counted: Iterable[str],
                  produced: Iterable[str]) -> list[Problem]:
    """`sections`: name -> (value, Document); `on_uses`: (event type, Location) of every `on:`;
    `counted`: event types the `event:` tests name; `produced`: the types leadflow itself produces."""
    return _unrouted(rs, sections) + _unknown_on(rs, on_uses, set(counted), set(produced))


def _unrouted(rs: RuleSet, sections: dict) -> list[Problem]:
    """An SQL with neither a rep nor a channel is delivered to nobody (and `sql list` shows no owner)."""
    if "fallback" in sections:
        return []
    if "routing" in sections:
        _, doc = sections["routing"]
        return [Problem("NO_FALLBACK", "an SQL that no rep in the pool can take (away, off hours, at capacity, "
                        "or no entry matches) goes to nobody: there is no fallback", doc.at(("routing",), key=True),
                        "add `fallback: { channel: \"#sales-queue\" }`", "warning")]
    if rs.sql is not None and "stages" in sections:
        _, doc = sections["stages"]
        return [Problem("NO_FALLBACK", "leads that pass this gate become SQLs with no rep and no channel: there is "
                        "no routing and no fallback", doc.at(("stages", "sql"), key=True),
                        "add `fallback: { channel: \"#sales-queue\" }`, and `reps:` with `routing:` to assign reps",
                        "warning")]
    return []


def _unknown_on(rs: RuleSet, on_uses: list, counted: set, produced: set) -> list[Problem]:
    """An `on:` type nobody declared and leadflow does not produce is often a typo: the rule never fires.

    A rule set that declares event types (`events:`) is held to its declarations. One that declares none
    is warned only about a type written once that looks like a misspelling of a type used elsewhere in
    the rule files (or one leadflow produces)."""
    declared = set(rs.events)
    known = declared | produced
    nurture = _nurture_types(rs.nurture)
    seen = known | counted | {etype for etype, _ in on_uses} | nurture
    uses = {etype: sum(1 for t, _ in on_uses if t == etype) + (etype in counted) + (etype in nurture)
            for etype, _ in on_uses}
    out = []
    for etype, where in on_uses:
        if etype in known:
            continue
        hint = did_you_mean(etype, seen - {etype})
        if not declared and not (uses[etype] == 1 and _misspelt(etype, seen - {etype})):
            continue
        out.append(Problem("UNKNOWN_ON_EVENT", f"event type '{etype}' is not declared under 'events:' and leadflow "
                           "does not produce it", where, hint or "declare it under 'events:' or fix the spelling",
                           "warning"))
    return out


def _misspelt(word: str, others: set) -> bool:
    """Closer than a did-you-mean hint needs: a letter or two off (page_veiw), not merely alike
    (email_bounced and email_unsubscribed are two real types)."""
    return bool(difflib.get_close_matches(word, sorted(others), n=1, cutoff=0.85))


def _nurture_types(tracks: list) -> set:
    types: set = set()
    for track in tracks:
        types |= set(getattr(track, "event_types", ()))
        types |= {ins.arg for ins in getattr(track, "program", ()) if ins.op == "wait_until" and isinstance(ins.arg, str)}
    return types
