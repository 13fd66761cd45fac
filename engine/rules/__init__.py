"""The rule language: finding the rule files, loading and checking them (every problem with
file:line:column), the typed rule set, conditions, score arithmetic, nurture tracks, and compiling
the rule set into durable_rules definitions."""
from ._calibration import Calibration, Step, percent
from ._compiler import Compiled, Role, describe
from ._conditions import ConditionParser, Leaf, walk
from ._directory import (STALE, copy_rule_dir, dir_version, inside, out_dir_problem, overlay_rule_files,
                         rule_dir_lock)
from ._files import MAX_FILE_BYTES, rule_files
from ._holds import holds
from ._load import load_calibration, load_compiled, load_rules
from ._model import RuleSet
from ._schema import render_json_schema, render_reference
from ._scoring import (
    LeadState,
    Tally,
    TrackEntry,
    add_tally,
    compute_scores,
    contributions,
    may_count,
    merge_attributes,
    note_event,
    rule_value,
)
from ._tracks import MissingFields, Track, render
from ._webhooks import KINDS as WEBHOOK_KINDS
from ._webhooks import Subscription

__all__ = [
    "Calibration", "Compiled", "ConditionParser", "LeadState", "Leaf", "MAX_FILE_BYTES", "MissingFields", "Role",
    "RuleSet", "STALE", "Subscription", "Tally", "Track", "TrackEntry", "WEBHOOK_KINDS", "add_tally", "compute_scores",
    "contributions", "copy_rule_dir",
    "describe", "dir_version", "holds", "inside", "load_calibration", "load_compiled", "load_rules", "may_count",
    "merge_attributes", "note_event", "out_dir_problem", "overlay_rule_files", "render",
    "percent", "render_json_schema", "render_reference", "rule_dir_lock", "rule_files", "rule_value", "Step", "walk",
]
