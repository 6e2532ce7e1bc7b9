"""Networks of the world model, one module per domain family.

Each domain module exposes ``build(variant, preset, obs_space, action_space, **net_kwargs) -> DomainNets``;
the group actions they use live in :mod:`sen_rl.groups`, the escnn helpers of the
equivariant ones in :mod:`sen_rl.nets.escnn_utils`.
"""
