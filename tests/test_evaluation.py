"""mean ± sample std over seeds: the one definition the CLI, benchmarks and book use."""

from __future__ import annotations

import math

import pytest

from ugach_core.evaluation import mean_std


def test_mean_std_is_the_sample_std() -> None:
    # (0.20, 0.22, 0.27): mean 0.23; squared deviations 9e-4, 1e-4, 16e-4 sum to 26e-4;
    # / (n - 1) = 13e-4 -> s = 0.0360555...  (the population std would be 0.0294392)
    m, s = mean_std([0.20, 0.22, 0.27])
    assert m == pytest.approx(0.23)
    assert s == pytest.approx(math.sqrt(13e-4))


def test_one_seed_has_no_spread_and_none_is_an_error() -> None:
    m, s = mean_std([0.5])
    assert m == 0.5 and math.isnan(s)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])
