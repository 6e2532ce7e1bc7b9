"""The motion-at-init measure: frames without motion and the relative change, on hand-made cases."""

import numpy as np
import pytest
import torch

from benchmarks.motion_at_init import relative_change, without_motion


def test_without_motion_repeats_the_newest_frame():
    obs = np.arange(2 * 2 * 2 * 6).reshape(2, 2, 2, 6)  # two frames of 3 channels, oldest first
    still = without_motion(obs, 2)
    np.testing.assert_array_equal(still[..., :3], obs[..., 3:])
    np.testing.assert_array_equal(still[..., 3:], obs[..., 3:])
    with pytest.raises(ValueError, match="stack"):
        without_motion(obs, 1)
    with pytest.raises(ValueError, match="stack"):
        without_motion(obs[..., :5], 2)


def test_relative_change_on_known_cases():
    a = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # each row 1 from the mean
    assert relative_change(a, a) == 0.0
    assert relative_change(a, a + torch.tensor([0.0, 0.5])) == pytest.approx(0.5)  # moved by half the spread
    assert relative_change(a, torch.zeros_like(a)) == pytest.approx(1.0)  # every row to the mean
