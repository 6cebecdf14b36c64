"""GPU benchmark: DreamDiffusion's three workloads, reference-style settings beside fast ones, in one run.

Measures, on whatever device it is given:

1. the bf16 matrix-product ceiling (the yardstick for MFU);
2. Stage A: one MSM pretraining step at the paper preset (152M encoder, batch 100, mask 0.75);
3. Stage B: one fine-tuning step of an SD 1.5-shaped UNet (860M) conditioned on the paper encoder, with the
   paper's trainable set (encoder + mapper + every UNet ``attn2`` and the ``norm2`` before it);
4. generation: 512 px images from EEG, reference-style (PLMS 250 steps, fp32, classic attention, no CFG)
   and fast (DPM-Solver++ 25 steps with CFG, bf16, SDPA, channels-last, ``torch.compile``), with a check that
   the compiled path's images match the plain path's for the same seed.

Weights are random: this measures speed and memory, not quality. FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` on one step of each workload (so MFU is on counted FLOPs).

    python benchmarks/gpu_bench.py --json results.json             # on a GPU
    python benchmarks/gpu_bench.py --device cpu --tiny              # small shapes, any machine (tested)

Each variant runs in its own try block: an out-of-memory variant is reported as such, the rest go on.

``torch.compile`` variants run last, each in a child process of this script (``--child KEY``) with a hard
wall-clock limit (``--compile-timeout-s``, default 240 s, and never past ``--budget-s``): a child that runs over is
killed with its whole process group (inductor's compile workers too) and its row says ``timed out after N s
(PHASE)``, PHASE being the step it was in (``start`` = importing and building the workload's shared models,
``setup`` = the variant's own models, ``compile`` = the first call, ``steady`` = timed calls, ``flops``). Just before its limit the child prints every thread's Python stack to stderr (``faulthandler``), so a
stall shows where it is. Rows report the first call (compile included) apart from the steady-state step time.
On a GPU an inductor smoke test (a small MLP, forward and backward) runs first; if it stalls, it is retried with
``TORCHINDUCTOR_COMPILE_THREADS=1`` and, if that works, the variants run so too. ``--compile-debug`` sets
``TORCH_LOGS=recompiles,graph_breaks,perf_hints`` for the children; ``--compile-backend eager|aot_eager`` splits a
stall between dynamo, AOT autograd and inductor. The one command for a GPU session is ``benchmarks/device_run.sh``.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _load_model_file():
    """Load the pure model file on its own, so the benchmark needs nothing else of the package."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "dreamdiffusion", "models",
                        "eeg_encoder.py")
    spec = importlib.util.spec_from_file_location("dreamdiffusion_eeg_encoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_m = _load_model_file()
PRESETS, EEGEncoder, MaskedSignalModel, EEGBlock = _m.PRESETS, _m.EEGEncoder, _m.MaskedSignalModel, _m.Block


@dataclass
class Row:
    workload: str
    variant: str
    unit: str
    throughput: float | None = None  # items per second (samples, images)
    seconds_per_item: float | None = None
    step_s: float | None = None
    compile_s: float | None = None  # first call, compile included (torch.compile variants)
    peak_mem_gib: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- utilities
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


TINY = {"on": False}  # --tiny: one warm-up and one timed call, enough to prove the script runs


def timed(fn, device, warmup: int, iters: int) -> float:
    """Mean seconds per call after ``warmup`` untimed calls (compilation happens there)."""
    if TINY["on"]:
        warmup, iters = min(warmup, 1), 1
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def count_flops(fn) -> float:
    """FLOPs of one call, counted on the eager graph: modules compiled in place (regional compilation) run eagerly
    here, where the counter sees every operation."""
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_ceiling(device, tiny: bool) -> float:
    n = 256 if tiny else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    s = timed(lambda: a @ b, device, warmup=3, iters=10 if not tiny else 3)
    return 2 * n**3 / s / 1e12


def fill(row: Row, step_s: float, items: int, flops: float | None, ceiling: float, device) -> Row:
    row.step_s = step_s
    row.throughput = items / step_s
    row.seconds_per_item = step_s / items
    row.peak_mem_gib = peak_gib(device)
    if flops:
        row.tflops = flops / step_s / 1e12
        row.mfu = row.tflops / ceiling if ceiling else None
    return row


DEADLINE = {"t": float("inf")}  # monotonic time after which remaining variants are skipped
COMPILE = {"on": True, "backend": "inductor"}
# child: the key of the one variant a child process runs (None in the parent); select: key substrings to run;
# isolate: run compile variants in child processes (deferred to the end); workload: the bench function running.
RUN = {"child": None, "select": None, "isolate": True, "deferred": [], "workload": None, "sleep_s": 0.0}


def variant_key(row: Row) -> str:
    """A stable name of a variant (workload + variant text), usable on a command line."""
    return re.sub(r"[^a-z0-9]+", "-", f"{RUN['workload']} {row.variant}".lower()).strip("-")


def phase(name: str) -> None:
    """Tell the parent which step a child is in (its timeout row names it)."""
    if RUN["child"] is not None:
        print(f"@@phase {name}", flush=True)
        if name == "compile" and RUN["sleep_s"]:  # --child-sleep-s: tests the timeout path
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like a compile worker
            print(f"@@grandchild {helper.pid}", flush=True)
            time.sleep(RUN["sleep_s"])


def compile_options(mode: str | None = None) -> dict:
    """``torch.compile`` keywords: static shapes on the chosen backend (modes are inductor's)."""
    if COMPILE["backend"] == "inductor":
        return {"mode": mode, "dynamic": False}
    return {"backend": COMPILE["backend"], "dynamic": False}


def compiled(model, mode: str | None = None):
    """The whole model under ``torch.compile`` (:func:`compile_options`)."""
    return torch.compile(model, **compile_options(mode))


def compile_regions(model: nn.Module, kinds: tuple) -> int:
    """Regional compilation: each submodule of one of ``kinds`` compiled in place (``nn.Module.compile``), the rest
    eager. Repeated blocks of one shape share one compiled graph, so the compiler builds a block's kernels once
    instead of the whole model's (run 4: the whole MSM model was still compiling after 150-180 s). Returns how many
    modules were compiled."""
    n = 0
    for module in model.modules():
        if isinstance(module, kinds):
            module.compile(**compile_options())
            n += 1
    return n


def first_call(fn, device) -> float:
    """Seconds of one call (for a compiled callable: compile plus run)."""
    phase("compile")
    t0 = time.perf_counter()
    fn()
    sync(device)
    s = time.perf_counter() - t0
    phase("steady")
    return s


def build(factory, device):
    """Build a module straight on ``device`` (fast random init on a GPU); fall back to CPU init + move.

    Moved to ``device`` afterwards as well: a tensor made from numpy (the encoder's sine-cosine positions) stays on
    the CPU under a device context, and the first forward on a GPU then fails on mixed devices (the H200 run of
    2026-12-04 did, in every generation variant)."""
    try:
        with torch.device(device):
            module = factory()
    except Exception:
        module = factory()
    return module.to(device)


def run_variant(rows: list, make_row, fn, compiles: bool = False):
    """Run one variant; an OOM or other failure becomes a row with the reason, not a crash."""
    key = variant_key(make_row())
    if RUN["child"] is not None:  # a child runs its one variant and nothing else
        if key == RUN["child"]:
            phase("setup")
            _run_here(rows, make_row, fn, key)
        return
    if RUN["select"] and not any(s in key for s in RUN["select"]):
        return
    if time.monotonic() > DEADLINE["t"]:
        row = make_row()
        row.note = "skipped: time budget spent"
        rows.append(row)
        print(format_row(row), flush=True)
        return
    if compiles and not COMPILE["on"]:
        row = make_row()
        row.note = "skipped: torch.compile off (--no-compile; the default on CPU)"
        rows.append(row)
        print(format_row(row), flush=True)
        return
    if compiles and RUN["isolate"]:
        RUN["deferred"].append((RUN["workload"], key, make_row))
        print(f"(deferred to a child process with a time limit: {key})", flush=True)
        return
    _run_here(rows, make_row, fn, key)


def _run_here(rows, make_row, fn, key):
    torch._dynamo.reset()
    t0 = time.perf_counter()
    try:
        rows.append(fn())
    except torch.OutOfMemoryError:
        row = make_row()
        row.note = "out of memory"
        rows.append(row)
    except Exception as exc:  # keep measuring the others
        row = make_row()
        row.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        rows.append(row)
    rows[-1].extra["wall_s"] = round(time.perf_counter() - t0, 1)  # setup + compile + timing + FLOP count
    rows[-1].extra["key"] = key
    print(format_row(rows[-1]), flush=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- smoke test
def bench_smoke(device, tiny, ceiling, rows):
    """torch.compile of a small MLP, forward and backward: does the compiler work here at all, and how fast?"""

    def make_row():
        return Row("torch.compile smoke test", "MLP 1024-4096-1024, batch 256, forward + backward", "steps/s")

    def go():
        torch.manual_seed(0)
        mlp = build(lambda: nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 1024)), device)
        x = torch.randn(256, 1024, device=device)
        cmlp = compiled(mlp)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                cmlp(x).float().square().mean().backward()

        compile_s = first_call(step, device)
        s = timed(step, device, warmup=1, iters=5)
        row = fill(make_row(), s, 1, None, ceiling, device)
        row.compile_s = compile_s
        return row

    run_variant(rows, make_row, go, compiles=True)


