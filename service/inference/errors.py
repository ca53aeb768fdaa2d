"""What can go wrong inside the analysis, as plain exceptions: the API maps each to its HTTP answer
(service.api.errors), the command line and the batch job to their own."""

from __future__ import annotations


class ImageRejected(Exception):
    """Media that is not usable: `reason` is the stable code clients branch on and the rejection metric's label;
    `status` the HTTP status class it belongs to (400 undecodable, 413 too large, 415 wrong type)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    @property
    def code(self) -> str:
        return self.reason


class InferenceFailed(Exception):
    """The emotion model failed on crops it was given: a fault of ours, not of the request."""


class UnknownModel(Exception):
    """A request named an emotion model that is not loaded."""

    def __init__(self, name: str | None, loaded: list[str]) -> None:
        self.message = f"no emotion model {name!r} is loaded; choose one of: {', '.join(loaded)}"
        super().__init__(self.message)
