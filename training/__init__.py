"""Split federated LoRA on CPU: torch only, never web3 (agents/ joins it to the ledger).

- :mod:`training.models`, :mod:`training.split`, :mod:`training.transport`: the split model
  (device embedding + head, server encoder + peft LoRA) and the byte-counting link;
- :mod:`training.federated`: rounds, data-size-weighted FedAvg, heterogeneous ranks, B-only;
- :mod:`training.channel`: path loss, correlated Rayleigh fading, rate, delay, energy;
- :mod:`training.privacy`: channel noise as a Gaussian mechanism, and its RDP accountant;
- :mod:`training.scheduler`: the Lyapunov drift-plus-penalty device/bandwidth scheduler;
- :mod:`training.job`: all of them together, round by round;
- :mod:`training.threads`: the intra-op thread count a trainer sets (one for small models);
- :mod:`training.tasks`: synthetic sensor and channel-prediction tasks, Dirichlet split.
"""

from __future__ import annotations

from .config import ChannelConfig, EncoderConfig, FederatedConfig, LoraSettings
from .errors import ModelUnavailable, TrainingConfigError, TrainingError
from .federated import FederatedTrainer, RoundResult
from .job import JobRound, ScheduledJob
from .privacy import RdpAccountant, noise_multiplier_from_snr
from .scheduler import LyapunovScheduler, Schedule, SchedulerConfig

__all__ = [
    "ChannelConfig",
    "EncoderConfig",
    "FederatedConfig",
    "FederatedTrainer",
    "JobRound",
    "LoraSettings",
    "LyapunovScheduler",
    "ModelUnavailable",
    "RdpAccountant",
    "RoundResult",
    "Schedule",
    "ScheduledJob",
    "SchedulerConfig",
    "TrainingConfigError",
    "TrainingError",
    "noise_multiplier_from_snr",
]
