"""Load soak: a steady, bounded command load for minutes; errors, memory and projection lag.

`python -m bench.soak [--seconds 300] [--rate 40] [--output BENCHMARKS.md]` starts the whole
system (command API, query API, one worker) on the bench's servers, sends `rate` commands a
second (open loop, a mix of registrations, receipts, reprices and orders) for `seconds`, and
every few seconds samples each process's resident memory and each projection's lag. The report
replaces the "Load soak" section of the output file and keeps the rest of it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import create_async_engine

from bench.command_api import bench_token, product
from bench.context import BenchContext, services
from bench.core import MODES
from bench.http import Client
from bench.soak_samples import SAMPLE_SECONDS, Samples, largest_lag, sample, settle
from domain.values import product_id
from eventstore.driver import dispose

START, END = "<!-- soak:start -->", "<!-- soak:end -->"
SKUS = [f"SOAK-{n:03d}" for n in range(20)]
CONNECTIONS = 8


async def command(client: Client, headers: dict[str, str], n: int, pick: random.Random) -> int:
    """One command of the mix; its status."""
    kind, sku = n % 4, pick.choice(SKUS)
    if kind == 0:
        body: dict[str, Any] = product(f"SOAKNEW-{n}-{uuid.uuid4().hex[:6]}")
        response = await client.post("/api/v1/products", json=body, headers=headers)
    elif kind == 1:
        body = {"quantity": pick.randint(1, 5)}
        response = await client.post(f"/api/v1/stock/{sku}/receive", json=body, headers=headers)
    elif kind == 2:
        path = f"/api/v1/products/{product_id(sku)}/reprice"
        body = {"price": f"{pick.randint(100, 999) / 100:.2f}"}
        response = await client.post(path, json=body, headers=headers)
    else:
        lines = [{"sku": sku, "quantity": 1}]
        body = {"customer_id": str(uuid.uuid4()), "lines": lines}
        response = await client.post("/api/v1/orders", json=body, headers=headers)
    return response.status_code


async def drive(api: str, seconds: float, rate: float, samples: Samples) -> None:
    """Send `rate` commands a second for `seconds` (open loop, bounded in count and time)."""
    headers = {"Authorization": f"Bearer {bench_token(['commands:write'])}"}
    pool: asyncio.Queue[Client] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(Client(api))
    pick, tasks = random.Random(11), []

    async def one(n: int) -> None:
        client = await pool.get()
        started = time.perf_counter()
        try:
            status = await asyncio.wait_for(command(client, headers, n, pick), 10)
        except (OSError, TimeoutError, ValueError, EOFError):
            status, client = 0, Client(api)  # a broken connection is replaced
        finally:
            pool.put_nowait(client)
        samples.latencies.append(time.perf_counter() - started)
        samples.statuses[status] = samples.statuses.get(status, 0) + 1

    begin, count = time.monotonic(), int(seconds * rate)
    for n in range(count):
        await asyncio.sleep(max(0.0, begin + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(n)))
        samples.sent += 1
    await asyncio.gather(*tasks)


async def soak(ctx: BenchContext, seconds: float, rate: float) -> dict[str, Any]:
    """Run the whole system under the load; the figures."""
    database_url = await ctx.fresh_database()
    env = ctx.env(database_url, f"soak_{uuid.uuid4().hex[:8]}")
    engine = create_async_engine(database_url, pool_size=2)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(ctx.mongodb_url)
    samples = Samples()
    try:
        with (
            ctx.worker(env) as worker,
            ctx.server("command_api.main:app", env) as api,
            ctx.server("query_api.main:app", env) as query,
        ):
            pids = {"command API": ctx.pids[api], "query API": ctx.pids[query]}
            pids["worker"] = worker.pid
            await seed(api)
            stop = asyncio.Event()
            sampler = asyncio.create_task(
                sample(pids, engine, mongo[env["MONGODB_DB"]], query, samples, stop)
            )
            await drive(api, seconds, rate, samples)
            stop.set()
            await sampler
            drained = await settle(engine, mongo[env["MONGODB_DB"]], 120)
            final_lag = await largest_lag(engine, mongo[env["MONGODB_DB"]])
    finally:
        await mongo.close()
        await dispose(engine)
    return figures(samples, seconds, rate, drained, final_lag)


async def seed(api: str) -> None:
    """Register and stock the SKUs the mix works on."""
    headers = {"Authorization": f"Bearer {bench_token(['commands:write'])}"}
    client = Client(api)
    for sku in SKUS:
        await client.post("/api/v1/products", json=product(sku), headers=headers)
        body = {"quantity": 100_000}
        await client.post(f"/api/v1/stock/{sku}/receive", json=body, headers=headers)


def figures(
    samples: Samples, seconds: float, rate: float, drained: float, final_lag: int
) -> dict[str, Any]:
    """The soak's figures: counts, latency, memory (after a warm-up) and lag."""
    latencies = sorted(samples.latencies) or [float("nan")]
    warm = max(1, len(samples.lag) // 5)  # the first fifth is warm-up (imports, caches, pools)
    memory = {
        name: {
            "start_mib": values[min(warm, len(values) - 1)],
            "end_mib": values[-1],
            "max_mib": max(values),
            "growth_mib": values[-1] - values[min(warm, len(values) - 1)],
        }
        for name, values in samples.rss.items()
    }
    lags = sorted(samples.lag) or [0]
    return {
        "seconds": seconds,
        "rate": rate,
        "sent": samples.sent,
        "statuses": dict(sorted(samples.statuses.items())),
        "errors": samples.errors,
        "query_failures": samples.query_failures,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2],
        "latency_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "memory": memory,
        "lag_p50": statistics.median(lags),
        "lag_p99": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "lag_max": lags[-1],
        "drained_seconds": drained,
        "final_lag": final_lag,
        "samples": len(samples.lag),
    }


