"""`python -m service`: serve with uvicorn using the EMOTION_* settings; `python -m service worker`: job
workers alone (service.jobs.standalone)."""

import asyncio
import logging
import signal
import sys

import uvicorn

from service.api.middleware import configure_logging
from service.config import UnreadableKeys, get_settings
from service.jobs.standalone import run_workers
from service.ops.connections import HeaderDeadlineProtocol

# Idle keep-alive connections are closed after this; the balancer's own idle timeout must be shorter.
KEEP_ALIVE_S = 5
# A configuration the service refuses to run with (sysexits' EX_CONFIG).
EXIT_CONFIG = 78
log = logging.getLogger("service")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    if sys.argv[1:] == ["worker"]:
        asyncio.run(run_workers(settings))
        return
    try:
        settings.load_api_keys()  # fail closed, in one line, before anything starts
    except UnreadableKeys as unreadable:
        log.critical("%s; not starting without the keys it should hold", unreadable)
        sys.exit(EXIT_CONFIG)
    # After service.ops.shutdown's drain, uvicorn finishes requests, then re-raises SIGTERM with this
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
