"""The model: a GPT-2 decoder of a given `effdata.spec.ModelShape`, built from a config (no downloaded weights).

N, the size every law in docs/METHOD.md uses, is the number of parameters excluding the token and
position embeddings (the unembedding is tied to the token embedding, so it is excluded too).
It is counted from the built model. For a GPT-2 block stack N = n_layer·(12·d² + 13·d) + 2·d exactly
(12·d² from the matrices; 13·d from the biases and the two layer norms per block; 2·d from the
final layer norm), i.e. within 13/(12·d) of the 12·n_layer·d_model² of the paper (3.4 % at d = 32,
under 1 % from d = 128).

The shapes and ladders live in effdata.spec (no torch). Choices (see docs/notes/issue-3.md):
* dropout 0 everywhere: early stopping on held-out Python does the regularisation, as in the paper;
* attention through PyTorch SDPA; `use_cache=False` while training;
* context n_ctx = 128 on the CPU ladder (the paper's 2048 is not affordable on a CPU), 1024 on GPU;
* head dimension 16 on the CPU ladder, 64 on the GPU ladder.
"""
from __future__ import annotations

import torch
import transformers

from effdata.spec import ModelShape, get_shape


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
