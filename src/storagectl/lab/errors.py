"""The one exception the lab raises: its message is one sentence naming the fix."""

from __future__ import annotations


class LabError(Exception):
    """A lab operation cannot go on; ``str(err)`` tells the user what to do about it."""
