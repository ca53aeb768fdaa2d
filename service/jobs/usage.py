"""What each key used, per UTC day: requests, images, faces, media seconds, jobs and study sessions,
for chargeback and billing (GET /v1/usage) and the daily media quota.

Counted in memory where the work happens and added to the job database's usage table every few
seconds and at shutdown, so no request waits on the database to be counted; replicas add to the same
rows. A process killed with -9 loses at most its last few seconds of counts."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from service.jobs.schema import Usage
from service.jobs.store import QuotaExceeded
from service.ops.quotas import NO_KEYS

FIELDS = ("requests", "images", "faces", "media_seconds", "jobs", "study_sessions")
FLUSH_EVERY_S = 5.0
UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def today() -> date:
    return datetime.now(UTC).date()


class UsageMeter:
    def __init__(self, engine: Engine, media_s_per_day: float) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self.upsert = UPSERTS[engine.dialect.name]
        self.media_s_per_day = media_s_per_day
        self.pending: defaultdict[tuple[str, date], Counter] = defaultdict(Counter)
        self.lock = threading.Lock()  # counts come from the event loop and from analysis threads

    def add(self, owner: str, **counts: float) -> None:
        unknown = set(counts) - set(FIELDS)
        if unknown:
            raise ValueError(f"not a usage figure: {sorted(unknown)}")
        with self.lock:
            self.pending[owner, today()].update(counts)

    def recorder(self, owner: str) -> Callable[..., None]:
        """This key's counter, for the analysis to call (service.answers.UseRecorder)."""
        return lambda **counts: self.add(owner, **counts)

    def flush(self) -> None:
        """Add what was counted since the last flush to the table. Blocking: run it off the event loop."""
        with self.lock:
            pending, self.pending = self.pending, defaultdict(Counter)
        if not pending:
            return
        try:
            with self.sessions.begin() as session:
                for (owner, day), counts in pending.items():
                    values = {name: counts.get(name, 0) for name in FIELDS}
                    insert = self.upsert(Usage).values(owner=owner, day=day, **values)
                    added = {name: getattr(Usage, name) + getattr(insert.excluded, name) for name in FIELDS}
                    session.execute(insert.on_conflict_do_update(index_elements=["owner", "day"], set_=added))
        except Exception:  # the database is away: keep the counts for the next flush
            with self.lock:
                for key, counts in pending.items():
                    self.pending[key].update(counts)
            raise

    def days(self, owner: str, first: date, last: date) -> list[Usage]:
        """The key's rows from first to last (UTC days, both included), this process's latest counts in."""
        self.flush()
        query = select(Usage).where(Usage.owner == owner, Usage.day >= first, Usage.day <= last).order_by(Usage.day)
        with self.sessions() as session:
            return list(session.scalars(query))

    def check_media_quota(self, owner: str) -> None:
        """QuotaExceeded once the key has had EMOTION_QUOTA_MEDIA_S_PER_DAY seconds of media analysed today
        (UTC); the clip or stream that crosses it is finished, the next one is refused until midnight."""
        if not self.media_s_per_day or owner == NO_KEYS:
            return
        day = today()
        with self.sessions() as session:
            row = session.get(Usage, (owner, day))
        with self.lock:
            used = (row.media_seconds if row else 0.0) + self.pending.get((owner, day), Counter())["media_seconds"]
        if used >= self.media_s_per_day:
            midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            wait_s = max(1, int((midnight - datetime.now(UTC)).total_seconds()))
            quota = "its quota (EMOTION_QUOTA_MEDIA_S_PER_DAY)"
            message = f"this key had {used:.0f} s of media analysed today (UTC): {quota}; it renews at midnight UTC"
            raise QuotaExceeded("media_s_per_day", message, retry_after_s=wait_s)

    def delete_before(self, day: date) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(Usage).where(Usage.day < day))
