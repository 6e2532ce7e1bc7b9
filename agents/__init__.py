"""Agents that use SEN world models (installed as ``sen_rl.agents``).

Planners over the learned latent dynamics and stable-baselines3 agents on SEN latents
belong here; none has landed yet.
"""
