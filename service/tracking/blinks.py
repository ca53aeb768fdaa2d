"""Blinks in one face's eye closure over time (the `eye_closure` descriptor, frame by frame).

A blink is a short rise of the eyes' closure above the face's own open-eye level: eyes read as
partly closed in one person (or looking down) stay level, and a blink shows as a brief jump. The
open-eye level is the running median of the face's closure over BASELINE_WINDOW_MS around each
frame. A frame is closed when its closure is BLINK_RISE above that level; a run of closed frames is a
blink when the face was seen open on both sides of it within BLINK_LONGEST_MS (longer closures are
eyes shut, not blinks; a run at either end of the face's frames is not counted, its end unseen).
"""

from __future__ import annotations

import numpy as np

BLINK_RISE = 0.2
BLINK_LONGEST_MS = 1000.0
BASELINE_WINDOW_MS = 5000.0


def open_level(times_ms: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """Each frame's open-eye level: the median closure within half the baseline window either side."""
    half = BASELINE_WINDOW_MS / 2
    starts = np.searchsorted(times_ms, times_ms - half, side="left")
    ends = np.searchsorted(times_ms, times_ms + half, side="right")
    return np.array([np.median(closure[a:b]) for a, b in zip(starts, ends)])


def blink_times(times_ms: np.ndarray, closure: np.ndarray) -> np.ndarray:
    """The time (ms) of the first closed frame of each blink, from frames in time order."""
    times_ms, closure = np.asarray(times_ms, float), np.asarray(closure, float)
    if len(times_ms) < 3:
        return np.empty(0)
    closed = closure >= open_level(times_ms, closure) + BLINK_RISE
    edges = np.flatnonzero(np.diff(closed.astype(int)))  # the last frame before each change
    starts = edges[~closed[edges]] + 1  # open -> closed
    blinks = []
    for start in starts:
        after = np.flatnonzero(~closed[start:])
        if len(after) == 0:
            continue  # closed until the face's last frame: its end is unseen
        reopened = start + after[0]
        if times_ms[reopened] - times_ms[start - 1] <= BLINK_LONGEST_MS:
            blinks.append(times_ms[start])
    return np.array(blinks)
