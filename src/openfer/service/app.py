"""The FastAPI application: a thin HTTP/WebSocket layer over ``Analyzer``, ``StreamSession`` and ``JobStore``."""

# No "from __future__ import annotations": FastAPI reads the route signatures (with local names) at run time.

import asyncio
import hmac
import json
import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Callable, Optional
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, Response, Security, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.websockets import WebSocketDisconnect

import openfer
from openfer.analyzer import Analyzer
from openfer.io.images import ImageReadError
from openfer.service.config import ServiceConfig
from openfer.service.jobs import Job, JobStore, QueueFull
from openfer.service.schemas import (AnalyzeOut, ErrorOut, ExplainOut, JobOut, ModelOut, ModelsOut, ResultKind,
                                     StatusOut)
from openfer.service.sniff import IMAGE_KINDS, VIDEO_KINDS, describe, sniff
from openfer.service.stream import StreamSession
from openfer.service.work import analyze_bytes, explain_bytes

log = logging.getLogger(__name__)

#: Multipart framing allowed on top of the file itself.
_FORM_OVERHEAD = 64 * 1024
_STATIC = resources.files("openfer.service") / "static"
#: The page may only load its own files; webcam frames go to this server only.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                               "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
_RESULT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson", "summary": "application/json",
                 "video": "video/mp4", "report": "text/html"}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


class _Service:
    """State shared by the routes: the analyzer (loaded in the background), the worker pool and the job store."""

    def __init__(self, config: ServiceConfig, analyzer: Analyzer | None) -> None:
        self.config = config
        self.analyzer = analyzer
        self.load_error: str | None = None
        self.ready = threading.Event()
        if analyzer is not None:
            self.ready.set()
        self.analyze_pool = _Pool("analysis", config.workers, config.queue, config.request_timeout,
                                  f"analysis took longer than {config.request_timeout:g} s")
        # An accepted explanation may wait for those ahead of it, each stopping at its budget: only a step that
        # never returns makes the wait run out.
        rounds = 1 + -(-config.explain_queue // config.explain_workers)
        self.explain_pool = _Pool("explanation", config.explain_workers, config.explain_queue,
                                  rounds * config.explain_timeout + config.request_timeout,
                                  f"the explanation overran its time budget of {config.explain_timeout:g} s")
        self.jobs: JobStore | None = None
        self.streams = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.config
        self.analyze_pool.start()
        self.explain_pool.start()
        self.jobs = JobStore(self.wait_analyzer, root=cfg.jobs_dir, max_queued=cfg.max_queued_jobs,
                             workers=cfg.job_workers, retention=cfg.retention, max_frames=cfg.max_video_frames,
                             timeout=cfg.job_timeout, settings=cfg.analysis)
        if not self.ready.is_set():
            threading.Thread(target=self._load, name="openfer-load", daemon=True).start()

    def stop(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        self.analyze_pool.stop()
        self.explain_pool.stop()

    def _load(self) -> None:
        try:
            self.analyzer = self.config.analysis.analyzer("photos")
            self.analyzer.analyze(_warmup_image())  # first runs of ONNX Runtime are slow: pay that now
        except Exception as e:  # noqa: BLE001 - reported by /readyz and every request
            log.error("could not load the models: %s", e)
            self.load_error = f"{type(e).__name__}: {e}"
        self.ready.set()

    def wait_analyzer(self) -> Analyzer:
        """The analyzer once loaded (blocks; for worker threads)."""
        self.ready.wait()
        if self.analyzer is None:
            raise RuntimeError(f"the models could not be loaded: {self.load_error}")
        return self.analyzer

    def require_analyzer(self) -> Analyzer:
        """The analyzer, or 503 while it loads / 500 when it could not be loaded."""
        if not self.ready.is_set():
            raise HTTPException(503, "the models are still loading; try again in a few seconds",
                                headers={"Retry-After": "2"})
        if self.analyzer is None:
            raise HTTPException(500, f"the models could not be loaded: {self.load_error}")
        return self.analyzer

    # -- bounded work ---------------------------------------------------------------------------------------------

    async def run(self, fn: Callable, *args, wait: bool = False) -> Any:
        """Run blocking ``fn(*args)`` on the analysis pool (``_Pool.run``)."""
        return await self.analyze_pool.run(fn, *args, wait=wait)

    def key_ok(self, key: str | None) -> bool:
        expected = self.config.api_key
        return expected is None or (key is not None and hmac.compare_digest(key.encode(), expected.encode()))


class _Pool:
    """Worker threads for one kind of request, with a bounded number of requests in it (running + waiting) and a
    time limit on the wait for each answer. Explanations get a pool of their own, so seconds of explaining never
    take the workers that ``/v1/analyze`` and webcam frames need."""

    def __init__(self, what: str, workers: int, queue: int, timeout: float, timeout_detail: str) -> None:
        self.what, self.workers, self.queue, self.timeout = what, workers, queue, timeout
        self.timeout_detail = timeout_detail
        self.executor: ThreadPoolExecutor | None = None
        self.slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"openfer-{self.what}")
        self.slots = asyncio.Semaphore(self.workers + self.queue)

    def stop(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable, *args, wait: bool = False) -> Any:
        """Run blocking ``fn(*args)`` on a worker within ``workers + queue`` slots and the time limit.

        Args:
            wait: wait for a free slot (webcam frames) instead of answering 503 at once (image requests).
        """
        if self.slots is None or self.executor is None:
            raise RuntimeError("the service is not started: run the app under its lifespan (an ASGI server or "
                               "`with TestClient(app)`)")
        if not wait and self.slots.locked():
            raise HTTPException(503, f"the server is busy (all {self.what} slots are taken); retry shortly",
                                headers={"Retry-After": "1"})
        await self.slots.acquire()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.executor, fn, *args)
        fut.add_done_callback(lambda _: self.slots.release())  # a timed-out task holds its slot until it ends
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except asyncio.TimeoutError:
            raise HTTPException(504, self.timeout_detail) from None


