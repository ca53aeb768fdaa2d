"""A report as a picture for slide decks, in three panels over one time axis: each emotion's share of
viewers per second with its 95% band (the study's events and the best moment marked; the smile
share of the face mesh dashed beside happy), attention, and the number of viewers whose face was
seen each second. Drawn with OpenCV, already a dependency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from service.inference.annotate import EMOTION_COLOURS, FONT  # the annotated photos' palette
from service.studies.models import StudyReport

WIDTH, HEIGHT = 1200, 760
LEFT, RIGHT = 90, 190
ATTENTION = (30, 30, 30)
VIEWERS = (150, 150, 150)
GRID, TEXT, AXIS = (225, 225, 225), (60, 60, 60), (0, 0, 0)
BAND_ALPHA = 0.12
SMILE_COLOUR = EMOTION_COLOURS["happy"]
DASH_PX = 8


@dataclass(frozen=True)
class Panel:
    """A horizontal strip of the chart: its top and height in pixels, and what its y axis shows."""

    top: int
    height: int
    title: str

    def y_of(self, fraction: float) -> int:
        return int(self.top + self.height * (1 - fraction))


EMOTIONS = Panel(60, 360, "share of viewers")
ATTENDING = Panel(460, 100, "attention")
SEEN = Panel(600, 80, "viewers seen")


def report_png(report: StudyReport) -> bytes:
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    seconds = max(len(report.seconds), 1)
    plot_w = WIDTH - LEFT - RIGHT

    def x_of(time_s: float) -> int:
        return int(LEFT + plot_w * time_s / seconds)

    def centre_of(t: int) -> int:  # second t is drawn at its middle
        return x_of(t + 0.5)

    shown = [
        e for e in EMOTION_COLOURS if any((s.emotions[e].share or 0) > 0 for s in report.seconds if e in s.emotions)
    ]
    _emotions(canvas, report, shown, x_of, centre_of)
    _attention(canvas, report, centre_of)
    _viewers(canvas, report, x_of)
    _time_axis(canvas, seconds, x_of)
    smiles = [(centre_of(s.t), EMOTIONS.y_of(s.actions.smile_share)) for s in report.seconds if s.actions is not None]
    _dashed(canvas, smiles, SMILE_COLOUR)
    _legend(canvas, shown, smiled=bool(smiles))
    title = f"{report.name[:60]}: share of viewers at or above {report.threshold:g} ({report.sessions.valid} viewers)"
    if report.segment:
        title += f", segment {report.segment}"
    cv2.putText(canvas, title, (LEFT, 30), FONT, 0.6, AXIS, 1, cv2.LINE_AA)
    return cv2.imencode(".png", canvas)[1].tobytes()


def _emotions(canvas: np.ndarray, report: StudyReport, shown: list[str], x_of: Callable, centre_of: Callable) -> None:
    panel = EMOTIONS
    _y_axis(canvas, panel, (0, 0.25, 0.5, 0.75, 1))
    for event in report.events:
        x = x_of(event.time_s)
        cv2.line(canvas, (x, panel.top), (x, panel.top + panel.height), (120, 120, 120), 1, cv2.LINE_AA)
        cv2.putText(canvas, event.label[:24], (x + 4, panel.top + 14), FONT, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    for emotion in shown:
        colour = EMOTION_COLOURS[emotion]
        rows = [(s.t, s.emotions[emotion]) for s in report.seconds]
        band = [(t, e.share_ci) for t, e in rows if e.share is not None and None not in e.share_ci]
        upper = [(centre_of(t), panel.y_of(ci[1])) for t, ci in band]
        polygon = upper + [(centre_of(t), panel.y_of(ci[0])) for t, ci in reversed(band)]
        if polygon:
            overlay = canvas.copy()
            cv2.fillPoly(overlay, [np.array(polygon, np.int32)], colour, cv2.LINE_AA)
            cv2.addWeighted(overlay, BAND_ALPHA, canvas, 1 - BAND_ALPHA, 0, canvas)
        _curve(canvas, [(centre_of(t), panel.y_of(e.share)) for t, e in rows if e.share is not None], colour, 2)
    if report.best_moment is not None:
        best = report.best_moment
        centre = (centre_of(best.t), panel.y_of(best.share))
        cv2.circle(canvas, centre, 7, EMOTION_COLOURS[best.emotion], 2, cv2.LINE_AA)
        label = f"best: {best.emotion} {best.share:.0%} at {best.t}s ({best.n} viewers)"
        where = (centre[0] + 10, max(centre[1] - 10, panel.top + 30))
        cv2.putText(canvas, label, where, FONT, 0.5, AXIS, 1, cv2.LINE_AA)


def _attention(canvas: np.ndarray, report: StudyReport, centre_of: Callable) -> None:
    panel = ATTENDING
    _y_axis(canvas, panel, (0, 0.5, 1))
    points = [(centre_of(s.t), panel.y_of(s.attention)) for s in report.seconds if s.attention is not None]
    _curve(canvas, points, ATTENTION, 2)


def _viewers(canvas: np.ndarray, report: StudyReport, x_of: Callable) -> None:
    """A bar per second: how many viewers' faces each figure above rests on."""
    panel = SEEN
    most = max([s.n for s in report.seconds] + [1])
    for share in (0, 1):
        y = panel.y_of(share)
        cv2.line(canvas, (LEFT, y), (WIDTH - RIGHT, y), GRID, 1)
        cv2.putText(canvas, f"{round(share * most)}", (LEFT - 40, y + 4), FONT, 0.42, TEXT, 1, cv2.LINE_AA)
    for s in report.seconds:
        if s.n:
            cv2.rectangle(
                canvas, (x_of(s.t) + 1, panel.y_of(s.n / most)), (x_of(s.t + 1) - 1, panel.y_of(0)), VIEWERS, -1
            )
    _y_title(canvas, panel)


