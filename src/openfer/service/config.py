"""Settings of the web service: limits, API key, CORS and job retention, from arguments or ``OPENFER_*`` variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Mapping

MB = 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    """What the service accepts and how much work it takes on.

    Attributes:
        model: expression model name (``openfer models``).
        prior: its decision prior, ``training`` or ``balanced`` (``OPENFER_PRIOR``; ``openfer.classify.prior``).
        detector: face detector name (``centerface`` or ``haar``).
        threshold, max_side, upscale: the detector's settings, as ``openfer analyze``'s options (``max_side`` 0:
            full size). With model, prior and detector they are the service's ``analysis``
            (``openfer.settings.AnalysisSettings``), the one settings object the CLI builds too.
        api_key: when set, every ``/v1`` request must send it (``X-API-Key`` header, or ``Authorization: Bearer``);
            from ``OPENFER_API_KEY``. None leaves the API open, which is only safe on 127.0.0.1.
        cors_origins: browser origins allowed to call the API from other sites (``OPENFER_CORS_ORIGINS``,
            comma-separated; ``*`` for any). Empty: same origin only. A request or WebSocket whose ``Origin`` is
            neither this page's own nor listed here is refused (403): another site cannot post a photo or open a
            stream through a visitor's browser.
        allowed_hosts: names this service answers to in the ``Host`` header (``OPENFER_ALLOWED_HOSTS``,
            comma-separated; ``*`` for any; a port is ignored). Others get 400, which stops DNS-rebinding pages
            from reaching a service on 127.0.0.1. ``openfer serve --host`` adds the address it listens on (and for
            0.0.0.0 this machine's name).
        max_image_bytes: largest image upload; bigger requests get 413 before they are read.
        max_video_bytes: largest video upload.
        max_pixels: largest image (width x height) decoded; the decompression-bomb guard. Also applies to each
            video frame and each webcam frame.
        max_video_frames: videos whose container declares more frames are refused (413), and a job stops after
            this many analysed frames whatever the container said.
        workers: threads analysing images and webcam frames at once (ONNX Runtime releases the GIL). More than the
            CPU cores only adds latency.
        queue: image/webcam requests that may wait for a worker; beyond ``workers + queue`` in flight, image
            requests get 503 with ``Retry-After`` (load shedding) instead of piling up.
        request_timeout: seconds an image analysis may take before the answer is 504.
        detect_tile: the detector's finer passes (photos above 2400 px) run in tiles of at most this many pixels a
            side: its memory grows with the pixels of one run (1.2 GB for the 2520 px pass of a 6300 px photo,
            190 MB for 1024 px). At least 512.
        explain_workers: explanations computed at once, on threads of their own, so ``/v1/analyze`` and webcam
            streams keep their workers and their latency while explanations (seconds per face) run.
        explain_queue: explanation requests that may wait for an explain worker; beyond that they get 503.
        max_explain_faces: faces explained per request, the largest first; the others are in the answer with their
            expression but no explanation, and the answer's ``notes`` say so.
        explain_timeout: seconds of work an explanation request may use (decoding included). The work itself
            stops at the next check (between faces, and between batches of 128 masked crops) and the answer
            keeps the faces explained so far; ``notes`` say so. The budget starts when a worker takes the
            request; the wait for the answer ends 504 only after the budgets of the requests ahead of it, its
            own and ``request_timeout`` (a single step that does not return).
        job_workers: video jobs analysed at once.
        max_queued_jobs: video jobs waiting to start; beyond that ``POST /v1/jobs`` answers 429.
        job_timeout: seconds a video job may run; then it stops and keeps what it analysed.
        retention: seconds a finished job (upload and results) is kept before it is deleted.
        max_streams: webcam WebSocket connections at once; more are closed with code 1013 (try again later).
        stream_idle: seconds a webcam stream may go without sending a frame before it is closed (code 1000), so
            forgotten tabs do not hold the ``max_streams`` places.
    """

    model: str = "default"
    prior: str = "training"
    detector: str = "centerface"
    threshold: float = 0.3
    max_side: int = 640
    upscale: bool = False
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    max_image_bytes: int = 20 * MB
    max_video_bytes: int = 200 * MB
    max_pixels: int = 40_000_000
    max_video_frames: int = 54_000
    workers: int = 2
    queue: int = 8
    request_timeout: float = 30.0
    detect_tile: int = 1024
    explain_workers: int = 1
    explain_queue: int = 2
    max_explain_faces: int = 8
    explain_timeout: float = 20.0
    job_workers: int = 1
    max_queued_jobs: int = 4
    job_timeout: float = 1800.0
    retention: float = 900.0
    max_streams: int = 4
    stream_idle: float = 60.0
    jobs_dir: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.analysis  # noqa: B018 - checks the model's prior and the detector's settings now
        for name in ("max_image_bytes", "max_video_bytes", "max_pixels", "max_video_frames", "workers",
                     "job_workers", "max_streams", "explain_workers", "max_explain_faces"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("queue", "max_queued_jobs", "explain_queue"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("request_timeout", "job_timeout", "retention", "stream_idle", "explain_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if self.detect_tile < 512:
            raise ValueError(f"detect_tile must be >= 512 pixels (tiles overlap by 256), got {self.detect_tile}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("the API key is empty or only spaces, which would leave the service open: set a real "
                             "key in OPENFER_API_KEY, or unset it for an open service on 127.0.0.1")
        if not self.allowed_hosts:
            raise ValueError("allowed_hosts is empty: no request could reach the service (use '*' for any host)")

    @property
    def analysis(self):
        """The analysis these settings ask for, as ``openfer analyze`` would build it from the same options."""
        from openfer.detect import DetectorSettings
        from openfer.settings import AnalysisSettings

        return AnalysisSettings(model=self.model, prior=self.prior, detection=DetectorSettings(
            name=self.detector, threshold=self.threshold, max_side=self.max_side or None, upscale=self.upscale))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> ServiceConfig:
        """Settings from ``OPENFER_<FIELD>`` variables (e.g. ``OPENFER_API_KEY``, ``OPENFER_RETENTION``), then
        ``overrides`` (values that are None are ignored).

        Raises:
            ValueError: a variable that is not a number where a number is expected (the message names it).
        """
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f"OPENFER_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(f.default) if f.default is not None else str
            try:
                if f.name in ("cors_origins", "allowed_hosts"):
                    values[f.name] = tuple(o.strip() for o in raw.split(",") if o.strip())
                elif kind is bool:
                    values[f.name] = {"1": True, "true": True, "yes": True, "on": True, "0": False,
                                      "false": False, "no": False, "off": False}[raw.strip().lower()]
                elif kind in (int, float):
                    values[f.name] = kind(raw)
                else:
                    values[f.name] = raw
            except (ValueError, KeyError):
                raise ValueError(f"OPENFER_{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
