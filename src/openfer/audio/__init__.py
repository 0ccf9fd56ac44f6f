"""The voice branch: sound in (``reader``), voice activity (``vad``), prosody (``features``, ``functionals``), the
vocal arousal index and the per-session voice track (``voice``), the speech-emotion classifier (``emotion``).

Needs the ``[audio]`` extra (PyAV, the silero-vad wheel's ONNX model); numpy/scipy/ONNX Runtime do the rest.
Nothing heavy is imported here.
"""
