"""The same analysis as ``openfer analyze PATHS --out DIR`` on a Ray cluster (``[scale]`` extra).

>>> from openfer.scale import AnalysisSettings
>>> AnalysisSettings(model="fast").manifest_settings()["model"]
'fast'

``analyze(paths, out, settings, address=...)`` runs it (``openfer analyze PATHS --engine ray --out DIR`` in the
shell); docs/scale.md says how to start a cluster and what it measured. Ray is imported only when a run starts.
"""

from openfer.scale.driver import ScaleResult, analyze
from openfer.settings import AnalysisSettings

__all__ = ["AnalysisSettings", "ScaleResult", "analyze"]
