"""BENCHMARKS.md: the machine, the versions, the command, every figure, ratio and target."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.core import Figure, Mode


def _number(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def render(figures: list[Figure], machine: dict[str, str], mode: Mode, command: str) -> str:
    """The whole report as Markdown."""
    lines = [
        "# ordertrail benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}` ({mode.name} mode: "
        f"{mode.warmups} warm-up, {mode.repetitions} repetitions, {mode.seconds:g} s load runs, "
        f"event counts scaled by {mode.scale:g}). Loopback only; every ratio compares two "
        "measurements of this same run on this same machine.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in machine.items()),
        "",
        "## Targets",
        "",
        "| figure | target | met | measured |",
        "|---|---|---|---|",
        *_target_rows(figures),
    ]
    for figure in figures:
        lines += _figure_section(figure)
    return "\n".join(lines) + "\n"


def _target_rows(figures: list[Figure]) -> list[str]:
    """One row per target of every figure."""
    rows = []
    for figure in figures:
        for target in figure.targets:
            verdict = "met" if target.met else "**not met**"
            rows.append(f"| {figure.number} | {target.description} | {verdict} | {target.detail} |")
    return rows


def _figure_section(figure: Figure) -> list[str]:
    """A figure's measurements, ratios and notes."""
    lines = [
        "",
        f"## {figure.number}. {figure.title}",
        "",
        "| measurement | median | min | max | unit |",
        "|---|---|---|---|---|",
    ]
    for m in figure.measurements:
        cells = " | ".join(_number(v) for v in (m.median, m.low, m.high))
        lines.append(f"| {m.name} | {cells} | {m.unit} |")
    if figure.ratios:
        lines += ["", *(f"- {name}: **{value:.2f}**" for name, value in figure.ratios.items())]
    if figure.notes:
        lines += ["", *(f"- {note}" for note in figure.notes)]
    return lines
