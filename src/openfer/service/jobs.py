"""Video jobs: a bounded queue, worker threads running the video pipeline, and a janitor that deletes old jobs.

Every job lives in its own folder under one temporary root, named by a random id; the files inside have fixed
names (``input.<ext>``, ``rows.csv``...), so nothing a client sends ever becomes part of a path. A temporary root's
name and a marker file in each job folder carry the server's process id, so the next start can delete what a
killed server left behind (``clean_stale``) without touching a running server's jobs or anything else.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from openfer.analyzer import Analyzer
from openfer.classify.damage import damage_kinds
from openfer.settings import AnalysisSettings

log = logging.getLogger(__name__)

#: Result kind -> file name inside a job folder.
RESULT_FILES = {"csv": "rows.csv", "jsonl": "rows.jsonl", "summary": "summary.json", "video": "annotated.mp4",
                "report": "report.html"}
#: Temporary roots are named ``openfer-jobs-<pid>-<random>``; the pid says whether their server still runs.
ROOT_PREFIX = "openfer-jobs-"
_ROOT_NAME = re.compile(rf"{ROOT_PREFIX}(\d+)-\w+")
#: File in every job folder holding the process id of the server that made it.
OWNER_FILE = ".openfer-job"
_JOB_NAME = re.compile(r"[0-9a-f]{32}")
#: Older openfer versions named roots ``openfer-jobs-<8 random characters>`` and left no marker: without a pid to
#: check, such a folder counts as abandoned when nothing in it changed for this long, far beyond any job's
#: retention and time limit, so a running server's folders never look abandoned.
ABANDONED_AFTER_S = 86_400.0
_OLD_ROOT_NAME = re.compile(rf"{ROOT_PREFIX}[a-z0-9_]{{8}}")


class QueueFull(Exception):
    """No room for another job; the client should retry later."""


class _Stop(Exception):
    """Raised inside the pipeline's progress callback to end a job early (deleted, or over its time limit)."""


@dataclass
class Job:
    """One video job. Times are Unix seconds; counters are updated while it runs."""

    id: str
    folder: Path
    input: Path
    fps: float | None = None
    audio: bool = False  #: add the voice (openfer.audio) to the rows, summary and report
    reid: bool = False  #: people who leave and come back keep their face_id (openfer.track.reid)
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    frames: int = 0
    expected_frames: int | None = None
    faces: int = 0
    tracks: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    cancelled: bool = False


