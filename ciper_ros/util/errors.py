"""The root of every error a user can cause: printed as one line, never as a traceback.

Code raises a :class:`UserError` (or a subclass of :class:`CiperError`) for what the user
can fix: a bad path, a malformed file, a wrong parameter, a message that cannot be read.
Entry points (``ciper``, ``localize_node``) print those as ``ciper: error: ...`` and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class CiperError(Exception):
    """Root of the errors a user can cause and fix."""


class UserError(CiperError, ValueError):
    """A user-fixable bad value (a ValueError too, for callers that catch those)."""


class CorruptFileError(UserError):
    """A file exists but cannot be read as what it claims to be (truncated, not the format)."""