def _header_key(headers) -> str | None:
    """The API key a client sent in ``X-API-Key`` or as ``Authorization: Bearer KEY`` (HTTP and WebSocket alike)."""
    key = headers.get("x-api-key")
    if key is None:
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
    return key


def _warmup_image():
    import skimage.data

    return skimage.data.astronaut()


def create_app(config: ServiceConfig | None = None, analyzer: Analyzer | None = None) -> FastAPI:
    """Build the service.

    Args:
        config: limits and options (default: ``ServiceConfig.from_env()``).
        analyzer: use this analyzer (tests share one); default: load ``config.detector`` + ``config.model`` in the
            background at start-up (``/readyz`` answers 503 until it is loaded).

    The app's lifespan starts the worker pool and the job store; use it under an ASGI server (``openfer serve``)
    or ``with fastapi.testclient.TestClient(app)``.

    Example:
        >>> import io, skimage.data, openfer
        >>> from PIL import Image
        >>> from fastapi.testclient import TestClient
        >>> jpeg = io.BytesIO(); Image.fromarray(skimage.data.astronaut()).save(jpeg, "JPEG")
        >>> app = create_app(ServiceConfig(), analyzer=openfer.Analyzer())
        >>> with TestClient(app, base_url="http://127.0.0.1") as client:   # a name the service answers to
        ...     r = client.post("/v1/analyze", files={"file": ("photo.jpg", jpeg.getvalue())})
        >>> r.status_code, r.json()["num_faces"], sorted(r.json()["faces"][0])
        (200, 1, ['box', 'confidence', 'expression', 'face', 'landmarks', 'probabilities'])
    """
    cfg = config or ServiceConfig.from_env()
    svc = _Service(cfg, analyzer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(
        # No app-wide max_body_size: FastAPI's answers its 413 in plain text before our middleware runs;
        # ``_ContentLength`` gives every path a limit (64 KiB where no body is expected) with a JSON answer.
        title="openfer", version=openfer.__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # their pages load scripts from a CDN; the document is at /openapi.json
        description="Facial expression analysis of images, videos and live webcam frames. Faces are analysed in "
                    "memory on this machine; video uploads and their results are deleted when the job is deleted "
                    f"or {cfg.retention:g} s after it ends. The WebSocket `/v1/stream` is described in "
                    "docs/service.md.",
    )
    app.state.service = svc
    app.add_middleware(_JobQueueGate, service=svc)
    limits = {"/v1/analyze": cfg.max_image_bytes, "/v1/explain": cfg.max_image_bytes, "/v1/jobs": cfg.max_video_bytes}
    app.add_middleware(_ContentLength, limits=limits)
    if cfg.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    app.add_middleware(_HostAndOrigin, hosts=cfg.allowed_hosts, origins=cfg.cors_origins)
    app.add_middleware(_NoSniff)  # outermost: its header is on every answer, the middlewares' own included

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        # Runs outside the middlewares (Starlette's ServerErrorMiddleware), so it sets the nosniff header itself.
        log.error("unexpected error", exc_info=exc)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500,
                            headers=_NOSNIFF)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:  # Starlette lists one route's methods; a path can have several routes
            methods = {m for r in app.routes if getattr(r, "methods", None) and r.path_regex.match(request.url.path)
                       for m in r.methods}
            headers = {**(headers or {}), "Allow": ", ".join(sorted(methods))}
        detail = str(exc.detail)
        if exc.status_code == 413 and detail == "Content Too Large":  # FastAPI's count of a body sent in chunks
            detail = (f"request body is larger than the limit of {limits.get(request.url.path, 0):,} bytes here; "
                      "send a smaller file")
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'request'}: {e.get('msg')}"
                 for e in exc.errors()]
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="required when the server sets OPENFER_API_KEY")

    def require_key(request: Request, key: Annotated[Optional[str], Security(key_header)] = None) -> None:
        if not svc.key_ok(key if key is not None else _header_key(request.headers)):
            raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header",
                                headers={"WWW-Authenticate": "ApiKey"})

    # The key check (and its line in the OpenAPI document) only exists when a key is set, so the document says
    # exactly what the running service asks for.
    v1 = [Depends(require_key)] if cfg.api_key else []

    # -- health --------------------------------------------------------------------------------------------------

    @app.get("/healthz", response_model=StatusOut, tags=["health"], summary="The process is alive")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", response_model=StatusOut, tags=["health"], responses={503: {"model": StatusOut}},
             summary="The models are loaded and requests will be analysed")
    async def readyz() -> Any:
        if not svc.ready.is_set():
            return JSONResponse({"status": "loading", "detail": "loading the models"}, status_code=503)
        if svc.analyzer is None:
            return JSONResponse({"status": "error", "detail": svc.load_error}, status_code=503)
        return {"status": "ready"}

    # -- images --------------------------------------------------------------------------------------------------

    @app.get("/v1/models", response_model=ModelsOut, dependencies=v1, tags=["models"], responses=_errors(401),
             summary="Expression models and the one in use")
    async def models() -> dict:
        from openfer.zoo.registry import MODELS

        return {"active": cfg.model, "detector": cfg.detector, "models": [
            ModelOut(name=s.name, classes=list(s.classes), input_size=s.input_size, channels=s.channels,
                     params=s.params, description=s.description, metrics=s.metrics, licence=s.licence,
                     active=s.name == cfg.model) for s in MODELS.values()]}

    @app.post("/v1/analyze", response_model=AnalyzeOut, response_model_exclude_unset=True, dependencies=v1,
              tags=["images"], max_body_size=cfg.max_image_bytes + _FORM_OVERHEAD,
              responses=_errors(400, 401, 413, 415, 422, 500, 503, 504),
              summary="Faces and expressions in one image")
    async def analyze(file: Annotated[UploadFile, File(description="JPEG, PNG, GIF, BMP, WebP or TIFF image; the "
                                                                   "format is read from the bytes")]) -> dict:
        data = await read_image_upload(file)
        analyzer = svc.require_analyzer()
        return await svc.run(analyze_bytes, analyzer, data, cfg)

    async def read_image_upload(file: UploadFile) -> bytes:
        data = await file.read()
        if not data:
            raise HTTPException(422, "the uploaded file is empty")
        if len(data) > cfg.max_image_bytes:
            raise HTTPException(413, f"the image has {len(data):,} bytes; the limit is {cfg.max_image_bytes:,}")
        kind = sniff(data[:16])
        if kind not in IMAGE_KINDS:
            raise HTTPException(415, f"expected an image ({', '.join(IMAGE_KINDS)}), got {describe(kind)}"
                                + ("; send videos to /v1/jobs" if kind in VIDEO_KINDS else ""))
        return data

    @app.post("/v1/explain", response_model=ExplainOut, response_model_exclude_unset=True, dependencies=v1,
              tags=["images"], max_body_size=cfg.max_image_bytes + _FORM_OVERHEAD,
              responses=_errors(400, 401, 413, 415, 422, 500, 503, 504),
              summary="Faces, expressions and why: heatmap, evidence per face region and a sentence per face")
    async def explain(file: Annotated[UploadFile, File(description="JPEG, PNG, GIF, BMP, WebP or TIFF image")],
                      method: str = "occlusion", target: Optional[str] = None, heatmap: bool = True) -> dict:
        """Explanations cost far more than analysis (about 0.2-6 s per face on a CPU, docs/explain.md)."""
        from openfer.errors import UnknownNameError
        from openfer.explain import METHODS

        try:
            METHODS.check(method)
        except UnknownNameError as e:
            raise HTTPException(422, str(e)) from None
        data = await read_image_upload(file)
        analyzer = svc.require_analyzer()
        if target is not None and target not in analyzer.classifier.classes:
            raise HTTPException(422, f"unknown class {target!r}; this model's classes are "
                                     f"{', '.join(analyzer.classifier.classes)}")
        return await svc.explain_pool.run(explain_bytes, analyzer, data, cfg, method, target, heatmap)

    # -- video jobs ----------------------------------------------------------------------------------------------

    def job_out(job: Job) -> dict:
        results = {k: f"/v1/jobs/{job.id}/results/{k}" for k in _RESULT_TYPES
                   if job.state == "done" and svc.jobs.result_path(job, k).exists()}
        expected = job.expected_frames
        return {"id": job.id, "state": job.state, "created": job.created, "started": job.started,
                "finished": job.finished, "frames": job.frames, "expected_frames": expected,
                "progress": 1.0 if job.state == "done" else (min(1.0, job.frames / expected) if expected else None),
                "faces": job.faces, "tracks": job.tracks, "problems": job.problems, "error": job.error,
                "results": results, "expires": job.finished + cfg.retention if job.finished else None}

    def find_job(job_id: str) -> Job:
        job = svc.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, "no such job (wrong id, deleted, or expired after the retention time)")
        return job

    @app.post("/v1/jobs", response_model=JobOut, status_code=202, dependencies=v1, tags=["videos"],
              max_body_size=cfg.max_video_bytes + _FORM_OVERHEAD,
              responses=_errors(400, 401, 413, 415, 422, 429, 500, 503), summary="Start analysing a video")
    async def create_job(
        response: Response,
        file: Annotated[UploadFile, File(description="MP4, MOV, MKV/WebM or AVI video; the format is read from "
                                                     "the bytes")],
        fps: Annotated[Optional[float], Form(gt=0, le=120, description="analyse at most this many frames per "
                                                                         "second (default: every frame)")] = None,
        audio: Annotated[bool, Form(description="also analyse the voice: speech, vocal arousal, speech-emotion "
                                                "probabilities in the rows, summary and report ([audio] extra; "
                                                "empty when the video has no sound)")] = False,
        reid: Annotated[bool, Form(description="re-identify people who leave and come back, are hidden for "
                                               "seconds or reappear after a cut, so they keep their face_id (needs "
                                               "the faceres files on the server: 'openfer models fetch faceres' "
                                               "or OPENFER_MODEL_DIR; without them the job says so and runs "
                                               "without)")] = False,
    ) -> dict:
        head = await file.read(16)
        kind = sniff(head)
        if kind not in VIDEO_KINDS:
            raise HTTPException(415, f"expected a video ({', '.join(sorted(VIDEO_KINDS))}), got {describe(kind)}"
                                + ("; send images to /v1/analyze" if kind in IMAGE_KINDS else ""))
        if svc.jobs.queued() >= cfg.max_queued_jobs:
            raise HTTPException(429, f"{svc.jobs.queued()} video jobs are already waiting; try again in a minute",
                                headers={"Retry-After": "30"})
        svc.require_analyzer()
        job_id, folder = svc.jobs.new_folder()
        target = folder / ("input" + VIDEO_KINDS[kind])
        try:
            await file.seek(0)
            frames = await asyncio.to_thread(_store_and_probe, file.file, target, cfg)
            job = svc.jobs.submit(job_id, folder, target, fps=fps, expected_frames=frames, audio=audio, reid=reid)
        except QueueFull as e:
            raise HTTPException(429, str(e), headers={"Retry-After": "30"}) from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        response.headers["Location"] = f"/v1/jobs/{job.id}"
        return job_out(job)

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=v1, tags=["videos"],
             responses=_errors(401, 404, 422), summary="Progress of a video job")
    async def get_job(job_id: str) -> dict:
        return job_out(find_job(job_id))

    @app.get("/v1/jobs/{job_id}/results/{kind}", dependencies=v1, tags=["videos"], response_class=FileResponse,
             responses={200: {"content": {t: {} for t in _RESULT_TYPES.values()},
                              "description": "csv: rows; jsonl: rows as JSON Lines; summary: per-person JSON; "
                                             "video: the annotated MP4 (H.264, with the upload's sound); "
                                             "report: the readable HTML report (openfer report)"}, **_errors(401, 404, 409, 422)},
             summary="Download a result of a finished job")
    async def job_result(job_id: str, kind: ResultKind) -> FileResponse:
        job = find_job(job_id)
        if job.state != "done":
            raise HTTPException(409, f"the job is {job.state}; results are available once it is done")
        path = svc.jobs.result_path(job, kind.value)
        if not path.exists():
            raise HTTPException(404, f"this job has no {kind.value} result")
        return FileResponse(path, media_type=_RESULT_TYPES[kind.value],
                            filename=f"openfer-{job.id[:8]}-{path.name}")

    @app.delete("/v1/jobs/{job_id}", status_code=204, dependencies=v1, tags=["videos"],
                responses=_errors(401, 404, 422), summary="Stop a job and delete its upload and results")
    async def delete_job(job_id: str) -> Response:
        if not svc.jobs.delete(job_id):
            raise HTTPException(404, "no such job (wrong id, deleted, or expired after the retention time)")
        return Response(status_code=204)

    # -- live stream ---------------------------------------------------------------------------------------------

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        if not await _stream_key_ok(ws, svc):  # before taking a place: strangers cannot fill the slots
            await ws.close(1008, "missing or wrong API key")
            return
        if svc.streams >= cfg.max_streams:
            await ws.close(1013, f"{cfg.max_streams} live streams are open; try again later")
            return
        svc.streams += 1
        try:
            await _serve_stream(ws, svc)
        except WebSocketDisconnect:
            pass
        finally:
            svc.streams -= 1

    # -- browser app ---------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((_STATIC / "index.html").read_text(encoding="utf-8"), headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=str(_STATIC)), name="static")
    return app


