"""The daemon's end of the batch writer (batch_write.py): starting its process, sending it
batches, matching its replies to them, and stopping it.

Requests go out in the order `write()` is called and the process answers them in that order, so
each reply settles the oldest request still waiting. Several requests may be on their way at once
(the store's lane, database.py): the process reads the next one as soon as it has answered the
last, without waiting for the event loop.

If the process ends while requests are waiting (killed, out of memory), they fail with
StoreError, and the next `write()` starts a new process. SQLite rolls back the transaction the
process was in, so a batch either committed whole or not at all, and the writer's retry of it is
safe (store/writer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

import monitor
from monitor.errors import StoreError
from monitor.store.batch_write import HEADER_SIZE, WireRow, body_size, encode

log = structlog.get_logger(__name__)

_MODULE = "monitor.store.batch_write"
# How long close() waits for the process to finish its last request and exit before killing it.
_EXIT_S = 10.0


def _environment() -> dict[str, str]:
    """The daemon's environment, with the folder that holds the `monitor` package first on the
    module path, so that the process runs this same code however the daemon was started."""
    env = dict(os.environ)
    root = str(Path(monitor.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return env


class _Worker:
    """One run of the process, and the requests it has yet to answer."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.waiting: deque[asyncio.Future[tuple[str, Any]]] = deque()
        self.stopping = False  # set by stop(): the end of the process is no surprise then
        self.reader = asyncio.ensure_future(self._read())

    @property
    def alive(self) -> bool:
        return not self.reader.done()

    def request(self, message: object) -> asyncio.Future[tuple[str, Any]]:
        future: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        stdin = self.process.stdin
        if not self.alive or stdin is None or stdin.is_closing():
            future.set_exception(StoreError("the batch writer process has ended"))
            return future
        self.waiting.append(future)
        # No drain(): the reply comes only after the process has read the whole request, and at
        # most a lane's worth of batches is ever buffered here.
        stdin.write(encode(message))
        return future

    async def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        error: BaseException | None = None
        try:
            while True:
                header = await stdout.readexactly(HEADER_SIZE)
                reply = pickle.loads(await stdout.readexactly(body_size(header)))
                future = self.waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except asyncio.IncompleteReadError:
            status = await self.process.wait()
            error = StoreError(f"the batch writer process ended (exit status {status})")
        except Exception as exc:  # a reply that cannot be read: nothing after it can be trusted
            error = StoreError(f"the batch writer process sent a reply that cannot be read: {exc}")
            self.process.kill()
        finally:
            while self.waiting:
                future = self.waiting.popleft()
                if not future.done():
                    future.set_exception(error or StoreError("the batch writer was closed"))
        if error is not None and not self.stopping:
            log.warning("store.batch_writer_ended", error=str(error))

    async def stop(self) -> None:
        """Close its input, so that it answers what it has and exits; kill it if it does not."""
        self.stopping = True
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(_EXIT_S):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        # The reader ends at the end of the output; it fails whatever was still waiting.
        await asyncio.gather(self.reader, return_exceptions=True)


class BatchProcess:
    """The batch writer process of one database; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._settings: list[str] = []
        self._worker: _Worker | None = None
        self._starting = asyncio.Lock()
        self._closed = False

    def open(self, settings: Sequence[str]) -> None:
        """Note the `settings` (PRAGMA statements) that the process opens the database with. The
        process starts with the first write: commands that only read never start it."""
        self._settings = list(settings)

    async def write(self, what: str, batch: list[WireRow]) -> tuple[int, dict[str, int]]:
        """Write `batch` in one transaction: (transitions that were new, {agent id: key} of the
        agents the process looked up). Raises StoreError starting with `what`."""
        worker = await self._running()
        inserted, keys = await self._ask(worker, ("write", batch), what)
        return int(inserted), dict(keys)

    async def _running(self) -> _Worker:
        """The live worker, started (again) if need be."""
        async with self._starting:
            if self._closed:
                raise StoreError(f"the store {self._path} is closed")
            if self._worker is not None and self._worker.alive:
                return self._worker
            if self._worker is not None:
                await self._worker.stop()
                log.info("store.batch_writer_restarting", path=str(self._path))
            try:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    _MODULE,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_environment(),
                )
            except OSError as exc:
                raise StoreError(f"cannot start the batch writer process: {exc}") from exc
            worker = _Worker(process)
            try:
                await self._ask(
                    worker, ("open", str(self._path), self._settings), f"cannot open {self._path}"
                )
            except BaseException:
                await worker.stop()
                raise
            self._worker = worker
            return worker

    @staticmethod
    async def _ask(worker: _Worker, message: object, what: str) -> Any:
        """The value of the reply to `message`; raises StoreError starting with `what`."""
        try:
            status, value = await worker.request(message)
        except StoreError as exc:
            raise StoreError(f"{what}: {exc}") from exc
        if status == "error":
            raise StoreError(f"{what}: {value}")
        if status != "ok":
            raise RuntimeError(f"the batch writer process failed: {value}")
        return value

    async def close(self) -> None:
        """Let the process finish and exit. Idempotent."""
        async with self._starting:
            self._closed = True
            worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop()