def section(result: dict[str, Any], command: str) -> str:
    """The Markdown section for BENCHMARKS.md."""
    rows = [
        f"| {name} | {m['start_mib']:.1f} | {m['end_mib']:.1f} | {m['max_mib']:.1f} | "
        f"{m['growth_mib']:+.1f} |"
        for name, m in result["memory"].items()
    ]
    statuses = ", ".join(f"{k}: {v:,}" for k, v in result["statuses"].items())
    return "\n".join(
        [
            START,
            "## Load soak",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`: "
            f"{result['rate']:g} commands/s for {result['seconds']:g} s (open loop; a mix of "
            "registrations, stock receipts, reprices and orders on 20 SKUs), command API, query "
            "API and one worker as child processes.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| commands sent | {result['sent']:,} ({statuses}) |",
            f"| errors (non-2xx or failed) | {result['errors']} |",
            f"| query API probes that failed | {result['query_failures']} |",
            f"| command latency p50 / p99 | {result['latency_p50_ms']:.1f} / "
            f"{result['latency_p99_ms']:.1f} ms |",
            f"| largest projection lag p50 / p99 / max | {result['lag_p50']:g} / "
            f"{result['lag_p99']:g} / {result['lag_max']:g} events |",
            f"| caught up after the load | {result['drained_seconds']:.1f} s (lag then "
            f"{result['final_lag']}) |",
            "",
            "| process | RSS after warm-up (MiB) | at the end | max | growth |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Memory is sampled every {SAMPLE_SECONDS:g} s ({result['samples']} samples; the "
            "first fifth is warm-up); the worker figure includes its forked process.",
            END,
        ]
    )


def write_section(output: Path, text: str) -> None:
    """Replace the soak section of `output` (or append one), keeping everything else."""
    current = output.read_text() if output.exists() else ""
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        output.write_text(before + text + after)
    else:
        output.write_text(current.rstrip("\n") + ("\n\n" if current else "") + text + "\n")


def carried_section(output: Path) -> str | None:
    """The soak section already in `output`, for a benchmark run rewriting the file."""
    current = output.read_text() if output.exists() else ""
    if START in current and END in current:
        return START + current.split(START, 1)[1].split(END, 1)[0] + END
    return None


async def run(seconds: float, rate: float, output: Path, command: str) -> dict[str, Any]:
    """Start the servers, soak, write the section; the figures."""
    with (
        tempfile.TemporaryDirectory(prefix="ordertrail-soak-") as work,
        services(MODES["quick"], Path(work)) as ctx,
    ):
        try:
            result = await soak(ctx, seconds, rate)
        finally:
            await ctx.drop_databases()
    write_section(output, section(result, command))
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=40.0, help="commands per second")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m bench.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(run(args.seconds, args.rate, args.output, command.strip()))
    print(
        f"soak: {result['sent']} commands, {result['errors']} errors, "
        f"lag max {result['lag_max']}, wrote {args.output}",
        file=sys.stderr,
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
