"""Networks of the world model, one module per domain family.

Each domain module exposes ``build(variant, preset, obs_space, action_space) -> DomainNets``.
"""
