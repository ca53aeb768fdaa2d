"""Prometheus metrics, one registry per app so tests and workers never share counters.

Batch size and queue wait are histograms, so an operator gets the average batch size as
`rate(emotion_batch_size_sum[5m]) / rate(emotion_batch_size_count[5m])` and the mean queue time
the same way from `emotion_batch_queue_seconds`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "emotion_http_requests", "HTTP requests by route and status.", ["route", "method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "emotion_http_request_duration_seconds",
            "HTTP request latency.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "emotion_stage_duration_seconds",
            "Time per pipeline stage: decode, detect and align per image or frame; video_decode per "
            "analysed frame of a clip; classify per batch.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.images = Counter("emotion_images_processed", "Images analysed successfully.", registry=r)
        self.faces_per_image = Histogram(
            "emotion_faces_per_image",
            "Faces found in each analysed image.",
            buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
            registry=r,
        )
        self.batch_size = Histogram(
            "emotion_batch_size",
            "Face crops per emotion model call, by model.",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.batch_queue_seconds = Histogram(
            "emotion_batch_queue_seconds",
            "Time crops wait for their model's micro-batcher before the model call.",
            ["model"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("emotion_requests_in_flight", "Predict requests being served.", registry=r)
        self.queue_depth = Gauge(
            "emotion_batch_queue_depth", "Face crops waiting for an emotion model.", ["model"], registry=r
        )
        self.rejected = Counter("emotion_images_rejected", "Uploads refused, by reason.", ["reason"], registry=r)
        self.inference_errors = Counter("emotion_inference_errors", "Failed model calls.", ["model"], registry=r)
        self.video_clips = Counter("emotion_video_clips", "Clips analysed to the end.", registry=r)
        self.video_frames = Counter("emotion_video_frames", "Frames of clips analysed.", registry=r)
        self.tracks_per_clip = Histogram(
            "emotion_video_tracks_per_clip",
            "People (tracks) found in each analysed clip.",
            buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=r,
        )
        self.streams_open = Gauge("emotion_streams_open", "Live streams open.", registry=r)
        self.stream_frames = Counter(
            "emotion_stream_frames",
            "Live stream frames by outcome: received, analysed, dropped (replaced by a newer one) or rejected.",
            ["outcome"],
            registry=r,
        )
        self.stream_latency_seconds = Histogram(
            "emotion_stream_frame_latency_seconds",
            "From a stream frame's arrival to its answer being sent.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "emotion_model_info", "Loaded models (value 1).", ["role", "name", "version", "sha256"], registry=r
        )
        self.ready = Gauge("emotion_ready", "1 when models are loaded and warmed, else 0.", registry=r)
        self.jobs = Counter("emotion_jobs", "Jobs created (queued) and ended, by state.", ["state"], registry=r)
        self.jobs_in_state = Gauge(
            "emotion_jobs_in_state", "Jobs in the store by state; queued is the queue depth.", ["state"], registry=r
        )
        self.job_queue_seconds = Histogram(
            "emotion_job_queue_seconds", "From a job's creation to its first claim.", buckets=JOB_BUCKETS, registry=r
        )
        self.job_run_seconds = Histogram(
            "emotion_job_run_seconds", "From a job's latest claim to its end.", buckets=JOB_BUCKETS, registry=r
        )
        self.quota_refusals = Counter(
            "emotion_quota_refusals",
            "Requests refused with 429 by a per-key quota, by key id (a digest prefix; 'other' past the first 100 "
            "keys) and limit.",
            ["key", "limit"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "emotion_webhook_deliveries",
            "Webhook attempts by outcome: delivered, retrying (a later attempt is due) or given_up.",
            ["outcome"],
            registry=r,
        )
