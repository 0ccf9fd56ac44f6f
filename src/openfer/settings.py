"""``AnalysisSettings``: everything that decides an analysis's results, as one small picklable value.

Built once from the CLI's options (``openfer analyze``, ``openfer serve``), the service's configuration or Python,
and turned into the stages that do the work (``analyzer``, ``smoother``, ``reidentifier``, ``sampling``), so every
front end checks the same ranges and builds the same pipeline. An ``Analyzer`` holds ONNX Runtime sessions, which
cannot be pickled or sent to another process; these settings can, and each worker of a cluster builds its own
``Analyzer`` from them once. The same settings give the manifest's ``settings`` and hash, so a run with and without
``--engine ray`` recognise each other's finished work.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from openfer.detect.settings import DetectorSettings
from openfer.errors import UsageError
from openfer.track.follow import DEFAULT_DETECT_EVERY
from openfer.track.reclassify import DEFAULT_CLASSIFY_EVERY


@dataclass(frozen=True)
class AnalysisSettings:
    """How photos and videos are analysed.

    Attributes:
        model: expression model name (``openfer models``) or an exported ``.onnx`` classifier.
        prior: ``"training"`` or ``"balanced"`` decision prior.
        detection: the face detector. Photos use it as given (big photos are also searched at finer scales);
            video frames get one pass each (``max_shrink=None``), as ``openfer analyze video.mp4`` does.
        threads: ONNX Runtime threads per analyzer (0: ONNX Runtime's default; a cluster worker then uses the
            CPUs it was given).
        every, fps, start, end: video frame sampling (``openfer.video.Sampling``).
        smooth: weight of the newest frame in each face's moving average, 0-1 (1: off).
        geometry: also estimate landmarks, head pose, gaze... (``[geometry]`` extra), with the Face Landmarker
            file from ``model_dir`` (None: the default places).
        audio: videos also get their voice columns (``openfer.audio``, ``[audio]`` extra).
        detect_every: videos run the face detector every this many analysed frames and follow faces between
            (``openfer.track.follow``; 1: every frame).
        classify_every: videos classify a followed face at least every this many analysed frames, and when it
            looks different (``openfer.track.reclassify``; 1: every frame).
        reid: videos re-identify people who come back (``openfer.track.reid``), with the faceres files from
            ``model_dir`` (None: the default places).
    """

    model: str = "default"
    prior: str = "training"
    detection: DetectorSettings = field(default_factory=DetectorSettings)
    threads: int = 0
    every: int = 1
    fps: float | None = None
    start: float = 0.0
    end: float | None = None
    smooth: float = 1.0
    geometry: bool = False
    model_dir: Path | None = None
    audio: bool = False
    detect_every: int = DEFAULT_DETECT_EVERY
    classify_every: int = DEFAULT_CLASSIFY_EVERY
    reid: bool = False

    def __post_init__(self) -> None:
        from openfer.classify.prior import check_prior

        check_prior(self.prior)
        if self.threads < 0:
            raise UsageError(f"threads must be 0 (ONNX Runtime's default) or more, got {self.threads}")
        if self.detect_every < 1:
            raise UsageError(f"detect_every must be 1 (every frame) or more, got {self.detect_every}")
        if self.classify_every < 1:
            raise UsageError(f"classify_every must be 1 (every frame) or more, got {self.classify_every}")
        if not (0 < self.smooth <= 1):
            raise UsageError(f"smooth must be above 0 and at most 1 (1 turns smoothing off), got {self.smooth:g}")
        self.sampling()  # checks every, fps, start and end

    def video_options(self) -> list[str]:
        """Names of the settings that only videos use and that differ from their defaults (for a clear error when
        they are given with photos)."""
        only = ("every", "fps", "start", "end", "smooth", "detect_every", "classify_every", "audio", "reid")
        default = AnalysisSettings()
        return [f.name for f in fields(self) if f.name in only and getattr(self, f.name) != getattr(default, f.name)]

    def smoother(self, classifier):
        """A new ``openfer.track.EmaSmoother`` for one video (labels by ``classifier``'s decision rule), or None
        when ``smooth`` is 1 (off)."""
        if self.smooth >= 1:
            return None
        from openfer.classify.prior import decision_of
        from openfer.track import EmaSmoother

        return EmaSmoother(alpha=self.smooth, decision=decision_of(classifier))

    def sampling(self):
        """The video frame sampling (``openfer.video.Sampling``)."""
        from openfer.video.sources import Sampling

        return Sampling(every=self.every, fps=self.fps, start=self.start, end=self.end)

    def analyzer(self, kind: Literal["photos", "video"] = "photos", threads: int | None = None):
        """A new ``Analyzer`` for photos or for video frames, with ``threads`` ONNX threads (default: ``threads``).

        Loading takes about half a second (two ONNX sessions); a worker does it once per kind and keeps it.
        """
        from openfer.analyzer import Analyzer

        n = self.threads if threads is None else threads
        geo = None
        if self.geometry:
            from openfer.geometry import GeometryEstimator

            geo = GeometryEstimator(model_dir=self.model_dir)
        # video frames get one detection pass each (Analyzer.for_video): finer passes would cost 4-5x per 4K frame
        detection = self.detection if kind == "photos" else replace(self.detection, max_shrink=None)
        return Analyzer(detector=detection.load(threads=n), classifier=self.model, geometry=geo, prior=self.prior,
                        threads=n)

    def manifest_settings(self) -> dict[str, Any]:
        """The settings a batch manifest records and hashes (``openfer.video.batch``): what changes the results,
        not how fast they come (``threads``)."""
        d = self.detection
        return {"model": self.model, "prior": self.prior, "detector": d.name, "threshold": d.threshold,
                "max_side": d.max_side, "upscale": d.upscale, "every": self.every, "fps": self.fps,
                "start": self.start, "end": self.end, "smooth": self.smooth, "detect_every": self.detect_every,
                "classify_every": self.classify_every,
                "geometry": self.geometry,
                **({"audio": True} if self.audio else {}), **({"reid": True} if self.reid else {})}

    def reidentifier(self):
        """A new ``openfer.track.reid.Reidentifier`` for one video, or None without ``reid``; the faceres network
        is loaded once per process."""
        if not self.reid:
            return None
        from openfer.track.identity import shared_describer
        from openfer.track.reid import Reidentifier

        return Reidentifier(shared_describer(self.model_dir))

    def run_video(self, analyzer, source, reid=None, **outputs):
        """``openfer.video.run_video`` of ``source`` with the stages these settings ask for (a new tracker at the
        source's frame rate, the smoother, the detection and classification cadence, re-identification: ``reid``
        or else ``reidentifier()``); ``outputs``: ``out``, ``summary_path``, ``annotate_path``, ``voice``,
        ``on_frame``... as ``run_video``'s. ``analyzer`` is ``analyzer("video")`` (or one like it)."""
        from openfer.track import FaceTracker
        from openfer.video import run_video

        return run_video(analyzer, source, tracker=FaceTracker(frame_rate=source.fps or 30.0),
                         smoother=self.smoother(analyzer.classifier), detect_every=self.detect_every,
                         classify_every=self.classify_every, reid=reid or self.reidentifier(), **outputs)
