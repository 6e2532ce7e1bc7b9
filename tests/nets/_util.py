"""Helpers shared by the network tests."""

import torch


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, the error measure of every equivariance check."""
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def eval_nets(nets, dtype=torch.float32):
    """Put the three networks of a DomainNets in eval mode and the given dtype."""
    for m in (nets.embedding, nets.encoder, nets.transition):
        m.to(dtype).eval()
    return nets
