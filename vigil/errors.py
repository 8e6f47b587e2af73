"""The one base class of "bad input" errors.

A config, calibration, video source, model or key file that is wrong is the user's to fix,
not a crash: the command line reports such an error in one line (the message names the
file, camera and field) and exits with code 2; a supervisor does not restart a worker that
failed on one. Every package's bad-input error derives from :class:`UserError`, so the
command line can catch them without importing the packages that define them.
"""

from __future__ import annotations

__all__ = ["UserError", "USER_ERRORS", "EXIT_BAD_INPUT"]


class UserError(Exception):
    """Bad input, reported in one line (subclasses also derive from ValueError or RuntimeError)."""


#: what the command line and the supervisor treat as bad input
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, PermissionError)

#: exit code of ``vigil`` (and of a worker process) that failed on bad input
EXIT_BAD_INPUT = 2