class _HostAndOrigin:
    """Refuses, before anything else runs, a request or WebSocket whose ``Host`` is not one of the service's names
    (400: a DNS-rebinding page reaching 127.0.0.1 sends its own name) or whose ``Origin`` is another site's (403:
    a page elsewhere posting a photo or opening a stream through the visitor's browser). Same-origin requests,
    origins in ``cors_origins`` and clients that send no ``Origin`` (curl, scripts) pass."""

    def __init__(self, app, hosts: tuple[str, ...], origins: tuple[str, ...]) -> None:
        self.app, self.hosts, self.origins = app, {h.lower() for h in hosts}, set(origins)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.problem({k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]})
            if problem:
                status, detail = problem
                if scope["type"] == "websocket":  # refused before accepting: the client sees an HTTP 403
                    await receive()
                    await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
                else:
                    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if host.count(":") == 1 \
            else host
        if "*" not in self.hosts and name.lower() not in self.hosts:
            return 400, (f"this service does not answer to the host name {host!r}; add it to OPENFER_ALLOWED_HOSTS "
                         "if it is yours")
        origin = headers.get("origin")
        if origin is None or "*" in self.origins or origin in self.origins:
            return None
        if urlsplit(origin).netloc.lower() == host.lower():
            return None  # the service's own page
        return 403, (f"requests from the web page at {origin!r} are not allowed; add it to OPENFER_CORS_ORIGINS "
                     "if it is yours")


