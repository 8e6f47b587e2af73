"""The error every model loader and detector backend raises for a model it cannot use.

It lives in :mod:`vigil.models` (the lowest layer that reads models) so that the readers of
model metadata here and the detector backends above raise the same class.
"""

from __future__ import annotations

from vigil.errors import UserError

__all__ = ["ModelError"]


class ModelError(UserError, ValueError):
    """A detector cannot be built from its config and model (unknown backend, a class name
    the model lacks, a model without the expected metadata...)."""
