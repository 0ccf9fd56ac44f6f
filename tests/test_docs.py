"""The docstring examples run (they are the documentation)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["openfer.analyzer", "openfer.classify.onnx_classifier", "openfer.video.pipeline"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} should have a runnable example"
    assert result.failed == 0
