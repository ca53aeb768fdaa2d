"""The webhook dispatcher: every process delivers the due webhooks of finished jobs, concurrently,
within limits, so no receiver can hold up another's events (service.jobs.webhooks makes one attempt)."""

from __future__ import annotations

import asyncio
import logging

from service.jobs.queue import Jobs
from service.jobs.schema import Job
from service.jobs.webhooks import Attempt, WebhookSender, next_attempt, without_query
from service.jobs.worker import keep_running

log = logging.getLogger(__name__)


class WebhookDispatcher:
    """Delivers due webhooks concurrently: up to `webhook_concurrency` at once, at most
    `webhook_target_concurrency` to one receiver, so a slow receiver delays only its own events."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.webhooks = webhooks = jobs.settings.webhooks
        self.sender = WebhookSender(webhooks.secret, webhooks.allow_private, webhooks.timeout_s)
        self.in_flight: dict[str, int] = {}  # deliveries under way, by target
        self.deliveries: set[asyncio.Task] = set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until stopping, then let the deliveries under way end (each is bounded by the webhook
        timeout); cancelled, as on a shutdown past its timeout, they are cancelled too and left to their lease."""
        try:
            await keep_running(self.step, stopping, self.jobs.settings.job_poll_s)
            if self.deliveries:
                await asyncio.wait(self.deliveries)
        finally:
            for delivery in self.deliveries:
                delivery.cancel()

    async def step(self) -> bool:
        """Start the due deliveries there is room for; False when none was started."""
        webhooks = self.webhooks
        room = webhooks.concurrency - len(self.deliveries)
        if room <= 0:
            return False
        hold_s = 2 * webhooks.timeout_s  # longer than any attempt: no other process sends it meanwhile
        due = await asyncio.to_thread(
            self.jobs.store.due_webhooks, self.in_flight, webhooks.target_concurrency, room, hold_s
        )
        for job in due:
            target = job.webhook_target or "-"
            self.in_flight[target] = self.in_flight.get(target, 0) + 1
            delivery = asyncio.create_task(self.deliver(job))
            self.deliveries.add(delivery)
            delivery.add_done_callback(lambda task, target=target: self._ended(task, target))
        return bool(due)

    def _ended(self, delivery: asyncio.Task, target: str) -> None:
        self.deliveries.discard(delivery)
        self.in_flight[target] -= 1
        if not self.in_flight[target]:
            del self.in_flight[target]

    async def deliver(self, job: Job) -> None:
        """One attempt, recorded whatever happened: every failure counts against the schedule."""
        try:
            attempt = await self.sender.send(job.callback_url, job.webhook_id, job.webhook_event)
        except Exception:
            log.exception("webhook attempt for job %s failed unexpectedly", job.id)
            attempt = Attempt(None, delivered=False)
        next_at = next_attempt(self.webhooks.retry_delays_s, job.webhook_attempts + 1, attempt)
        await asyncio.to_thread(self.jobs.store.record_webhook, job.id, attempt.status, attempt.delivered, next_at)
        outcome = "delivered" if attempt.delivered else "retrying" if next_at else "given_up"
        if outcome == "given_up":
            log.warning(
                "webhook for job %s to %s given up after %d attempts (last status %s)",
                job.id,
                without_query(job.callback_url),
                job.webhook_attempts + 1,
                attempt.status,
            )
        self.jobs.metrics.webhook_deliveries.labels(outcome).inc()
