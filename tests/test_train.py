"""Real training steps on a tiny model and synthetic tokens: each test a few seconds."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from effdata.spec import RunSpec, TrainSettings
from effdata.training.rundata import Batches, RunData, RunFailed
from effdata.training.schedule import kaplan_lr, lr_at, schedule_for
from effdata.training.train import train_run

V = 64
SIZE = "l2d32h2c32"  # 2 layers, width 32, context 32


def chain(n: int, seed: int, k: int = 3) -> np.ndarray:
    """A learnable Markov chain: each token has k likely successors (90 %), else a random token."""
    succ = np.random.default_rng(1234).integers(0, V, (V, k))  # the same chain for every split
    r = np.random.default_rng(seed)
    choice, noise, rand = r.integers(0, k, n), r.random(n), r.integers(0, V, n)
    out = np.empty(n, np.uint16)
    t = 0
    for i in range(n):
        t = succ[t, choice[i]] if noise[i] < 0.9 else rand[i]
        out[i] = t
    return out


VALID, TEST = chain(4096, 2), chain(4096, 3)


def data(n_train: int, vocab: int = V, tokenizer_dir=None) -> RunData:
    tr = chain(n_train, 1)
    return RunData(train=tr, train_chars=3 * n_train, valid=VALID, test=TEST, vocab_size=vocab,
                   tokenizer_dir=tokenizer_dir)


def settings(**kw) -> TrainSettings:
    base = dict(batch_size=16, precision="fp32", compile="off", max_epochs=200.0, min_steps=50, max_steps=300,
                evals_per_run=20, patience=3, resume_every_s=1e9)
    base.update(kw)
    return TrainSettings(**base)


def spec(mode="scratch", n_tokens=1500, seed=0, **kw) -> RunSpec:
    st = kw.pop("settings", settings())
    defaults = dict(data_tokens=n_tokens) if mode != "pretrain" else dict(token_budget=n_tokens)
    defaults.update(kw)
    return RunSpec(mode, SIZE, seed, "python" if mode != "pretrain" else "text", settings=st, **defaults)


def run(sp, d, tmp_path, name="run", **kw):
    return train_run(sp, d, tmp_path / name, threads=1, **kw)


# ------------------------------------------------------------------ schedule


def test_lr_schedule_pure_warmup_cosine():
    peak, w, total = 1e-3, 10, 100
    lrs = [lr_at(s, peak, w, total, 0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(peak / w)
    assert lrs[w - 1] == pytest.approx(peak) and max(lrs) == pytest.approx(peak)
    assert all(a < b for a, b in zip(lrs[:w - 1], lrs[1:w]))          # linear warm-up
    assert all(a >= b for a, b in zip(lrs[w:total], lrs[w + 1:total]))  # cosine decay
    assert lrs[total] == pytest.approx(0.1 * peak) and lrs[-1] == pytest.approx(0.1 * peak)
    assert lr_at(37, peak, w, total, 0.1) == lrs[37]  # pure


def test_schedule_short_runs_finish_warmup_and_kaplan_lr():
    for n_tokens in (500, 5_000, 50_000, 5_000_000):
        p = schedule_for(spec(n_tokens=n_tokens), n_tokens, 25_000)
        assert 1 <= p.warmup_steps < p.total_steps / 10
        assert p.eval_interval * 20 <= p.total_steps
    assert kaplan_lr(25_000) == pytest.approx(0.003239 - 0.0001395 * math.log(25_000))
    assert kaplan_lr(1e6) < kaplan_lr(1e4)
    p = schedule_for(spec("pretrain", n_tokens=16 * 32 * 100), 10**6, 25_000)
    assert p.total_steps == 100  # the token budget sets a pretraining run's length
    assert schedule_for(spec(settings=settings(lr=0.01)), 1500, 25_000).peak_lr == 0.01


def test_batches_cover_each_epoch_and_are_pure():
    toks = np.arange(1000, dtype=np.uint16)
    b = Batches(toks, 32, 5, seed=7)
    k = b.windows_per_epoch
    starts = np.concatenate([b.starts(s) for s in range(k)])  # k batches = 5 epochs
    for e in range(5):
        ep = np.sort(starts[e * k:(e + 1) * k])
        assert len(set(ep.tolist())) == k and np.all(np.diff(ep) == 32)  # a permutation of one epoch's windows
    assert np.array_equal(Batches(toks, 32, 5, seed=7).get(3), b.get(3))
    assert b.get(3).shape == (5, 33) and int(b.get(3).max()) < 1000


# ------------------------------------------------------------------ training


def test_loss_falls(tmp_path):
    m = run(spec(n_tokens=12_000, settings=settings(max_epochs=6.0, min_steps=60)), data(12_000), tmp_path)
    assert m["init_loss"] == pytest.approx(math.log(V), abs=0.1)
    assert m["valid_loss"] < m["init_loss"] - 1.0
    assert m["loss"] < m["init_loss"] - 1.0
    assert m["steps"] == m["total_steps"] and m["tokens_seen"] == m["steps"] * 16 * 32
    assert m["stop_reason"] == "epoch_budget" and m["length_search"] == "off"      # 6 epochs: 141 steps, no clamp
    assert m["chars_seen"] == pytest.approx(3 * m["tokens_seen"])
    assert m["flops"] > m["flops_6N"] == 6 * m["n_params"] * m["tokens_seen"]
    assert (tmp_path / "run" / "log.txt").read_text().count("valid") >= 20
    json.dumps(m)  # flat and serialisable
    parts = [m[f"time_{p}"] for p in ("setup", "compile", "steps", "evals", "test", "checkpoint", "other")]
    assert min(parts) >= 0 and m["time_steps"] > 0 and m["time_evals"] > 0 and m["time_test"] > 0
    assert sum(parts) == pytest.approx(m["wall_time"], rel=1e-9)  # every second of the run is somewhere
    assert m["step_tokens_per_s"] == pytest.approx(m["tokens_seen"] / m["time_steps"])
    assert m["time_compile"] == 0 and m["recompiles"] == 0


def test_early_stopping_reports_best_not_last(tmp_path):
    sp = spec(n_tokens=1000, settings=settings(max_steps=400))
    m = run(sp, data(1000), tmp_path)  # a tiny train set: valid plateaus, then rises
    assert m["stop_reason"] == "early_stop" and not m["best_is_last"]
    assert m["best_step"] < m["steps"] < m["total_steps"]
    losses = dict(m["evals"])
    assert m["valid_loss"] == pytest.approx(min(losses.values()), abs=1e-6)
    assert losses[m["best_step"]] == pytest.approx(m["valid_loss"], abs=1e-6)
    assert losses[m["steps"]] > m["valid_loss"]
    after = [s for s in losses if s > m["best_step"]]
    assert len(after) == 3  # patience
    # The learning curve: every evaluation, its held-out loss the one early stopping saw, the training loss
    # from the first window on, tokens = steps x batch x context.
    curve = m["curve"]
    assert [p["step"] for p in curve] == list(losses) and [p["valid_loss"] for p in curve] == list(losses.values())
    assert curve[0]["train_loss"] is None and all(p["train_loss"] > 0 for p in curve[1:])
    assert all(p["tokens"] == p["step"] * 16 * 32 and p["lr"] >= 0 for p in curve)


def test_same_seed_same_result(tmp_path):
    sp = spec(n_tokens=3000, settings=settings(max_steps=60, min_steps=60))
    a = run(sp, data(3000), tmp_path, "a")
    b = run(sp, data(3000), tmp_path, "b")
    assert a["evals"] == b["evals"] and a["loss"] == b["loss"] and a["valid_loss"] == b["valid_loss"]
    c = run(spec(n_tokens=3000, seed=1, settings=settings(max_steps=60, min_steps=60)), data(3000), tmp_path, "c")
    assert c["loss"] != a["loss"]


def test_resume_after_interrupt_gives_same_result(tmp_path):
    sp = spec(n_tokens=3000, settings=settings(max_steps=80, min_steps=80, resume_every_s=0.0))
    full = run(sp, data(3000), tmp_path, "full")
    calls = []

    def interrupt(info):
        calls.append(info)
        assert set(info) >= {"step", "total_steps", "train_loss", "valid_loss", "tokens_per_s"}
        if len(calls) == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(sp, data(3000), tmp_path, "cut", progress=interrupt)
    saved = torch.load(tmp_path / "cut" / "resume.pt", weights_only=False)
    assert saved["best_step"] == saved["step"] == 20 and saved["best_state"] is None  # the model, saved once
    saved_bytes = (tmp_path / "cut" / "resume.pt").stat().st_size
    resumed = run(sp, data(3000), tmp_path, "cut")
    assert "resumed at step 20" in (tmp_path / "cut" / "log.txt").read_text()
    for k in ("evals", "loss", "valid_loss", "best_step", "steps", "tokens_seen"):
        assert resumed[k] == full[k], k
    assert resumed["time_steps"] > 0 and resumed["wall_time"] > resumed["time_setup"]  # both processes count
    assert not (tmp_path / "cut" / "resume.pt").exists()
    # resume.pt's writes in the record, both processes': at every evaluation but the last (resume_every_s = 0)
    assert full["resume_writes"] == resumed["resume_writes"] == full["steps"] // full["eval_interval"]  # steps 0, 4, ..., 76
    assert resumed["resume_bytes"] >= saved_bytes > 0 and 0 < full["resume_write_s"] <= full["time_checkpoint"]


# ------------------------------------------------------------------ pretrain -> checkpoint -> fine-tune


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("pre")
    vocab = {"<|endoftext|>": 0, **{f"t{i}": i for i in range(1, V)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok_dir = root / "tokenizer"
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>").save_pretrained(tok_dir)
    sp = spec("pretrain", n_tokens=16 * 32 * 100, settings=settings(patience=100))
    m = train_run(sp, data(20_000, tokenizer_dir=tok_dir), root / "pre", threads=1)
    return m


def test_pretrain_checkpoint_loads_and_generates(pretrained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = Path(pretrained["checkpoint"])
    assert pretrained["mode"] == "pretrain" and pretrained["stop_reason"] == "token_budget"
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    tok = AutoTokenizer.from_pretrained(ckpt)
    assert tok.eos_token == "<|endoftext|>" and model.config.eos_token_id == 0
    ids = tok("t1 t2 t3", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 8)
    assert not (ckpt.parent / "resume.pt").exists()


def test_finetune_starts_from_pretrained_weights(pretrained, tmp_path):
    sp = spec("finetune", n_tokens=1500, init_from=pretrained["checkpoint"])
    m = run(sp, data(1500), tmp_path)
    assert m["evals"][0][0] == 0
    assert m["init_loss"] == pytest.approx(pretrained["valid_loss"], abs=1e-6)  # step 0 = the checkpoint's loss
    assert m["init_loss"] < math.log(V) - 1.0
    assert m["valid_loss"] <= m["init_loss"]
    assert m["init_from"] == pretrained["checkpoint"]


def test_finetune_rejects_mismatched_checkpoint(pretrained, tmp_path):
    with pytest.raises(RunFailed, match="vocabulary"):
        run(spec("finetune", init_from=pretrained["checkpoint"]), data(1500, vocab=V + 1), tmp_path, "v")
    wrong = RunSpec("finetune", "l1d32h2c32", 0, "python", data_tokens=1500, init_from=pretrained["checkpoint"],
                    settings=settings())
    with pytest.raises(RunFailed, match="shape"):
        run(wrong, data(1500), tmp_path, "s")
    with pytest.raises(RunFailed, match="not found"):
        run(spec("finetune", init_from=str(tmp_path / "nothing")), data(1500), tmp_path, "n")


# ------------------------------------------------------------------ bad input


def test_divergence_fails_clearly(tmp_path):
    with pytest.raises(RunFailed, match="diverged at step"):
        run(spec(n_tokens=3000, settings=settings(lr=50.0, grad_clip=0.0, max_steps=60, min_steps=60)),
            data(3000), tmp_path)


def test_pretraining_whose_target_loss_rises_is_not_a_divergence(tmp_path):
    # Pretraining on another distribution (a fixed cycle) makes the target (Markov chain) loss rise
    # far above its initial value; with the budget rule the run must finish, judged on its own loss.
    other = RunData(train=np.tile(np.arange(V, dtype=np.uint16), 60), train_chars=3 * V * 60, valid=VALID,
                    test=TEST, vocab_size=V)
    sp = spec("pretrain", n_tokens=16 * 32 * 80, settings=settings(pretrain_stop_on="budget", diverge_factor=1.01))
    metrics = run(sp, other, tmp_path)
    target_losses = [loss for _, loss in metrics["evals"]]
    assert max(target_losses) > 1.01 * target_losses[0]  # would have been called a divergence
    assert metrics["stop_reason"] == "token_budget" and metrics["best_is_last"]


def test_a_run_to_its_budget_evaluates_held_out_only_at_its_start_and_end(tmp_path):
    """Nothing is picked among a budget run's evaluation points, so only the first (the initial loss)
    and the last (the model it keeps) are evaluated; the training loss is still checked at every point."""
    sp = spec("pretrain", n_tokens=16 * 32 * 60, settings=settings(pretrain_stop_on="budget"))
    m = run(sp, data(20_000), tmp_path)
    assert [step for step, _ in m["evals"]] == [0, 60] and m["best_step"] == 60 == m["steps"]
    assert len(m["curve"]) == 21 and sum(p["valid_loss"] is not None for p in m["curve"]) == 2
    log = (tmp_path / "run" / "log.txt").read_text()
    assert log.count("valid - (evaluated at the end)") == 19
    with pytest.raises(RunFailed, match=r"diverged at step \d+: training loss"):
        run(spec("pretrain", n_tokens=16 * 32 * 60, settings=settings(pretrain_stop_on="budget", lr=50.0,
                                                                         grad_clip=0.0)), data(20_000), tmp_path, "d")


def test_bad_data_and_specs(tmp_path):
    with pytest.raises(RunFailed, match="at least"):
        run(spec(n_tokens=10), data(10), tmp_path)
    bad = data(1500)
    bad.train = bad.train.copy()
    bad.train[5] = V + 3
    with pytest.raises(RunFailed, match="outside the vocabulary"):
        run(spec(), bad, tmp_path)
    with pytest.raises(ValueError, match="token_budget"):
        RunSpec("pretrain", SIZE, 0, "text")
    with pytest.raises(RunFailed, match="init_from"):
        run(RunSpec("finetune", SIZE, 0, "python", data_chars=100, settings=settings()), data(1500), tmp_path)
    with pytest.raises(ValueError, match="unknown model size"):
        RunSpec("scratch", "huge", 0, "python", data_chars=100)
    with pytest.raises(ValueError, match="unknown key"):
        TrainSettings.from_dict({"batchsize": 3})


def test_spec_round_trip():
    sp = spec("finetune", init_from="/x/checkpoint", settings=settings(lr_scale=0.5))
    d = json.loads(json.dumps(sp.to_dict()))
    assert RunSpec.from_dict(d) == sp


def test_fused_linear_cross_entropy_matches_reference():
    import torch.nn.functional as F

    from effdata.training.step import LinearCrossEntropy

    torch.manual_seed(0)
    h = torch.randn(300, 16, requires_grad=True)
    W = torch.randn(50, 16, requires_grad=True)
    y = torch.randint(0, 50, (300,))
    ref = F.cross_entropy(h @ W.T, y)
    (2 * ref).backward()
    gh, gW = h.grad.clone(), W.grad.clone()
    h.grad = W.grad = None
    out = LinearCrossEntropy.apply(h, W, y, 64, None)  # 300 rows in chunks of 64 (the last one short)
    (2 * out).backward()
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(h.grad, gh, atol=1e-6) and torch.allclose(W.grad, gW, atol=1e-6)
    low = LinearCrossEntropy.apply(h, W, y, 64, torch.bfloat16)
    assert low.item() == pytest.approx(ref.item(), rel=1e-2)


def test_fused_evaluation_sum_matches_reference_and_survives_large_logits():
    import torch.nn.functional as F

    from effdata.training.step import linear_cross_entropy_sum

    torch.manual_seed(0)
    h, W, y = torch.randn(300, 16), torch.randn(50, 16), torch.randint(0, 50, (300,))
    ref = F.cross_entropy(h @ W.T, y, reduction="sum").double()
    assert linear_cross_entropy_sum(h, W, y, 64, None).item() == pytest.approx(ref.item(), rel=1e-6)
    assert linear_cross_entropy_sum(h, W, y, 64, torch.bfloat16).item() == pytest.approx(ref.item(), rel=1e-2)
    big = 30 * h  # logits beyond exp's fp32 range: the max-subtracted path takes over, still exact
    ref_big = F.cross_entropy(big @ W.T, y, reduction="sum").double()
    assert linear_cross_entropy_sum(big, W, y, 64, None).item() == pytest.approx(ref_big.item(), rel=1e-6)


def test_evaluate_equals_the_plain_forward_and_leaves_the_model_as_it_was():
    import torch.nn.functional as F

    from effdata.training.evaluate import evaluate
    from effdata.training.model import build_model

    torch.manual_seed(0)
    model = build_model(SIZE, V).train()
    model.config._attn_implementation = "eager"
    w = torch.from_numpy(VALID[:32 * 40 + 1].astype(np.int64))
    windows = w[:-1].reshape(40, 32), w[1:].reshape(40, 32)
    with torch.no_grad():
        logits = model(input_ids=windows[0]).logits
    ref = F.cross_entropy(logits.reshape(-1, V), windows[1].reshape(-1)).item()
    got = evaluate(model, VALID, 32, 32 * 40 + 1, 16, torch.device("cpu"))
    assert got == pytest.approx(ref, rel=1e-6)
    assert model.training and model.config._attn_implementation == "eager"
    assert evaluate(model, VALID, 32, 32 * 40 + 1, 16, torch.device("cpu"), torch.bfloat16, torch.bfloat16) == \
        pytest.approx(ref, rel=1e-2)


def test_compile_decision_by_measured_step_times(tmp_path):
    from effdata.spec import get_shape
    from effdata.training import steptimes
    from effdata.training.step import should_compile

    auto = TrainSettings(compile="auto", compile_min_steps=200)
    times = steptimes.StepTimes(eager_s=0.10, compiled_s=0.08, compile_s=10.0)  # 0.02 s a step saved
    assert should_compile(auto, 1000, times)             # 20 s saved > 1.5 x 10 s
    assert not should_compile(auto, 700, times)          # 14 s saved: not half again the compile time
    assert not should_compile(auto, 10**6, None)         # never measured: eager
    fast = steptimes.StepTimes(eager_s=1.0, compiled_s=0.5, compile_s=1.0)
    assert should_compile(auto, 200, fast) and not should_compile(auto, 199, fast)  # compile_min_steps
    assert should_compile(TrainSettings(compile="on"), 1, None)
    assert not should_compile(TrainSettings(compile="off"), 10**6, times)
    key = steptimes.step_key(torch.device("cpu"), get_shape("n25k"), 16, 2048, 1, "bf16")
    assert steptimes.load(key, tmp_path) is None
    steptimes.record(key, times, tmp_path)
    assert steptimes.load(key, tmp_path) == times
    assert steptimes.load(key.replace("batch 16", "batch 32"), tmp_path) is None


@pytest.mark.slow
def test_compiled_run_does_not_recompile_for_evaluation(tmp_path):
    """Evaluation runs eagerly (eval mode, inference mode, another batch): the compiled step is built once."""
    sp = spec(n_tokens=3000, settings=settings(compile="on", max_steps=30, min_steps=30))
    m = run(sp, data(3000), tmp_path)
    assert m["compiled"] and m["recompiles"] == 0 and m["time_compile"] > 0
    eager = run(spec(n_tokens=3000, settings=settings(max_steps=30, min_steps=30)), data(3000), tmp_path, "e")
    assert m["loss"] == pytest.approx(eager["loss"], rel=1e-3)


@pytest.mark.slow
def test_a_run_that_could_compile_measures_step_times_once_and_keeps_its_numbers(tmp_path, monkeypatch):
    from effdata.training import steptimes

    monkeypatch.setenv("EFFDATA_HOME", str(tmp_path / "home"))
    sp = spec(n_tokens=3000, settings=settings(compile="auto", compile_min_steps=30, max_steps=40, min_steps=40))
    m = run(sp, data(3000), tmp_path, "auto")
    assert "measured the step times" in (tmp_path / "auto" / "log.txt").read_text()
    assert (tmp_path / "home" / steptimes.FILE).exists() and m["time_compile"] > 0
    again = run(sp, data(3000), tmp_path, "again")  # the same decision, from the recorded times
    assert "measured the step times" not in (tmp_path / "again" / "log.txt").read_text()
    assert again["compiled"] == m["compiled"]
    ref = run(spec(n_tokens=3000, settings=settings(compile="on" if m["compiled"] else "off", max_steps=40,
                                                     min_steps=40)), data(3000), tmp_path, "ref")
    assert m["evals"] == ref["evals"] and m["loss"] == ref["loss"]  # measuring left the run's numbers alone


def test_default_precision_trains_and_is_reproducible(tmp_path):
    """precision="auto": bf16 with matmul attention on a CPU with fast bf16, else fp32."""
    sp = spec(n_tokens=12_000, settings=settings(precision="auto", max_epochs=6.0, min_steps=60, max_steps=140))
    a = run(sp, data(12_000), tmp_path, "a")
    b = run(sp, data(12_000), tmp_path, "b")
    assert a["dtype"] in ("fp32", "bf16")
    assert a["valid_loss"] < a["init_loss"] - 1.0
    assert a["evals"] == b["evals"] and a["loss"] == b["loss"]


# ------------------------------------------------------------------ behaviour kept through refactors

REFERENCE = json.loads((Path(__file__).parent / "data" / "train_reference.json").read_text())["runs"]


@pytest.mark.slow
def test_same_numbers_as_before_the_split(tmp_path):
    """The same seeds give the same losses as recorded (tests/data/train_reference.json says when and on what
    code): scratch, pretrain, a fine-tune of that pretraining, and a bf16 run. Bit-identical on the machine
    that recorded them; the tolerance only allows for another CPU's kernels."""
    got = {}
    got["scratch"] = run(spec("scratch", n_tokens=1500, seed=3), data(1500), tmp_path, "scratch")
    got["pretrain"] = run(spec("pretrain", n_tokens=16 * 32 * 60, seed=1, settings=settings(pretrain_stop_on="budget")),
                          data(30000), tmp_path, "pre")
    got["finetune"] = run(spec("finetune", n_tokens=1500, seed=2, init_from=got["pretrain"]["checkpoint"]),
                          data(1500), tmp_path, "ft")
    got["scratch_bf16"] = run(spec("scratch", n_tokens=3000, seed=5, settings=settings(precision="bf16", max_steps=120)),
                              data(3000), tmp_path, "bf16")
    for name, want in REFERENCE.items():
        rel = 1e-3 if name.endswith("bf16") else 2e-4
        m = got[name]
        assert (m["best_step"], m["steps"], m["tokens_seen"]) == (want["best_step"], want["steps"], want["tokens_seen"])
        assert m["loss"] == pytest.approx(want["loss"], rel=rel) and m["init_loss"] == pytest.approx(want["init_loss"], rel=rel)
        assert [s for s, _ in m["evals"]] == [s for s, _ in want["evals"]]
        assert [v for _, v in m["evals"]] == pytest.approx([v for _, v in want["evals"]], rel=rel)
