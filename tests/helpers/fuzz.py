"""A mutation fuzzer for a running service: real clips, photos and stream frames, mutated, sent as a client would;
jobs with hostile webhook receivers and malformed options; study bodies.

Each media input is a seed (a shared clip, a photo of real FER-2013 faces, a frame of a clip) with
byte flips, a truncation, or an edited MP4 box field. Jobs carry such media with options drawn from
valid and malformed values, and callback URLs that point at receivers that trickle, hang, answer
with huge or endless bodies, or odd statuses and Retry-After values, or do not parse. Study bodies
are a valid study with one field replaced by a value of the wrong type, length or range. The
service fails the run if it answers any 5xx (or an NDJSON/stream error of its own), dies, takes
longer than the deadline, keeps growing in memory once warm, or, at the end, no longer delivers a
good receiver's webhook within the deadline; the input that did it is kept in the artefact folder
with what went wrong.

    python -m tests.helpers.fuzz --inputs 10000     # a long run against its own service
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers.clips import PEOPLE, clip_bytes, clip_frames, write_clip
from tests.helpers.faces import fer_faces, jpeg
from tests.helpers.hostile_receiver import BEHAVIOURS, hostile_receiver
from tests.helpers.live_service import LiveService, running_service
from tests.helpers.webhook_receiver import webhook_receiver
from training.scenes import place_faces

# The service under fuzzing: the fast model, a deadline the client can wait out, webhooks to loopback.
SERVICE_SETTINGS = {
    "emotion_models": "emotion-fast",
    "default_emotion_model": "emotion-fast",
    "video_timeout_s": 20,
    "webhook_secret": "whsec_" + base64.b64encode(b"the fuzzer's webhook secret, 32b").decode(),
    "webhook_allow_private": "true",
    "webhook_timeout_s": 3,
    "webhook_retry_delays_s": "1,2",
    "job_poll_s": 0.1,
}
CLIENT_TIMEOUT_S = 30
# Memory: after a warm-up that has been down every path (arenas and caches at their working size),
# the service may not keep growing. While glibc held the free memory that uploads of every size
# left in the heap, RSS grew about 150 MB per 1,000 inputs; with it returned (service.ops.allocator),
# at most 60 MB over the 5,100 inputs after the warm-up of a 150 s run.
WARM_UP_INPUTS = 300
RSS_GROWTH_LIMIT_MB = 120
# Box types whose fields say where and how large the media is: the ones worth forging.
MP4_BOXES = (b"stco", b"co64", b"stsz", b"stsc", b"stts", b"ctts", b"elst", b"mdhd", b"tkhd", b"mvhd", b"moov", b"trak")
EXTREMES = (0, 1, 0x7FFFFFFF, 0x80000000, 0x90000000, 0xFFFFFFFF)
# Error codes that are the service's own failure, even inside a 200 NDJSON body or a stream message.
OWN_FAILURES = {"internal_error", "inference_failed"}


@dataclass
class Seeds:
    clips: dict[str, bytes]
    photos: dict[str, bytes]
    frames: list[bytes]

    @classmethod
    def load(cls) -> Seeds:
        scene = place_faces(fer_faces("happy", 2) + fer_faces("sad", 1), 360, 480, 110, seed=7).image
        photos = {"scene.jpg": jpeg(scene), "scene.png": cv2.imencode(".png", scene)[1].tobytes()}
        frames = [jpeg(f) for f in clip_frames("two-people-head-pose.webm")[:10:3]]
        clips = {name: clip_bytes(name) for name in PEOPLE}
        with tempfile.TemporaryDirectory() as folder:  # AVI's index offsets are another thing to forge
            clips["asl-please.avi"] = write_clip(Path(folder) / "a.avi", clip_frames("asl-please.mp4")[:20], 25, "MJPG")
        return cls(clips, photos, frames)


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def edit_box(data: bytes, rng: random.Random) -> bytes:
    """Set one 32-bit field of a random index box of an MP4 (or any bytes that hold such a tag) to an extreme."""
    places = [i for box in MP4_BOXES for i in find_all(data, box)]
    if not places:
        return flip_bytes(data, rng)
    at = rng.choice(places) + rng.choice((-4, 4, 8, 12, 16, 20))  # the size, or a field after the type
    out = bytearray(data)
    if 0 <= at <= len(out) - 4:
        out[at : at + 4] = struct.pack(">I", rng.choice((*EXTREMES, rng.getrandbits(32))))
    return bytes(out)


def find_all(data: bytes, needle: bytes) -> list[int]:
    places, start = [], 0
    while (at := data.find(needle, start)) != -1 and len(places) < 64:
        places.append(at)
        start = at + 1
    return places


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": flip_bytes,
    "truncate": truncate,
    "box": edit_box,
}


@dataclass
class Finding:
    what: str
    kind: str
    seed: str
    mutation: str
    data: bytes


@dataclass
class Report:
    inputs: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_warm_mb: float | None = None
    rss_peak_mb: float = 0.0

    def count(self, kind: str, outcome: str) -> None:
        self.inputs += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


# Callback URLs that must be refused with a 4xx, never a 5xx.
MALFORMED_CALLBACKS = (
    "http://a..b/",
    "http://127.0.0.1:99999/",
    "http://127.0.0.1:abc/",
    "http://[::1/",
    "http://" + "a" * 64 + ".example/",
    "ftp://127.0.0.1/",
    "http://user:pass@127.0.0.1/",
    "http://[64:ff9b::a00:1]/",
    "\x00http://127.0.0.1/",
    "",
)
JOB_OPTIONS = {
    "fps": ("5", "0", "-1", "nan", "inf", "1e308", "abc", "", "0.2"),
    "smoothing": ("1", "-1", "nan", "1e999", "x"),
    "model": ("emotion-fast", "nope", "", "emotion-fast:99"),
    "tag": ("crm-1", "", "t" * 300, "\u202e"),
}
IDEMPOTENCY_KEYS = (None, "", "k", "k" * 300, "\u00e9t\u00e9")
VALID_STUDY = {"name": "ad", "stimulus_duration_s": 30, "events": [{"time_s": 5, "label": "brand"}]}
STUDY_VALUES = (None, True, False, 0, -1, 1e308, "30", "", "n" * 300, [], {}, [{"time_s": "x"}], 601, 3600.5)


class Fuzzer:
    def __init__(
        self, service: LiveService, seeds: Seeds, rng: random.Random, artefacts: Path, callbacks: list[str]
    ) -> None:
        self.service = service
        self.seeds = seeds
        self.rng = rng
        self.artefacts = artefacts
        self.callbacks = callbacks + list(MALFORMED_CALLBACKS)
        self.report = Report(rss_start_mb=service.rss_mb())
        self.http = httpx.Client(base_url=service.base, timeout=CLIENT_TIMEOUT_S)

    def run(self, max_inputs: int, max_seconds: float) -> Report:
        deadline = time.monotonic() + max_seconds
        try:
            while self.report.inputs < max_inputs and time.monotonic() < deadline and not self.report.findings:
                kind = self.rng.choices(["photo", "clip", "frames", "job", "study"], weights=[5, 4, 1, 3, 2])[0]
                getattr(self, f"_{kind}")()
                self._check_process()
        finally:
            self.http.close()
        return self.report

    def _mutated(self, seeds: dict[str, bytes]) -> tuple[str, str, bytes]:
        name = self.rng.choice(sorted(seeds))
        mutation = self.rng.choice(sorted(MUTATIONS))
        return name, mutation, MUTATIONS[mutation](seeds[name], self.rng)

    def _photo(self) -> None:
        name, mutation, data = self._mutated(self.seeds.photos)
        self._post("photo", name, mutation, data, "/v1/predict", {"files": (name, data)}, {})

    def _clip(self) -> None:
        name, mutation, data = self._mutated(self.seeds.clips)
        accept = self.rng.choice(["application/json", "application/x-ndjson"])
        self._post("clip", name, mutation, data, "/v1/video?fps=1", {"file": (name, data)}, {"Accept": accept})

    def _job(self) -> None:
        """A photo or clip (mutated, or whole so that it queues) with drawn options and a drawn callback."""
        seeds = self.seeds.photos if self.rng.random() < 0.6 else self.seeds.clips
        name, mutation, data = self._mutated(seeds)
        if self.rng.random() < 0.3:
            mutation, data = "none", seeds[name]
        form = {key: self.rng.choice(values) for key, values in JOB_OPTIONS.items() if self.rng.random() < 0.3}
        form["callback_url"] = self.rng.choice(self.callbacks)
        key = self.rng.choice(IDEMPOTENCY_KEYS)
        headers = {} if key is None else {"Idempotency-Key": key.encode()}
        self._post("job", name, mutation, data, "/v1/jobs", {"file": (name, data)}, headers, form)

    def _study(self) -> None:
        """A study body with one field replaced, then its report if it was made."""
        body = json.loads(json.dumps(VALID_STUDY))
        field_name = self.rng.choice(
            ["name", "stimulus_duration_s", "events", "extra", "category", "target_sessions", "callback_url"]
        )
        body[field_name] = self.rng.choice(STUDY_VALUES)
        payload = json.dumps(body).encode()
        try:
            made = self.http.post("/v1/studies", content=payload, headers={"content-type": "application/json"})
            self._judge("study", made, field_name, "replace", payload)
            if made.status_code == 201:
                threshold = self.rng.choice(["0.5", "0", "2", "nan", "x"])
                study = made.json()["study_id"]
                segment = self.rng.choice(["", "&segment=a:b", "&segment=a", "&segment=%00:x", "&by=a", "&by="])
                for form in ("report", "report.csv", "report.png", "segments", "norms"):
                    self._judge(
                        "study",
                        self.http.get(f"/v1/studies/{study}/{form}?threshold={threshold}{segment}"),
                        field_name,
                        "report",
                        payload,
                    )
        except httpx.TimeoutException:
            self._found(f"no answer within {CLIENT_TIMEOUT_S} s", "study", field_name, "replace", payload)
        except httpx.TransportError as error:
            self._found(f"connection failed: {error!r}", "study", field_name, "replace", payload)

    def _judge(self, kind: str, answer: httpx.Response, seed: str, mutation: str, data: bytes) -> None:
        self.report.count(kind, str(answer.status_code))
        if answer.status_code >= 500:
            self._found(f"HTTP {answer.status_code}: {answer.text[:300]}", kind, seed, mutation, data)

    def _post(
        self,
        kind: str,
        seed: str,
        mutation: str,
        data: bytes,
        path: str,
        files: dict,
        headers: dict,
        form: dict | None = None,
    ) -> None:
        try:
            answer = self.http.post(path, files=files, headers=headers, data=form)
        except httpx.TimeoutException:
            return self._found(f"no answer within {CLIENT_TIMEOUT_S} s", kind, seed, mutation, data)
        except httpx.TransportError as error:
            return self._found(f"connection failed: {error!r}", kind, seed, mutation, data)
        self._judge(kind, answer, seed, mutation, data)
        if answer.status_code < 500 and own_failure(answer.text.splitlines()[-1:] if answer.text else []):
            self._found(f"an error line of the service's own: {answer.text[-300:]}", kind, seed, mutation, data)

    def _frames(self) -> None:
        """A short stream of mutated frames: every frame gets its answer, and the stream stays open."""
        url = self.service.base.replace("http://", "ws://") + "/v1/stream"
        mutation = self.rng.choice(sorted(MUTATIONS))
        frames = [MUTATIONS[mutation](self.rng.choice(self.seeds.frames), self.rng) for _ in range(4)]
        try:
            with connect(url, open_timeout=CLIENT_TIMEOUT_S) as ws:
                for frame in frames:
                    ws.send(frame)
                    reply = ws.recv(timeout=CLIENT_TIMEOUT_S)
                    self.report.count("frame", "error" if "error" in json.loads(reply) else "answered")
                    if own_failure([reply]):
                        return self._found(f"stream answer: {reply[:300]}", "frame", "stream", mutation, frame)
        except (ConnectionClosed, TimeoutError, OSError) as error:
            self._found(f"stream ended: {error!r}", "frame", "stream", mutation, b"".join(frames))

    def _check_process(self) -> None:
        if self.service.process.poll() is not None:
            self._found(f"the service exited with {self.service.process.returncode}", "process", "-", "-", b"")
            return
        rss = self.service.rss_mb()
        self.report.rss_peak_mb = max(self.report.rss_peak_mb, rss)
        if self.report.rss_warm_mb is None:
            if self.report.inputs >= WARM_UP_INPUTS:
                self.report.rss_warm_mb = rss
        elif rss > self.report.rss_warm_mb + RSS_GROWTH_LIMIT_MB:
            what = f"RSS {rss} MB after {self.report.inputs} inputs, from {self.report.rss_warm_mb} MB when warm"
            self._found(what, "process", "-", "-", b"")

    def _found(self, what: str, kind: str, seed: str, mutation: str, data: bytes) -> None:
        finding = Finding(what, kind, seed, mutation, data)
        self.report.findings.append(finding)
        self.artefacts.mkdir(parents=True, exist_ok=True)
        stem = self.artefacts / f"{kind}-{len(self.report.findings)}"
        stem.with_suffix(".bin").write_bytes(data)
        stem.with_suffix(".json").write_text(json.dumps({"what": what, "seed": seed, "mutation": mutation}))


def own_failure(lines: list[str]) -> bool:
    """Whether an NDJSON line or stream message reports an error of the service's own."""
    for line in lines:
        try:
            error = json.loads(line).get("error")
        except (ValueError, AttributeError):
            continue
        if isinstance(error, dict) and error.get("code") in OWN_FAILURES:
            return True
    return False


