"""Supervised child processes: started in order, watched, stopped in reverse order."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import typer

from ops.services import port_is_free

STOP_TIMEOUT_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class DevStackError(Exception):
    """The dev stack could not start or keep running; the message says why."""


@dataclass(frozen=True)
class ChildProcess:
    """How to launch one supervised child, where it listens, and how to tell it is ready.

    With a `ready` check, the child is ready once it returns true (`awaiting` names what that
    waits for, for errors); without one, once it is still alive after `settle_seconds`.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool] | None = None
    awaiting: str = "ready"
    listen: tuple[str, int] | None = None
    ready_timeout: float = 30.0
    settle_seconds: float = 1.0


class RunningChild:
    """A started ChildProcess and its OS process."""

    def __init__(self, spec: ChildProcess, process: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.process = process

    @property
    def pid(self) -> int:
        """The OS process id."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it is still running."""
        return self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Terminate, wait up to `timeout` seconds for a graceful exit, then kill."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DevStack:
    """Starts children in order, watches them, and stops them in reverse order."""

    def __init__(self) -> None:
        self.children: list[RunningChild] = []

    def start_all(self, specs: Iterable[ChildProcess]) -> None:
        """Check every port is free, then start each child and wait until it is healthy."""
        specs = list(specs)
        for spec in specs:
            if spec.listen is not None:
                _require_free_port(spec.name, *spec.listen)
        for spec in specs:
            self.start(spec)

    def start(self, spec: ChildProcess) -> RunningChild:
        """Start one child and wait until it is ready."""
        child = RunningChild(spec, _spawn(spec))
        # Tracked before the wait, so a child that never gets ready is still stopped.
        self.children.append(child)
        typer.echo(f"started {spec.name} (pid {child.pid})")
        if spec.ready is None:
            _wait_settled(child)
        else:
            _wait_ready(child, spec.ready)
        return child

    def launch(self, name: str, argv: list[str], ready: Callable[[], bool]) -> Callable[[], None]:
        """Start a backing server as a child (an ops.services Launcher); return its stop."""
        spec = ChildProcess(name, argv, dict(os.environ), ready=ready, awaiting="an answer")
        return self.start(spec).stop

    def supervise(self, poll_interval: float = 0.5) -> RunningChild:
        """Block until some child exits on its own, and return it."""
        while True:
            for child in self.children:
                if child.returncode is not None:
                    return child
            time.sleep(poll_interval)

    def stop_all(self) -> None:
        """Stop every child, last started first."""
        for child in reversed(self.children):
            child.stop()


def _require_free_port(name: str, host: str, port: int) -> None:
    """Fail early if something already listens where a child wants to."""
    if not port_is_free(host, port):
        raise DevStackError(f"{name}: cannot listen on {host}:{port} (address in use)")


def _spawn(spec: ChildProcess) -> subprocess.Popen[bytes]:
    """Start a child in its own session, so a terminal Ctrl-C reaches only us."""
    # We then stop the children ourselves, in reverse start order, instead of all at once.
    return subprocess.Popen(
        spec.argv, env=spec.env, start_new_session=True, preexec_fn=_die_with_parent
    )


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it if we die without cleaning up."""
    # Covers SIGKILL of `ordertrail dev`, which would otherwise orphan a server holding the port.
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_ready(child: RunningChild, ready: Callable[[], bool]) -> None:
    """Poll `ready` until true; fail if the child exits or the timeout passes."""
    spec = child.spec
    deadline = time.monotonic() + spec.ready_timeout
    while time.monotonic() < deadline:
        _require_alive(child)
        if ready():
            return
        time.sleep(0.2)
    raise DevStackError(f"{spec.name}: no {spec.awaiting} in {spec.ready_timeout:.0f}s")


def _wait_settled(child: RunningChild) -> None:
    """Wait the child's settle time and fail if it exited meanwhile."""
    deadline = time.monotonic() + child.spec.settle_seconds
    while time.monotonic() < deadline:
        _require_alive(child)
        time.sleep(0.1)
    _require_alive(child)


def _require_alive(child: RunningChild) -> None:
    """Fail if the child has exited while starting."""
    if child.returncode is not None:
        raise DevStackError(f"{child.spec.name} exited with code {child.returncode} on start")
