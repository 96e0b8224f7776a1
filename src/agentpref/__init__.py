"""agentpref: preference data for LLM agents, and training on it."""

from agentpref.errors import (
    AgentprefError,
    BackendError,
    ConfigError,
    DataError,
    MissingDependencyError,
)

__version__ = "0.1.0"

__all__ = [
    "AgentprefError",
    "BackendError",
    "ConfigError",
    "DataError",
    "MissingDependencyError",
    "__version__",
]