# ----------------------------------------------------------------------------------------------- Stage A
def bench_msm(device, tiny, ceiling, rows, batch_sizes):
    preset = "tiny" if tiny else "paper"
    n_times = 512

    def variant(name, batch, dtype_autocast, fused, compile_model, regional=False):
        def make_row():
            return Row("MSM pretraining step", f"{name}, batch {batch}", "samples/s")

        def go():
            reset_peak(device)
            torch.manual_seed(0)
            model = build(lambda: MaskedSignalModel.from_preset(preset, mask_ratio=0.75), device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, betas=(0.9, 0.95), weight_decay=0.05,
                                    fused=fused if device.type == "cuda" else False)
            if regional:  # the transformer blocks only (encoder and decoder)
                step_model, n_regions = model, compile_regions(model, (EEGBlock,))
            else:
                step_model, n_regions = (compiled(model) if compile_model else model), None
            eeg = torch.randn(batch, 128, n_times, device=device)

            def step():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype_autocast):
                    loss, _, _ = step_model(eeg)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.8)
                opt.step()
                opt.zero_grad(set_to_none=True)

            compile_s = first_call(step, device) if compile_model else None
            s = timed(step, device, warmup=2, iters=2 if tiny else 20)
            phase("flops")
            flops = count_flops(lambda: model(eeg)[0].backward())
            opt.zero_grad(set_to_none=True)
            row = fill(make_row(), s, batch, flops, ceiling, device)
            row.compile_s = compile_s
            if n_regions is not None:
                row.extra["compiled_blocks"] = n_regions
            return row

        run_variant(rows, make_row, go, compiles=compile_model)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    variant("reference-style fp32, foreach AdamW", batch_sizes[0], False, False, False)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variant("bf16 + SDPA + fused AdamW", batch_sizes[0], True, True, False)
    for b in batch_sizes:
        variant("bf16 + SDPA + fused AdamW + torch.compile", b, True, True, True)
    variant("bf16 + SDPA + fused AdamW + regional torch.compile (each block)", batch_sizes[0], True, True, True,
            regional=True)