def fuzz(max_inputs: int, max_seconds: float, artefacts: Path, seed: int = 0) -> Report:
    """Start a service and hostile webhook receivers, fuzz it, check it still delivers, and return what happened."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        receivers = [stack.enter_context(hostile_receiver(b)) for b in BEHAVIOURS]
        service = stack.enter_context(
            running_service(
                database_url=f"sqlite:///{folder / 'jobs.db'}", media_store=str(folder / "media"), **SERVICE_SETTINGS
            )
        )
        fuzzer = Fuzzer(service, Seeds.load(), random.Random(seed), artefacts, [r.url for r in receivers])
        report = fuzzer.run(max_inputs, max_seconds)
        if not report.findings:
            still_delivers(service, fuzzer)
        return report


def still_delivers(service: LiveService, fuzzer: Fuzzer) -> None:
    """After the run, a good receiver's webhook must arrive within the deadline, whatever the others did."""
    with webhook_receiver() as good:
        photo = fuzzer.seeds.photos["scene.jpg"]
        answer = httpx.post(
            f"{service.base}/v1/jobs", files={"file": ("p.jpg", photo)}, data={"callback_url": good.url}, timeout=30
        )
        deadline = time.monotonic() + CLIENT_TIMEOUT_S + 30
        while not good.deliveries and time.monotonic() < deadline:
            time.sleep(0.2)
        if answer.status_code != 202 or not good.deliveries:
            what = f"a good receiver got no webhook within the deadline (submission {answer.status_code})"
            fuzzer._found(what, "webhook", "-", "-", b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6 * 3600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artefacts", type=Path, default=Path("fuzz-failures"))
    options = parser.parse_args()
    started = time.monotonic()
    report = fuzz(options.inputs, options.seconds, options.artefacts, options.seed)
    summary = {
        "inputs": report.inputs,
        "seconds": round(time.monotonic() - started),
        "by_kind": report.by_kind,
        "statuses": report.statuses,
        "rss_start_mb": report.rss_start_mb,
        "rss_warm_mb": report.rss_warm_mb,
        "rss_peak_mb": report.rss_peak_mb,
        "findings": [f.what for f in report.findings],
    }
    print(json.dumps(summary, indent=2))
    sys.exit(1 if report.findings else 0)


if __name__ == "__main__":
    main()
