"""`python -m bench [--quick | --smoke] [--scale] [--only 1,4] [--output BENCHMARKS.md]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import shlex
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from bench.context import services
from bench.core import MODES, Figure
from bench.machine import describe
from bench.report import render
from bench.soak import carried_section

FIGURES = {
    1: "bench.command_api",
    2: "bench.append_scaling",
    3: "bench.batch_import",
    4: "bench.projections",
    5: "bench.freshness",
    6: "bench.query_api",
    7: "bench.stream_length",
    9: "bench.feed",
}
# Figure 8 takes minutes (a million events): only with --scale, never in CI.
SCALE = {8: "bench.scale"}


def arguments(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="under 2 minutes, smaller sizes")
    group.add_argument("--smoke", action="store_true", help="seconds; proves the harness runs")
    parser.add_argument("--scale", action="store_true", help="add figure 8, a million events")
    parser.add_argument("--only", default="", help="figure numbers, e.g. 1,4")
    parser.add_argument("--output", default="BENCHMARKS.md", type=Path)
    args = parser.parse_args(argv)
    known = FIGURES | SCALE if args.scale else FIGURES
    args.numbers = [int(n) for n in args.only.split(",") if n] or list(known)
    if unknown := [n for n in args.numbers if n not in known]:
        hint = " (figure 8 runs with --scale)" if 8 in unknown else ""
        parser.error(f"no figure {', '.join(map(str, unknown))}{hint}")
    return args


async def measure(
    numbers: list[int], mode_name: str, command: str
) -> tuple[list[Figure], dict[int, str], str]:
    """Run the figures; the figures, those that failed (with why) and the report.

    A figure that fails does not take the others with it: figure 8 runs last, an hour in.
    """
    mode = MODES[mode_name]
    work = Path(tempfile.mkdtemp(prefix="ordertrail-bench-"))
    figures: list[Figure] = []
    failed: dict[int, str] = {}
    try:
        with services(mode, work) as ctx:
            try:
                machine = await describe(ctx)
                for number in numbers:
                    name = (FIGURES | SCALE)[number]
                    print(f"figure {number}: {name}", file=sys.stderr, flush=True)
                    module = importlib.import_module(name)
                    try:
                        figures.append(await module.run(ctx))
                    except Exception as exc:
                        traceback.print_exc()
                        failed[number] = f"{type(exc).__name__}: {exc}"
                    # Gone before the next figure: a figure's tables left behind would have
                    # autovacuum working through them (hundreds of thousands of rows after
                    # figures 3 and 4) on the cores the next figure measures on.
                    await ctx.drop_databases()
            finally:
                await ctx.drop_databases()
    except BaseException:
        # The servers' and children's logs say why: kept for whoever reads the traceback.
        print(f"bench failed; its servers' logs are kept in {work}", file=sys.stderr)
        raise
    if failed:
        print(f"figure(s) failed; the servers' logs are kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    report = render(figures, machine, mode, command)
    for number, why in failed.items():
        report += f"\n## {number}. Failed\n\n```\n{why.strip()}\n```\n"
    return figures, failed, report


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = arguments(sys.argv[1:] if argv is None else argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    figures, failed, report = asyncio.run(measure(args.numbers, mode, command.strip()))
    soak = carried_section(args.output)  # the soak runs apart (minutes); keep its figures
    args.output.write_text(report.rstrip("\n") + (f"\n\n{soak}\n" if soak else "\n"))
    missed = [t.description for f in figures for t in f.targets if not t.met]
    print(
        f"wrote {args.output}: {len(figures)} figures, {len(missed)} target(s) not met"
        + (f", figure(s) {', '.join(map(str, failed))} failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
