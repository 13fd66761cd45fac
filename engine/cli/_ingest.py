"""`leadflow ingest`: apply JSONL events or mapped CSV rows, with a progress bar on a terminal."""
from __future__ import annotations

import os
import sys

import click

from ._shared import db_option, emit, json_option, progress_bar, reports_problems, rules_option, settings


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False),
              help="Mapping file for CSV input (lead id, attributes, events, outcome, feedback columns).")
@click.option("--trusted", is_flag=True, help="The JSONL holds history with leadflow's own event types (reps' "
                                               "verdicts, reopenings); refused otherwise. CSV with --mapping is trusted.")
@click.option("--max-future", "max_future", default="1d", show_default=True, envvar="LEADFLOW_MAX_FUTURE",
              help="Reject events dated more than this after the wall clock (env LEADFLOW_MAX_FUTURE).")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Evaluate in N processes, each lead's events in one of them, in order (bulk imports); on SQLite "
                   "they write scratch files merged in one transaction, at most 10.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def ingest(ctx: click.Context, files: tuple, mapping_path: str | None, trusted: bool, max_future: str, jobs: int,
           db_path: str, rules_dir: str, as_json: bool) -> None:
    """Apply JSONL events (one JSON object per line; '-' reads standard input), or CSV rows with --mapping.

    A bad line is rejected alone (a dead letter); an id sent again with other content is a conflict."""
    from leadflow.core import parse_duration
    from leadflow.pipeline import Counts, Pipeline, ingest_file

    try:
        future = parse_duration(max_future)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--max-future") from None
    db, rules_path = settings(ctx, db_path, rules_dir)
    for f in files:
        if f != "-" and not os.path.isfile(f):
            raise click.UsageError(f"no such file: {f}")
    pipeline = Pipeline.open(db, rules_path)
    total, per_file = Counts(), []
    for f in files:
        shown = f != "-" and not as_json
        with progress_bar(f"ingesting {os.path.basename(f)}", _expected(f, mapping_path) if shown else None,
                          "events", shown) as bar:
            counts = ingest_file(pipeline, f, mapping_path, trusted, future, progress=bar and bar.advance, jobs=jobs,
                                 rules_dir=rules_path)
        per_file.append({"file": f, "applied": counts.applied, "unchanged": counts.duplicates,
                         "conflicts": counts.conflicts, "rejected": counts.rejected, "late": counts.late})
        total.merge(counts)
    stages = pipeline.store.stage_counts()
    for kind, listed in (("conflict", total.conflicted), ("rejected", total.rejections)):
        for source, line, fld, reason in listed:
            where = f"{source}:{line}" if line else source
            click.echo(f"{where}: {kind}: {fld + ': ' if fld else ''}{reason}", err=True)
    counts = {"applied": total.applied, "duplicates": total.duplicates, "rejected": total.rejected}
    if total.conflicts:  # only when there are some, so the usual answer keeps its shape
        counts["conflicts"] = total.conflicts
    # per file: applied, unchanged (already in the log), conflicts, rejected, and late (applied, but older
    # than what the lead had already seen: history imported after newer events)
    # (said for CSV imports and several files; one JSONL file keeps the answer's original shape)
    itemised = bool(mapping_path) or len(files) > 1
    if as_json:
        emit({**counts, **({"unchanged": total.duplicates, "late": total.late} if itemised else {}), "stages": stages,
              **({"files": per_file} if itemised else {})})
    else:
        if itemised:
            for row in per_file:
                click.echo(f"{row['file']}: " + ", ".join(f"{k} {v}" for k, v in row.items() if k != "file"))
        click.echo(", ".join(f"{k} {v}" for k, v in counts.items()) + (f", late {total.late}" if total.late else ""))
        click.echo("stages: " + ", ".join(f"{k} {v}" for k, v in sorted(stages.items())))
    if total.rejected or total.conflicts:
        click.echo(f"{total.rejected + total.conflicts} event(s) rejected or in conflict; kept in the dead_letters "
                   "table", err=True)
        sys.exit(1)


def _expected(path: str, mapping_path: str | None) -> int | None:
    """The bar's total: a JSONL file's non-blank lines are its events; a CSV file's rows (after the
    header) estimate them (a row can make several events: the bar's total then grows)."""
    if not sys.stderr.isatty():
        return None
    with open(path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return max(lines - 1, 0) if mapping_path and path.endswith(".csv") else lines