def _y_axis(canvas: np.ndarray, panel: Panel, ticks: tuple[float, ...]) -> None:
    for share in ticks:
        y = panel.y_of(share)
        cv2.line(canvas, (LEFT, y), (WIDTH - RIGHT, y), GRID, 1)
        cv2.putText(canvas, f"{share:.0%}", (LEFT - 48, y + 4), FONT, 0.42, TEXT, 1, cv2.LINE_AA)
    _y_title(canvas, panel)


def _y_title(canvas: np.ndarray, panel: Panel) -> None:
    """The panel's y-axis title, written upwards beside its axis."""
    (width, height), baseline = cv2.getTextSize(panel.title, FONT, 0.45, 1)
    label = np.full((height + baseline + 4, width + 4, 3), 255, np.uint8)
    cv2.putText(label, panel.title, (2, height + 2), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    upright = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    top = max(0, panel.top + (panel.height - upright.shape[0]) // 2)
    rows = upright[: HEIGHT - top]
    canvas[top : top + len(rows), 8 : 8 + rows.shape[1]] = rows


def _time_axis(canvas: np.ndarray, seconds: int, x_of: Callable) -> None:
    bottom = SEEN.y_of(0)
    step = max(1, int(np.ceil(seconds / 15)))
    for t in range(0, seconds + 1, step):
        cv2.line(canvas, (x_of(t), bottom), (x_of(t), bottom + 5), AXIS, 1)
        cv2.putText(canvas, f"{t}", (x_of(t) - 6, bottom + 20), FONT, 0.42, TEXT, 1, cv2.LINE_AA)
    label = "time in the stimulus (s); each second's figure at its middle"
    cv2.putText(canvas, label, (LEFT + 250, bottom + 44), FONT, 0.45, TEXT, 1, cv2.LINE_AA)
    for panel in (EMOTIONS, ATTENDING, SEEN):
        cv2.line(canvas, (LEFT, panel.y_of(0)), (WIDTH - RIGHT, panel.y_of(0)), AXIS, 1)


def _curve(canvas: np.ndarray, points: list[tuple[int, int]], colour: tuple[int, int, int], thickness: int) -> None:
    if len(points) > 1:
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, thickness, cv2.LINE_AA)
    for point in points if len(points) == 1 else ():
        cv2.circle(canvas, point, 3, colour, -1, cv2.LINE_AA)


def _dashed(canvas: np.ndarray, points: list[tuple[int, int]], colour: tuple[int, int, int]) -> None:
    """A dashed polyline: every other DASH_PX of its length drawn."""
    for (x0, y0), (x1, y1) in pairwise(points):
        pieces = max(1, int(np.hypot(x1 - x0, y1 - y0) // DASH_PX))
        xs, ys = np.linspace(x0, x1, pieces + 1), np.linspace(y0, y1, pieces + 1)
        for i in range(0, pieces, 2):
            cv2.line(canvas, (int(xs[i]), int(ys[i])), (int(xs[i + 1]), int(ys[i + 1])), colour, 2, cv2.LINE_AA)


def _legend(canvas: np.ndarray, shown: list[str], smiled: bool) -> None:
    """Only the emotions someone showed (and the smile, where faces were described); the shaded band's
    meaning; an emotion nobody showed is said once."""
    x, y = WIDTH - RIGHT + 20, EMOTIONS.top + 10
    for name in shown:
        cv2.line(canvas, (x, y), (x + 24, y), EMOTION_COLOURS[name], 2, cv2.LINE_AA)
        cv2.putText(canvas, name, (x + 32, y + 4), FONT, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        y += 24
    if smiled:
        _dashed(canvas, [(x, y), (x + 24, y)], SMILE_COLOUR)
        cv2.putText(canvas, "smile (mesh)", (x + 32, y + 4), FONT, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        y += 24
    swatch = canvas[y - 6 : y + 6, x : x + 24]
    grey = np.full_like(swatch, 255 * (1 - 2 * BAND_ALPHA), dtype=np.uint8)
    canvas[y - 6 : y + 6, x : x + 24] = grey
    cv2.putText(canvas, "95% interval", (x + 32, y + 4), FONT, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
    hidden = len(EMOTION_COLOURS) - len(shown)
    if hidden:
        cv2.putText(canvas, f"{hidden} emotion(s) at 0%", (x, y + 28), FONT, 0.42, TEXT, 1, cv2.LINE_AA)
