"""`leadflow eval`: how well the rules' score and SQL gate separate the outcome in labelled data."""
from __future__ import annotations

from typing import Iterator, Sequence

import click

from ._shared import Bar, emit, json_option, progress_bar, reports_problems, rules_option, settings


@click.command("eval")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled historical leads (CSV).")
@click.option("--mapping", "mapping_path", required=True, type=click.Path(exists=True, dir_okay=False))
@rules_option
@json_option
@click.pass_context
@reports_problems
def eval_command(ctx: click.Context, data_path: str, mapping_path: str, rules_dir: str, as_json: bool) -> None:
    """How well the rules' score and SQL gate separate the outcome in labelled data."""
    from leadflow.intake import labelled_leads, load_mapping, read_rows, readable
    from leadflow.learning import metrics, replay
    from leadflow.rules import load_compiled

    _, rules_path = settings(ctx, None, rules_dir)
    compiled = load_compiled(rules_path)
    header, rows = read_rows(data_path)
    leads = readable(labelled_leads(load_mapping(mapping_path, header), rows))
    with progress_bar("replaying", len(leads), "leads", not as_json) as bar:
        # the calibration's probabilities against the outcomes: brier and ece (null without calibration.yaml)
        result = metrics(replay(compiled, _counted(leads, bar) if bar else leads), compiled.rules.likelihood)
    if as_json:
        emit(result)
        return
    for key, value in result.items():
        click.echo(f"{key + ' (10 bins)' if key == 'ece' else key:>14}: {value}")


def _counted(items: Sequence, bar: Bar) -> Iterator:
    """The items, each advancing the bar as the replay reaches it."""
    for item in items:
        yield item
        bar.advance(1)
