"""The model ladder: named GPT-2 decoder shapes, built from a config (no downloaded weights).

N, the size every law in METHOD.md uses, is the number of parameters excluding the token and
position embeddings (the unembedding is tied to the token embedding, so it is excluded too).
It is counted from the built model. For a GPT-2 block stack N = n_layer·(12·d² + 13·d) + 2·d exactly
(12·d² from the matrices; 13·d from the biases and the two layer norms per block; 2·d from the
final layer norm), i.e. within 13/(12·d) of the 12·n_layer·d_model² of the paper (3.4 % at d = 32,
under 1 % from d = 128).

Choices (see docs/notes/issue-3.md):
* dropout 0 everywhere: early stopping on held-out Python does the regularisation, as in the paper;
* attention through PyTorch SDPA; `use_cache=False` while training;
* context n_ctx = 128 on the CPU ladder (the paper's 2048 is not affordable on a CPU), 1024 on GPU;
* head dimension 16 on the CPU ladder, 64 on the GPU ladder.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import transformers


@dataclass(frozen=True)
class ModelShape:
    name: str
    n_layer: int
    d_model: int
    n_head: int
    n_ctx: int = 128

    def __post_init__(self) -> None:
        if min(self.n_layer, self.d_model, self.n_head, self.n_ctx) < 1:
            raise ValueError(f"model shape {self.name!r}: every dimension must be >= 1: {self}")
        if self.d_model % self.n_head:
            raise ValueError(f"model shape {self.name!r}: d_model {self.d_model} is not a multiple of n_head {self.n_head}")

    @property
    def n_params(self) -> int:
        """Exact non-embedding parameter count of the GPT-2 stack this shape builds."""
        d = self.d_model
        return self.n_layer * (12 * d * d + 13 * d) + 2 * d

    @property
    def n_params_approx(self) -> int:
        """12·n_layer·d_model², the paper's approximation of N."""
        return 12 * self.n_layer * self.d_model**2

    def to_dict(self) -> dict:
        return asdict(self)


def _ladder(*rows: tuple[str, int, int, int, int]) -> dict[str, ModelShape]:
    return {name: ModelShape(name, l, d, h, c) for name, l, d, h, c in rows}


# CPU ladder: about 25K to 1.2M non-embedding parameters (1.7 decades), head dim 16, context 128.
CPU_LADDER: dict[str, ModelShape] = _ladder(
    ("n25k", 2, 32, 2, 128),     # N = 25,472
    ("n50k", 2, 48, 3, 128),     # N = 56,640
    ("n100k", 2, 64, 4, 128),    # N = 100,096
    ("n200k", 4, 64, 4, 128),    # N = 200,064
    ("n500k", 5, 96, 6, 128),    # N = 559,392
    ("n1m", 6, 128, 8, 128),     # N = 1,189,888
)

# GPU ladder toward the paper's sizes: head dim 64, context 1024 (GPT-2 small and medium at the top).
GPU_LADDER: dict[str, ModelShape] = _ladder(
    ("g5m", 6, 256, 4, 1024),     # N ≈ 4.7M
    ("g20m", 6, 512, 8, 1024),    # N ≈ 18.9M
    ("g50m", 12, 576, 9, 1024),   # N ≈ 47.8M
    ("g85m", 12, 768, 12, 1024),  # N ≈ 85M  (GPT-2 small's stack)
    ("g300m", 24, 1024, 16, 1024),  # N ≈ 302M (GPT-2 medium's stack)
)

# Shape variants at about equal N (≈ 200K, the size of n200k) for shape studies (Tay et al. 2021):
# from wide-shallow (1 layer of width 128) to deep-narrow (16 layers of width 32).
SHAPES: dict[str, ModelShape] = _ladder(
    ("s200k-l1", 1, 128, 8, 128),   # N = 198,528
    ("s200k-l2", 2, 92, 4, 128),    # N = 205,712
    ("s200k-l4", 4, 64, 4, 128),    # N = 200,064 (the shape of n200k)
    ("s200k-l8", 8, 44, 4, 128),    # N = 190,520
    ("s200k-l16", 16, 32, 2, 128),  # N = 203,328
)

ALL_SHAPES: dict[str, ModelShape] = {**CPU_LADDER, **GPU_LADDER, **SHAPES}

