"""GET /v1/usage: what the caller's key used per UTC day, for chargeback and billing."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from service.api.deps import JobsDep, OwnerDep
from service.api.errors import ApiError
from service.jobs.usage import FIELDS, today
from service.schemas import UsageDay, UsageFigures, UsageReport

router = APIRouter(tags=["usage"])
DEFAULT_DAYS = 30
MOST_DAYS = 366


@router.get("/usage", response_model=UsageReport)
async def usage(
    jobs: JobsDep,
    owner: OwnerDep,
    first: Annotated[date | None, Query(alias="from", description="First UTC day; default: 29 before `to`.")] = None,
    last: Annotated[date | None, Query(alias="to", description="Last UTC day, included; default: today.")] = None,
) -> UsageReport:
    """This key's use per UTC day: requests, photos, faces, media seconds, jobs and study sessions. Up to
    this moment for this replica, and within a few seconds for the others."""
    last = last or today()
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last or (last - first).days >= MOST_DAYS:
        raise ApiError(422, "invalid_request", f"from must not be after to, and the range at most {MOST_DAYS} days")
    rows = await asyncio.to_thread(jobs.usage.days, owner, first, last)
    days = [UsageDay(day=row.day, **{name: getattr(row, name) for name in FIELDS}) for row in rows]
    total = UsageFigures(**{name: sum(getattr(day, name) for day in days) for name in FIELDS})
    return UsageReport(days=days, total=total)
