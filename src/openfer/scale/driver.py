"""``analyze``: photos, folders, globs and videos analysed by a pool of Ray actors, with the outputs of
``openfer analyze ... --out DIR`` (rows and a summary per video, ``photos.jsonl``, ``photos.csv``, ``people.csv``)
and its manifest, so a rerun with or without Ray skips what is finished.

The driver plans fixed jobs (a chunk of photos, or one video) and hands them to actors that each hold one
``Analyzer`` per kind, built from ``AnalysisSettings`` in the actor (models loaded once per actor, ONNX threads
from the CPUs Ray gave it). Ray restarts a killed actor and runs its unfinished jobs again; a job writes its
outputs under fixed names by temp-file-then-rename, so a retry replaces rather than duplicates. Ray Data is not
used: its read tasks starve when actors hold every CPU, one bad image aborts ``read_images``, and
``write_parquet`` appends new randomly named files on every run.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from openfer.errors import UsageError, require_extra
from openfer.scale.jobs import PARTS, Job, PartReader, photo_job, run_job
from openfer.settings import AnalysisSettings

log = logging.getLogger(__name__)

#: Photos per job: big enough that a job's overhead (a Ray call, two part files) is small beside analysing
#: them (about 0.1 s a photo on one core), small enough that a killed worker loses little.
CHUNK = 100
#: Jobs queued on each actor beyond the one it runs, so it never waits for the driver between jobs.
AHEAD = 1
SAVE_EVERY_S = 5.0


@dataclass
class ScaleResult:
    """What a run did. Per video ``videos_done``, ``videos_skipped`` (finished by an earlier run with the same
    settings) and ``videos_failed`` (with why); photo counts (``photos_failed``: error records);
    ``dashboard_url`` of the Ray cluster (empty without a dashboard); ``workers`` per process id: jobs, CPU
    seconds and peak memory (MB); ``restarted_workers``: actors Ray restarted after they died (their jobs ran
    again); ``retried_jobs``: jobs given to a fresh actor after Ray's own retries ran out; ``startup_s``: seconds
    until the cluster and the actors were ready."""

    out_dir: Path
    videos_done: list[str] = field(default_factory=list)
    videos_skipped: list[str] = field(default_factory=list)
    videos_failed: dict[str, str] = field(default_factory=dict)
    photos_done: int = 0
    photos_skipped: int = 0
    photos_failed: int = 0
    faces: int = 0
    interrupted: bool = False
    dashboard_url: str = ""
    workers: dict[int, dict[str, float]] = field(default_factory=dict)
    restarted_workers: int = 0
    retried_jobs: int = 0
    startup_s: float = 0.0
    wall_s: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether any input could not be read (exit code 1 in the CLI)."""
        return bool(self.videos_failed or self.photos_failed)


class _Worker:
    """A Ray actor: one ``Analyzer`` per kind of job, built on first use from the settings, with as many ONNX
    threads as CPUs Ray gave this actor (unless the settings name a number)."""

    def __init__(self, settings: AnalysisSettings) -> None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        self.settings = settings if settings.threads else replace(settings, threads=max(1, int(cpus)))
        self.analyzers: dict[str, Any] = {}
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed

    def run(self, job: Job) -> dict[str, Any]:
        if job.kind not in self.analyzers:
            self.analyzers[job.kind] = self.settings.analyzer(job.kind)
        return {**run_job(job, self.analyzers[job.kind], self.settings), "restarted": self.restarted}


