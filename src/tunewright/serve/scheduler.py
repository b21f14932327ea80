"""The batching scheduler: requests run together on one worker thread (base and LoRA rows in one
forward pass), and each request receives its own tokens as the batch produces them. With continuous
batching (the default) a running mixed batch takes waiting requests in between decode steps, and
finished ones leave; the static way (for comparison) gathers a batch and runs it to its end. A bounded
queue turns overload into a 429 instead of unbounded latency. A batch that fails is run again one
request at a time, so a bad request fails alone."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tunewright.errors import ModelError
from tunewright.serve.engine import Engine, Prompt
from tunewright.serve.sampling import Token


class QueueFull(Exception):
    """More requests are waiting than the server accepts."""


@dataclass(frozen=True)
class TokenEvent:
    token: Token | None  # None with `error` set when the request failed
    last: bool
    error: str | None = None
    status: int = 500  # the HTTP status of `error`: 4xx when the request's own model is at fault


@dataclass
class Job:
    prompt: Prompt
    events: asyncio.Queue[TokenEvent] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    delivered: int = 0  # tokens handed to the request so far
    finished: bool = False  # its last token or its error was handed on


class Scheduler:
    def __init__(self, engine: Engine, max_batch: int = 32, gather_ms: float = 5.0, max_queue: int = 256,
                 mixed: bool = True, continuous: bool = True) -> None:
        self.engine, self.max_batch, self.gather_s = engine, max_batch, gather_ms / 1000
        self.max_queue, self.mixed, self.continuous = max_queue, mixed, continuous
        self.waiting: deque[Job] = deque()
        self.running = 0
        self.batches = 0
        self.joined = 0  # requests that joined a batch already running
        self.isolated = 0  # failed batches that were run again one request at a time
        self._lock = threading.Lock()  # `waiting` is read by the worker thread while requests arrive
        self._calls = 0  # admin calls waiting for the worker: running batches stop taking requests
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tunewright-engine")
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self.waiting) + self.running

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def call(self, function: Callable[[str], None], argument: str) -> None:
        """Run `function` on the engine's thread, between batches (e.g. unloading an adapter)."""
        self._calls += 1
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, function, argument)
        finally:
            self._calls -= 1

    def submit(self, prompts: list[Prompt]) -> list[Job]:
        """One job per prompt (the `n` choices of a request), all accepted or none."""
        if self.depth + len(prompts) > self.max_queue:
            raise QueueFull(f"{self.depth} requests in flight (limit {self.max_queue}); retry shortly")
        jobs = [Job(prompt) for prompt in prompts]
        with self._lock:
            self.waiting.extend(jobs)
        self._wake.set()
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                await asyncio.sleep(self.gather_s)  # let concurrent requests arrive and share the batch
            batch = self._take_batch()
            self.running = len(batch)
            try:
                await loop.run_in_executor(self._executor, self._run, loop, batch)
            finally:
                self.running = 0
                self.batches += 1

    def _take_batch(self) -> list[Job]:
        """The oldest request and every waiting one that may share its batch, in arrival order. Without
        mixing, a batch holds one model; each batch holds at most `max_loaded` adapters."""
        with self._lock:
            first = self.waiting[0]
            key = first.prompt.batch_key if self.mixed else first.prompt.model
            batch = self._fitting(lambda job: (job.prompt.batch_key if self.mixed else job.prompt.model) == key,
                                  set(), self.max_batch)
        return [job for job in batch if not job.cancelled]

    def _fitting(self, fits_key: Callable[[Job], bool], adapters: set[str], room: int) -> list[Job]:
        """Waiting jobs (taken off the queue) that pass `fits_key`, up to `room`, while the adapters of
        the batch stay within `max_loaded`. Called with the lock held."""
        taken: list[Job] = []
        for job in list(self.waiting):
            name = job.prompt.model if job.prompt.entry is not None else None
            fits = name is None or name in adapters or len(adapters) < self.engine.max_loaded
            if fits_key(job) and fits and len(taken) < room:
                taken.append(job)
                if name is not None:
                    adapters.add(name)
        for job in taken:
            self.waiting.remove(job)
        return taken

    def _run(self, loop: asyncio.AbstractEventLoop, batch: list[Job]) -> None:
        """Run a batch; when it fails, run each of its unfinished requests alone (those that joined it
        too), so only the ones that fail by themselves get an error (a row's seeded decoding repeats the
        tokens it was already sent, which are skipped)."""
        batch = [job for job in batch if self._still_registered(loop, job)]
        if not batch:
            return
        session = list(batch)  # grows as requests join
        try:
            self._generate(loop, session, joining=self.continuous and self.mixed)
        except Exception as exc:  # a failed batch fails its requests, never the server
            if len(session) == 1:
                return self._fail(loop, session[0], exc)
            self.isolated += 1
            for job in session:
                if job.finished or job.cancelled:
                    continue
                try:
                    self._generate(loop, [job], joining=False)
                except Exception as alone:
                    self._fail(loop, job, alone)

    def _generate(self, loop: asyncio.AbstractEventLoop, session: list[Job], joining: bool) -> None:
        skip = [job.delivered for job in session]
        seen = [0] * len(session)

        def on_token(index: int, token: Token, last: bool) -> bool:
            job = session[index]
            seen[index] += 1
            if seen[index] > skip[index]:
                job.delivered += 1
                job.finished = last
                loop.call_soon_threadsafe(job.events.put_nowait, TokenEvent(token, last))
            return not job.cancelled

        def more(adapters_ok: bool) -> list[Prompt]:
            live = [job for job in session if not (job.finished or job.cancelled)]
            self.running = len(live)
            if self._calls or not self.waiting:
                return []
            adapters = {job.prompt.model for job in live if job.prompt.entry is not None}
            with self._lock:
                taken = self._fitting(lambda job: job.prompt.batch_key == "mixed" and not job.cancelled
                                      and (adapters_ok or job.prompt.entry is None),
                                      adapters, self.max_batch - len(live))
            taken = [job for job in taken if self._still_registered(loop, job)]
            session.extend(taken)
            skip.extend(0 for _ in taken)
            seen.extend(0 for _ in taken)
            self.joined += len(taken)
            return [job.prompt for job in taken]

        self.engine.run([job.prompt for job in session], on_token, mixed=self.mixed,
                        more=more if joining and session[0].prompt.batch_key == "mixed" else None)

    def _still_registered(self, loop: asyncio.AbstractEventLoop, job: Job) -> bool:
        """False (and the request answered 404) when its adapter was unregistered while it waited."""
        entry = job.prompt.entry
        if entry is None or entry.name in self.engine.library:
            return True
        self._fail(loop, job, ModelError(f"model {entry.name!r} was unregistered while this request waited"), 404)
        return False

    def _fail(self, loop: asyncio.AbstractEventLoop, job: Job, exc: Exception, status: int | None = None) -> None:
        if status is None:
            status = 400 if isinstance(exc, ModelError) else 500
        job.finished = True
        message = str(exc) if isinstance(exc, ModelError) else f"generation failed: {type(exc).__name__}: {exc}"
        loop.call_soon_threadsafe(job.events.put_nowait, TokenEvent(None, True, message, status))
