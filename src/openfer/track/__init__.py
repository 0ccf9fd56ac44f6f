"""Tracking stage: faces of consecutive frames in, the same faces with a stable ``track_id`` out."""

from openfer.track.bytetrack import FaceTracker
from openfer.track.reclassify import Reclassifier
from openfer.track.smoothing import EmaSmoother

__all__ = ["FaceTracker", "EmaSmoother", "Reclassifier"]
