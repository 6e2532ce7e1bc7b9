"""sen-rl: Symmetric Embedding Networks (Park et al., ICML 2022) for reinforcement learning."""

from __future__ import annotations

import os

# OpenMP threads that wait by spinning take the cores from each other whenever the machine runs
# other jobs: a training step on 2 threads of a busy 2-core machine ran 6-20x slower than on one
# (docs/benchmarks.md). Waiting passively costs nothing measurable there. OpenMP reads this when
# torch loads it, so it only acts if sen_rl is imported first; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from importlib.metadata import PackageNotFoundError, version  # noqa: E402

try:
    __version__ = version("sen-rl")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from sen_rl.domains import DOMAINS, ENV_IDS, domain_of, register_envs  # noqa: E402

register_envs()

# torch-backed parts load on first use, so that environment workers stay light
_LAZY = {
    "build_model": "sen_rl.model",
    "load_model": "sen_rl.model",
    "WorldModel": "sen_rl.model",
    "train": "sen_rl.train",
    "TrainConfig": "sen_rl.train",
    "collect": "sen_rl.data",
    "CollectConfig": "sen_rl.data",
    "RolloutDataset": "sen_rl.data",
    "SENWorldModel": "sen_rl.wrappers",
    "SENWorldModelVec": "sen_rl.wrappers",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "agents":  # sen_rl.agents.LatentMPC without a separate import
        return importlib.import_module("sen_rl.agents")
    raise AttributeError(f"module 'sen_rl' has no attribute {name!r}")


__all__ = ["DOMAINS", "ENV_IDS", "__version__", "domain_of", "register_envs", *_LAZY]
