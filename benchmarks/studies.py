"""Audience studies: how long a report takes for 150 viewers x 60 s (target under 2 s), and how many
viewers' sessions one replica analyses a minute, with the face mesh (the default) and without it
(EMOTION_STUDY_DESCRIPTORS=false)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import create_engine

from service.jobs.database import utcnow
from service.studies.models import StudyCreate
from service.studies.schema import ANALYSED, StudySession
from service.studies.store import StudyStore
from service.studies.trace import Trace
from tests.helpers.live_service import running_service
from tests.helpers.viewers import Viewer, screened_faces

REPORT_VIEWERS, REPORT_SECONDS = 150, 60
SESSIONS, SESSION_SECONDS, WORKERS = 24, 10, 2


def planted_traces(store: StudyStore, study_id: str, rng: np.random.Generator) -> None:
    """150 viewers' traces as the worker records them (with the face's actions): a smile for 40% of them
    around second 30."""
    with store.sessions.begin() as session:
        for viewer in range(REPORT_VIEWERS):
            smiles = rng.random() < 0.4
            probabilities, actions = [], []
            for t in range(REPORT_SECONDS):
                scores = rng.dirichlet(np.ones(7))
                smiling = smiles and 28 <= t < 33
                if smiling:
                    scores = 0.2 * scores + 0.8 * np.eye(7)[3]
                seen = rng.random() >= 0.05
                probabilities.append([round(float(v), 5) for v in scores] if seen else None)
                blinks = int(rng.poisson(0.3))
                done = {"smile": 0.8 if smiling else 0.1, "expressiveness": float(rng.random()), "blinks": blinks}
                actions.append(done if seen else None)
            trace = Trace(probabilities, [p is not None for p in probabilities], actions).to_json() | {"models": {}}
            session.add(
                StudySession(
                    id=f"bench{viewer:04d}",
                    study_id=study_id,
                    job_id=f"bench{viewer:04d}",
                    offset_s=0.0,
                    created_at=utcnow(),
                    status=ANALYSED,
                    trace=trace,
                )
            )


def timed_get(url: str, repeats: int = 5) -> float:
    httpx.get(url, timeout=60).raise_for_status()
    started = time.perf_counter()
    for _ in range(repeats):
        httpx.get(url, timeout=60).raise_for_status()
    return (time.perf_counter() - started) / repeats


def bench_studies() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = {"database_url": f"sqlite:///{folder / 'jobs.db'}", "media_store": str(folder / "media")}
        with running_service(**settings, job_workers=WORKERS) as live:
            store = StudyStore(create_engine(settings["database_url"]))
            study = store.create("-", StudyCreate(name="bench", stimulus_duration_s=REPORT_SECONDS))
            store.pin_model(study.id, ("emotion", "bench"))  # as a first session does: a comparison needs it
            planted_traces(store, study.id, np.random.default_rng(0))
            report_s = timed_get(f"{live.base}/v1/studies/{study.id}/report")
            png_s = timed_get(f"{live.base}/v1/studies/{study.id}/report.png")
            compare_s = timed_get(f"{live.base}/v1/studies/compare?a={study.id}&b={study.id}", repeats=2)
            sessions = analyse_sessions(live.base, folder)
        with running_service(**settings, job_workers=WORKERS, study_descriptors="false") as plain:
            without = analyse_sessions(plain.base, folder)
    return {
        "report_viewers": REPORT_VIEWERS,
        "report_seconds": REPORT_SECONDS,
        "report_s": round(report_s, 3),
        "report_png_s": round(png_s, 3),
        "compare_s": round(compare_s, 3),
        **sessions,
        "sessions_per_min_without_descriptors": without["sessions_per_min"],
        "descriptors_cost": round(without["sessions_per_min"] / sessions["sessions_per_min"], 2),
    }


def analyse_sessions(base: str, folder: Path) -> dict:
    neutral = screened_faces(base, "neutral", SESSIONS)
    recordings = [
        Viewer(face, seconds=SESSION_SECONDS).recording(folder / f"v{i}.mp4", i) for i, face in enumerate(neutral)
    ]
    study = httpx.post(f"{base}/v1/studies", json={"name": "throughput", "stimulus_duration_s": SESSION_SECONDS})
    study_id = study.json()["study_id"]
    started = time.perf_counter()
    for recording in recordings:
        httpx.post(f"{base}/v1/studies/{study_id}/sessions", files={"file": ("v.mp4", recording)}).raise_for_status()
    while True:
        listed = httpx.get(f"{base}/v1/studies/{study_id}/sessions").json()["sessions"]
        if all(s["status"] != "queued" for s in listed):
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    return {
        "sessions": SESSIONS,
        "session_seconds": SESSION_SECONDS,
        "workers": WORKERS,
        "sessions_analysed": sum(s["status"] == "analysed" for s in listed),
        "sessions_per_min": round(SESSIONS / elapsed * 60, 1),
        "recording_s_per_s": round(SESSIONS * SESSION_SECONDS / elapsed, 2),
    }


if __name__ == "__main__":
    print(bench_studies())
