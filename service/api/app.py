"""The FastAPI application: `uvicorn service.api.app:create_app --factory`, or `python -m service`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser

from service import __version__
from service.api.errors import install_error_handlers
from service.api.events import document_events
from service.api.intake import BodyBudget, IntakeMiddleware
from service.api.middleware import RequestContextMiddleware
from service.api.openapi import describe_behaviour
from service.api.parameters import known_parameters
from service.api.quotas import metered_request
from service.api.routes import annotate, demo, links, on_device, ops, predict, stream, studies, usage, video, watch
from service.api.routes import jobs as jobs_routes
from service.api.security import require_api_key
from service.api.shutdown import Drain
from service.config import Settings, get_settings
from service.jobs.media import open_media_store
from service.ops.allocator import keep_one_warm_heap
from service.ops.metrics import Metrics
from service.ops.rates import RateLimiter
from service.process import serving
from service.studies.links import LinkSigner
from service.studies.reports import ReportPool
from service.studies.stimulus import STIMULI

# Routes that take clips, whose bodies may be as large as a clip.
CLIP_UPLOAD_ROUTES = (
    "/v1/video",
    "/v1/jobs",
    "/v1/studies/{study_id}/sessions",
    "/v1/studies/{study_id}/stimulus",
    "/watch/{token}/sessions",
)

# Routes that take uploads: their key and the service's capacity are checked before their body is read;
# a participant link's upload checks its token in the route instead of a key.
UPLOAD_ROUTES = {"/v1/predict", "/predict", "/v1/annotate", *CLIP_UPLOAD_ROUTES}
KEYLESS_UPLOADS = frozenset({"/watch/{token}/sessions"})


def video_body_limit(settings: Settings) -> int:
    """A clip at its size limit, plus room for the multipart framing around it."""
    return settings.video_max_bytes + 64 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keep_one_warm_heap()  # before the worker threads allocate: see service.ops.allocator
    metrics = Metrics()
    # Uploads are held in memory up to the request limit instead of spilling to temporary files:
    # client images are never written to disk.
    # (A class attribute, so shared by every app in the process: it only ever grows.)
    largest_body = max(settings.max_request_bytes, video_body_limit(settings))
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, largest_body)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serving(settings, metrics, settings.job_workers) as (runtime, jobs):
            app.state.runtime, app.state.jobs = runtime, jobs
            app.state.reports = ReportPool(settings.studies.report_workers, settings.studies.report_queue)
            app.state.stimuli = open_media_store(settings.media_store, below=STIMULI)
            app.state.link_signer = LinkSigner(settings.links)
            per_min = settings.links.requests_per_min
            app.state.link_rates = RateLimiter(per_min / 60, per_min, "too many requests from this link; retry shortly")
            app.state.key_quotas = jobs.quotas
            runtime.set_ready(True)
            Drain(runtime, asyncio.get_running_loop()).install()
            yield
            runtime.set_ready(False)
            await runtime.streams.close_all(settings.shutdown_timeout_s)
            app.state.reports.close()

    app = FastAPI(
        title="Emotion recognition service",
        version=__version__,
        description="Finds every face in photos, clips and live camera streams and returns each face's "
        "distribution over the seven FER-2013 emotions: an estimate of its visible expression, not of anyone's "
        "inner state.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.api_keys = settings.load_api_keys()
    describe_behaviour(app, settings, keys_on=bool(app.state.api_keys))
    install_error_handlers(app)
    if origins := settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(
        IntakeMiddleware,
        max_body_bytes=settings.max_request_bytes,
        route_body_limits={route: video_body_limit(settings) for route in CLIP_UPLOAD_ROUTES},
        upload_routes=UPLOAD_ROUTES,
        budget=BodyBudget(settings.max_buffered_body_bytes),
        body_timeout_s=settings.request_body_timeout_s,
        keyless=KEYLESS_UPLOADS,
    )
    # Added last, so it is outermost: even CORS and intake refusals get a request id and are counted.
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    keyed = [Depends(require_api_key), Depends(metered_request), Depends(known_parameters)]
    app.include_router(ops.router)
    app.include_router(predict.router, prefix="/v1", dependencies=keyed)
    app.include_router(predict.router, dependencies=keyed, include_in_schema=False)  # /predict, kept as an alias
    app.include_router(annotate.router, prefix="/v1", dependencies=keyed)
    app.include_router(video.router, prefix="/v1", dependencies=keyed)
    app.include_router(jobs_routes.router, prefix="/v1", dependencies=keyed)
    app.include_router(studies.router, prefix="/v1", dependencies=keyed)
    app.include_router(links.router, prefix="/v1", dependencies=keyed)
    app.include_router(usage.router, prefix="/v1", dependencies=keyed)
    app.include_router(watch.router)  # a participant link's token is its key: see service.api.routes.watch
    app.include_router(stream.router, prefix="/v1")  # checks its own keys: see service.api.routes.stream
    app.include_router(on_device.router, prefix="/v1", dependencies=[Depends(known_parameters)])
    app.include_router(on_device.runtime_router)
    app.include_router(demo.router)
    document_events(app)
    app.mount("/static", StaticFiles(directory=demo.STATIC_DIR), name="static")
    return app
