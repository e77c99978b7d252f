"""The machine and the servers' versions a benchmark run reports."""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import redis
from pymongo import MongoClient

from bench.context import BenchContext

PACKAGES = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "asyncpg",
    "pymongo",
    "dramatiq",
    "eventsourcing",
    "secantusdb",
)


async def describe(ctx: BenchContext) -> dict[str, str]:
    """The machine and the servers' versions, for the report."""
    conn = await asyncpg.connect(ctx.pg_admin_url)
    try:
        pg_version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    mongo: MongoClient[dict[str, Any]] = MongoClient(ctx.mongodb_url)
    with mongo as client:
        mongo_version = client.admin.command("buildInfo").get("version", "?")
    redis_version = redis.Redis.from_url(ctx.redis_url).info("server")["redis_version"]
    server = "given" if "BENCH_MONGODB_URL" in os.environ else "secantusdb"
    return {
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "postgresql": str(pg_version),
        "mongodb wire server": f"{mongo_version} ({server})",
        "redis": str(redis_version),
        **{name: _version(name) for name in PACKAGES},
    }


def _memory() -> str:
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kib / 1024 / 1024:.1f} GiB"
    return "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
