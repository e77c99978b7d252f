"""Tail ordertrail's event feed into a local file, exactly once, across kills and restarts.

    python examples/feed_consumer.py --url http://127.0.0.1:8000 --token "$TOKEN" \\
        --out events.jsonl [--mode sse|poll] [--types OrderPlaced,OrderShipped]

Each event is one JSON line of `--out`; `<out>.checkpoint` holds the position token of the last
line written. The file is written (and fsync'd) before the checkpoint, so a kill between the two
leaves lines past the checkpoint: on start, the last complete line of the file wins over the
checkpoint, and a half-written last line is cut off. The feed resumes after that token, so no
event is skipped or written twice. It needs only httpx; the token needs the `events:read` scope.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

BLOCK = 1 << 16


def last_line(path: Path) -> bytes | None:
    """The file's last complete line, having cut off a partial one after it (a kill mid-write)."""
    if not path.exists():
        return None
    with path.open("r+b") as file:
        end = file.seek(0, os.SEEK_END)
        tail, start = b"", end
        while start > 0 and tail.count(b"\n") < 2:
            start = max(0, start - BLOCK)
            file.seek(start)
            tail = file.read(end - start)
        complete = tail[: tail.rfind(b"\n") + 1]  # drop what follows the last newline
        if len(complete) < len(tail):
            file.truncate(start + len(complete))
        lines = complete.splitlines()
        return lines[-1] if lines else None


def recover(out: Path) -> str | None:
    """The token to resume after: the file's last event, else the checkpoint's."""
    checkpoint = Path(f"{out}.checkpoint")
    line = last_line(out)
    token = json.loads(line)["position"] if line else None
    if token is None and checkpoint.exists():
        token = checkpoint.read_text().strip() or None
    if token is not None:
        save_checkpoint(checkpoint, token)
    return token


def save_checkpoint(checkpoint: Path, token: str) -> None:
    """Replace the checkpoint atomically (a kill leaves the old one or the new one)."""
    temporary = checkpoint.with_suffix(".tmp")
    temporary.write_text(token)
    os.replace(temporary, checkpoint)


def append(out: Path, events: list[dict[str, Any]]) -> str:
    """Write events as lines, durably, then move the checkpoint; the last token."""
    with out.open("ab") as file:
        file.write(b"".join(json.dumps(e).encode() + b"\n" for e in events))
        file.flush()
        os.fsync(file.fileno())
    token: str = events[-1]["position"]
    save_checkpoint(Path(f"{out}.checkpoint"), token)
    return token


def sse_events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of each dispatched Server-Sent Event."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def follow_sse(client: httpx.Client, out: Path, after: str | None, params: dict[str, str]) -> str:
    """One SSE connection: write each event as it comes; returns when the stream ends."""
    headers = {"Accept": "text/event-stream"} | ({"Last-Event-ID": after} if after else {})
    with client.stream("GET", "/api/v1/feed", params=params, headers=headers) as response:
        response.raise_for_status()
        for name, data in sse_events(response):
            if name == "end":
                print(f"stream ended: {data.get('reason')}", file=sys.stderr)
                break
            after = append(out, [data])
    return after or ""


def follow_poll(client: httpx.Client, out: Path, after: str | None, params: dict[str, str]) -> str:
    """Long-poll pages for ever (until an error)."""
    while True:
        query = params | {"after": after or "", "wait": "25", "limit": "500"}
        response = client.get("/api/v1/feed", params=query)
        response.raise_for_status()
        page = response.json()
        if page["events"]:
            append(out, page["events"])
        # `next` is past what the filters skipped too; only a written event moves the
        # checkpoint, so after a restart those skipped ones are read (and skipped) again.
        after = page["next"] or after


def main(argv: list[str] | None = None) -> None:
    """Follow the feed until killed, reconnecting with a growing pause after failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=os.environ.get("ORDERTRAIL_TOKEN"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", choices=("sse", "poll"), default="sse")
    parser.add_argument("--types", default="")
    args = parser.parse_args(argv)
    params = {"types": args.types} if args.types else {}
    headers = {"Authorization": f"Bearer {args.token}"}
    follow = follow_sse if args.mode == "sse" else follow_poll
    after, pause = recover(args.out), 0.5
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        while True:
            try:
                after = follow(client, args.out, after, params) or after
                pause = 0.5
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                print(f"feed: {exc}; retrying in {pause:g} s", file=sys.stderr)
                time.sleep(pause)
                pause = min(pause * 2, 30.0)


if __name__ == "__main__":
    main()
