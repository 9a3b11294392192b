"""The errors of the training package::

TrainingError
├── TrainingConfigError    a configuration value is impossible; the message names the field
└── ModelUnavailable       an optional model (the pre-trained encoder) is not installed
"""

from __future__ import annotations

__all__ = ["ModelUnavailable", "TrainingConfigError", "TrainingError"]


class TrainingError(Exception):
    """Root of every error the training package raises on purpose."""


class TrainingConfigError(TrainingError, ValueError):
    """A configuration value is impossible; the message names the field and the rule."""


class ModelUnavailable(TrainingError):
    """An optional model is not installed; the message says which package to install."""
