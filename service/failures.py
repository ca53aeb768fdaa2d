"""What each failure below the API means to a client: one status, code and message, whether it is
answered over HTTP or recorded as a job's error, so the two never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.inference.errors import ImageRejected, InferenceFailed, UnknownModel
from service.ops.admission import RETRY_AFTER_OVERLOADED, Overloaded

# What the analysis and admission raise.
DOMAIN_ERRORS = (ImageRejected, InferenceFailed, UnknownModel, Overloaded)


@dataclass(frozen=True)
class Failure:
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def failure_of(error: Exception) -> Failure:
    """The client-facing failure of one of DOMAIN_ERRORS (anything else is the model's own failure)."""
    if isinstance(error, ImageRejected):
        return Failure(error.status, error.reason, error.message)
    if isinstance(error, UnknownModel):
        return Failure(422, "unknown_model", error.message)
    if isinstance(error, Overloaded):
        return Failure(503, "overloaded", str(error), {"Retry-After": RETRY_AFTER_OVERLOADED})
    return Failure(500, "inference_failed", "the emotion model failed; quote the request id")
