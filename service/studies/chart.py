"""A report as a picture for slide decks: each emotion's share of viewers per second with its 95%
band, attention, the study's events and the best moment. Drawn with OpenCV, already a dependency."""

from __future__ import annotations

import cv2
import numpy as np

from service.inference.annotate import EMOTION_COLOURS, FONT  # the annotated photos' palette
from service.studies.models import StudyReport

WIDTH, HEIGHT = 1200, 620
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 60, 60
ATTENTION = (30, 30, 30)


def report_png(report: StudyReport) -> bytes:
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    seconds = max(len(report.seconds), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(time_s: float) -> int:
        return int(LEFT + plot_w * time_s / seconds)

    def centre_of(t: int) -> int:  # second t is drawn at its middle
        return x_of(t + 0.5)

    def y_of(share: float) -> int:
        return int(TOP + plot_h * (1 - share))

    _axes(canvas, seconds, x_of, y_of)
    for event in report.events:
        x = x_of(event.time_s)
        cv2.line(canvas, (x, TOP), (x, TOP + plot_h), (120, 120, 120), 1, cv2.LINE_AA)
        cv2.putText(canvas, event.label[:24], (x + 4, TOP + 14), FONT, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    for emotion, colour in EMOTION_COLOURS.items():
        rows = [(s.t, s.emotions[emotion]) for s in report.seconds if emotion in s.emotions]
        band = [(t, e.share_ci) for t, e in rows if e.share is not None and None not in e.share_ci]
        if any(e.share for _, e in rows):  # no band for an emotion nobody showed: it would only add clutter
            upper = [(centre_of(t), y_of(ci[1])) for t, ci in band]
            polygon = upper + [(centre_of(t), y_of(ci[0])) for t, ci in reversed(band)]
            overlay = canvas.copy()
            cv2.fillPoly(overlay, [np.array(polygon, np.int32)], colour, cv2.LINE_AA)
            cv2.addWeighted(overlay, 0.12, canvas, 0.88, 0, canvas)
        _curve(canvas, [(centre_of(t), y_of(e.share)) for t, e in rows if e.share is not None], colour, 2)
    attention = [(centre_of(s.t), y_of(s.attention)) for s in report.seconds if s.attention is not None]
    _curve(canvas, attention, ATTENTION, 1)
    if report.best_moment is not None:
        best = report.best_moment
        centre = (centre_of(best.t), y_of(best.share))
        cv2.circle(canvas, centre, 7, EMOTION_COLOURS[best.emotion], 2, cv2.LINE_AA)
        label = f"best: {best.emotion} {best.share:.0%} at {best.t}s"
        cv2.putText(
            canvas, label, (centre[0] + 10, max(centre[1] - 10, TOP + 30)), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA
        )
    _legend(canvas)
    title = f"{report.name[:60]}: share of viewers at or above {report.threshold:g} ({report.sessions.valid} viewers)"
    cv2.putText(canvas, title, (LEFT, 30), FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return cv2.imencode(".png", canvas)[1].tobytes()


def _axes(canvas: np.ndarray, seconds: int, x_of, y_of) -> None:
    bottom, right = y_of(0), WIDTH - RIGHT
    for share in (0, 0.25, 0.5, 0.75, 1):
        y = y_of(share)
        cv2.line(canvas, (LEFT, y), (right, y), (225, 225, 225), 1)
        cv2.putText(canvas, f"{share:.0%}", (LEFT - 48, y + 4), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    step = max(1, int(np.ceil(seconds / 15)))
    for t in range(0, seconds + 1, step):
        cv2.line(canvas, (x_of(t), bottom), (x_of(t), bottom + 5), (0, 0, 0), 1)
        cv2.putText(canvas, f"{t}", (x_of(t) - 6, bottom + 20), FONT, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    label = "time in the stimulus (s); each second's figure at its middle"
    cv2.putText(canvas, label, (LEFT + 250, bottom + 44), FONT, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.line(canvas, (LEFT, bottom), (right, bottom), (0, 0, 0), 1)


def _curve(canvas: np.ndarray, points: list[tuple[int, int]], colour: tuple[int, int, int], thickness: int) -> None:
    if len(points) > 1:
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, thickness, cv2.LINE_AA)
    for point in points if len(points) == 1 else ():
        cv2.circle(canvas, point, 3, colour, -1, cv2.LINE_AA)


def _legend(canvas: np.ndarray) -> None:
    x, y = WIDTH - RIGHT + 20, TOP + 10
    for name, colour in [*EMOTION_COLOURS.items(), ("attention", ATTENTION)]:
        cv2.line(canvas, (x, y), (x + 24, y), colour, 2 if name != "attention" else 1, cv2.LINE_AA)
        cv2.putText(canvas, name, (x + 32, y + 4), FONT, 0.45, (40, 40, 40), 1, cv2.LINE_AA)
        y += 24