# ----------------------------------------------------------------------------------------------- Stage B
class TokenMapper(nn.Module):
    """The paper's mapper: 1x1 convs over the token axis (N -> 64 -> 77), then Linear to the UNet width."""

    def __init__(self, n_tokens, width, cross_dim):
        super().__init__()
        self.seq = nn.Sequential(nn.Conv1d(n_tokens, 64, 1, bias=True), nn.Conv1d(64, 77, 1, bias=True))
        self.proj = nn.Linear(width, cross_dim)

    def forward(self, tokens):
        return self.proj(self.seq(tokens))


def sd15_unet(tiny):
    from diffusers import UNet2DConditionModel

    if tiny:
        return UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                    cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8)
    # SD 1.5's UNet: 320/640/1280/1280, 2 layers per block, 8 heads, context 768.
    return UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)


def sd_vae(tiny):
    from diffusers import AutoencoderKL

    if tiny:
        return AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                             up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                             sample_size=16)
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, sample_size=512,
                         layers_per_block=2)


def set_attention(unet, classic: bool):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor() if classic else AttnProcessor2_0())


def paper_trainable(unet):
    """Every cross-attention (attn2) and the norm before it, in the UNet only."""
    names = []
    for name, p in unet.named_parameters():
        train = ".attn2." in name or ".norm2." in name and "transformer_blocks" in name
        p.requires_grad_(train)
        if train:
            names.append(name)
    return names


