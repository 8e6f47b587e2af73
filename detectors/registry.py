"""Detector backends by name, found in :mod:`vigil.detectors.backends`; ``build_detector(cfg)``.

Every module of that package with a module-level ``BACKEND``
(:class:`~vigil.detectors.base.Backend`) is a backend: :func:`discover` imports them with
``pkgutil``, and everything else is built from what it found — :data:`DetectorConfig` (the
discriminated union of the backends' configs, on ``type``, so an unknown backend is a config
error listing the known ones), :func:`registered` and :func:`build_detector`. A config
without ``type`` means the default backend: ``onnx`` with the embedded YOLOv8s.
:func:`register` adds a builder at run time (tests, plug-ins outside the package); it does
not change the config union, which is fixed when this module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Union

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter

from vigil.detectors.base import Backend, Detector
from vigil.models.errors import ModelError

__all__ = [
    "BACKENDS_PACKAGE",
    "DEFAULT_TYPE",
    "register",
    "build_detector",
    "DetectorConfig",
    "config_union",
    "discover",
    "parse_detector_config",
    "registered",
    "UnknownDetectorError",
]

BACKENDS_PACKAGE = "vigil.detectors.backends"
DEFAULT_TYPE = "onnx"


class UnknownDetectorError(ModelError):
    """``build_detector`` got a config whose ``type`` no backend registered."""


def discover(package: str = BACKENDS_PACKAGE) -> dict[str, Backend]:
    """Import every module of ``package`` (not those named ``_*``) and collect their ``BACKEND``s,
    by name. Raises ``ValueError`` when two modules declare the same name."""
    pkg = importlib.import_module(package)
    found: dict[str, Backend] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        backend = getattr(module, "BACKEND", None)
        if not isinstance(backend, Backend):
            continue
        if backend.name in found:
            raise ValueError(f"detector backend {backend.name!r} is declared twice (in {package}.{info.name})")
        found[backend.name] = backend
    return found


def _type_of(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("type", DEFAULT_TYPE)
    return getattr(value, "type", DEFAULT_TYPE)


def config_union(backends: Iterable[Backend]) -> Any:
    """The annotation a node config embeds as ``detector: DetectorConfig``: the backends' configs
    discriminated on ``type`` (default :data:`DEFAULT_TYPE`), an unknown one being the config
    error ``unknown detector type; known: <names>``."""
    backends = sorted(backends, key=lambda b: b.name)
    if not backends:
        raise ValueError("no detector backends to build a config union from")
    members = tuple(Annotated[b.config, Tag(b.name)] for b in backends)
    return Annotated[
        Union[members],  # the members, as a tuple
        Discriminator(
            _type_of,
            custom_error_type="unknown_detector",
            custom_error_message=f"unknown detector type; known: {', '.join(b.name for b in backends)}",
        ),
        Field(description="The object detector backend and its settings (`type` picks the backend)."),
    ]


#: The backends of :data:`BACKENDS_PACKAGE`, found when this module is imported.
BACKENDS: dict[str, Backend] = discover()
_BUILDERS: dict[str, Callable[[Any], Detector]] = {name: b.build for name, b in BACKENDS.items()}

#: What a node config embeds as ``detector: DetectorConfig``.
DetectorConfig = config_union(BACKENDS.values())

_ADAPTER = TypeAdapter(DetectorConfig)


def register(name: str) -> Callable[[Callable[[Any], Detector]], Callable[[Any], Detector]]:
    """Decorator: register a builder ``cfg -> Detector`` (a class or a function) under ``name``
    at run time (its config is not in :data:`DetectorConfig`; pass ``build_detector`` a config
    object whose ``type`` is ``name``)."""

    def deco(builder):
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"detector backend {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return deco


def registered() -> list[str]:
    """Names of the registered backends."""
    return sorted(_BUILDERS)


def parse_detector_config(data: Any = None) -> BaseModel:
    """Validate a dict (or ``None`` for all defaults) into a backend config."""
    return _ADAPTER.validate_python({} if data is None else data)


def build_detector(cfg: Any = None) -> Detector:
    """Build the detector a config describes (a config model, a dict, or ``None`` = default)."""
    if cfg is None or isinstance(cfg, dict):
        cfg = parse_detector_config(cfg)
    name = getattr(cfg, "type", None)
    if name not in _BUILDERS:
        raise UnknownDetectorError(
            f"unknown detector backend {name!r}; registered: {', '.join(registered()) or 'none'}"
        )
    return _BUILDERS[name](cfg)
