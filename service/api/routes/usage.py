"""GET /v1/usage: what the caller's key used per UTC day, for chargeback and billing."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.api.deps import JobsDep, OwnerDep
from service.api.errors import ApiError
from service.jobs.usage import FIELDS, today
from service.schemas import UsageDay, UsageFigures, UsageReport

router = APIRouter(tags=["usage"])
ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"
DEFAULT_DAYS = 30
MOST_DAYS = 366


def day_query(alias: str, description: str) -> Any:
    """A day as YYYY-MM-DD only (a date parser would also take a Unix time such as `0`)."""
    return Query(alias=alias, description=description, pattern=ISO_DAY, json_schema_extra={"format": "date"})


def day_of(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: not a calendar day (YYYY-MM-DD)") from None


@router.get("/usage", response_model=UsageReport)
async def usage(
    jobs: JobsDep,
    owner: OwnerDep,
    first: Annotated[str | None, day_query(alias="from", description="First UTC day; default: 29 before `to`.")] = None,
    last: Annotated[str | None, day_query(alias="to", description="Last UTC day, included; default: today.")] = None,
) -> UsageReport:
    """This key's use per UTC day: requests, photos, faces, media seconds, jobs and study sessions. Up to
    this moment for this replica, and within a few seconds for the others."""
    to_day = day_of(last, "to") if last else today()
    # By default the 30 days to `to`, or fewer where the calendar begins (to=0001-01-01).
    from_day = day_of(first, "from") if first else date.fromordinal(max(1, to_day.toordinal() - DEFAULT_DAYS + 1))
    if from_day > to_day or (to_day - from_day).days >= MOST_DAYS:
        raise ApiError(422, "invalid_request", f"from must not be after to, and the range at most {MOST_DAYS} days")
    rows = await asyncio.to_thread(jobs.usage.days, owner, from_day, to_day)
    days = [UsageDay(day=row.day, **{name: getattr(row, name) for name in FIELDS}) for row in rows]
    total = UsageFigures(**{name: sum(getattr(day, name) for day in days) for name in FIELDS})
    return UsageReport(days=days, total=total)
