"""Exceptions, grouped by who fixes the problem."""

from __future__ import annotations


class AgentprefError(Exception):
    """Base class for every error agentpref raises on purpose."""


class ConfigError(AgentprefError):
    """A recipe, option or argument is wrong; the user fixes it."""


class DataError(AgentprefError):
    """An input file or dataset is missing or malformed; the user fixes it."""


class MissingDependencyError(AgentprefError):
    """An optional library is not installed; the message names the pip extra."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'agentpref[{extra}]'"
        )
        self.package = package
        self.extra = extra


class BackendError(AgentprefError):
    """A model server or backend failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def require(module: str, extra: str):  # type: ignore[no-untyped-def]
    """Import an optional module or raise MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra) from exc
