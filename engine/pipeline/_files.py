"""`leadflow ingest`: files of events into the pipeline, and who is trusted with what.

What an import may contain:
- JSONL files are outside input, like the webhook: leadflow's own event types (sql_accepted,
  sql_rejected, sql_reassigned, lead_disqualified, lead_recycled, lead_reopened, decay_tick) are
  rejected, because they would bypass "only the assigned rep or a manager decides". An operator who
  imports history that holds them (a migration from another system, feedback exported for `rules
  tune`) says so with `--trusted`.
- CSV files read through a mapping are trusted: the mapping file, written by the operator, decides
  which column holds the reps' verdicts and the outcomes, and turns them into sql_accepted /
  sql_rejected and deal_won / deal_lost events; that is how `rules tune` learns from history.
  The cells themselves are not trusted: a `from_value` event whose value names one of leadflow's own
  types ("Lead Disqualified") is refused, and a row that cannot be read (a byte that is not UTF-8, a
  field over 64 KB) is a dead letter on its own; the other rows go on.
- A CSV whose mapping names stage dates (`stages:`, `stage:`) or the outcome's date is history: its
  stage entries are recorded as imported and the rules do not move stages on its rows (_history.py
  says exactly how imported history and the rules' decisions combine).
- Nobody outside leadflow may use its own event ids (fb-<digit>..., reopen:, tick:, nurture:),
  trusted or not: an id taken in advance would make leadflow's own later event collide.
- Event times more than `max_future` after the wall clock at receipt (default one day, for clock
  skew) or before 1970 are rejected, trusted or not.

Every file is applied in transactions of 500 events with one savepoint per event, so a bad line is
a dead letter and never takes the good ones with it; each COMMIT is durable (synchronous=FULL).
"""
from __future__ import annotations

import json
import time
from typing import Callable, Iterator

from leadflow.core import DEFAULT_MAX_FUTURE
from leadflow.intake import CsvMapping, Intake, Unreadable, load_mapping, mapped_events, read_jsonl, read_rows

from ._jobs import apply_in_jobs
from ._pipeline import Counts, Pipeline


def intake_for(trusted: bool = False, max_future: float = DEFAULT_MAX_FUTURE,
               clock: Callable[[], float] = time.time, history: bool = False) -> Intake:
    return Intake(clock=clock, max_future=max_future, trusted_types=trusted, history=history)


def lines_of(path: str, mapping_path: str | None = None) -> Iterator[tuple[int, str]]:
    """(line number, raw JSON) of a JSONL file ('-' = standard input), or of the events a mapping
    makes of a CSV file (numbered by CSV line)."""
    if mapping_path and path.endswith(".csv"):
        return _csv_lines(*_csv(path, mapping_path))
    return read_jsonl(path)


def _csv(path: str, mapping_path: str) -> tuple[CsvMapping, Iterator]:
    """The checked mapping (a LeadflowError before any row is applied) and the file's rows."""
    header, rows = read_rows(path, blank_lines=True)
    return load_mapping(mapping_path, header), rows


def _csv_lines(mapping: CsvMapping, rows: Iterator) -> Iterator[tuple[int, str | Unreadable]]:
    return ((line, e if isinstance(e, Unreadable) else json.dumps(e)) for line, e in mapped_events(mapping, rows))


def ingest_file(pipeline: Pipeline, path: str, mapping_path: str | None = None, trusted: bool = False,
                max_future: float = DEFAULT_MAX_FUTURE, clock: Callable[[], float] = time.time,
                progress: Callable[[int], None] | None = None, jobs: int = 1, rules_dir: str | None = None) -> Counts:
    """Apply one file; see the module docstring for what it may contain. A CSV whose mapping names
    stage dates is history (see _history.py): the rules do not move stages on its rows. jobs > 1
    evaluates in that many processes (_jobs.py), which load the rules again from `rules_dir`."""
    if mapping_path and path.endswith(".csv"):
        mapping, rows = _csv(path, mapping_path)
        intake = intake_for(True, max_future, clock, history=mapping.history)
        lines = _csv_lines(mapping, rows)
    else:
        intake, lines = intake_for(trusted, max_future, clock), read_jsonl(path)
    if jobs > 1 and rules_dir is not None:
        return apply_in_jobs(pipeline, rules_dir, lines, path, jobs, progress, intake)
    return pipeline.apply_lines(lines, source=path, progress=progress, intake=intake)
