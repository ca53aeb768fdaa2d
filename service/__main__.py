"""`python -m service`: serve with uvicorn using the EMOTION_* settings; `python -m service worker`: job
workers alone (service.process.run_workers)."""

import asyncio
import logging
import signal
import sys

import uvicorn
from pydantic import ValidationError

from service.api.middleware import configure_logging
from service.config import UnreadableKeys, get_settings
from service.ops.connections import HeaderDeadlineProtocol
from service.process import run_workers

# Idle keep-alive connections are closed after this; the balancer's own idle timeout must be shorter.
KEEP_ALIVE_S = 5
# A configuration the service refuses to run with (sysexits' EX_CONFIG).
EXIT_CONFIG = 78
log = logging.getLogger("service")


def settings_problems(invalid: ValidationError) -> str:
    """Pydantic's errors as the variables an operator sets: EMOTION_NAME: what is wrong."""
    problems = []
    for error in invalid.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"EMOTION_{name}: {message}" if name else message)
    return "; ".join(problems)


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as invalid:  # before logging is set up: one line on stderr, then stop
        print(f"invalid settings, not starting: {settings_problems(invalid)}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    configure_logging(settings.log_level)
    if sys.argv[1:] == ["worker"]:
        asyncio.run(run_workers(settings))
        return
    try:
        settings.load_api_keys()  # fail closed, in one line, before anything starts
    except UnreadableKeys as unreadable:
        log.critical("%s; not starting without the keys it should hold", unreadable)
        sys.exit(EXIT_CONFIG)
    # After service.api.shutdown's drain, uvicorn finishes requests, then re-raises SIGTERM with this
    # handler restored: exit 0, since a drained shutdown is a clean one.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=HeaderDeadlineProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_config=None,  # keep our format, with request ids
        access_log=False,  # the request middleware logs each request without client data
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        ws_max_size=settings.stream_max_frame_bytes + 1024,  # larger frames get our own 1009 close
    )


if __name__ == "__main__":
    main()
