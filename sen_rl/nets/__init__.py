"""Networks of the world model, one module per domain family.

Each domain module exposes ``build(variant, preset, obs_space, action_space) -> DomainNets``.
"""

import warnings

# escnn warns on import that py3nj (a Fortran package) is missing; only its SO(3)
# Clebsch-Gordan code uses it, and sen-rl's escnn networks use the 2D groups C4 and D4.
warnings.filterwarnings("ignore", message=r".*py3nj.*")
