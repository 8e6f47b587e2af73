"""Detector backends, one module each; :mod:`vigil.detectors.registry` finds them with ``pkgutil``.

Adding a backend is one new file here (plus its test): a module with its pydantic config
(a :class:`~vigil.detectors.base.BackendConfig` with ``type: Literal["<name>"]`` and
``file_fields`` naming its path fields) and a module-level
``BACKEND = Backend(name="<name>", config=..., build=...)``. The registry then puts the
config into the ``DetectorConfig`` union, the "unknown detector type; known: ..." message
and ``registered()``, and the node config resolves its ``file_fields`` relative to the
config file. Modules whose names start with ``_`` are skipped. A backend imports heavy
optional dependencies (torch...) only inside ``build``.
"""
