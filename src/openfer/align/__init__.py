"""Alignment stage: similarity transform from 5 landmarks to a canonical template, then a warp."""

from openfer.align.similarity import FER_TEMPLATE, align_faces, crop_face, estimate_similarity, warp_face

__all__ = ["FER_TEMPLATE", "align_faces", "crop_face", "estimate_similarity", "warp_face"]
