"""Range checks of every numeric field of UGACHConfig: a bad value is a ValueError that
names the field, raised when the config is made (not rounds later inside training)."""

from __future__ import annotations

import math

import pytest

from ugach_core.config import (PRESETS, UGACHConfig, fast, get_preset, paper, paper_text, smoke,
                               tuned)

# (field, bad value): the ranges are those written next to each field below
BAD = [
    ("bits", 0), ("bits", -8), ("bits", 4097), ("bits", 8.0), ("bits", True),  # int in [1, 4096]
    ("hidden", 0), ("hidden", -1), ("hidden", 32.5),  # int >= 1
    ("init_std", 0.0), ("init_std", -0.1), ("init_std", math.nan),  # > 0, finite
    ("k_img", -1), ("k_txt", -1), ("k_img", 2.5),  # int >= 0
    ("margin", -1.0), ("margin", math.nan), ("margin", math.inf),  # >= 0, finite
    ("weight_decay", -0.01), ("weight_decay", math.nan),  # >= 0, finite
    ("pretrain_epochs", -1), ("rounds", -1), ("rounds", 2.5), ("g_epochs", -1),  # int >= 0
    ("d_epochs", 0),  # int >= 1: a round without a D step trains nothing
    ("pretrain_lr", 0.0), ("pretrain_lr", -1e-3), ("pretrain_lr", math.nan),  # > 0, finite
    ("d_lr", 0.0), ("g_lr", -1e-2), ("g_lr", math.inf),
    ("pretrain_batch", 0), ("d_batch", 0), ("g_batch", -4),  # int >= 1
    ("pool_fraction", 0.0), ("pool_fraction", 1.5), ("pool_fraction", math.nan),  # (0, 1]
    ("pool_min", 0), ("n_samples", 0), ("eval_every", 0),  # int >= 1
    ("temperature", 0.0), ("temperature", -1.0),  # > 0, finite
    ("val_fraction", -0.1), ("val_fraction", 1.0),  # [0, 1): 1 would leave nothing to fit
]


@pytest.mark.parametrize("field, value", BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_out_of_range_field_is_a_valueerror_naming_it(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be"):
        UGACHConfig(**{field: value})


def test_both_graph_sides_empty_is_refused():
    with pytest.raises(ValueError, match="k_img and k_txt must not both be 0"):
        UGACHConfig(k_img=0, k_txt=0)


# edge values that are allowed, each with what it means
EDGES = [
    ("rounds", 0),  # pretrained D only (the "no graph" ablation)
    ("pretrain_epochs", 0),  # no pretraining
    ("g_epochs", 0),  # G frozen (chapter 9)
    ("val_fraction", 0.0),  # no validation split: the last D is kept
    ("pool_fraction", 1.0),  # the pool is the whole training set
    ("margin", 0.0), ("weight_decay", 0.0), ("k_img", 0),
    ("bits", 1), ("bits", 4096),
]


@pytest.mark.parametrize("field, value", EDGES, ids=[f"{f}={v}" for f, v in EDGES])
def test_edge_values_are_accepted(field, value):
    assert getattr(UGACHConfig(**{field: value}), field) == value


@pytest.mark.parametrize("make", [paper, paper_text, fast, tuned, smoke])
@pytest.mark.parametrize("bits", [16, 32, 64, 128])
def test_every_preset_passes_its_own_checks(make, bits):
    assert make(bits).bits == bits


def test_smoke_mode_presets_pass_the_checks(monkeypatch):
    monkeypatch.setenv("UGACH_SMOKE", "1")
    for name in PRESETS:
        assert get_preset(name, 16).hidden == 64


def test_replace_and_from_dict_are_checked_too():
    with pytest.raises(ValueError, match="^d_lr must be"):
        fast(32).replace(d_lr=0.0)
    with pytest.raises(ValueError, match="^rounds must be"):
        UGACHConfig.from_dict({**fast(32).to_dict(), "rounds": -3})


def test_a_config_is_labelled_with_its_preset_and_one_built_by_hand_is_custom():
    """The label printed with every run: a preset's name only for that preset's values."""
    assert all(get_preset(name, 32).preset == name for name in PRESETS)
    assert UGACHConfig().preset == "custom" and UGACHConfig() != fast(32).replace(preset="custom")


@pytest.mark.parametrize("make", [paper, paper_text, fast, smoke])
def test_printed_config_fits_the_page_and_lists_every_field(make):
    """``print(cfg)`` (the top of every run and chapter) comes in lines of at most 88
    characters, the chapters' page, and still names every field with its value."""
    cfg = make(128)
    text = str(cfg)
    assert max(len(ln) for ln in text.splitlines()) <= 88 and text.count("\n") >= 3
    flat = " ".join(ln.strip() for ln in text.splitlines())
    items = [f"{k}={v}" for k, v in cfg.to_dict().items() if k != "extra"]
    assert flat == f"UGACHConfig({', '.join(items)})"
