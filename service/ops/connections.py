"""uvicorn's HTTP/1.1 protocol with a deadline on request headers.

uvicorn closes idle keep-alive connections, but a connection that sends half a request header and
then waits is held for as long as its client likes: a few thousand such connections cost file
descriptors and memory for nothing. Here every connection must have sent a whole request header
within `header_timeout_s` of opening (or of its previous response), or it is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.config import get_settings


class HeaderDeadlineProtocol(H11Protocol):
    """Handed to uvicorn as `http=`; a module-level class, so uvicorn's worker processes can import it."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(get_settings().header_timeout_s, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        """Close a connection still waiting for its request line and headers (h11 reads it as idle)."""
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
