"""`leadflow rules ...`: check, test, tune, backtest and the schema of rule files."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import click

from leadflow.core import LeadflowError

from ._shared import (
    db_option,
    emit,
    existing_db,
    json_option,
    print_problems,
    progress_bar,
    reports_problems,
    rules_option,
    settings,
)


@click.group()
def rules() -> None:
    """Check and inspect rule files."""


def _rule_dir(ctx: click.Context, directory: str | None, rules_dir: str) -> str:
    """The rule directory a command works on; a file or a path that does not exist is a usage error."""
    target = directory or settings(ctx, rules_dir=rules_dir)[1]
    if os.path.isfile(target):
        raise click.UsageError(f"{target} is a file; give the rule directory that holds it "
                               f"({os.path.dirname(target) or '.'}): the rule files are checked together")
    if not os.path.isdir(target):
        raise click.UsageError(f"no rule directory {target}")
    return target


@rules.command("check")
@click.argument("directory", required=False)
@rules_option
@json_option
@click.pass_context
def rules_check(ctx: click.Context, directory: str | None, rules_dir: str, as_json: bool) -> None:
    """Validate a rule directory; silent and exit 0 when valid. Warnings (a rule set that works, but
    probably not as meant) are printed and keep exit 0; they are judged once there are no errors."""
    from leadflow.rules import load_rules

    target = _rule_dir(ctx, directory, rules_dir)
    try:
        warnings = load_rules(target).warnings
    except LeadflowError as exc:
        if as_json:
            emit({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
        else:
            print_problems(exc.problems)
        sys.exit(1)
    if as_json:
        emit({"valid": True, "problems": [p.to_dict() for p in warnings]})
    elif warnings:
        print_problems(warnings)


@rules.command("test")
@click.argument("directory", required=False)
@click.option("--coverage", is_flag=True, help="Also list the rules no test exercised (exit 1 if any).")
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_test(ctx: click.Context, directory: str | None, coverage: bool, rules_dir: str, as_json: bool) -> None:
    """Run the rule tests beside the rules (tests/*.yaml, *_test.yaml)."""
    from leadflow.rules import load_compiled
    from leadflow.runtime import run_tests

    target = _rule_dir(ctx, directory, rules_dir)
    report = run_tests(load_compiled(target), target)
    if as_json:
        emit({"tests": report.tests, "passed": report.passed,
              "failures": [{"file": f.location.file, "line": f.location.line, "test": f.name, "message": f.message}
                           for f in report.failures],
              "problems": [p.to_dict() for p in report.problems], "untested": report.untested})
    else:
        if report.problems:
            print_problems(report.problems)
        for f in report.failures:
            click.echo(f"{f.location.file}:{f.location.line}: {f.message} (test '{f.name}')", err=True)
        click.echo(f"{report.passed} of {report.tests} rule tests passed", err=not report.ok)
        if coverage:
            click.echo("untested rules: " + (", ".join(report.untested) or "none"))
    if not report.ok or (coverage and report.untested) or report.tests == 0:
        sys.exit(1)


@rules.command("tune")
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False),
              help="Labelled leads (CSV, with --mapping); default: feedback and outcomes in the database.")
@click.option("--mapping", "mapping_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the proposed rule set here.")
@click.option("--apply", "apply_live", is_flag=True, help="Write the proposal over the live rules.")
@click.option("--target-precision", type=click.FloatRange(0, 1), help="SQL score threshold for this precision.")
@click.option("--capacity", help="Share of leads the MQL gate should admit, e.g. 30%.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_tune(ctx: click.Context, data_path: str | None, mapping_path: str | None, out_dir: str | None,
               apply_live: bool, target_precision: float | None, capacity: str | None, db_path: str, rules_dir: str,
               as_json: bool) -> None:
    """Propose better points, new rules and thresholds from outcomes and reps' feedback."""
    from leadflow.learning import leads_from_csv, leads_from_store, queue_line, tune
    from leadflow.rules import out_dir_problem, overlay_rule_files

    db, rules_path = settings(ctx, db_path, rules_dir)
    if not out_dir and not apply_live:
        raise click.UsageError("give --out DIR for a proposal to review, or --apply to change the live rules")
    refused = out_dir_problem(rules_path, out_dir) if out_dir else None
    if refused:
        raise click.UsageError(f"--out {out_dir} {refused}; give a new or empty directory of its own, "
                               "or --apply to change the live rules")
    share = None
    if capacity:
        try:
            share = float(capacity.rstrip("%")) / (100 if capacity.endswith("%") else 1)
        except ValueError:
            raise click.BadParameter("write a share such as 30% or 0.3", param_hint="--capacity") from None
    if data_path:
        if not mapping_path:
            raise click.UsageError("--data needs --mapping")
        leads = leads_from_csv(data_path, mapping_path)
    else:
        leads = leads_from_store(existing_db(ctx, db_path))
    if sum(1 for x in leads if x.label is not None) < 20:
        click.echo("not enough labelled leads to tune (need at least 20 with feedback or an outcome)", err=True)
        sys.exit(1)
    if not apply_live:
        with progress_bar("tuning", None, "replays", not as_json) as bar:
            report = tune(rules_path, leads, out_dir, target_precision, share, progress=bar and bar.count)
        report["queue"] = _queue_effect(db, rules_path, out_dir)
    else:  # the same path as a proposal applied in Slack: a full copy, then only changed rule files written
        with tempfile.TemporaryDirectory() as work, progress_bar("tuning", None, "replays", not as_json) as bar:
            proposal_dir = out_dir or os.path.join(work, "proposal")
            report = tune(rules_path, leads, proposal_dir, target_precision, share, progress=bar and bar.count)
            report["queue"] = _queue_effect(db, rules_path, proposal_dir)  # before the live rules change
            status, _ = overlay_rule_files(proposal_dir, rules_path, report["rules_version"])
            if status == "stale":
                click.echo(f"{rules_path}: the rules changed while tuning ran; nothing was applied (run again)",
                           err=True)
                sys.exit(1)
            shutil.copyfile(os.path.join(proposal_dir, "TUNING.md"), os.path.join(rules_path, "TUNING.md"))
    if as_json:
        emit(report)
        return
    b, a = report["validation"]["before"], report["validation"]["after"]
    click.echo(f"AUC {b['auc']} -> {a['auc']}, precision@30% {b['precision_at']['0.3']} -> {a['precision_at']['0.3']}"
               f" ({report['validation']['folds']}-fold cross-validated on {report['leads']} leads)")
    if report["queue"]:
        click.echo(queue_line(report["queue"]))
    for r in report["rules"]:
        if r["old"] != r["new"]:
            click.echo(f"  {r['rule']}: {r['old']:g} -> {r['new']}")
    for r in report["new_rules"]:
        click.echo(f"  new {r['rule']} ({r['points']:+d}): {r['evidence']}")
    click.echo(f"wrote {rules_path if apply_live else out_dir} (see TUNING.md there)", err=True)


def _queue_effect(db: str, rules_path: str, proposal_dir: str) -> dict | None:
    """What the proposal would do to the reps' queue, from a backtest of the database's event log; None
    when there is no database file (tuning from a CSV alone) or it holds no events."""
    from leadflow.learning import queue_effect
    from leadflow.store import Store, is_postgres_url, sqlite_path

    if not is_postgres_url(db) and not os.path.isfile(sqlite_path(db)):
        return None
    store = Store(db)
    try:
        return queue_effect(store, rules_path, proposal_dir)
    finally:
        store.close()


@rules.command("backtest")
@click.option("--candidate", "candidate_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The rule directory to try.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes replaying in parallel, each a share of the leads.")
@click.option("--sample", "sample_text", help="Replay only this share of the leads, e.g. 5% (the same leads "
                                              "every time): a quick preview.")
@db_option
@rules_option
@json_option
@click.pass_context
@reports_problems
def rules_backtest(ctx: click.Context, candidate_dir: str, jobs: int, sample_text: str | None, db_path: str,
                   rules_dir: str, as_json: bool) -> None:
    """Replay the stored event log through a candidate rule set (the database is only read)."""
    from leadflow.learning import backtest
    from leadflow.store import Store

    sample = _percent(sample_text) if sample_text is not None else 1.0
    store = Store(existing_db(ctx, db_path))
    with progress_bar("replaying", None, "events", not as_json) as bar:
        result = backtest(store, settings(ctx, db_path, rules_dir)[1], candidate_dir, jobs, sample,
                          progress=bar and bar.count)
    if as_json:
        emit(result)
        return
    if result["sample"] < 1:
        click.echo(f"a preview on {result['sample']:.2%} of the leads (the same ones every time):")
    click.echo(f"replayed {result['events']:,} events of {result['leads']:,} leads in {result['seconds']} s")
    for name in ("current", "candidate"):
        click.echo(f"  {name:>9}: " + ", ".join(f"{k} {v}" for k, v in sorted(result["stages"][name].items())))
    click.echo(f"  {result['changed']} lead(s) would end in another stage"
               + "".join(f"\n    {c['lead']}: {c['current']} -> {c['candidate']}" for c in result["changed_leads"][:20]))
    fb = result["feedback"]
    click.echo(f"  accepted SQLs the candidate would lose: {fb['accepted_lost']} of {fb['accepted']}")
    click.echo(f"  rejected SQLs the candidate would filter out: {fb['rejected_filtered']} of {fb['rejected']}")


def _percent(text: str) -> float:
    """`--sample 5%` or `--sample 5`: a share of the leads in (0, 1]."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = float("nan")
    if not 0 < value <= 100:  # NaN fails too
        raise click.BadParameter(f"{text!r} is not a share of the leads; give a percentage above 0 and at most "
                                 "100, such as 5% or 5", param_hint="--sample")
    return value / 100


@rules.command("schema")
@click.option("--write", "write_dir", type=click.Path(file_okay=False), help="Write schema.json and REFERENCE.md here.")
@click.option("--reference", is_flag=True, help="Print the Markdown reference instead of the JSON Schema.")
def rules_schema(write_dir: str | None, reference: bool) -> None:
    """Print (or write) the JSON Schema and the reference of the rule format."""
    from leadflow.rules import render_json_schema, render_reference

    if write_dir:
        with open(os.path.join(write_dir, "schema.json"), "w", encoding="utf-8") as fh:
            fh.write(render_json_schema())
        with open(os.path.join(write_dir, "REFERENCE.md"), "w", encoding="utf-8") as fh:
            fh.write(render_reference())
        click.echo(f"wrote {write_dir}/schema.json and {write_dir}/REFERENCE.md", err=True)
        return
    click.echo(render_reference() if reference else render_json_schema(), nl=False)