class JobStore:
    """Accepts video files, runs them one by one (``workers`` at once) and deletes them after ``retention``.

    Args:
        analyzer: returns the shared ``Analyzer`` (called when a job starts, so the model may still be loading when
            jobs are accepted).
        root: folder for job folders (default: a new temporary folder, removed by ``close``).
        max_queued: jobs that may wait; ``submit`` raises ``QueueFull`` beyond that.
        workers: jobs analysed at once.
        retention: seconds a finished job is kept.
        max_frames: a job stops after this many analysed frames.
        timeout: seconds a job may run before it stops (it keeps what it analysed, with a problem line).
    """

    def __init__(self, analyzer: Callable[[], Analyzer], root: str | Path | None = None, max_queued: int = 4,
                 workers: int = 1, retention: float = 900.0, max_frames: int = 54_000,
                 timeout: float = 1800.0, settings: AnalysisSettings | None = None) -> None:
        self._analyzer = analyzer
        self.settings = settings or AnalysisSettings()
        self._own_root = root is None
        if root is None:
            clean_stale(Path(tempfile.gettempdir()))
            self.root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
            clean_stale(self.root, jobs_folder=True)
        self.retention, self.max_frames, self.timeout = retention, max_frames, timeout
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._describer = None  # the face describer of re-identification, made by the first reid job
        # Unbounded on purpose: ``submit`` bounds the jobs waiting, and deleted jobs stay in here until a worker
        # skips them, so a size limit here could refuse a job that fits.
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._max_queued = max_queued
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"openfer-job-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._janitor, name="openfer-janitor", daemon=True))
        for t in self._threads:
            t.start()

    # -- client side -------------------------------------------------------------------------------------------

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its (empty) folder, for the upload to be written into."""
        job_id = secrets.token_hex(16)
        folder = self.root / job_id
        folder.mkdir()
        (folder / OWNER_FILE).write_text(f"{os.getpid()}\n")
        return job_id, folder

    def submit(self, job_id: str, folder: Path, input_path: Path, fps: float | None = None,
               expected_frames: int | None = None, audio: bool = False, reid: bool = False) -> Job:
        """Queue a job whose input is already in ``folder``.

        Raises:
            QueueFull: ``max_queued`` jobs are already waiting (the folder is deleted).
        """
        job = Job(id=job_id, folder=folder, input=input_path, fps=fps, expected_frames=expected_frames, audio=audio,
                  reid=reid)
        with self._lock:
            waiting = sum(j.state == "queued" for j in self._jobs.values())
            if waiting >= self._max_queued or self._closed.is_set():
                shutil.rmtree(folder, ignore_errors=True)
                raise QueueFull(f"{waiting} video jobs are already waiting; try again in a minute")
            self._jobs[job_id] = job
            self._queue.put_nowait(job)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when there is no such job (never was, deleted or expired)."""
        with self._lock:
            return self._jobs.get(job_id)

    def result_path(self, job: Job, kind: str) -> Path:
        """The file of one result kind (``RESULT_FILES``) of a job; the caller checks that it exists."""
        return job.folder / RESULT_FILES[kind]

    def delete(self, job_id: str) -> bool:
        """Remove a job and every file it stored (a running job stops first); False when there is no such job."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancelled = True
        if job.state != "running":  # a running job's worker removes the folder once the pipeline has let go
            shutil.rmtree(job.folder, ignore_errors=True)
        return True

    def queued(self) -> int:
        """Jobs waiting to start."""
        with self._lock:
            return sum(j.state == "queued" for j in self._jobs.values())

    def close(self) -> None:
        """Stop the workers after their current job, delete every job (and the root if it was ours)."""
        self._closed.set()
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.cancelled = True
        for _ in self._threads:
            self._queue.put_nowait(None)
        for t in self._threads:
            t.join(timeout=10)
        for job in jobs:
            shutil.rmtree(job.folder, ignore_errors=True)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- worker side -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._closed.is_set():
            try:
                job = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if job is None:
                return
            if job.cancelled:
                continue
            try:
                self._run(job)
            except Exception as e:  # noqa: BLE001 - a job's failure is reported in the job, the worker goes on
                log.warning("video job %s failed", job.id, exc_info=True)
                job.state, job.error = "failed", self._public(job, f"{type(e).__name__}: {e}")
            finally:
                job.finished = time.time()
                if job.cancelled:
                    shutil.rmtree(job.folder, ignore_errors=True)

    def _run(self, job: Job) -> None:
        from openfer.io.rows import RowWriter
        from openfer.video import VideoOpenError, open_source

        job.state, job.started = "running", time.time()
        analyzer = self._analyzer().for_video()  # one detection pass per frame, as for 'openfer analyze VIDEO'
        settings = replace(self.settings, fps=job.fps)
        try:
            source = open_source(job.input, settings.sampling())
        except VideoOpenError as e:
            job.state, job.error = "failed", self._public(job, str(e))
            return
        source.name = "upload"  # what the summary and problem lines call it: never the server's path
        if source.expected_frames is not None:
            job.expected_frames = min(source.expected_frames, self.max_frames)
        deadline = time.monotonic() + self.timeout

        def progress(result) -> None:
            job.frames, job.faces, job.tracks = result.frames, result.faces, result.tracks
            if job.cancelled:
                raise _Stop("job deleted")
            if result.frames >= self.max_frames:
                raise _Stop(f"frame limit of {self.max_frames} analysed frames reached; the rest was not analysed")
            if time.monotonic() > deadline:
                raise _Stop(f"time limit of {self.timeout:.0f} s reached; the rest was not analysed")

        files = {kind: job.folder / name for kind, name in RESULT_FILES.items()}
        voice = self._voice(job) if job.audio else None
        reid = self._reidentifier(job) if job.reid else None
        with RowWriter(files["jsonl"], analyzer.classifier.classes, damage=damage_kinds(analyzer.classifier),
                       voice=voice.classes if voice is not None else None) as jsonl:
            result = settings.run_video(analyzer, source, out=files["csv"], summary_path=files["summary"],
                                        annotate_path=files["video"], on_rows=jsonl.write, on_frame=progress,
                                        voice=voice, reid=reid)
        job.frames, job.faces, job.tracks = result.frames, result.faces, result.tracks
        job.problems += [self._public(job, p.replace("stopped: _Stop: ", "stopped: ")) for p in result.problems]
        if result.frames and not job.cancelled:
            self._report(job, files["csv"], analyzer)
        job.input.unlink(missing_ok=True)  # the upload is not needed any more; results stay until expiry
        if result.frames == 0 and not job.cancelled:
            job.state, job.error = "failed", "no frame could be decoded: " + "; ".join(job.problems[:3] or ["empty"])
        else:
            job.state = "done"

    def _voice(self, job: Job):
        """The upload's ``VoiceTrack`` for ``audio`` jobs (analysed before its frames); without the [audio] extra
        or on a failure, None and a problem line: the faces are still analysed."""
        try:
            from openfer.audio.voice import analyze_sound

            voice = analyze_sound(job.input)
            voice.source = "upload"
            voice.problems = [self._public(job, p) for p in voice.problems]
            return voice
        except Exception as e:  # noqa: BLE001 - the voice is an addition; its failure must not fail the job
            log.warning("job %s: no voice (%s)", job.id, e)
            job.problems.append(self._public(job, f"voice not analysed: {type(e).__name__}: {e}"))
            return None

    def _reidentifier(self, job: Job):
        """A ``Reidentifier`` for ``reid`` jobs over the server's face describer (the faceres files from
        ``$OPENFER_MODEL_DIR`` or the user cache, ``openfer models fetch faceres``; loaded once); without them, None
        and a problem line: the job still runs, with the tracker's ids."""
        try:
            from openfer.track.identity import load_describer
            from openfer.track.reid import Reidentifier

            with self._lock:
                if self._describer is None:
                    self._describer = load_describer()
            return Reidentifier(self._describer)
        except Exception as e:  # noqa: BLE001 - re-identification is an addition; its absence must not fail the job
            from openfer.geometry.model_file import ModelNotFoundError

            log.warning("job %s: no re-identification (%s)", job.id, e)  # the details (server paths) stay in the log
            why = ("the faceres files are not on this server (its operator can run 'openfer models fetch faceres')"
                   if isinstance(e, ModelNotFoundError) else type(e).__name__)
            job.problems.append(f"people not re-identified: {why}")
            return None

    def _report(self, job: Job, rows: Path, analyzer: Analyzer) -> None:
        """The readable HTML report of a finished job (``openfer report``), thumbnails from the upload while it is
        still here; a report that cannot be made is a problem line, not a failed job."""
        try:
            from openfer.report.build import report_session

            report_session(rows, job.folder, "report", video=job.input, name="the uploaded video",
                           about=f"Model: {analyzer.classifier.spec.name}.")
        except Exception as e:  # noqa: BLE001 - the analysis itself succeeded; its files stay available
            log.warning("job %s: no report (%s)", job.id, e)
            job.problems.append(self._public(job, f"no HTML report: {type(e).__name__}: {e}"))

    def _public(self, job: Job, text: str) -> str:
        """``text`` without the server's paths (the upload's, its job folder's, the root's): clients see words."""
        for path, words in ((job.input, "the upload"), (job.folder, "the job folder"), (self.root, "the job store")):
            text = text.replace(str(path), words)
        return text

    def _janitor(self) -> None:
        period = max(0.2, min(self.retention / 4, 30.0))
        while not self._closed.wait(period):
            self.expire()

    def expire(self, now: float | None = None) -> list[str]:
        """Delete jobs finished more than ``retention`` seconds ago; returns their ids."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j.id for j in self._jobs.values() if j.finished is not None and now - j.finished > self.retention]
        for job_id in old:
            self.delete(job_id)
        if old:
            log.info("deleted %d expired video jobs", len(old))
        return old


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine); a process of another user counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(folder: Path) -> int | None:
    """The process id that made a job folder (its ``OWNER_FILE``), or None when it has no readable marker."""
    try:
        return int((folder / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _unchanged_since(folder: Path, cutoff: float) -> bool:
    """True when ``folder`` and everything in it were last modified before ``cutoff`` (seconds since the epoch)."""
    try:
        if folder.lstat().st_mtime >= cutoff:
            return False
        for top, dirs, files in os.walk(folder):
            for name in dirs + files:
                if os.lstat(os.path.join(top, name)).st_mtime >= cutoff:
                    return False
    except OSError:
        return False
    return True


def clean_stale(folder: Path, jobs_folder: bool = False) -> list[Path]:
    """Delete what killed servers left in ``folder``; returns what was deleted.

    Only openfer's own folders go, and only when the process that made them is gone: temporary roots named
    ``openfer-jobs-<pid>-*`` and job folders (32 hex digits) holding an ``OWNER_FILE``. Folders of older versions
    (a root ``openfer-jobs-<8 characters>`` holding job folders, or, in a configured ``jobs_folder``, a job folder
    without a marker) go when nothing in them changed for ``ABANDONED_AFTER_S``. A running server's folders, empty
    old roots and every other file stay.
    """
    stale = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return stale
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            continue
        root = _ROOT_NAME.fullmatch(entry.name)
        job = _JOB_NAME.fullmatch(entry.name)
        pid = int(root.group(1)) if root else _owner(entry) if job else None
        old = pid is None and ((job and jobs_folder) or (_OLD_ROOT_NAME.fullmatch(entry.name)
                                       and any(_JOB_NAME.fullmatch(p.name) for p in _children(entry))))
        if old and _unchanged_since(entry, time.time() - ABANDONED_AFTER_S) or (
                pid is not None and pid != os.getpid() and not _alive(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            stale.append(entry)
    if stale:
        log.info("deleted %d job folders left by stopped servers in %s", len(stale), folder)
    return stale
