"""The Reacher latent probe: its read-out targets from hand-made states, and its R^2 on known cases."""

import numpy as np
import pytest

from benchmarks.reacher_probe import READOUTS, arm_readouts, cv_r2


def test_readouts_from_a_hand_made_state():
    s = np.zeros((1, 12))
    s[0, 0:2] = [3.1, 0.5]  # previous joint angles
    s[0, 4:6] = [-3.1, 0.2]  # current: joint 1 crossed +-pi by 0.083 rad, joint 2 moved by -0.3
    r = arm_readouts(s)
    assert list(r) == list(READOUTS)
    np.testing.assert_allclose(r["joint 1 angle"], [[np.cos(-3.1), np.sin(-3.1)]])
    np.testing.assert_allclose(r["joint 2 angle"], [[np.cos(0.2), np.sin(0.2)]])
    np.testing.assert_allclose(r["joint 1 motion"], [[2 * np.pi - 6.2]], atol=1e-12)  # wrapped, not -6.2
    np.testing.assert_allclose(r["joint 2 motion"], [[-0.3]], atol=1e-12)


def test_readouts_refuse_other_states():
    with pytest.raises(ValueError, match="REACHER_STATE_LAYOUT"):
        arm_readouts(np.zeros((4, 10)))


def test_cv_r2_is_one_for_a_linear_code_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = np.stack([x @ rng.normal(size=6) + 1.5, x[:, 0] - 2 * x[:, 3]], 1)
    assert cv_r2(x, y) > 0.999
    noise = rng.normal(size=(400, 1))
    assert cv_r2(x, noise) < 0.05  # held-out folds: a fit to noise does not carry over
    half = x[:, :1] + rng.normal(size=(400, 1))  # signal and noise of equal variance: R^2 about 0.5
    assert 0.4 < cv_r2(x, half) < 0.6


def test_cv_r2_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="at least"):
        cv_r2(np.zeros((5, 2)), np.zeros((5, 1)))
