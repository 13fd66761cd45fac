"""`feedback.weights`: how much each kind of label counts when `rules tune` learns from the past.

A won or lost deal is the outcome itself; a rep's accept or reject is an opinion given sooner and more
often, and some reject reasons say little about the lead (nobody answered the phone). The marketer
weights them here, next to the reject reasons they belong to: `outcome` (won/lost), `accept`,
`reject` (every reason without its own weight) and any reason id. 0 leaves that label out.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

from ._model import DEFAULT_WEIGHTS
from ._schema import ID_PATTERN

MAX_WEIGHT = 100.0

Report = Callable[[str, str, tuple, str], None]  # code, message, path, hint


def parse_label_weights(value: Any, report: Report) -> dict[str, float]:
    """The weights of a `feedback:` section already walked against the schema, defaults filled in."""
    out = dict(DEFAULT_WEIGHTS)
    weights = value.get("weights") if isinstance(value, dict) else None
    if not isinstance(weights, dict):
        return out
    for key, weight in weights.items():
        path = ("feedback", "weights", key)
        if not isinstance(key, str) or not re.match(ID_PATTERN, key):
            report("BAD_VALUE", f"'{key}' is not a label name", path,
                   "use outcome, accept, reject or a reject reason's id")
            continue
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or not 0 <= weight <= MAX_WEIGHT:
            report("BAD_VALUE", f"the weight of '{key}' must be a number from 0 to {MAX_WEIGHT:g}", path,
                   "1 counts a label like a won or lost deal, 0 leaves it out")
            continue
        out[key] = float(weight)
    return out
