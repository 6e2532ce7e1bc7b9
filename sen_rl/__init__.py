"""sen-rl: Symmetric Embedding Networks (Park et al., ICML 2022) for reinforcement learning."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sen-rl")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

from sen_rl.envs import ENV_SPECS, register_envs  # noqa: E402

register_envs()

ENV_IDS = tuple(ENV_SPECS)

__all__ = ["ENV_IDS", "__version__", "register_envs"]
