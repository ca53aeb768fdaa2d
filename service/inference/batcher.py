"""Micro-batching: gather face crops from concurrent requests into one model call.

A model call on 16 crops costs far less than 16 calls on one. Requests hand their crops to a
single worker thread, which waits at most `max_wait` for more to arrive (up to `max_batch_size`
crops), runs the model once off the event loop, and hands each request back its own rows. A
request's crops are never split, so each request still gets one model call.

The worker waits only while another request is on its way: requests announce themselves with
`reserve()` when they start decoding, so a lone request is classified at once and low load pays
no batching delay.

A waiter may give up at any time (a timeout, a client gone): its job is skipped if it has not
started, and its rows are dropped if it has. Nothing a request does can end the worker, and if the
worker ever ended anyway, the next request starts a new one and `alive` tells readiness meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from service.ops.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class _Job:
    crops: np.ndarray
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        max_batch_size: int,
        max_wait_s: float,
        metrics: Metrics,
        name: str = "emotion",
    ) -> None:
        self.model = model
        self.name = name  # the model's name in metrics
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.carry: _Job | None = None  # a job that did not fit the last batch goes first next time
        self.pending_crops = 0
        self.expected = 0  # requests reserved but not yet submitted; read by the worker
        self.thread: threading.Thread | None = None
        self.stopping = False

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"micro-batcher-{self.name}", daemon=True)
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        """Finish what is queued, then end the worker."""
        self.stopping = True
        self.jobs.put(None)
        if self.thread is not None:
            self.thread.join()

    @contextmanager
    def reserve(self) -> Iterator[Callable[[np.ndarray], Awaitable[np.ndarray]]]:
        """Announce a request that will submit crops soon; yields its classify function."""
        self.expected += 1
        submitted = False

        async def classify(crops: np.ndarray) -> np.ndarray:
            nonlocal submitted
            if not submitted:
                submitted = True
                self.expected -= 1
            return await self.classify(crops)

        try:
            yield classify
        finally:
            if not submitted:
                self.expected -= 1

    async def classify(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.empty((0, 0), np.float32)
        if not self.alive and not self.stopping and self.thread is not None:
            log.error("the %s micro-batcher had stopped; starting a new one", self.name)
            self.start()
        job = _Job(crops)
        self._track(len(crops))
        self.jobs.put(job)
        return await asyncio.wrap_future(job.future)

    def _track(self, delta: int) -> None:
        self.pending_crops += delta  # only a gauge: a lost update under a race is harmless
        self.metrics.queue_depth.labels(self.name).set(self.pending_crops)

    def _next_batch(self) -> tuple[list[_Job], bool]:
        """Block for a first job, then gather more until the batch is full or the wait is over."""
        first = self.carry or self.jobs.get()
        self.carry = None
        if first is None:
            return [], True
        batch, size = [first], len(first.crops)
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch_size:
            if self.expected <= 0 and self.jobs.empty():
                break  # nobody else is coming: waiting would only add latency
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if job is None:
                return batch, True
            if size + len(job.crops) > self.max_batch_size:
                self.carry = job
                break
            batch.append(job)
            size += len(job.crops)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            self._track(-sum(len(job.crops) for job in batch))
            # A job whose waiter gave up is skipped; the rest can no longer be cancelled.
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                self._classify(batch)
            except Exception as error:  # never lets a batch end the worker
                log.exception("the %s micro-batcher failed a batch", self.name)
                fail(batch, error)
            except BaseException:  # the thread ends: no waiter may be left waiting on it
                log.exception("the %s micro-batcher stopped", self.name)
                fail(batch, RuntimeError(f"the {self.name} micro-batcher stopped"))
                raise

    def _classify(self, batch: list[_Job]) -> None:
        if not batch:
            return
        started = time.perf_counter()
        crops = np.concatenate([job.crops for job in batch])
        for job in batch:
            self.metrics.batch_queue_seconds.labels(self.name).observe(started - job.queued_at)
        self.metrics.batch_size.labels(self.name).observe(len(crops))
        try:
            probs = self.model(crops)
        except Exception:
            self.metrics.inference_errors.labels(self.name).inc()
            raise
        self.metrics.stage_seconds.labels("classify").observe(time.perf_counter() - started)
        offset = 0
        for job in batch:
            job.future.set_result(probs[offset : offset + len(job.crops)])
            offset += len(job.crops)


def fail(batch: list[_Job], error: Exception) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(error)
