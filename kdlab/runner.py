"""Run a notebook headless with papermill, and never hang: every runner (tests, ``python -m kdlab run`` /
``reference``, ``make book``) goes through :func:`execute_notebook`.

A stalled cell is one whose kernel is idle while its reply never comes (seen with widget cells while several
kernels shared two cores: papermill waiting in its event loop, the kernel in its own). It is told apart
from a busy cell by CPU time, not by wall time: a :class:`StallWatch` thread samples the CPU time of the kernels
this process started (``ipykernel_launcher`` children) and of their descendants (the worker processes a kernel
forks) every ``poll_s`` seconds — not of this process's other children, which may be busy for reasons of their own
(the stress test's load processes) — and when together they have used almost no CPU (under `IDLE_CPU_FRACTION` of a core) for ``stall_s`` seconds while a cell
runs, it kills the kernel. papermill then stops at that cell and
:func:`execute_notebook` raises :class:`StalledCell` naming it. A cell that computes, however long, is never
stopped by this (``cell_timeout`` is the separate, optional wall-clock cap).

The cause is in the client. nbclient (0.11) waits for a cell's reply with one unbounded asyncio ``poll`` of the
shell socket (and of the IOPub socket for its output); a wake-up of that poll that never comes leaves the reply
unread in the client's socket (nbclient issue #312, "when cell contains ipywidget, execute cell will sometimes
block", and its PR #311). The executed notebooks show it: the stalled cell has its output and the kernel's
``status: idle`` (both on IOPub) but no ``execute_reply`` — the kernel finished and replied. It is not the
kernel: under the same load the primer's ``TemperatureExplorer`` cell stalled in 2 of 8 runs with ipykernel
7.4.0 and in 2 of 8 with ipykernel 6.29.5, so pinning ipykernel would not help. :class:`PatientClient` polls
both channels in slices of ``POLL_SLICE_S`` seconds, so a missed wake-up costs at most one slice (each slice
ends with a non-blocking poll of the socket itself). An earlier version of this module already had the sliced
polls but never used them: papermill starts the kernel client through nbclient's synchronous twin
``start_new_kernel_client``, which nbclient binds to *its own* coroutine when the class is created, so the
override did not run (``tests/test_runner.py`` now checks that both channels are sliced). With the slices in
use the same load gave 0 stalls in 20 runs (two loops of 10 primer smoke runs beside two busy processes;
before: 4 in 16). The stall watch stays as the guard for any other lost message.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

import psutil
from nbclient.util import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger
from papermill.utils import merge_kwargs, remove_args

from .checks import check_positive

STALL_S = 180.0
"""Default seconds of zero kernel CPU after which a running cell counts as stalled (a busy cell uses CPU every
second; a kernel waiting on a lost message uses none)."""


IDLE_CPU_FRACTION = 0.05
"""A kernel tree that used less than this fraction of one core over a sample counts as idle: an idle ipykernel is
not at zero (its heartbeat answers the client's pings, its threads wake), a computing cell uses most of a core."""

POLL_SLICE_S = 1.0
"""Seconds of one poll of a kernel channel by :class:`PatientClient` before it polls again."""


def sliced_polls(channel: Any, slice_s: float = POLL_SLICE_S) -> None:
    """Replace ``channel.get_msg(timeout)`` (a jupyter_client async channel) by polls of at most ``slice_s``
    seconds, repeated until a message comes or ``timeout`` (``None``: never) is over, when ``Empty`` is raised as
    before."""
    poll = channel.get_msg

    async def get_msg(timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else min(slice_s, max(0.0, deadline - time.monotonic()))
            try:
                return await poll(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


class PatientClient(PapermillNotebookClient):
    """papermill's notebook client whose shell and IOPub channels poll in slices (:func:`sliced_polls`)."""

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        sliced_polls(client.shell_channel)
        sliced_polls(client.iopub_channel)
        return client

    # nbclient binds its synchronous twin to *its own* coroutine at class creation, and papermill calls the twin:
    # without this line the override above never runs (it did not, until the stress test's stalls were traced).
    start_new_kernel_client = run_sync(async_start_new_kernel_client)


class PatientEngine(NBClientEngine):
    """papermill's nbclient engine, running :class:`PatientClient` (registered as papermill engine ``"kdlab"``)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None, stderr_file=None,
                                 start_timeout=60, execution_timeout=None, **kwargs):
        kwargs = remove_args(["input_path"], **kwargs)
        safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
        final_kwargs = merge_kwargs(safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                                    startup_timeout=start_timeout, kernel_name=kernel_name, log=papermill_logger,
                                    log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
        return PatientClient(nb_man, **final_kwargs).execute()


papermill_engines.register("kdlab", PatientEngine)


class StalledCell(RuntimeError):
    """A notebook cell whose kernel stopped using CPU without replying (see the module notes)."""


def kernel_processes() -> list[psutil.Process]:
    """The Jupyter kernels among this process's children (``ipykernel_launcher`` in the command line) and all
    their descendants."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any("ipykernel_launcher" in part for part in child.cmdline()):
                found += [child, *child.children(recursive=True)]
        except psutil.Error:
            continue
    return list({process.pid: process for process in found}.values())


class StallWatch(threading.Thread):
    """Watch the kernels this process started (:func:`kernel_processes`); kill them when together they have used
    less than :data:`IDLE_CPU_FRACTION` of a core for ``stall_s`` seconds.

    ``fired`` tells whether it did; ``idle_s`` is the longest idle stretch seen."""

    def __init__(self, stall_s: float = STALL_S, poll_s: float = 5.0) -> None:
        super().__init__(daemon=True, name="kdlab-stall-watch")
        self.stall_s, self.poll_s = check_positive("stall_s", stall_s), check_positive("poll_s", poll_s)
        self.fired = False
        self.idle_s = 0.0
        self._stop = threading.Event()

    def _cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds of every kernel this process started and of each kernel's descendants, by pid."""
        times = {}
        for process in kernel_processes():
            try:
                cpu = process.cpu_times()
                times[process.pid] = cpu.user + cpu.system
            except psutil.Error:
                continue
        return times

    def run(self) -> None:
        last = self._cpu_by_pid()
        idle_since = time.monotonic()
        while not self._stop.wait(self.poll_s):
            now = self._cpu_by_pid()
            used = sum(cpu - last.get(pid, 0.0) for pid, cpu in now.items())
            busy = any(pid not in last for pid in now) or used > IDLE_CPU_FRACTION * self.poll_s
            last = now
            if busy or not now:
                idle_since = time.monotonic()
                continue
            self.idle_s = max(self.idle_s, time.monotonic() - idle_since)
            if self.idle_s >= self.stall_s:
                self.fired = True
                for pid in now:
                    try:
                        psutil.Process(pid).kill()
                    except psutil.Error:
                        pass
                return

    def stop(self) -> None:
        self._stop.set()


def running_cell(output: Path) -> tuple[int, str] | None:
    """Which cell papermill left running or failed in the executed ``output``: its number among the notebook's own
    code cells (1-based; papermill's injected-parameters cell and error banners are not counted) and its first
    line. After a killed kernel (papermill then marks every cell completed) it is the last code cell that started
    while a later one never did. ``None`` when every cell ran."""
    try:
        cells = json.loads(output.read_text())["cells"]
    except (OSError, ValueError, KeyError):
        return None
    code = [c for c in cells if c.get("cell_type") == "code"
            and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    meta = [c.get("metadata", {}).get("papermill", {}) for c in code]
    found = next((k for status in ("running", "failed") for k, m in enumerate(meta) if m.get("status") == status), None)
    found = next((k for k, m in enumerate(meta) if m.get("exception")), found)
    if found is None:
        started = [k for k, m in enumerate(meta) if m.get("start_time")]
        if started and started[-1] != len(code) - 1:
            found = started[-1]
    if found is None:
        return None
    source = "".join(code[found].get("source", "")).strip().splitlines()
    return found + 1, source[0] if source else ""


def execute_notebook(path: Path, output: Path, parameters: dict[str, object], *, cell_timeout: float | None = None,
                     stall_s: float = STALL_S, poll_s: float = 5.0) -> Path:
    """Execute ``path`` into ``output`` with papermill and ``parameters``; return ``output``.

    ``cell_timeout`` (seconds; ``None`` or 0: none) caps any one cell's wall time; ``stall_s`` is the CPU-idle time
    after which a running cell is declared stalled (:class:`StalledCell`, naming the cell)."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    watch = StallWatch(stall_s, poll_s)
    watch.start()
    try:
        papermill.execute_notebook(str(path), str(output), parameters=parameters, cwd=str(path.parent),
                                   kernel_name="python3", progress_bar=False, execution_timeout=cell_timeout or None,
                                   engine_name="kdlab")
    except Exception as error:
        if watch.fired:
            cell = running_cell(output)
            where = f"code cell {cell[0]} ({cell[1]!r})" if cell else "a cell"
            raise StalledCell(f"{path.name}: {where} stalled: its kernel sat idle (under 5 % of a core) for {watch.stall_s:.0f} s "
                              f"and never replied; the kernel was stopped") from error
        raise
    finally:
        watch.stop()
    return output
