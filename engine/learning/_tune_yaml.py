"""Writing a tuning proposal into rule files as a minimal text edit.

Only the numbers that change are rewritten, in place (found by the positions the loader records),
and new rules are inserted after the last rule of their group with the same indentation. Comments,
key order, quoting and flow style are left exactly as the marketer wrote them, so the proposal reads
as a small, reviewable diff.
"""
from __future__ import annotations

import json
import re
from typing import Any

from leadflow.core import Document, load_file
from leadflow.rules import rule_files

from ._atoms import flow
from ._model import Proposal

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def edit_rule_files(directory: str, proposal: Proposal) -> None:
    """Write the proposal's points, new rules, new event types and thresholds into the rule files
    of `directory` (a copy of the rules), in place."""
    for path in rule_files(directory):
        doc, problems = load_file(path)
        if doc is None or not isinstance(doc.data, dict):
            continue
        lines = list(doc.lines)
        edits: list = []  # (line, col, new text) replacing the number token there
        inserts: list = []  # (after line index, [text lines])
        scoring = doc.data.get("scoring")
        if isinstance(scoring, dict):
            existing = set()
            for group in ("fit", "engagement", "negative"):
                for i, item in enumerate(scoring.get(group) or []):
                    existing.add(item.get("id"))
                    if item.get("id") in proposal.points and "points" in item:
                        line, col = doc.values[("scoring", group, i, "points")]
                        edits.append((line, col, _num(proposal.points[item["id"]])))
            for group, rules in _new_rules(proposal, existing).items():
                inserts.append(_insertion(doc, lines, scoring, group, rules))
        events = doc.data.get("events")
        if isinstance(events, dict) and events:
            declared = _declare_events(doc, lines, events, proposal)
            if declared:
                inserts.append(declared)
        stages = doc.data.get("stages")
        if isinstance(stages, dict):
            for stage, threshold in proposal.thresholds.items():
                found = _score_path(stages.get(stage, {}).get("when") if isinstance(stages.get(stage), dict) else None,
                                    ("stages", stage, "when"))
                if found:
                    line, col = doc.values[found]
                    edits.append((line, col, _num(threshold)))
        if not edits and not inserts:
            continue
        for line, col, text in sorted(edits, reverse=True):
            row = lines[line - 1]
            m = _NUMBER.match(row, col - 1)
            lines[line - 1] = row[: col - 1] + text + row[m.end():]
        for after, block in sorted(inserts, key=lambda x: x[0], reverse=True):
            lines[after:after] = block
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{float(x):.2f}".rstrip("0").rstrip(".")


def _new_rules(proposal: Proposal, existing: set) -> dict:
    groups: dict = {}
    for cand, points in proposal.candidates:
        if cand.id in existing:
            continue
        group = "negative" if points < 0 else ("fit" if cand.term else "engagement")
        body = [f"id: {cand.id}", f"description: {json.dumps('proposed by rules tune: ' + cand.evidence())}"]
        if cand.term:
            body.append(f"when: {flow(cand.condition)}")
        else:
            body.append(f"on: {cand.event}")
        body.append(f"points: {points}")
        groups.setdefault(group, []).append(body)
    return groups


def _declare_events(doc: Document, lines: list, events: dict, proposal: Proposal) -> tuple | None:
    """Declare the event types of new `on:` rules beside the others, so the proposal reads like a
    rule set a person wrote (an undeclared event type looks like a typo to a reviewer and to `rules check`)."""
    new = sorted({c.event for c, _ in proposal.candidates if c.event is not None and c.event not in events})
    head_line, head_col = doc.keys[("events",)]
    first_line, first_col = doc.keys[("events", next(iter(events)))]
    if not new or first_line == head_line:  # a flow mapping on one line: leave it to the reviewer
        return None
    after = _last_line(doc, ("events",), lines, head_col - 1)
    note = json.dumps("seen in the labelled data; declared by rules tune")
    return after, [" " * (first_col - 1) + f"{event}: {note}" for event in new]


def _last_line(doc: Document, prefix: tuple, lines: list, indent: int) -> int:
    """Index of the last line belonging to `prefix` (continuation lines included)."""
    last = max(line for table in (doc.values, doc.keys) for p, (line, _) in table.items() if p[: len(prefix)] == prefix)
    while last < len(lines):
        nxt = lines[last]
        if nxt.strip() and (len(nxt) - len(nxt.lstrip())) <= indent:
            break
        last += 1
    while last > 0 and not lines[last - 1].strip():
        last -= 1
    return last


def _insertion(doc: Document, lines: list, scoring: dict, group: str, rules: list) -> tuple:
    items = scoring.get(group) or []
    if items:
        _, col = doc.values[("scoring", group, len(items) - 1)]
        dash = col - 3  # "- " precedes the item's first key
        after = _last_line(doc, ("scoring", group, len(items) - 1), lines, dash)
        pad = " " * dash
    else:
        _, key_col = doc.keys[("scoring",)]
        first = next(iter(scoring))
        indent = doc.keys[("scoring", first)][1] - 1 if first else key_col + 1
        after = _last_line(doc, ("scoring",), lines, key_col - 1)
        block_head = [" " * indent + f"{group}:"]
        pad = " " * (indent + 2)
        return after, block_head + [line for body in rules for line in _item(pad, body)]
    return after, [line for body in rules for line in _item(pad, body)]


def _item(pad: str, body: list) -> list:
    return [pad + "- " + body[0]] + [pad + "  " + b for b in body[1:]]


def _score_path(node: Any, path: tuple) -> tuple | None:
    if isinstance(node, dict):
        score = node.get("score")
        if isinstance(score, dict) and "at_least" in score:
            return path + ("score", "at_least")
        for k, v in node.items():
            found = _score_path(v, path + (k,))
            if found:
                return found
    if isinstance(node, list):
        for i, v in enumerate(node):
            found = _score_path(v, path + (i,))
            if found:
                return found
    return None