class _ContentLength:
    """Answers 413 with a JSON message before reading a body whose declared length is over its route's limit.

    FastAPI's ``max_body_size`` (set on each route) still counts the bytes of bodies sent without a length.
    """

    def __init__(self, app, limits: dict[str, int]) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            limit = self.limits.get(scope["path"], 0)
            declared = dict(scope["headers"]).get(b"content-length", b"0")
            if not declared.isdigit() or int(declared) > limit + _FORM_OVERHEAD:
                what = "a bad Content-Length" if not declared.isdigit() else f"{int(declared):,} bytes"
                detail = (f"request body has {what}; the limit here is {limit:,} bytes" if limit else
                          f"request body has {what}; this endpoint takes no body")
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _NoSniff:
    """Adds ``X-Content-Type-Options: nosniff`` to every HTTP answer, so no browser runs an answer (a JSON error, a
    result file) as a script or page whatever its bytes look like."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_with_header)


class _JobQueueGate:
    """Answers ``POST /v1/jobs`` with 429 before reading its body when the job queue is full, so a client is not
    made to send a 200 MB video only to be told to come back later. Requests without the right API key pass on
    (they get their 401)."""

    def __init__(self, app, service: "_Service") -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:
        svc = self.service
        if (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/jobs"
                and svc.jobs is not None and svc.jobs.queued() >= svc.config.max_queued_jobs):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if svc.key_ok(_header_key(headers)):
                await JSONResponse({"detail": f"{svc.jobs.queued()} video jobs are already waiting; try again in a "
                                              "minute"}, status_code=429, headers={"Retry-After": "30"})(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def _store_and_probe(upload, target: Path, cfg: ServiceConfig) -> int | None:
    """Copy an uploaded video to ``target`` and check it opens within the limits (blocking).

    Returns:
        the frame count the container declares (None when it does not say).
    Raises:
        HTTPException: 422 when no frame can be decoded, 413 when frames or frame size are over the limits.
    """
    import cv2

    with open(target, "wb") as f:
        shutil.copyfileobj(upload, f, length=1024 * 1024)
    if target.stat().st_size > cfg.max_video_bytes:
        raise HTTPException(413, f"the video has {target.stat().st_size:,} bytes; the limit is {cfg.max_video_bytes:,}")
    cap = cv2.VideoCapture(str(target))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise HTTPException(422, "cannot decode the video (corrupt, truncated, or an unsupported codec)")
        h, w = frame.shape[:2]
        if w * h > cfg.max_pixels:
            raise HTTPException(413, f"frames are {w}x{h}, more than the limit of {cfg.max_pixels:,} pixels")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count > cfg.max_video_frames:
            raise HTTPException(413, f"the video has {count:,} frames, more than the limit of "
                                     f"{cfg.max_video_frames:,}; cut it or analyse fewer frames")
        return count or None
    finally:
        cap.release()


async def _stream_key_ok(ws: WebSocket, svc: _Service) -> bool:
    """Whether a WebSocket client is allowed in: the key in a header (``X-API-Key``, ``Authorization: Bearer``),
    or, since browsers cannot set headers on a WebSocket, as ``{"api_key": ...}`` in its first text message
    (awaited 10 s)."""
    if svc.key_ok(_header_key(ws.headers)):
        return True
    try:
        first = await asyncio.wait_for(ws.receive_text(), 10)
        key = json.loads(first).get("api_key")
    except (asyncio.TimeoutError, ValueError, AttributeError, KeyError, TypeError, WebSocketDisconnect):
        key = None
    return svc.key_ok(key if isinstance(key, str) else None)


async def _serve_stream(ws: WebSocket, svc: _Service) -> None:
    """The WebSocket protocol (docs/service.md): binary image frames in, one JSON message per frame out. Only
    frames keep a stream open: text messages do not reset its idle time."""
    cfg = svc.config
    try:
        analyzer = await asyncio.to_thread(svc.wait_analyzer)
        session = StreamSession(analyzer, cfg.max_pixels)
    except (RuntimeError, ImportError) as e:
        await ws.close(1011, str(e)[:120])
        return
    await ws.send_json({"type": "ready", "model": analyzer.classifier.spec.name,
                        "classes": list(analyzer.classifier.classes)})
    last_frame = time.monotonic()
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive(), max(0.0, last_frame + cfg.stream_idle - time.monotonic()))
        except asyncio.TimeoutError:
            await ws.close(1000, f"no frame for {cfg.stream_idle:g} s; closed")
            return
        if msg["type"] == "websocket.disconnect":
            return
        data = msg.get("bytes")
        if data is None:
            continue  # text messages (hello, key, pings) need no answer and do not count as activity
        last_frame = time.monotonic()
        if len(data) > cfg.max_image_bytes:
            await ws.send_json({"type": "error", "detail": "frame is larger than the upload limit"})
            continue
        if sniff(data[:16]) not in IMAGE_KINDS:
            await ws.send_json({"type": "error", "detail": f"expected a JPEG/PNG frame, got "
                                                           f"{describe(sniff(data[:16]))}"})
            continue
        try:
            out = await svc.run(session.analyze, data, wait=True)
        except ImageReadError as e:
            out = {"type": "error", "detail": f"cannot read the frame: {e}"}
        except HTTPException as e:
            out = {"type": "error", "detail": str(e.detail)}
        await ws.send_json(out)
