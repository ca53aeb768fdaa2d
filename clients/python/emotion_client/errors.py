"""The service's refusals as exceptions: one class, with the status and the stable code to branch on."""

from __future__ import annotations

import httpx


class EmotionAPIError(Exception):
    """A 4xx or 5xx answer: `status`, `code` (e.g. "quota_media_s_per_day"), `message`, `request_id` (quote
    it when asking for help) and, on 429 and 503, `retry_after_s`."""

    def __init__(
        self, status: int, code: str, message: str, request_id: str | None, retry_after_s: float | None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.request_id, self.retry_after_s = request_id, retry_after_s


class JobNotFinished(TimeoutError):
    """`wait_for_job` ran out of time; the job goes on, and `job` is its last state."""

    def __init__(self, job: dict) -> None:
        super().__init__(f"job {job['job_id']} is still {job['status']}")
        self.job = job


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the service sends seconds), or None when absent or unreadable."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def api_error(response: httpx.Response) -> EmotionAPIError:
    """The error a refusal stands for; a body not in the service's shape (a proxy's page) keeps its status."""
    try:
        error = response.json()["error"]
        code, message, request_id = error["code"], error["message"], error.get("request_id")
    except (ValueError, KeyError, TypeError):
        code, message, request_id = "http_error", response.text[:200], response.headers.get("x-request-id")
    return EmotionAPIError(response.status_code, code, message, request_id, retry_after_s(response))
