"""`leadflow export`: every lead with its stage dates, owner, scores, BANT and rule version, as CSV a
HubSpot-style import reads (and `leadflow ingest --mapping rules/examples/leadflow-export.mapping.yaml`
reads back), or as JSON lines."""
from __future__ import annotations

import csv
import json
import sys

import click

from ._shared import db_option, existing_db


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True,
              help="CSV with a header row, or one JSON object per line.")
@click.option("--stage", help="Only leads in this stage.")
@db_option
@click.pass_context
def export(ctx: click.Context, fmt: str, stage: str | None, db_path: str) -> None:
    """Leads with the date they entered each stage (the latest entry), owner, score, fit, engagement,
    BANT and the rule version, to standard output. Times are ISO 8601, UTC."""
    from leadflow.reports import EXPORT_COLUMNS, export_leads
    from leadflow.store import Store

    leads = export_leads(Store(existing_db(ctx, db_path)), stage)
    if fmt == "jsonl":
        for lead in leads:
            sys.stdout.write(json.dumps(lead.to_json(), ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=list(EXPORT_COLUMNS))
    writer.writeheader()
    for lead in leads:
        writer.writerow(lead.columns)
