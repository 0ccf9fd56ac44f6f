"""Sound in: the audio track of a video or a plain audio file, as 16 kHz mono float32 chunks.

PyAV (FFmpeg inside the wheel, the ``[video]`` extra) decodes any container FFmpeg reads (MP4, MKV, MOV, WebM,
WAV, FLAC, MP3, Ogg, M4A...) and resamples to 16 kHz mono. Chunks are yielded as they are decoded, so memory stays
flat however long the recording is: one chunk plus FFmpeg's decode buffers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from openfer.errors import UnreadableInputError, require_extra

log = logging.getLogger(__name__)

#: Samples per second of every chunk this module yields (what Silero VAD and the prosody features expect).
SAMPLE_RATE = 16000
#: Endings of plain audio files (a video with sound is read too: any ending FFmpeg opens).
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff")
#: A stream whose first sound starts this much after the container's start is padded with silence to keep times
#: aligned with the video's frames; larger offsets are taken as the stream's own time base and not padded.
_MAX_LEAD_S = 30.0


class NoAudioError(UnreadableInputError):
    """The input has no audio track (a silent video, a still image)."""


def is_audio_file(path: str | Path) -> bool:
    """Whether ``path`` is a plain audio file, by its ending."""
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def has_audio(path: str | Path) -> bool:
    """Whether ``path`` opens with PyAV and holds at least one audio stream (False for anything unreadable)."""
    require_extra("av", "audio", "reading sound needs PyAV")
    import av

    try:
        with av.open(str(path)) as c:
            return bool(c.streams.audio)
    except Exception:  # noqa: BLE001 - unreadable means no sound to analyse
        return False


class AudioReader:
    """Streams the first audio track of ``path`` as consecutive 16 kHz mono float32 chunks (values in -1..1).

    Args:
        path: a video or audio file.
        chunk_seconds: length of each chunk (the last one is shorter). Longer chunks mean fewer calls and a little
            more memory (``chunk_seconds * 64`` kB each).
        start: skip the sound before this time, seconds (as ``--start`` for frames).
        end: stop at this time, seconds (None: the end of the track).

    Sample ``i`` of the concatenated chunks is at ``start + i / 16000`` seconds of the container's clock, the clock
    video frame timestamps use (a track that starts late is padded with silence). A decoding error part-way keeps
    what was read and is noted in ``problems``.

    Raises:
        UnreadableInputError: the file cannot be opened.
        NoAudioError: it has no audio track.
    """

    def __init__(self, path: str | Path, chunk_seconds: float = 10.0, start: float = 0.0,
                 end: float | None = None) -> None:
        require_extra("av", "audio", "reading sound needs PyAV")
        import av

        self.path, self.name = Path(path), str(path)
        self.chunk = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
        self.start, self.end = float(start), end
        self.problems: list[str] = []
        try:
            self._container = av.open(str(path))
        except Exception as e:  # noqa: BLE001 - FFmpeg's errors are many; all mean "cannot read this"
            raise UnreadableInputError(f"{path}: cannot open ({type(e).__name__}: {e})") from None
        if not self._container.streams.audio:
            self._container.close()
            raise NoAudioError(f"{path}: no audio track")
        self._stream = self._container.streams.audio[0]
        self.source_rate = self._stream.codec_context.sample_rate
        self.channels = self._stream.codec_context.channels
        dur = None
        if self._stream.duration is not None and self._stream.time_base is not None:
            dur = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration is not None:
            dur = self._container.duration / 1_000_000
        self.duration: float | None = dur  #: seconds of sound the container declares (None when it does not)

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        skip = int(round(self.start * SAMPLE_RATE))  # samples before `start` still to drop
        limit = None if self.end is None else int(round((self.end - self.start) * SAMPLE_RATE))
        pending: list[np.ndarray] = []
        held = emitted = 0
        first = True

        def take(samples: np.ndarray):
            nonlocal skip, held
            if skip:
                cut = min(skip, samples.size)
                samples, skip = samples[cut:], skip - cut
            if samples.size:
                pending.append(samples)
                held += samples.size

        def ready(final: bool) -> Iterator[np.ndarray]:
            nonlocal pending, held, emitted
            while held >= self.chunk or (final and held):
                buf = np.concatenate(pending) if len(pending) > 1 else pending[0]
                n = min(self.chunk, buf.size)
                if limit is not None:
                    n = min(n, limit - emitted)
                if n <= 0:
                    pending, held = [], 0
                    return
                yield np.ascontiguousarray(buf[:n], dtype=np.float32)
                emitted += n
                rest = buf[n:]
                pending, held = ([rest] if rest.size else []), rest.size

        try:
            for frame in self._container.decode(self._stream):
                if first:
                    first = False
                    lead = frame.time or 0.0
                    if 0 < lead <= _MAX_LEAD_S:  # the track starts after the video: silence until it does
                        take(np.zeros(int(round(lead * SAMPLE_RATE)), np.float32))
                for out in resampler.resample(frame):
                    take(out.to_ndarray().reshape(-1))
                yield from ready(False)
                if limit is not None and emitted >= limit:
                    return
            for out in resampler.resample(None):
                take(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            self.problems.append(f"{self.name}: sound decoding stopped ({type(e).__name__}: {e}); kept what was read")
            log.warning(self.problems[-1])
        yield from ready(True)

    def close(self) -> None:
        """Release the file."""
        self._container.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_audio(path: str | Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """The whole sound of ``path`` (from ``start`` to ``end`` seconds) as one 16 kHz mono float32 array; for long
    recordings iterate ``AudioReader`` instead."""
    with AudioReader(path, start=start, end=end) as reader:
        chunks = list(reader)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
