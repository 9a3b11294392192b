"""The errors of the agents package::

AgentError
└── ScenarioError     a scenario file is unreadable or invalid: file, field, expectation
"""

from __future__ import annotations

__all__ = ["AgentError", "ScenarioError"]


class AgentError(Exception):
    """Root of every error the agents package raises on purpose."""


class ScenarioError(AgentError, ValueError):
    """A scenario file is invalid; the message names the file, the field and what was expected."""