def analyze(paths: list[str | Path], out: str | Path, settings: AnalysisSettings | None = None, *,
            address: str | None = None, workers: int | None = None, chunk: int = CHUNK, recursive: bool = True,
            rows_format: str = ".csv", ray_init: dict[str, Any] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None,
            on_start: Callable[[ScaleResult, int], None] | None = None) -> ScaleResult:
    """Analyse photos and videos on a Ray cluster into the folder ``out``, as ``openfer analyze PATHS --out DIR``
    does on one machine (``[scale]`` extra).

    Args:
        paths: files, folders (searched recursively unless ``recursive=False``) and glob patterns; videos are
            recognised by their ending, the rest are photos.
        out: results folder on a filesystem every worker can write (a shared mount on a multi-machine cluster):
            ``<video>.rows.csv`` and ``<video>.summary.json`` per video (numbered when two share a name),
            ``photos.jsonl`` (a record per photo) and ``photos.csv`` (a row per face), ``people.csv``, and
            ``manifest.json`` (what is done, for reruns); ``parts/`` holds the photo chunks they are merged from.
        settings: models, detector and video sampling (default: ``AnalysisSettings()``).
        address: the cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None: a Ray already started
            in this process, else the one ``$RAY_ADDRESS`` names, else a new local one on this machine.
        workers: actors (default: as many as the cluster's CPUs allow, ``settings.threads`` or 1 CPU each).
        chunk: photos per job. Results do not depend on it.
        rows_format: ``.csv``, ``.jsonl`` or ``.parquet`` for video rows.
        ray_init: extra ``ray.init`` arguments for a new local Ray (e.g. ``num_cpus``, ``object_store_memory``).
        on_progress: called after each job with (jobs finished, jobs in all, what finished).
        on_start: called once the actors are up with the result so far (``dashboard_url``) and the job count.

    A rerun skips the videos and photos the manifest says are done with the same file and settings. Ctrl-C
    keeps every finished job (``interrupted`` is then set). Raises ``UsageError`` when there is no input.
    """
    require_extra("ray", "scale", "the Ray engine needs the [scale] extra")
    from openfer.io.images import expand_inputs, mark_output_folder
    from openfer.video.batch import output_names, read_manifest, settings_hash
    from openfer.video.sources import split_video_inputs

    settings = settings or AnalysisSettings()
    if chunk < 1:
        raise UsageError(f"chunk must be at least 1 photo, got {chunk}")
    out_dir = Path(out)
    videos, photo_items = split_video_inputs([str(p) for p in paths], recursive)
    photos = [str(p) for p in expand_inputs(photo_items, recursive=recursive)] if photo_items else []
    if not videos and not photos:
        raise UsageError("no inputs: give photos, videos, folders or glob patterns")
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_output_folder(out_dir)  # a later run over a folder holding it does not read its files as inputs
    manifest_settings = settings.manifest_settings()
    digest = settings_hash(manifest_settings)
    state = _Manifest(out_dir, manifest_settings, read_manifest(out_dir, "videos"), read_manifest(out_dir, "photos"))
    result = ScaleResult(out_dir)
    jobs = _plan_videos(videos, output_names(videos, rows_format), out_dir, state, digest, result)
    jobs += _plan_photos(photos, out_dir, state, digest, chunk, result)
    t0 = time.perf_counter()
    started = _start_ray(address, ray_init, result) if jobs else False  # no cluster: nothing written yet
    try:
        if jobs:
            _run_jobs(jobs, settings, workers, state, digest, result, t0, on_progress, on_start)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        state.save()
        _publish_photos(photos, out_dir, state)
        if videos:
            from openfer.video.batch import write_people_table

            write_people_table(out_dir, {k: state.videos[k] for k in map(_key, videos) if k in state.videos})
        _remove_stale_parts(out_dir, jobs)
        if started:
            import ray

            ray.shutdown()
    result.wall_s = time.perf_counter() - t0
    return result


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())


def _ident(path: str | Path) -> dict[str, Any] | None:
    from openfer.video.batch import video_key

    try:
        return video_key(Path(path))
    except OSError:  # missing or unreadable: analysed (and reported) every time
        return None


class _Manifest:
    """The run's manifest sections, saved atomically now and then (and at the end): at most every
    ``SAVE_EVERY_S`` seconds, and at most 5 % of the driver's time (one save costs about 9 us per photo: 9 s for a
    million), so saving never becomes the driver's main work. A crash loses at most the jobs since the last save,
    which a rerun does again."""

    def __init__(self, out_dir: Path, settings: dict, videos: dict, photos: dict) -> None:
        self.out_dir, self.settings, self.videos, self.photos = out_dir, settings, videos, photos
        self.saved, self.cost = 0.0, 0.0

    def save(self, soon: bool = False) -> None:
        from openfer.video.batch import write_manifest

        if soon and time.monotonic() - self.saved < max(SAVE_EVERY_S, 20 * self.cost):
            return
        t0 = time.monotonic()
        write_manifest(self.out_dir, self.settings, videos=self.videos, photos=self.photos)
        self.saved = time.monotonic()
        self.cost = self.saved - t0


def _plan_videos(videos: list[Path], names: dict, out_dir: Path, state: _Manifest, digest: str,
                 result: ScaleResult) -> list[Job]:
    from openfer.video.batch import is_finished

    jobs = []
    for video in videos:
        rows, summary = (out_dir / n for n in names[video])
        ident = _ident(video)
        if ident is None:
            result.videos_failed[str(video)] = "cannot read: file not found or not readable"
            continue
        if is_finished(state.videos.get(_key(video), {}), ident, digest, [rows, summary]):
            result.videos_skipped.append(str(video))
            continue
        state.videos[_key(video)] = {**ident, "settings_hash": digest, "status": "queued", "rows": rows.name,
                                     "summary": summary.name}
        jobs.append(Job("video", _key(video), (str(video),), (str(rows), str(summary)), os.getcwd()))
    return jobs


