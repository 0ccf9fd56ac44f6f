"""Face detection stage: image in, ``list[Face]`` (box, score, 5 landmarks) out."""

from openfer.detect.base import Detector, load_detector
from openfer.detect.centerface import CenterFaceDetector
from openfer.detect.haar import HaarDetector

__all__ = ["Detector", "CenterFaceDetector", "HaarDetector", "load_detector"]
