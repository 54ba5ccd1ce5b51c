"""The ladder: N counted from the built model, shapes, loadability."""
import math
import re

import pytest
import torch

from effdata.spec import ALL_SHAPES, CPU_LADDER, GPU_LADDER, SHAPES, WIDTH_LADDER, ModelShape, get_shape
from effdata.training.model import build_model, non_embedding_params, total_params


def _count_by_name(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters()
               if not any(k in n for k in ("wte", "wpe", "lm_head")))


@pytest.mark.parametrize("name", list(CPU_LADDER) + list(WIDTH_LADDER) + list(SHAPES) + ["l1d16h2c32"])
def test_n_counted_from_model(name):
    shape = get_shape(name)
    model = build_model(shape, vocab_size=256)
    n = non_embedding_params(model)
    assert n == _count_by_name(model) == shape.n_params
    approx = 12 * shape.n_layer * shape.d_model**2
    # biases and layer norms: 13·d per block + 2·d for the final norm, i.e. (13 + 2/L)/(12·d) over 12·L·d²
    assert approx < n <= approx * (1 + (13 + 2 / shape.n_layer) / (12 * shape.d_model)) + 1e-6
    if shape.d_model >= 32:
        assert abs(n / approx - 1) < 0.05
    # embeddings excluded: total = N + token + position embeddings (unembedding tied, counted once)
    assert total_params(model) == n + 256 * shape.d_model + shape.n_ctx * shape.d_model


def test_gpu_ladder_n_formula():
    for s in GPU_LADDER.values():
        assert abs(s.n_params / s.n_params_approx - 1) < 0.01
    model = build_model(GPU_LADDER["g5m"], vocab_size=512)  # the smallest GPU size builds on CPU quickly
    assert non_embedding_params(model) == GPU_LADDER["g5m"].n_params


def test_ladder_spans_and_shape_variants():
    ns = [s.n_params for s in CPU_LADDER.values()]
    assert ns == sorted(ns)
    assert math.log10(ns[-1] / ns[0]) >= 1.5
    assert max(s.n_params for s in GPU_LADDER.values()) > 1e8
    families: dict[str, list] = {}
    for name, shape in SHAPES.items():
        families.setdefault(name.split("-")[0], []).append(shape)
    assert set(families) == {"s200k", "s50k"}
    for shapes in families.values():
        variants = [s.n_params for s in shapes]
        assert max(variants) / min(variants) < 1.1  # about equal N
        layers = [s.n_layer for s in shapes]
        assert min(layers) == 1 and max(layers) >= 16  # wide-shallow to deep-narrow
    for s in ALL_SHAPES.values():
        assert s.d_model % s.n_head == 0


def test_the_width_ladder_changes_only_the_width():
    """The width ladder (issue 23): sizes at one depth and one head width over >= 1.5 decades of N, each
    about the N its name says; w25k … w1m evenly spaced in log N, w7k (v4's extension downward) below
    them; its w25k, w50k, w100k are v2's shapes, so the studies share them."""
    shapes = list(WIDTH_LADDER.values())
    ns = [s.n_params for s in shapes]
    assert len(shapes) == 7 and ns == sorted(ns) and ns[0] < 10_000 and ns[-1] >= 1_000_000
    assert math.log10(ns[-1] / ns[1]) >= 1.5 and math.log10(WIDTH_LADDER["w500k"].n_params / ns[0]) >= 1.5
    assert {s.n_layer for s in shapes} == {2} and {s.d_model // s.n_head for s in shapes} == {16}
    assert {s.n_ctx for s in shapes} == {128}
    ratios = [b / a for a, b in zip(ns[1:], ns[2:])]
    assert max(ratios) / min(ratios) < 1.3                     # about evenly spaced in log N
    for name, s in WIDTH_LADDER.items():
        nominal = float(name[1:-1]) * (1e3 if name.endswith("k") else 1e6)
        assert abs(s.n_params / nominal - 1) < 0.15, name
    for w, n in (("w25k", "n25k"), ("w50k", "n50k"), ("w100k", "n100k")):
        assert (WIDTH_LADDER[w].n_layer, WIDTH_LADDER[w].d_model) == (CPU_LADDER[n].n_layer, CPU_LADDER[n].d_model)
    assert all(get_shape(name) == s for name, s in WIDTH_LADDER.items())


def _nominal(name: str) -> float:
    """s200k-l4 -> 200,000; s1.5m-l2 -> 1,500,000."""
    m = re.fullmatch(r"s(\d+(?:\.\d+)?)([km])-l(\d+)", name)
    assert m, f"shape variant {name!r} is not named s<N>[k|m]-l<layers>"
    return float(m[1]) * {"k": 1e3, "m": 1e6}[m[2]]


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_shape_variant_is_within_a_few_percent_of_its_nominal_n(name):
    """A shape study compares shapes at equal N: each variant's N within 5.1 % of the N its name gives,
    and the layer count its name gives."""
    shape = SHAPES[name]
    assert abs(shape.n_params / _nominal(name) - 1) < 0.051
    assert shape.n_layer == int(name.rsplit("-l", 1)[1])


def test_the_nominal_n_check_can_fail():
    assert abs(ModelShape("s50k-l2", 2, 48, 3).n_params / _nominal("s50k-l2") - 1) > 0.051   # 56,640


def test_config_tied_no_dropout_sdpa():
    model = build_model(get_shape("l2d32h2c32"), vocab_size=100)
    assert model.lm_head.weight is model.transformer.wte.weight
    c = model.config
    assert c.resid_pdrop == c.embd_pdrop == c.attn_pdrop == 0.0
    assert c._attn_implementation == "sdpa"
    assert c.vocab_size == 100 and c.n_positions == 32
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_same_seed_same_init():
    torch.manual_seed(3)
    a = build_model(get_shape("n25k"), 64)
    torch.manual_seed(3)
    b = build_model(get_shape("n25k"), 64)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_bad_shapes():
    with pytest.raises(ValueError, match="unknown model size"):
        get_shape("n3b")
    with pytest.raises(ValueError, match="multiple of n_head"):
        ModelShape("bad", 2, 30, 4)
    with pytest.raises(ValueError):
        build_model(get_shape("n25k"), vocab_size=1)
    assert get_shape("l3d48h3c64") == ModelShape("l3d48h3c64", 3, 48, 3, 64)
    assert get_shape("l3d48h3").n_ctx == 128