def _plan_photos(photos: list[str], out_dir: Path, state: _Manifest, digest: str, chunk: int,
                 result: ScaleResult) -> list[Job]:
    """Chunks of the photos not finished before, named after the parts already recorded (never reusing one that
    still holds finished photos)."""
    from openfer.video.batch import is_finished

    todo = []
    for photo in photos:
        entry = state.photos.get(_key(photo), {})
        ident = _ident(photo)
        part = out_dir / PARTS / f"{entry.get('part')}.jsonl"
        if ident is not None and is_finished(entry, ident, digest, [part, part.with_suffix(".csv")]):
            result.photos_skipped += 1
        else:
            todo.append(photo)
    used = [int(e["part"].split("-")[-1]) for e in state.photos.values()
            if str(e.get("part", "")).startswith("photos-")]
    first = max(used, default=-1) + 1
    jobs = []
    for i in range(0, len(todo), chunk):
        job = photo_job(f"photos-{first + i // chunk:06d}", todo[i:i + chunk], out_dir)
        for photo in job.inputs:
            state.photos[_key(photo)] = {**(_ident(photo) or {"path": _key(photo)}), "settings_hash": digest,
                                         "status": "queued", "part": job.name}
        jobs.append(job)
    return jobs


def _start_ray(address: str | None, ray_init: dict[str, Any] | None, result: ScaleResult) -> bool:
    """Connect to ``address`` or start a local Ray (unless this process already has one); True when this call
    started it (and the run must shut it down)."""
    import ray

    if ray.is_initialized():
        result.dashboard_url = _dashboard_url()
        return False
    kwargs = {"log_to_driver": False, "configure_logging": True, "logging_level": logging.WARNING}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        # a new local Ray: the jobs pass paths and small dicts, so a small object store is plenty
        kwargs["object_store_memory"] = 256 * 1024 * 1024
    context = ray.init(address=address, **kwargs, **(ray_init or {}))
    result.dashboard_url = getattr(context, "dashboard_url", "") or ""
    return True


def _dashboard_url() -> str:
    try:
        from ray._private.worker import get_dashboard_url

        return get_dashboard_url() or ""
    except Exception:  # noqa: BLE001 - only informative; Ray's private API may move
        return ""


def _run_jobs(jobs: list[Job], settings: AnalysisSettings, workers: int | None, state: _Manifest, digest: str,
              result: ScaleResult, t0: float, on_progress, on_start) -> None:
    """Hand ``jobs`` to a pool of actors and record every finished job in the manifest (``_Pool``); the actors
    are ended afterwards, also after Ctrl-C or an error."""
    pool = _Pool(settings, workers, len(jobs))
    try:
        pool.run(jobs, state, result, t0, on_progress, on_start)
    finally:
        pool.close()


