"""Face detection stage: image in, ``list[Face]`` (box, score, 5 landmarks) out."""

from openfer.detect.base import DETECTORS, Detector, load_detector
from openfer.detect.centerface import CenterFaceDetector
from openfer.detect.haar import HaarDetector
from openfer.detect.settings import DetectorSettings

__all__ = ["DETECTORS", "Detector", "DetectorSettings", "CenterFaceDetector", "HaarDetector", "load_detector"]
