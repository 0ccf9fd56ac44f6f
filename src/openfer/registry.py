"""One shape for every table of named things: detectors, expression models, model files, explanation methods.

A ``Registry`` maps a name to an entry (a spec, a factory, a function) with a one-line description, and every
look-up of an unknown name fails the same way: ``openfer.UnknownNameError`` (also a ``KeyError``) whose message
lists the known names and suggests the near match. Iteration, ``len`` and ``in`` work as on a dict of the names,
so code written against the earlier dicts and tuples (``MODELS[name]``, ``sorted(MODELS)``, ``name in
DETECTORS``, ``", ".join(METHODS)``) keeps working.

Where each registry lives:

- ``openfer.detect.DETECTORS``: detector factories (``load_detector(name, **kwargs)``).
- ``openfer.zoo.MODELS``: the shipped expression models' ``ModelSpec`` (``load_classifier(name)``).
- ``openfer.geometry.model_file.MODEL_FILES``: third-party files fetched on request (``openfer models fetch``).
- ``openfer.explain.METHODS``: explanation methods, each a function making heatmaps.

>>> r = Registry("colour")
>>> r.add("red", (255, 0, 0), "the colour of stop signs")
(255, 0, 0)
>>> r.get("red"), "blue" in r, list(r), r.describe("red")
((255, 0, 0), False, ['red'], 'the colour of stop signs')
>>> r.get("rde")
Traceback (most recent call last):
openfer.errors.UnknownNameError: unknown colour 'rde'; registered colours: red; did you mean 'red'?
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from openfer.errors import UnknownNameError, did_you_mean

__all__ = ["Registry", "registries"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries, in the order they were added, each with a one-line description.

    Deliberately not a ``collections.abc.Mapping``: its ``get`` raises for an unknown name (the one look-up of
    openfer) instead of returning None, so a misspelt name can never pass silently.

    Args:
        kind: what an entry is, singular, for messages (``"model"``, ``"explanation method"``); the plural is
            ``kind + "s"`` unless ``plural`` says otherwise.
        plural: the plural of ``kind`` where adding an ``s`` is wrong.
    """

    def __init__(self, kind: str, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def add(self, name: str, entry: T, description: str) -> T:
        """Register ``entry`` as ``name`` and return it.

        Raises:
            ValueError: ``name`` is taken already (a bug in whoever registers it, not a user error).
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = entry
        self._descriptions[name] = " ".join(description.split())  # one line, however it was written
        return entry

    def register(self, name: str, description: str) -> Callable[[T], T]:
        """``add`` as a decorator: ``@DETECTORS.register("haar", "OpenCV cascade")`` above a factory."""
        return lambda entry: self.add(name, entry, description)

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            openfer.UnknownNameError: no entry has that name (also a ``KeyError`` and a ``ValueError``); the
                message lists the known names and suggests the closest.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name" is unknown too
            raise self.unknown(name) from None

    def check(self, name: str) -> str:
        """``name`` itself when it is registered, else the error ``get`` raises."""
        self.get(name)
        return name

    def unknown(self, name: object) -> UnknownNameError:
        """The error for an unknown ``name`` (for callers that check before they look up)."""
        known = sorted(self._entries)
        hint = did_you_mean(name, known) if isinstance(name, str) else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}; registered {self.plural}: {', '.join(known)}{hint}",
                                name=name if isinstance(name, str) else None, known=known)

    def describe(self, name: str) -> str:
        """The one-line description of ``name`` (raises as ``get`` does)."""
        self.get(name)
        return self._descriptions[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name, in the order they were added."""
        return tuple(self._entries)

    def values(self) -> list[T]:
        """Every entry, in the order they were added."""
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in the order they were added."""
        return list(self._entries.items())

    def rows(self) -> list[tuple[str, str]]:
        """(name, description) pairs, in the order they were added: what a listing command prints."""
        return list(self._descriptions.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    @classmethod
    def of(cls, kind: str, entries: Iterable[T], name: Callable[[T], str], description: Callable[[T], str],
           plural: str | None = None) -> "Registry[T]":
        """A registry of ``entries`` that carry their own name and description (e.g. ``ModelSpec``)."""
        registry = cls(kind, plural)
        for entry in entries:
            registry.add(name(entry), entry, description(entry))
        return registry


def registries() -> dict[str, Registry]:
    """The package's registries of things a user names, by plural (what a listing command shows): detectors,
    models, model files, explanation methods.

    Imports the stages that declare them (not PyTorch: the training architectures, ``openfer.nn.archs.ARCHS``, are
    left out for that reason).
    """
    from openfer.detect.base import DETECTORS
    from openfer.explain.core import METHODS
    from openfer.geometry.model_file import MODEL_FILES
    from openfer.zoo.registry import MODELS

    return {r.plural: r for r in (DETECTORS, MODELS, MODEL_FILES, METHODS)}
