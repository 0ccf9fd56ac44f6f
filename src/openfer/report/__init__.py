"""Reporting: annotated images, and row/record layouts shared by every writer."""

from openfer.report.annotate import annotate

__all__ = ["annotate"]