class _Pool:
    """Actors of ``settings.threads`` (or 1) CPUs each, ``AHEAD`` jobs queued on each beyond the one it runs. Ray
    restarts a killed actor and runs its jobs again (``max_restarts``, ``max_task_retries``); a job whose actor
    is lost beyond that goes to a fresh actor, up to 3 times, then counts as failed."""

    def __init__(self, settings: AnalysisSettings, workers: int | None, jobs: int) -> None:
        import ray

        self.settings, self.cpus = settings, settings.threads or 1
        total = int(ray.cluster_resources().get("CPU", 1))
        self.n = max(1, min(workers or max(1, total // self.cpus), jobs))
        if self.n * self.cpus > total:
            log.warning("%d workers of %d CPUs need more than the cluster's %d CPUs: some wait", self.n, self.cpus,
                        total)
        self.cls, self.run_id = ray.remote(_Worker), uuid.uuid4().hex[:8]
        self.actors = [self._new(i) for i in range(self.n)]

    def _new(self, i: int):
        return self.cls.options(num_cpus=self.cpus, max_restarts=3, max_task_retries=3,
                                name=f"openfer-{self.run_id}-{i}").remote(self.settings)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)

    def run(self, jobs: list[Job], state: _Manifest, result: ScaleResult, t0: float, on_progress, on_start) -> None:
        import ray

        queue, attempts = deque(jobs), defaultdict(int)
        running: dict[Any, tuple[int, Job]] = {}
        load = [0] * self.n
        finished = 0

        def submit() -> None:  # one job to each idle actor first, then the queued ones: few jobs still spread
            for depth in range(AHEAD + 1):
                for i in range(self.n):
                    if queue and load[i] <= depth:
                        job = queue.popleft()
                        _mark(state, job, "running")
                        running[self.actors[i].run.remote(job)] = (i, job)
                        load[i] += 1

        submit()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            i, job = running.pop(ready[0])
            load[i] -= 1
            try:
                info = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:  # the actor died and Ray's restarts or retries ran out
                attempts[job.name] += 1
                result.retried_jobs += 1
                log.warning("worker lost while on %s (%s); %s", job.name, type(e).__name__,
                            "trying again" if attempts[job.name] < 3 else "giving up")
                if attempts[job.name] < 3:
                    ray.kill(self.actors[i])
                    self.actors[i] = self._new(i)
                    queue.appendleft(job)
                else:
                    _record_failure(state, job, f"worker lost 3 times: {e}", result)
                    finished += 1
            except ray.exceptions.RayTaskError as e:  # an error in openfer on this job (bad files are records)
                _record_failure(state, job, f"{type(e.cause).__name__}: {e.cause}", result)
                finished += 1
            else:
                if not result.workers:
                    result.startup_s = time.perf_counter() - t0 - info["wall_s"]
                    if on_start:
                        on_start(result, len(jobs))
                _record(state, job, info, result)
                finished += 1
                if info.get("interrupted"):
                    raise KeyboardInterrupt
            state.save(soon=True)
            if on_progress:
                on_progress(finished, len(jobs), job.name if job.kind == "photos" else job.inputs[0])
            submit()


def _mark(state: _Manifest, job: Job, status: str) -> None:
    section = state.videos if job.kind == "video" else state.photos
    for path in job.inputs:
        section[_key(path)]["status"] = status


def _record(state: _Manifest, job: Job, info: dict[str, Any], result: ScaleResult) -> None:
    """A finished job into the manifest and the counts."""
    if info["pid"] not in result.workers and info["restarted"]:
        result.restarted_workers += 1
    worker = result.workers.setdefault(info["pid"], {"jobs": 0, "cpu_s": 0.0, "wall_s": 0.0, "max_rss_mb": 0.0})
    worker["jobs"] += 1
    worker["cpu_s"] += info["cpu_s"]
    worker["wall_s"] += info["wall_s"]
    worker["max_rss_mb"] = max(worker["max_rss_mb"], info["max_rss_mb"])
    if info.get("interrupted"):
        _mark(state, job, "interrupted")
        return
    if job.kind == "photos":
        _mark(state, job, "done")
        for path in info["unreadable"]:  # its error record is in the part; a rerun tries it again
            state.photos[_key(path)]["status"] = "unreadable"
        result.photos_done += info["photos"]
        result.photos_failed += info["failed"]
        result.faces += info["faces"]
    elif "error" in info:
        _record_failure(state, job, info["error"], result)
    else:
        entry = state.videos[job.name]
        entry.update(status="done", frames=info["frames"], tracks=info["tracks"], problems=info["problems"])
        result.videos_done.append(job.inputs[0])
        result.faces += info["faces"]


def _record_failure(state: _Manifest, job: Job, error: str, result: ScaleResult) -> None:
    _mark(state, job, "failed")
    if job.kind == "video":
        state.videos[job.name]["error"] = error
        result.videos_failed[job.inputs[0]] = error
    else:  # the whole chunk: its photos have no records; a rerun tries them again
        result.photos_failed += len(job.inputs)
        log.error("photos of %s failed: %s", job.name, error)


def _publish_photos(photos: list[str], out_dir: Path, state: _Manifest) -> None:
    """``photos.jsonl`` and ``photos.csv`` from the parts, in the input order, holding each photo of this run once
    (from its latest part): the files a single-machine run writes. Parts are read as they come, so the driver
    holds one part's reader at a time (plus one per part a rerun added)."""
    import csv

    from openfer.io.atomic import part_path, publish

    if not photos:
        return
    part_of: dict[str, str] = {}
    for photo in photos:
        entry = state.photos.get(_key(photo), {})
        if entry.get("status") in ("done", "unreadable"):
            part_of[photo] = entry["part"]
    members: dict[str, set[str]] = defaultdict(set)
    for photo, name in part_of.items():
        members[name].add(photo)
    readers: dict[str, PartReader] = {}
    targets = {"jsonl": out_dir / "photos.jsonl", "csv": out_dir / "photos.csv"}
    with open(part_path(targets["jsonl"]), "w", encoding="utf-8") as jf, \
            open(part_path(targets["csv"]), "w", newline="", encoding="utf-8") as cf:
        rows = csv.writer(cf)
        header = False
        for photo in photos:
            name = part_of.get(photo)
            if name is None:
                continue
            if name not in readers:
                readers[name] = PartReader(photo_job(name, [], out_dir).outputs, members[name])
            reader = readers[name]
            if not header and reader.header:
                rows.writerow(reader.header)
                header = True
            record, face_rows = reader.take(photo)
            jf.write(record)
            rows.writerows(face_rows)
            if reader.left == 0:
                readers.pop(name).close()
    for target in targets.values():
        publish(part_path(target), target)


def _remove_stale_parts(out_dir: Path, jobs: list[Job]) -> None:
    """The temporary files of jobs whose worker was killed before it could rename them (``.name.<pid>.part``)."""
    for job in jobs:
        for output in job.outputs:
            target = Path(output)
            for stale in target.parent.glob(f".{target.stem}.*.part{target.suffix}"):
                stale.unlink(missing_ok=True)
