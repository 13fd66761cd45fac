"""PNG charts of the pipeline (matplotlib, headless): funnel, weekly trend, acceptance by rep and
reject reasons on one dashboard, sized and lettered to stay readable in Slack's preview."""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

FUNNEL = ("new", "mql", "sql", "accepted", "won")
COLORS = {"mql": "#4C78A8", "sql": "#F58518", "accepted": "#54A24B", "rejected": "#E45756", "pending": "#BAB0AC",
          "expired": "#B279A2"}


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


def dashboard(data: dict, title: str = "Pipeline", by: str | None = None) -> bytes:
    plt = _pyplot()
    plt.rcParams.update({"font.size": 13, "axes.titlesize": 15, "axes.titleweight": "bold"})
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), dpi=100)
    fig.suptitle(f"{title} · {period_label(data)}", fontsize=18, fontweight="bold")
    _funnel(axes[0][0], data)
    _trend(axes[0][1], data)
    _reps(axes[1][0], data)
    _reasons(axes[1][1], data)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def _empty(ax, text: str) -> None:  # noqa: ANN001
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, color="#777777", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _funnel(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("Leads entering each stage")
    values = [data["stages"].get(s, 0) for s in FUNNEL]
    bars = ax.barh([s.upper() for s in FUNNEL][::-1], values[::-1], color="#4C78A8")
    for bar, value in zip(bars, values[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value}", va="center")
    ax.set_xlabel("leads")
    ax.margins(x=0.15)
    c = data["conversion"]
    if c["mql_to_sql"] is not None:
        ax.text(0.98, 0.02, f"MQL→SQL {c['mql_to_sql']:.0%}", transform=ax.transAxes, ha="right", va="bottom")


def _trend(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("Per week")
    weeks = data.get("weekly") or []
    if not weeks:
        _empty(ax, "no MQL, SQL or acceptance in this period")
        return
    first, last = weeks[0]["week_start"], weeks[-1]["week_start"]
    by_week = {w["week_start"]: w for w in weeks}
    starts = [first + i * 604800 for i in range(int((last - first) // 604800) + 1)]
    labels = [datetime.fromtimestamp(s, timezone.utc).strftime("%b %d") for s in starts]
    for stage in ("mql", "sql", "accepted"):
        ax.plot(labels, [by_week.get(s, {}).get(stage, 0) for s in starts], marker="o", label=stage.upper(),
                color=COLORS[stage], linewidth=2.5)
    ax.set_ylabel("leads, by week starting")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.legend(loc="upper left")
    step = max(1, len(labels) // 8)
    ax.set_xticks(range(0, len(labels), step))
    ax.set_xticklabels(labels[::step], rotation=30, ha="right")


def _reps(ax, data: dict) -> None:  # noqa: ANN001
    ax.set_title("SQLs by rep")
    reps = data["reps"]
    if not reps:
        _empty(ax, "no SQLs assigned in this period")
        return
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
    if not reasons:
        _empty(ax, "no rejections in this period")
        return
    names = [r["reason"] for r in reasons][::-1]
    counts = [r["count"] for r in reasons][::-1]
    bars = ax.barh(names, counts, color=COLORS["rejected"])
    for bar, value in zip(bars, counts):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value}", va="center")
    ax.set_xlabel("rejections")
    ax.margins(x=0.15)
    ax.xaxis.set_major_locator(_integer_ticks())
