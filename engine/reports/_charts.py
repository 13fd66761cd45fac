"""PNG charts of the pipeline (matplotlib, headless): the funnel with the conversion between steps,
the trend with wins, the slices of `--by`, wins per owner, acceptance by rep and reject reasons, on
one dashboard sized and lettered to stay readable in Slack's preview. A panel with nothing to show is
left out rather than drawn empty; the PNG's Description (a tEXt chunk) lists the panels drawn, so a
reader without the image, and a test, can tell what it shows."""
from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from typing import Any, Callable

COLORS = {"mql": "#4C78A8", "sql": "#F58518", "accepted": "#54A24B", "rejected": "#E45756", "pending": "#BAB0AC",
          "expired": "#B279A2", "won": "#8E44AD"}
_TREND = ("mql", "sql", "accepted", "won")


def _day(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d") if ts else ""


def period_label(data: dict) -> str:
    since, until = data["period"]["since"], data["period"]["until"]
    if since is None and until is None:
        return "all time"
    return f"{_day(since) or 'start'} to {_day(until) or 'now'}"


def _pyplot() -> Any:
    """matplotlib, headless, imported when a chart is drawn and not before: importing it costs about
    30 MB and a third of a second that `leadflow bench`, the worker and every other command do not need."""
    import matplotlib

    matplotlib.use("Agg")  # no display, ever
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def panels(data: dict, by: str | None = None) -> list[tuple[str, Callable]]:
    """The panels that have something to show, in reading order: (name, drawing function)."""
    chosen = []
    if data.get("funnel"):
        chosen.append(("funnel", _funnel))
    if any(p[s] for p in (data.get("trend") or {}).get("periods", []) for s in _TREND):
        chosen.append(("trend", _trend))
    if by and data.get("by"):
        chosen.append((f"by {by}", lambda ax, d: _slices(ax, d, by)))
    if any(o["won"] for o in data.get("owners", [])):
        chosen.append(("won per owner", _owners))
    if data.get("reps"):
        chosen.append(("reps", _reps))
    if data.get("reject_reasons"):
        chosen.append(("reject reasons", _reasons))
    return chosen


def dashboard(data: dict, title: str = "Pipeline", by: str | None = None) -> bytes:
    """The dashboard PNG: two panels a row (one when there is only one), as many rows as needed."""
    plt = _pyplot()
    plt.rcParams.update({"font.size": 13, "axes.titlesize": 15, "axes.titleweight": "bold"})
    chosen = panels(data, by)
    cols = 1 if len(chosen) <= 1 else 2
    rows = max(1, math.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(13, 4.25 * rows if rows > 1 else 5.5), dpi=100, squeeze=False)
    fig.suptitle(f"{title} · {period_label(data)}", fontsize=18, fontweight="bold")
    flat = [ax for row in axes for ax in row]
    for ax, (_, draw) in zip(flat, chosen):
        draw(ax, data)
    for ax in flat[len(chosen):]:
        ax.set_visible(False)
    if not chosen:
        flat[0].set_visible(True)
        _empty(flat[0], "nothing happened in this period")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    out = io.BytesIO()
    described = "; ".join(name for name, _ in chosen) or "none"
    fig.savefig(out, format="png", metadata={"Title": f"{title} · {period_label(data)}",
                                             "Description": f"panels: {described}"})
    plt.close(fig)
    return out.getvalue()


def _empty(ax, text: str) -> None:  # noqa: ANN001
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="#777777", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.0%}"


def _funnel(ax, data: dict) -> None:  # noqa: ANN001
    """Leads entering each step, top to bottom, with the cohort conversion written between steps."""
    ax.set_title("Funnel: leads entering each stage")
    steps = data["funnel"]
    ys = list(range(len(steps)))[::-1]  # the first step at the top
    values = [s["entered"] for s in steps]
    bars = ax.barh(ys, values, height=0.55, color=[COLORS.get(s["stage"], "#4C78A8") for s in steps])
    for bar, value in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:,}", va="center")
    for y, step, nxt in zip(ys, steps, steps[1:]):
        ax.text(0, y - 0.5, f" ↓ {_pct(step['to_next'])} of {step['stage'].upper()} to {nxt['stage'].upper()}",
                va="center", ha="left", fontsize=11, color="#444444")
    ax.set_yticks(ys)
    ax.set_yticklabels([s["stage"].upper() for s in steps])
    ax.set_xlabel("leads")
    ax.margins(x=0.18)
    ax.xaxis.set_major_locator(_integer_ticks())


def _tick(start: float, unit: str, previous: float | None) -> str:
    """A period's label, with the year on the first tick and wherever the year changes."""
    d = datetime.fromtimestamp(start, timezone.utc)
    text = d.strftime("%b %d" if unit == "week" else "%b")
    new_year = previous is None or datetime.fromtimestamp(previous, timezone.utc).year != d.year
    return f"{text}\n{d.year}" if new_year else text


