"""The one exception hierarchy of adclick.

Callers handle these differently: bad input is reported and dead-lettered, an
unavailable dependency is retried or reported as "not ready", a configuration
error stops a command at start with a message naming the setting.
"""

from __future__ import annotations


class AdclickError(Exception):
    """Root of every error adclick raises on purpose."""


class InvalidEventError(AdclickError):
    """An input event cannot be accepted; ``reason`` is a short, stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InvalidInputError(AdclickError):
    """A file or value an operator gave a command cannot be used; the message says where."""


class ConfigurationError(AdclickError):
    """A setting is missing or invalid."""


class DependencyUnavailableError(AdclickError):
    """A service adclick needs (database, broker) cannot be reached or started."""


class StackError(DependencyUnavailableError):
    """The local stack could not be installed, started or stopped."""