_CUSTOM = re.compile(r"^l(\d+)d(\d+)h(\d+)(?:c(\d+))?$")


def get_shape(name: str) -> ModelShape:
    """A ladder or shape-variant name, or a custom shape written `l<n_layer>d<d_model>h<n_head>[c<n_ctx>]`
    (e.g. `l3d48h3c64`; context 128 when omitted)."""
    if isinstance(name, ModelShape):
        return name
    if name in ALL_SHAPES:
        return ALL_SHAPES[name]
    m = _CUSTOM.match(name)
    if m:
        l, d, h, c = (int(g) if g else None for g in m.groups())
        return ModelShape(name, l, d, h, c or 128)
    raise ValueError(
        f"unknown model size {name!r}: use one of {', '.join(ALL_SHAPES)} "
        "or a custom shape like 'l4d64h4' / 'l4d64h4c256'"
    )


def gpt2_config(shape: ModelShape, vocab_size: int, eos_token_id: int | None = None) -> transformers.GPT2Config:
    if vocab_size < 2:
        raise ValueError(f"vocab_size must be >= 2, got {vocab_size}")
    return transformers.GPT2Config(
        vocab_size=int(vocab_size),
        n_positions=shape.n_ctx,
        n_embd=shape.d_model,
        n_layer=shape.n_layer,
        n_head=shape.n_head,
        n_inner=None,  # 4·d_model
        activation_function="gelu_pytorch_tanh",  # GPT-2's gelu_new as one fused op
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        summary_first_dropout=0.0,
        use_cache=False,
        tie_word_embeddings=True,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )


def build_model(shape: ModelShape | str, vocab_size: int, eos_token_id: int | None = None) -> transformers.GPT2LMHeadModel:
    """A freshly initialised GPT-2 (GPT-2's init, std 0.02), fp32, SDPA attention, tied embeddings.

    Seed torch before calling for a reproducible init. Checks N against the shape's formula.
    """
    shape = get_shape(shape) if isinstance(shape, str) else shape
    config = gpt2_config(shape, vocab_size, eos_token_id)
    model = transformers.GPT2LMHeadModel._from_config(config, attn_implementation="sdpa", torch_dtype=torch.float32) \
        if _from_config_takes_dtype() else transformers.GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
    model = model.float()
    n = non_embedding_params(model)
    if n != shape.n_params:
        raise AssertionError(f"built {shape.name}: N = {n}, expected {shape.n_params} from the shape")
    return model


def _from_config_takes_dtype() -> bool:
    import inspect

    try:
        sig = inspect.signature(transformers.GPT2LMHeadModel._from_config)
    except (TypeError, ValueError):
        return False
    return "torch_dtype" in sig.parameters


def non_embedding_params(model: torch.nn.Module) -> int:
    """N: parameters excluding the token and position embeddings and the (tied) unembedding.

    Counted over unique parameter tensors, so a tied lm_head is never counted twice; an untied
    lm_head is excluded too, as the paper excludes the unembedding.
    """
    excluded: set[int] = set()
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        if module is not None:
            excluded.update(id(p) for p in module.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    if wpe is not None:
        excluded.update(id(p) for p in wpe.parameters())
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in excluded:
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def total_params(model: torch.nn.Module) -> int:
    """All unique parameters (embeddings included, tied weights once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def shape_of(model: transformers.PreTrainedModel) -> tuple[int, int, int, int, int]:
    """(n_layer, d_model, n_head, n_ctx, vocab_size) read from a model's config."""
    c = model.config
    return (c.n_layer, c.n_embd, c.n_head, c.n_positions, c.vocab_size)


def ladder_table(ladder: dict[str, ModelShape] | None = None) -> str:
    """Markdown table of a ladder (CPU ladder and shape variants by default)."""
    ladder = ladder if ladder is not None else {**CPU_LADDER, **SHAPES}
    rows = ["| name | n_layer | d_model | n_head | n_ctx | N (non-embedding) | 12·L·d² |", "|---|---|---|---|---|---|---|"]
    for s in ladder.values():
        rows.append(f"| {s.name} | {s.n_layer} | {s.d_model} | {s.n_head} | {s.n_ctx} | {s.n_params:,} | {s.n_params_approx:,} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(ladder_table())
    print()
    print(ladder_table(GPU_LADDER))
