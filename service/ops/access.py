"""API keys: the one constant-time check behind the HTTP routes, the upload intake and live streams.

Every configured key is compared, with no early exit, and a missing key and a wrong key get the
same answer, so a caller learns nothing about which part failed.
"""

from __future__ import annotations

import hmac


def key_is_valid(presented: str | None, keys: list[str]) -> bool:
    """Whether a presented key is configured; any string (even one UTF-8 cannot encode) is a plain no."""
    presented_bytes = (presented or "").encode(errors="surrogatepass")
    matches = [hmac.compare_digest(presented_bytes, key.encode()) for key in keys]  # no early exit
    return presented is not None and any(matches)
