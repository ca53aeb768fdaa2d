"""Participant links: a signed capability for one study, and the links' rows.

A token is `base64url(payload).base64url(HMAC-SHA256(secret, payload))`, its payload naming the link
and its study. The signature proves the service made it; the row decides whether it still works
(not revoked, not expired, not full). A token can do only what the participant page needs: it is
checked by the watch routes alone and never accepted as an API key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import sessionmaker

from service.config import LinkSettings
from service.jobs.database import utcnow
from service.studies.models import LinkMode
from service.studies.schema import Study, StudyLink, StudySession

log = logging.getLogger(__name__)


class LinkRefused(Exception):
    """A token that is forged, revoked or expired, or names no link: the page answers 403."""


class LinkFull(Exception):
    """The link reached its `max_sessions`."""


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signs with the first secret and verifies with any (a rotation keeps old links working)."""

    def __init__(self, settings: LinkSettings) -> None:
        configured = [s.encode() for s in settings.secrets]
        if not configured:
            log.warning(
                "EMOTION_LINK_SECRET is not set: participant links are signed with a secret made now, and stop "
                "working when this process restarts (and on other replicas)"
            )
            configured = [secrets.token_bytes(32)]
        self.keys = configured

    def token(self, link_id: str, study_id: str) -> str:
        payload = json.dumps({"l": link_id, "s": study_id}, separators=(",", ":")).encode()
        return f"{encode(payload)}.{encode(self._mac(self.keys[0], payload))}"

    def verify(self, token: str) -> tuple[str, str]:
        """(link id, study id) of a token this service signed; LinkRefused otherwise."""
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = decode(payload_text), decode(mac_text)
            if not any(hmac.compare_digest(mac, self._mac(key, payload)) for key in self.keys):
                raise LinkRefused("this link is not valid")
            fields = json.loads(payload)
            return str(fields["l"]), str(fields["s"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise LinkRefused("this link is not valid") from None

    @staticmethod
    def _mac(key: bytes, payload: bytes) -> bytes:
        return hmac.new(key, payload, hashlib.sha256).digest()


@dataclass(frozen=True)
class LinkView:
    link: StudyLink
    sessions: int  # sessions made through it

    @property
    def full(self) -> bool:
        return self.link.max_sessions is not None and self.sessions >= self.link.max_sessions


class LinkStore:
    def __init__(self, engine: Engine) -> None:
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    def create(
        self, study: Study, mode: LinkMode, return_url: str | None, expires_in_h: float, max_sessions: int | None
    ) -> StudyLink:
        now = utcnow()
        link = StudyLink(
            id=uuid.uuid4().hex,
            study_id=study.id,
            mode=mode,
            return_url=return_url,
            max_sessions=max_sessions,
            created_at=now,
            expires_at=now + timedelta(hours=expires_in_h),
            opened=0,
            declined=0,
            screened_out=0,
            errors=0,
        )
        with self.sessions.begin() as session:
            session.add(link)
        return link

    def of_study(self, study_id: str) -> list[LinkView]:
        with self.sessions() as session:
            links = list(session.scalars(select(StudyLink).where(StudyLink.study_id == study_id)))
            return [LinkView(link, self._count(session, link.id)) for link in links]

    def revoke(self, study_id: str, link_id: str) -> bool:
        """Withdraw a link of the study (again is fine); False if the study has no such link."""
        with self.sessions.begin() as session:
            link = session.get(StudyLink, link_id)
            if link is None or link.study_id != study_id:
                return False
            link.revoked_at = link.revoked_at or utcnow()
            return True

    def usable(self, link_id: str, study_id: str, now: datetime | None = None) -> tuple[LinkView, Study]:
        """The link and its study if the link still works; LinkRefused otherwise."""
        with self.sessions() as session:
            link = session.get(StudyLink, link_id)
            study = session.get(Study, study_id)
            if link is None or study is None or link.study_id != study_id:
                raise LinkRefused("this link is not valid")
            if link.revoked_at is not None:
                raise LinkRefused("this link was withdrawn")
            if (now or utcnow()) >= link.expires_at:
                raise LinkRefused("this link has expired")
            return LinkView(link, self._count(session, link.id)), study

    def count(self, link_id: str, outcome: str) -> None:
        """One more respondent who opened the link, or who ended without a session (declined, screened out, error)."""
        column = getattr(StudyLink, outcome)
        with self.sessions.begin() as session:
            session.execute(update(StudyLink).where(StudyLink.id == link_id).values({column: column + 1}))

    @staticmethod
    def _count(session, link_id: str) -> int:
        return session.scalar(select(func.count()).where(StudySession.link_id == link_id))