def bench_stageb(device, tiny, ceiling, rows, batches):
    enc_preset = PRESETS["tiny" if tiny else "paper"]
    enc_kwargs = {k: enc_preset[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
    latent = 8 if tiny else 64

    def variant(name, batch, classic, bf16, compile_unet, checkpointing, frozen_bf16=False, regional=False):
        def make_row():
            return Row("Stage B step (paper trainable set)", f"{name}, batch {batch}", "images/s")

        def go():
            from diffusers import DDPMScheduler

            reset_peak(device)
            torch.manual_seed(0)
            unet = build(lambda: sd15_unet(tiny), device)
            set_attention(unet, classic)
            paper_trainable(unet)
            if frozen_bf16:  # frozen weights in bf16 halve their memory; trainable ones stay fp32
                for p in unet.parameters():
                    if not p.requires_grad:
                        p.data = p.data.to(torch.bfloat16)
            encoder = build(lambda: EEGEncoder(**enc_kwargs), device)
            mapper = build(lambda: TokenMapper(encoder.num_tokens, enc_kwargs["embed_dim"],
                                               unet.config.cross_attention_dim), device)
            if checkpointing:
                unet.enable_gradient_checkpointing()
                encoder.gradient_checkpointing = True
            if not classic:
                unet.to(memory_format=torch.channels_last)
            params = [p for m in (unet, encoder, mapper) for p in m.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=5.3e-5, fused=device.type == "cuda")
            sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
            n_regions = None
            if regional:  # the UNet's transformer and ResNet blocks, each on its own; the loop between them eager
                from diffusers.models.attention import BasicTransformerBlock
                from diffusers.models.resnet import ResnetBlock2D

                unet_call, n_regions = unet, compile_regions(unet, (BasicTransformerBlock, ResnetBlock2D))
            else:
                unet_call = compiled(unet) if compile_unet else unet
            eeg = torch.randn(batch, 128, 512, device=device)
            latents = torch.randn(batch, 4, latent, latent, device=device)
            t = torch.randint(0, 1000, (batch,), device=device)

            def loss_fn():
                noise = torch.randn_like(latents)
                noisy = sched.add_noise(latents, noise, t)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    cond = mapper(encoder(eeg))
                    pred = unet_call(noisy, t, encoder_hidden_states=cond).sample
                return F.mse_loss(pred.float(), noise)

            def step():
                loss_fn().backward()
                torch.nn.utils.clip_grad_norm_(params, 0.5)
                opt.step()
                opt.zero_grad(set_to_none=True)

            compile_s = first_call(step, device) if compile_unet else None
            s = timed(step, device, warmup=2, iters=2 if tiny else 10)
            phase("flops")
            unet_call = unet  # count on the eager graph
            flops = count_flops(lambda: loss_fn().backward())
            opt.zero_grad(set_to_none=True)
            row = fill(make_row(), s, batch, flops, ceiling, device)
            row.compile_s = compile_s
            row.extra["trainable_params_M"] = sum(p.numel() for p in params) / 1e6
            if n_regions is not None:
                row.extra["compiled_blocks"] = n_regions
            return row

        run_variant(rows, make_row, go, compiles=compile_unet)

    b_small, b_big = batches
    variant("reference-style fp32, classic attention", b_small, True, False, False, False)
    variant("bf16 autocast + SDPA + channels-last", b_big, False, True, False, False)
    variant("bf16 + SDPA + channels-last + torch.compile", b_big, False, True, True, False)
    variant("bf16 + SDPA + channels-last + regional torch.compile (each block)", b_big, False, True, True, False,
            regional=True)
    # The 24 GB recipe: frozen weights in bf16, gradient checkpointing, batch 8: peak memory is the number.
    variant("24 GB recipe: bf16 frozen weights + grad checkpointing", 8 if not tiny else 2, False, True, False, True,
            frozen_bf16=True)


# ----------------------------------------------------------------------------------------------- generation
def bench_generation(device, tiny, ceiling, rows, gen_batch, baseline_steps, fast_steps):
    from diffusers import DPMSolverMultistepScheduler, PNDMScheduler

    enc_preset = PRESETS["tiny" if tiny else "paper"]
    enc_kwargs = {k: enc_preset[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
    latent = 8 if tiny else 64
    torch.manual_seed(0)
    unet32 = build(lambda: sd15_unet(tiny), device).eval()
    vae32 = build(lambda: sd_vae(tiny), device).eval()
    encoder32 = build(lambda: EEGEncoder(**enc_kwargs), device).eval()
    mapper32 = build(lambda: TokenMapper(encoder32.num_tokens, enc_kwargs["embed_dim"],
                                         unet32.config.cross_attention_dim), device)
    null_cond = torch.zeros(1, 77, unet32.config.cross_attention_dim, device=device)
    sched_kw = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

    @torch.no_grad()
    def generate(unet, vae, encoder, mapper, eeg, steps, scheduler, guidance, dtype, seed=0):
        scheduler.set_timesteps(steps, device=device)
        cond = mapper(encoder(eeg.to(dtype)))
        if guidance > 1.0:
            cond = torch.cat([null_cond.to(dtype).expand(len(eeg), -1, -1), cond])
        g = torch.Generator(device=device).manual_seed(seed)
        lat = torch.randn(len(eeg), 4, latent, latent, generator=g, device=device, dtype=torch.float32)
        lat = lat * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            inp = torch.cat([lat, lat]) if guidance > 1.0 else lat
            inp = scheduler.scale_model_input(inp, t).to(dtype)
            eps = unet(inp, t, encoder_hidden_states=cond).sample.float()
            if guidance > 1.0:
                u, c = eps.chunk(2)
                eps = u + guidance * (c - u)
            lat = scheduler.step(eps, t, lat).prev_sample
        img = vae.decode((lat / 0.18215).to(dtype)).sample
        return ((img.float() + 1) / 2).clamp(0, 1)

    def flops_of(unet, vae, enc, mapper, eeg, steps, sched, guidance, dtype):
        return count_flops(lambda: generate(unet, vae, enc, mapper, eeg, steps, sched, guidance, dtype))

    def row(name, batch):
        return Row("generation 512 px" if not tiny else "generation (tiny)", f"{name}, batch {batch}", "images/s")

    # Reference style: fp32, classic attention, PLMS 250 steps, no guidance.
    def baseline():
        reset_peak(device)
        set_attention(unet32, classic=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        eeg = torch.randn(gen_batch, 128, 512, device=device)
        sched = PNDMScheduler(skip_prk_steps=True, **sched_kw)
        s = timed(lambda: generate(unet32, vae32, encoder32, mapper32, eeg, baseline_steps, sched, 1.0,
                                   torch.float32), device, warmup=0 if not tiny else 1, iters=1)
        # Count one and two steps: their difference is one UNet step; the rest (encoder, VAE decode) is once.
        f1 = flops_of(unet32, vae32, encoder32, mapper32, eeg, 1, sched, 1.0, torch.float32)
        f2 = flops_of(unet32, vae32, encoder32, mapper32, eeg, 2, sched, 1.0, torch.float32)
        flops = f1 + (baseline_steps - 1) * (f2 - f1)
        torch.backends.cuda.matmul.allow_tf32 = True
        set_attention(unet32, classic=False)
        r = fill(row(f"reference-style fp32, classic attention, PLMS {baseline_steps} steps, no CFG", gen_batch),
                 s, gen_batch, flops, ceiling, device)
        r.note = "FLOPs: 1 and 2 counted steps extrapolated to the step count"
        return r

    run_variant(rows, lambda: row("reference-style", gen_batch), baseline)

    # Fast: bf16 weights, SDPA, channels-last, DPM-Solver++, CFG 7.5-like guidance on the learned null.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    unet = build(lambda: sd15_unet(tiny), device).to(dtype).eval()
    unet.load_state_dict({k: v.to(dtype) for k, v in unet32.state_dict().items()})
    vae = build(lambda: sd_vae(tiny), device).to(dtype).eval()
    vae.load_state_dict({k: v.to(dtype) for k, v in vae32.state_dict().items()})
    encoder = encoder32.to(dtype)
    mapper = mapper32.to(dtype)
    set_attention(unet, classic=False)
    unet.to(memory_format=torch.channels_last)
    vae.to(memory_format=torch.channels_last)
    dpm = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", **sched_kw)
    images_plain = {}

    for batch in (gen_batch, 1):
        eeg = torch.randn(batch, 128, 512, device=device, generator=torch.Generator(device).manual_seed(batch))

        def plain(batch=batch, eeg=eeg):
            reset_peak(device)
            images_plain[batch] = generate(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            s = timed(lambda: generate(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype), device,
                      warmup=1, iters=2 if tiny else 3)
            flops = flops_of(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            return fill(row(f"bf16 + SDPA + channels-last, DPM-Solver++ {fast_steps} steps, CFG", batch), s, batch,
                        flops, ceiling, device)

        run_variant(rows, lambda batch=batch: row("bf16 plain", batch), plain)

    # torch.compile of the UNet (the VAE decode runs once per image: not worth its compile time);
    # CUDA graphs ("reduce-overhead") where kernel launches dominate (batch 1).
    for batch, mode in ((gen_batch, "default"), (1, "reduce-overhead")):
        eeg = torch.randn(batch, 128, 512, device=device, generator=torch.Generator(device).manual_seed(batch))

        def fast(batch=batch, eeg=eeg, mode=mode):
            reset_peak(device)
            # the plain path's images for this seed (a child process has not run the plain variant)
            ref = images_plain.get(batch)
            if ref is None:
                ref = generate(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            cunet = compiled(unet, mode=None if mode == "default" else mode)
            cuda_graphs = mode == "reduce-overhead" and device.type == "cuda"

            def unet_step(*a, **k):  # CUDA graphs: mark each step, copy the output out of the graph's pool
                if cuda_graphs:
                    torch.compiler.cudagraph_mark_step_begin()
                out = cunet(*a, **k)
                return type(out)(sample=out.sample.clone()) if cuda_graphs else out

            call = lambda: generate(unet_step, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            compile_s = first_call(call, device)
            s = timed(call, device, warmup=2, iters=2 if tiny else 5)
            img = call()
            phase("flops")
            flops = flops_of(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            r = fill(row(f"+ torch.compile ({mode}), DPM-Solver++ {fast_steps} steps, CFG", batch), s, batch, flops,
                     ceiling, device)
            r.compile_s = compile_s
            diff = (img - ref).abs()
            r.extra["max_abs_diff_vs_plain"] = float(diff.max())
            r.extra["mean_abs_diff_vs_plain"] = float(diff.mean())
            return r

        run_variant(rows, lambda batch=batch: row(f"+ torch.compile ({mode})", batch), fast, compiles=True)


# ----------------------------------------------------------------------------------------------- children
# Order in which deferred compile variants run: the smoke test, then the generation goals, MSM, Stage B (the
# longest compile: forward and backward of the whole UNet) last.
CHILD_ORDER = ("smoke", "generation", "msm", "stageb")


def run_child(args, workload: str, key: str, make_row, limit: float, extra_env: dict) -> Row:
    """Run one variant in a child process (own process group) for at most ``limit`` seconds."""
    fd, tmp_json = tempfile.mkstemp(prefix="gpu_bench_child_", suffix=".json")
    os.close(fd)
    os.unlink(tmp_json)
    cmd = [sys.executable, "-u", os.path.abspath(__file__), "--device", args.device, "--only", workload,
           "--child", key, "--json", tmp_json, "--compile-backend", args.compile_backend,
           "--child-deadline", repr(time.time() + limit), "--child-sleep-s", str(args.child_sleep_s),
           "--matmul-ceiling", str(RUN["ceiling"])] + (["--tiny"] if args.tiny else [])
    env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
    if args.compile_debug:
        env["TORCH_LOGS"] = "recompiles,graph_breaks,perf_hints"
    state = {"phase": "start", "times": {}}
    t0 = time.monotonic()
    # own process group (killed as one), same session (so whatever runs this script can still end it)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, process_group=0)
    RUN["current_child"] = (proc, make_row, state)

    def read():
        for line in proc.stdout:
            if line.startswith("@@phase "):
                state["phase"] = line.split(None, 1)[1].strip()
                state["times"][state["phase"]] = round(time.monotonic() - t0, 1)
            elif line.startswith("@@grandchild "):
                state["grandchild"] = int(line.split()[1])
            print(f"    [child {proc.pid}] {line}", end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers
        except ProcessLookupError:
            pass
        rc = proc.wait()
    RUN["current_child"] = None
    reader.join(timeout=10)
    wall = round(time.monotonic() - t0, 1)
    row = None
    if not timed_out and rc == 0 and os.path.exists(tmp_json):
        with open(tmp_json) as fh:
            found = json.load(fh)["rows"]
        if found:
            row = Row(**found[0])
    if os.path.exists(tmp_json):
        os.unlink(tmp_json)
    if row is None:
        row = make_row()
        if timed_out:
            row.note = f"timed out after {limit:.0f} s ({state['phase']})"
        else:
            row.note = f"failed: child exited with status {rc} in phase {state['phase']} (see its stderr above)"
    row.extra.update({"child_pid": proc.pid, "child_wall_s": wall, "phase_started_s": state["times"],
                      **({"grandchild_pid": state["grandchild"]} if "grandchild" in state else {}),
                      **({"env": extra_env} if extra_env else {})})
    return row


def run_deferred(args, rows) -> None:
    """The compile variants, one child each, smoke test first; stop starting new ones when the budget is spent."""
    order = args.child_order.split(",")
    deferred = sorted(RUN["deferred"], key=lambda d: order.index(d[0]) if d[0] in order else len(order))
    extra_env: dict = {}
    for workload, key, make_row in deferred:
        remaining = DEADLINE["t"] - time.monotonic()
        if workload != "smoke" and RUN.get("inductor_broken"):
            row = make_row()
            row.note = "skipped: the inductor smoke test did not finish (see above)"
        elif remaining < (1 if args.tiny else 45):
            row = make_row()
            row.note = "skipped: time budget spent"
        else:
            limit = min(args.compile_timeout_s, remaining)
            if workload == "smoke":
                limit = min(limit, args.smoke_timeout_s)
            print(f"(child: {key}, limit {limit:.0f} s)", flush=True)
            row = run_child(args, workload, key, make_row, limit, extra_env)
            if workload == "smoke" and row.throughput is None:
                rows.append(row)
                print(format_row(row), flush=True)
                # a stalled or failed compile: try once more with inductor compiling in this process only
                extra_env = {"TORCHINDUCTOR_COMPILE_THREADS": "1"}
                remaining = DEADLINE["t"] - time.monotonic()
                print("(smoke test again with TORCHINDUCTOR_COMPILE_THREADS=1)", flush=True)
                row = run_child(args, workload, key, make_row, min(limit, max(remaining, 1)), extra_env)
                if row.throughput is None:
                    RUN["inductor_broken"] = True
        rows.append(row)
        print(format_row(row), flush=True)


# ----------------------------------------------------------------------------------------------- report
def format_row(r: Row) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    return (f"| {r.workload} | {r.variant} | {f(r.throughput, '.2f')} {r.unit} | {f(r.seconds_per_item, '.4f')} s/item "
            f"| {f(r.compile_s, '.1f')} s | {f(r.peak_mem_gib, '.1f')} GiB | {f(r.tflops, '.1f')} | "
            f"{f(r.mfu and 100 * r.mfu, '.1f')} % | {r.note} {json.dumps(r.extra) if r.extra else ''} |")


WORKLOADS = ("msm", "generation", "stageb")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="small shapes: checks the script on any machine")
    ap.add_argument("--only", default="msm,stageb,generation", help="comma list of workloads (msm, generation, "
                    "stageb; smoke: the inductor smoke test alone)")
    ap.add_argument("--select", default=None,
                    help="comma list of substrings: run only variants whose key (printed in each row) holds one")
    ap.add_argument("--json", default=None, help="write results here (rewritten after every row)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants (default on CPU)")
    ap.add_argument("--compile", action="store_true", help="run the torch.compile variants on a CPU too")
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="no variant starts after this many seconds; compile children are cut off at it")
    ap.add_argument("--compile-timeout-s", type=float, default=240.0,
                    help="hard wall-clock limit of each torch.compile variant's child process")
    ap.add_argument("--smoke-timeout-s", type=float, default=90.0, help="limit of the inductor smoke test")
    ap.add_argument("--no-smoke", action="store_true", help="skip the inductor smoke test (default off on CPU)")
    ap.add_argument("--compile-debug", action="store_true",
                    help="children run with TORCH_LOGS=recompiles,graph_breaks,perf_hints")
    ap.add_argument("--compile-backend", default="inductor", choices=("inductor", "aot_eager", "eager"),
                    help="torch.compile backend of the compile variants (eager/aot_eager: to locate a stall)")
    ap.add_argument("--child-order", default=",".join(CHILD_ORDER),
                    help="order of the workloads' compile children (the budget may not reach the last)")
    ap.add_argument("--in-process", action="store_true",
                    help="run compile variants in this process, without a time limit (the old behaviour)")
    # used by the parent to start a child; --child-sleep-s is for the test of the timeout path
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-deadline", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-sleep-s", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--matmul-ceiling", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    tiny = args.tiny
    only = set(args.only.split(","))
    unknown = only - set(WORKLOADS) - {"smoke"}
    if unknown:
        ap.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}; choose from msm, generation, stageb, smoke")
    COMPILE["on"] = not args.no_compile and (device.type == "cuda" or args.compile or args.child is not None)
    COMPILE["backend"] = args.compile_backend
    TINY["on"] = tiny
    RUN.update(child=args.child, select=args.select.split(",") if args.select else None,
               isolate=not args.in_process, sleep_s=args.child_sleep_s)
    if args.child is not None and args.child_deadline:
        # print where a stall is (every thread's stack) shortly before the parent kills this process
        left = args.child_deadline - time.time()
        faulthandler.dump_traceback_later(max(0.5, left - min(10.0, 0.2 * left)), exit=False)
    DEADLINE["t"] = time.monotonic() + args.budget_s
    rows: list[Row] = []
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "tiny": tiny, "date": time.strftime("%Y-%m-%d"),
            "compile_backend": args.compile_backend, "compile_timeout_s": args.compile_timeout_s,
            "argv": sys.argv[1:] if argv is None else list(argv)}
    if args.child is not None and args.matmul_ceiling:
        ceiling = args.matmul_ceiling  # the parent measured it
    else:
        ceiling = matmul_ceiling(device, tiny)
    RUN["ceiling"] = ceiling
    meta["matmul_ceiling_tflops"] = ceiling
    if args.child is None:
        print(f"device {meta['device']}, torch {torch.__version__}; matrix-product ceiling {ceiling:.1f} TFLOP/s",
              flush=True)
        print("| workload | variant | throughput | time per item | first call (compile) | peak memory | TFLOP/s | MFU "
              "| note |\n|---|---|---|---|---|---|---|---|---|", flush=True)

    def save():
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as fh:
                json.dump({"meta": meta, "rows": [asdict(r) for r in rows]}, fh, indent=1)
            os.replace(tmp, args.json)

    class SavingList(list):
        def append(self, item):
            super().append(item)
            save()

    rows = SavingList()

    def on_term(signum, _frame):  # e.g. `timeout` in device_run.sh: end the running child, keep what was measured
        current = RUN.get("current_child")
        if current is not None:
            proc, make_row, state = current
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            row = make_row()
            row.note = f"stopped by signal {signum} (the run's hard limit) in phase {state['phase']}"
            row.extra.update({"child_pid": proc.pid, "phase_started_s": state["times"]})
            list.append(rows, row)
        meta["stopped_by_signal"] = signum
        save()
        print(f"stopped by signal {signum}; {len(rows)} rows saved", flush=True)
        os._exit(128 + signum)

    if args.child is None:
        signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    smoke = ("smoke" in only or (device.type == "cuda" and not args.no_smoke and args.compile_backend == "inductor"
                                 and args.child is None and RUN["isolate"]))
    if smoke:
        RUN["workload"] = "smoke"
        bench_smoke(device, tiny, ceiling, rows)
    if "msm" in only:
        RUN["workload"] = "msm"
        bench_msm(device, tiny, ceiling, rows, batch_sizes=(4, 8) if tiny else (100, 256))
    if "generation" in only:
        RUN["workload"] = "generation"
        bench_generation(device, tiny, ceiling, rows, gen_batch=2 if tiny else 5,
                         baseline_steps=4 if tiny else 250, fast_steps=3 if tiny else 25)
    if "stageb" in only:
        RUN["workload"] = "stageb"
        bench_stageb(device, tiny, ceiling, rows, batches=(2, 2) if tiny else (8, 25))
    meta["eager_part_s"] = round(time.monotonic() - t_start, 1)
    if RUN["deferred"]:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"eager variants done in {meta['eager_part_s']} s; now the torch.compile variants, one child process "
              f"each, limit {args.compile_timeout_s:.0f} s", flush=True)
        run_deferred(args, rows)
    meta["total_s"] = round(time.monotonic() - t_start, 1)
    save()
    return rows


if __name__ == "__main__":
    main()
