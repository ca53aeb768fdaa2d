"""What a process cleans up on a schedule: jobs past retention, and uploads no job owns."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from service.jobs.database import utcnow
from service.jobs.queue import Jobs
from service.jobs.schema import STATES
from service.jobs.usage import today

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 15.0


async def sweep(jobs: Jobs) -> bool:
    """Delete finished jobs past retention (with any media left) and usage figures past theirs, and bring
    the state gauges up to date."""
    await asyncio.to_thread(jobs.usage.delete_before, today() - timedelta(days=jobs.settings.usage_retention_days))
    cutoff = utcnow() - timedelta(hours=jobs.settings.job_retention_h)
    expired = await asyncio.to_thread(jobs.store.expired, cutoff)
    for job in expired:
        if job.media:
            await asyncio.to_thread(jobs.media.delete, job.media)
    if expired:
        await asyncio.to_thread(jobs.store.delete, [job.id for job in expired])
    counts = await asyncio.to_thread(jobs.store.counts)
    for state in STATES:
        jobs.metrics.jobs_in_state.labels(state).set(counts.get(state, 0))
    return False  # nothing waits: the next sweep comes after the pause


async def sweep_orphans(jobs: Jobs) -> bool:
    """Delete uploads no job owns: their request died after saving the upload and before storing its job
    (a crash, a kill -9). Only those older than `media_orphan_age_s`, so an upload being submitted right now,
    on this replica or another, is never taken for one."""
    old = await asyncio.to_thread(jobs.media.older_than, jobs.settings.media_orphan_age_s)
    if old:
        owned = await asyncio.to_thread(jobs.store.media_locations)
        orphans = [location for location in old if location not in owned]
        for location in orphans:
            await asyncio.to_thread(jobs.media.delete, location)
        if orphans:
            log.warning(
                "deleted %d uploads that no job owned (their requests ended before the job was stored)", len(orphans)
            )
    return False  # nothing waits: the next sweep comes after the pause
