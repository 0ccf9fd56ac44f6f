"""The errors a user can cause, as one small hierarchy under ``OpenferError``.

Every message says why and what to do, and is safe to show a user as it is. The CLI catches ``OpenferError``
(plus ``OSError`` for files) and shows the message with exit code 2; anything else is a bug in openfer and ends in
a traceback, so it is reported instead of passing for a usage error. A service maps each class to a status code.

Each class also derives from the built-in exception that the same failure raised before it had a type of its own
(``KeyError`` or ``ValueError`` for an unknown name, ``ImportError`` for a missing extra, ``ValueError`` for an
unreadable input or contradictory arguments), so code written as ``except ValueError`` keeps working.

This module imports nothing heavy: ``import openfer`` exports these classes without loading a model runtime.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable

__all__ = ["ImageReadError", "ImageTooLargeError", "MissingExtraError", "OpenferError", "UnknownNameError",
           "UnreadableInputError", "UsageError", "closest", "did_you_mean", "require_extra"]


class OpenferError(Exception):
    """Base of every error a user of openfer can cause (a name, a file, an option); never raised for a bug."""


class UnknownNameError(OpenferError, KeyError, ValueError):
    """A name openfer does not know: a model, detector, explanation method, prior, style, split, layout, file
    format or configuration key.

    A ``KeyError`` (what registry look-ups raised) and a ``ValueError`` (what option checks raised) at once; unlike a
    plain ``KeyError``, ``str(error)`` is the message itself, not its quoted ``repr``.

    Attributes:
        name: the name that was given (None when the raiser did not say).
        known: the names that would have worked (empty when the raiser did not say).
    """

    def __init__(self, message: str, *, name: str | None = None, known: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.known = tuple(known)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MissingExtraError(OpenferError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    Attributes:
        extra: the extra to install, e.g. ``"video"`` for ``pip install 'openfer[video]'``.
    """

    def __init__(self, what: str, extra: str, cause: object = None) -> None:
        hint = f"{what}: pip install 'openfer[{extra}]'" + (f" ({cause})" if cause else "")
        super().__init__(hint)
        self.extra = extra


class UnreadableInputError(OpenferError, ValueError):
    """A file, folder or stream given as input cannot be read, or is not what it must be (a corrupt image, a CSV
    without the needed columns, an ONNX file without openfer's metadata, a model file whose checksum differs)."""


class ImageReadError(UnreadableInputError):
    """An input that cannot be turned into an image; the message says why and is safe to show a user."""


class ImageTooLargeError(ImageReadError):
    """An image with more pixels than the limit (a decompression-bomb guard), refused before it is decoded."""


class UsageError(OpenferError, ValueError):
    """Arguments that are out of range, contradict each other, or ask what the given data cannot give (a balanced
    prior for a model without a training prior, a protocol for data without its labels)."""


def closest(name: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` that a mistyped ``name`` most likely meant, or None when none is close.

    >>> closest("lr_mult", ["backbone_lr_mult", "lr", "epochs"]), closest("epoch", ["epochs"]), closest("x", ["y"])
    ('backbone_lr_mult', 'epochs', None)
    """
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:  # the tail or head of a longer key ("lr_mult" of "backbone_lr_mult") is close too
        close = [k for k in known if len(name) >= 3 and (k.endswith(name) or k.startswith(name))][:1]
    return close[0] if close else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (to end a message) for the closest of ``known`` to ``name``, else ``""``.

    >>> did_you_mean("hair", ["centerface", "haar"])
    "; did you mean 'haar'?"
    """
    match = closest(name, known)
    return f"; did you mean {match!r}?" if match else ""


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise ``MissingExtraError`` unless ``module`` can be imported (checked without importing it).

    Args:
        module: the top-level module the feature needs, e.g. ``"torch"``.
        extra: the openfer extra that installs it, e.g. ``"train"``.
        what: who needs it, as the start of the message, e.g. ``"training needs PyTorch"``.
    """
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(what, extra, cause=f"no module named {module!r}")
