"""The errors of the agents package::

AgentError
├── ScenarioError     a scenario file is unreadable or invalid: file, field, expectation
├── RunDirError       a run directory cannot be claimed or resumed (in use, not empty, ...)
├── ExperimentError   an experiment file (sweep) or a sweep directory is invalid
└── RootUnavailable   the root chain's node stopped answering: the run cannot go on
"""

from __future__ import annotations

__all__ = ["AgentError", "ExperimentError", "RootUnavailable", "RunDirError", "ScenarioError"]


class AgentError(Exception):
    """Root of every error the agents package raises on purpose."""


class ScenarioError(AgentError, ValueError):
    """A scenario file is invalid; the message names the file, the field and what was expected."""


class ExperimentError(AgentError, ValueError):
    """An experiment file or a sweep's output is unusable; the message names the file, the
    key and what to do (an unknown scenario field comes with the nearest known one)."""


class RunDirError(AgentError):
    """A run directory cannot be used: another run holds it, it holds other files, it is
    a file, or it holds no run that can be resumed; the message says which."""


class RootUnavailable(AgentError):
    """The root chain did not answer: rounds can be neither posted nor confirmed, so the
    run stops (a region's node that stops answering is only that region's outage)."""
