"""The docstring examples run (they are the documentation)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["openfer.analyzer", "openfer.classify.onnx_classifier", "openfer.video.pipeline",
                                    "openfer.service.app", "openfer.errors", "openfer.detect.settings",
                                    "openfer.track.flow", "openfer.track.follow", "openfer.scale", "openfer.registry"])
def test_docstring_examples(module):
    if module.startswith("openfer.service"):
        pytest.importorskip("fastapi", reason="the web service needs the [serve] extra")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} should have a runnable example"
    assert result.failed == 0
