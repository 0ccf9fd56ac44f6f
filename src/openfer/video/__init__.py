"""Video stage: frame sources (files, frame folders, cameras, streams), the streaming pipeline and its sinks."""

from openfer.video.pipeline import VideoRunResult, analyze_video, run_video
from openfer.video.sources import (ArraySource, CaptureSource, FolderSource, Frame, FrameSource, Sampling,
                                   VideoOpenError, is_video_input, open_source)

__all__ = ["ArraySource", "CaptureSource", "FolderSource", "Frame", "FrameSource", "Sampling", "VideoOpenError",
           "VideoRunResult", "analyze_video", "is_video_input", "open_source", "run_video"]
