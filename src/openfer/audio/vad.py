"""Voice activity: Silero VAD's ONNX model on ONNX Runtime (no PyTorch), and speech segments from its output.

The model file is the ``silero_vad_16k_sequence.onnx`` that ships inside the ``silero-vad`` wheel (MIT, Silero
Team), found in the installed package without importing it (its ``__init__`` imports PyTorch): nothing is
downloaded. That export runs a block of 32 ms frames per call with the LSTM state carried between calls, so the
Python loop turns once per ~16 s of sound instead of once per frame, and streaming chunk by chunk gives the same
probabilities as one call over the whole recording.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from openfer.errors import MissingExtraError, UnreadableInputError

#: Samples per VAD frame at 16 kHz (32 ms) and the context the model sees before each frame.
FRAME = 512
CONTEXT = 64
#: Seconds per VAD frame.
FRAME_S = FRAME / 16000
#: The model file inside the silero-vad wheel and its SHA-256 (silero-vad 6.2.3): another file is refused.
MODEL_FILE = "silero_vad_16k_sequence.onnx"
MODEL_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"


def silero_model_path() -> Path:
    """Where the installed ``silero-vad`` package keeps its sequence ONNX model (checked against ``MODEL_SHA256``).

    Raises:
        MissingExtraError: silero-vad is not installed.
        UnreadableInputError: the file is missing or differs from the pinned one.
    """
    spec = importlib.util.find_spec("silero_vad")  # locates the package without running its torch-importing __init__
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("voice activity needs Silero VAD's model file", "audio", "no module named 'silero_vad'")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MODEL_FILE
    if not path.is_file():
        raise UnreadableInputError(f"{path}: missing from the installed silero-vad; reinstall silero-vad==6.2.3")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise UnreadableInputError(f"{path}: SHA-256 {digest[:12]}... is not the pinned silero-vad 6.2.3 model; "
                                   "install silero-vad==6.2.3")
    return path


class SileroVad:
    """Speech probability per 32 ms frame, streamed chunk by chunk.

    Args:
        session: an ``onnxruntime.InferenceSession`` of the sequence model (default: the installed silero-vad's,
            one thread: the model is small and the rest of the pipeline wants the other cores).
        block_frames: frames per model call (512 = 16.4 s); more means fewer calls and more transient memory.

    Call ``reset`` between recordings; ``probabilities`` keeps the state (and any samples short of a whole frame)
    between calls, so a recording split into chunks anywhere gives the probabilities of the whole.
    """

    def __init__(self, session=None, block_frames: int = 512) -> None:
        if session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(silero_model_path()), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
        self.session, self.block_frames = session, int(block_frames)
        self.reset()

    def reset(self) -> None:
        """Forget the previous recording."""
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)

    def probabilities(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        """Speech probabilities (0..1) of the whole 32 ms frames completed by ``samples`` (16 kHz mono float32);
        ``final`` pads the last partial frame with silence."""
        x = np.concatenate([self._rest, np.asarray(samples, np.float32).reshape(-1)])
        n = x.size // FRAME
        if final and x.size % FRAME:
            x = np.concatenate([x, np.zeros(FRAME - x.size % FRAME, np.float32)])
            n += 1
        self._rest = x[n * FRAME:]
        out = []
        for b in range(0, n, self.block_frames):
            m = min(self.block_frames, n - b)
            frames = x[b * FRAME:(b + m) * FRAME].reshape(m, FRAME)
            block = np.empty((m, CONTEXT + FRAME), np.float32)
            block[:, CONTEXT:] = frames
            block[0, :CONTEXT] = self._context
            block[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
            self._context = frames[-1, -CONTEXT:].copy()
            p, self._h, self._c = self.session.run(["speech_probs", "hn", "cn"],
                                                   {"input": block, "h": self._h, "c": self._c})
            out.append(np.asarray(p, np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Segment:
    """One stretch of speech, seconds from the start of the analysed sound."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.end - self.start


def speech_segments(probs: np.ndarray, threshold: float = 0.5, release: float = 0.35, min_speech: float = 0.25,
                    min_silence: float = 0.3, pad: float = 0.03, frame_s: float = FRAME_S) -> list[Segment]:
    """Speech segments from per-frame speech probabilities, with hysteresis.

    Speech starts where the probability reaches ``threshold`` and ends where it stays below ``release`` for
    ``min_silence`` seconds (shorter dips are pauses inside one segment); segments shorter than ``min_speech`` are
    dropped (clicks, coughs) and each is widened by ``pad`` seconds on both sides (the model reacts a frame late).

    Args:
        probs: speech probability per frame (``SileroVad.probabilities``).
        threshold: probability that starts speech; higher keeps less noise and misses quiet speech.
        release: probability under which speech may end (below ``threshold``, so a wavering frame does not cut).
        min_speech: shortest segment kept, seconds.
        min_silence: shortest silence that separates two segments, seconds; it is also the shortest pause counted.
        pad: seconds added before and after each segment (clipped to the sound and to neighbours).
        frame_s: seconds per probability.
    """
    probs = np.asarray(probs, np.float32)
    segs: list[list[float]] = []
    speaking, start, below = False, 0, 0
    hold = max(1, int(round(min_silence / frame_s)))
    for i, p in enumerate(probs):
        if not speaking:
            if p >= threshold:
                speaking, start, below = True, i, 0
        elif p < release:
            below += 1
            if below >= hold:
                segs.append([start, i - below + 1])
                speaking = False
        else:
            below = 0
    if speaking:
        segs.append([start, len(probs) - below])
    total = len(probs) * frame_s
    out: list[Segment] = []
    for a, b in segs:
        s, e = a * frame_s, b * frame_s
        if e - s < min_speech:
            continue
        s, e = max(0.0, s - pad), min(total, e + pad)
        if out and s < out[-1].end:
            s = out[-1].end
        out.append(Segment(round(s, 3), round(e, 3)))
    return out


def speech_mask(segments: list[Segment], times: np.ndarray) -> np.ndarray:
    """True for each time (seconds) inside a segment."""
    times = np.asarray(times, np.float64)
    mask = np.zeros(times.shape, bool)
    for s in segments:
        mask[(times >= s.start) & (times < s.end)] = True
    return mask