def _trend(ax, data: dict) -> None:  # noqa: ANN001
    trend = data["trend"]
    periods, unit = trend["periods"], trend["unit"]
    ax.set_title(f"Per {unit}")
    xs = list(range(len(periods)))
    done = [i for i, p in enumerate(periods) if not p["partial"]]
    for stage in _TREND:
        ys = [p[stage] for p in periods]
        if not any(ys):
            continue
        color = COLORS[stage]
        ax.plot(xs, ys, color=color, linewidth=1.2, linestyle=":")  # through partial periods, dotted
        ax.plot(done, [ys[i] for i in done], marker="o", color=color, linewidth=2.5, label=stage.upper())
        partial = [i for i in xs if periods[i]["partial"]]
        ax.plot(partial, [ys[i] for i in partial], marker="o", markerfacecolor="white", color=color, linestyle="")
    ax.set_ylabel(f"leads per {unit}")
    ax.yaxis.set_major_locator(_integer_ticks())
    top = max(p[s] for p in periods for s in _TREND)
    ax.set_ylim(0, top * 1.5 + 1)  # room for the legend above the lines
    handles, names = ax.get_legend_handles_labels()
    if any(p["partial"] for p in periods):
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="o", markerfacecolor="white", color="#555555", linestyle=":"))
        names.append(f"partial {unit}")
    ax.legend(handles, names, loc="upper left", fontsize=10, ncol=min(len(names), 3), columnspacing=1, handletextpad=0.4)
    step = max(1, math.ceil(len(xs) / 7))
    shown = list(range(len(xs) - 1, -1, -step))[::-1]  # counted back from the last period, which is always shown
    previous = None
    labels = []
    for i in shown:
        labels.append(_tick(periods[i]["start"], unit, previous) + ("\n(partial)" if periods[i]["partial"] else ""))
        previous = periods[i]["start"]
    ax.set_xticks(shown)
    ax.set_xticklabels(labels, fontsize=10)


def _slices(ax, data: dict, by: str) -> None:  # noqa: ANN001
    """The largest slices by MQL cohort: MQLs and wins, with the MQL->won conversion."""
    ax.set_title(f"By {by}: MQLs and won")
    groups = sorted(data["by"], key=lambda g: (-g["cohorts"]["mql"], -g["won"], g["value"]))[:8][::-1]
    names = [g["value"][:22] for g in groups]
    ys = list(range(len(groups)))
    mqls, won = [g["cohorts"]["mql"] for g in groups], [g["won"] for g in groups]
    ax.barh([y + 0.2 for y in ys], mqls, height=0.4, color=COLORS["mql"], label="MQL")
    ax.barh([y - 0.2 for y in ys], won, height=0.4, color=COLORS["won"], label="won")
    for y, g, m in zip(ys, groups, mqls):
        ax.text(max(m, g["won"]), y, f"  {_pct(g['conversion']['mql_to_won'])} MQL→won", va="center", fontsize=11)
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_xlim(0, max(mqls + won + [1]) * 1.5)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.legend(loc="lower right", fontsize=11)


def _owners(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("Won per owner")
    owners = [o for o in data["owners"] if o["won"]][:10][::-1]
    bars = ax.barh([o["owner"][:22] for o in owners], [o["won"] for o in owners], color=COLORS["won"])
    for bar, o in zip(bars, owners):
        revenue = "" if not o["revenue"] else f" · {o['revenue']:,.0f}"
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {o['won']}{revenue}", va="center")
    ax.set_ylim(-0.6, max(len(owners), 4) - 0.4)  # one owner is a bar, not a block
    ax.set_xlabel("deals won (· revenue)")
    ax.margins(x=0.4)
    ax.xaxis.set_major_locator(_integer_ticks())


def _reps(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("SQLs by rep")
    reps = data["reps"]
    names = [r["rep"] for r in reps]
    left = [0] * len(reps)
    for status in ("accepted", "rejected", "pending", "expired"):
        values = [r[status] for r in reps]
        ax.barh(names, values, left=left, color=COLORS[status], label=status)
        left = [a + b for a, b in zip(left, values)]
    for i, r in enumerate(reps):
        rate = "—" if r["acceptance_rate"] is None else f"{r['acceptance_rate']:.0%}"
        ax.text(left[i], i, f"  {rate} accepted", va="center")
    ax.set_xlabel("assignments")
    ax.set_xlim(0, max(left) * 1.45 + 1)
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, fontsize=11, frameon=False)


def _reasons(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("Top reject reasons")
    reasons = data["reject_reasons"][:8]
    names = [(r.get("label") or r["reason"])[:30] for r in reasons][::-1]
    counts = [r["count"] for r in reasons][::-1]
    bars = ax.barh(names, counts, color=COLORS["rejected"])
    for bar, value in zip(bars, counts):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value}", va="center")
    ax.set_xlabel("rejections")
    ax.margins(x=0.15)
    ax.xaxis.set_major_locator(_integer_ticks())
