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
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
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
PRESETS, EEGEncoder, MaskedSignalModel = _m.PRESETS, _m.EEGEncoder, _m.MaskedSignalModel


@dataclass
class Row:
    workload: str
    variant: str
    unit: str
    throughput: float | None = None  # items per second (samples, images)
    seconds_per_item: float | None = None
    step_s: float | None = None
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
    with FlopCounterMode(display=False) as counter:
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
COMPILE = {"on": True}


def run_variant(rows: list, make_row, fn, compiles: bool = False):
    """Run one variant; an OOM or other failure becomes a row with the reason, not a crash."""
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
    torch._dynamo.reset()
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
    print(format_row(rows[-1]), flush=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- Stage A
def bench_msm(device, tiny, ceiling, rows, batch_sizes):
    preset = "tiny" if tiny else "paper"
    n_times = 512

    def variant(name, batch, dtype_autocast, fused, compile_model):
        def make_row():
            return Row("MSM pretraining step", f"{name}, batch {batch}", "samples/s")

        def go():
            reset_peak(device)
            torch.manual_seed(0)
            model = MaskedSignalModel.from_preset(preset, mask_ratio=0.75).to(device).train()
            opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, betas=(0.9, 0.95), weight_decay=0.05,
                                    fused=fused if device.type == "cuda" else False)
            step_model = torch.compile(model, dynamic=False) if compile_model else model
            eeg = torch.randn(batch, 128, n_times, device=device)

            def step():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype_autocast):
                    loss, _, _ = step_model(eeg)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.8)
                opt.step()
                opt.zero_grad(set_to_none=True)

            flops = count_flops(lambda: model(eeg)[0].backward())
            opt.zero_grad(set_to_none=True)
            s = timed(step, device, warmup=3 if compile_model else 2, iters=2 if tiny else 20)
            return fill(make_row(), s, batch, flops, ceiling, device)

        run_variant(rows, make_row, go, compiles=compile_model)

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    variant("reference-style fp32, foreach AdamW", batch_sizes[0], False, False, False)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variant("bf16 + SDPA + fused AdamW", batch_sizes[0], True, True, False)
    for b in batch_sizes:
        variant("bf16 + SDPA + fused AdamW + torch.compile", b, True, True, True)


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

    def variant(name, batch, classic, bf16, compile_unet, checkpointing, frozen_bf16=False):
        def make_row():
            return Row("Stage B step (paper trainable set)", f"{name}, batch {batch}", "images/s")

        def go():
            from diffusers import DDPMScheduler

            reset_peak(device)
            torch.manual_seed(0)
            unet = sd15_unet(tiny).to(device)
            set_attention(unet, classic)
            paper_trainable(unet)
            if frozen_bf16:  # frozen weights in bf16 halve their memory; trainable ones stay fp32
                for p in unet.parameters():
                    if not p.requires_grad:
                        p.data = p.data.to(torch.bfloat16)
            encoder = EEGEncoder(**enc_kwargs).to(device)
            mapper = TokenMapper(encoder.num_tokens, enc_kwargs["embed_dim"], unet.config.cross_attention_dim).to(device)
            if checkpointing:
                unet.enable_gradient_checkpointing()
                encoder.gradient_checkpointing = True
            if not classic:
                unet.to(memory_format=torch.channels_last)
            params = [p for m in (unet, encoder, mapper) for p in m.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=5.3e-5, fused=device.type == "cuda")
            sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
            unet_call = torch.compile(unet, dynamic=False) if compile_unet else unet
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

            flops = count_flops(lambda: loss_fn().backward())
            opt.zero_grad(set_to_none=True)
            s = timed(step, device, warmup=3 if compile_unet else 2, iters=2 if tiny else 10)
            row = fill(make_row(), s, batch, flops, ceiling, device)
            row.extra["trainable_params_M"] = sum(p.numel() for p in params) / 1e6
            return row

        run_variant(rows, make_row, go, compiles=compile_unet)

    b_small, b_big = batches
    variant("reference-style fp32, classic attention", b_small, True, False, False, False)
    variant("bf16 autocast + SDPA + channels-last", b_big, False, True, False, False)
    variant("bf16 + SDPA + channels-last + torch.compile", b_big, False, True, True, False)
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
    unet32 = sd15_unet(tiny).to(device).eval()
    vae32 = sd_vae(tiny).to(device).eval()
    encoder32 = EEGEncoder(**enc_kwargs).to(device).eval()
    mapper32 = TokenMapper(encoder32.num_tokens, enc_kwargs["embed_dim"], unet32.config.cross_attention_dim).to(device)
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
    unet = sd15_unet(tiny).to(device, dtype).eval()
    unet.load_state_dict({k: v.to(dtype) for k, v in unet32.state_dict().items()})
    vae = sd_vae(tiny).to(device, dtype).eval()
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
            cunet = torch.compile(unet, mode=mode, dynamic=False)
            call = lambda: generate(cunet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)  # noqa: E731
            s = timed(call, device, warmup=2, iters=2 if tiny else 5)
            img = call()
            flops = flops_of(unet, vae, encoder, mapper, eeg, fast_steps, dpm, 3.0, dtype)
            r = fill(row(f"+ torch.compile ({mode}), DPM-Solver++ {fast_steps} steps, CFG", batch), s, batch, flops,
                     ceiling, device)
            if batch in images_plain:
                diff = (img - images_plain[batch]).abs()
                r.extra["max_abs_diff_vs_plain"] = float(diff.max())
                r.extra["mean_abs_diff_vs_plain"] = float(diff.mean())
            return r

        run_variant(rows, lambda batch=batch: row(f"+ torch.compile ({mode})", batch), fast, compiles=True)


# ----------------------------------------------------------------------------------------------- report
def format_row(r: Row) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    return (f"| {r.workload} | {r.variant} | {f(r.throughput, '.2f')} {r.unit} | {f(r.seconds_per_item, '.4f')} s/item "
            f"| {f(r.peak_mem_gib, '.1f')} GiB | {f(r.tflops, '.1f')} | {f(r.mfu and 100 * r.mfu, '.1f')} % | "
            f"{r.note} {json.dumps(r.extra) if r.extra else ''} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="small shapes: checks the script on any machine")
    ap.add_argument("--only", default="msm,stageb,generation", help="comma list of workloads")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants (default on CPU)")
    ap.add_argument("--budget-s", type=float, default=float("inf"), help="skip variants that would start after this")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    tiny = args.tiny
    only = set(args.only.split(","))
    COMPILE["on"] = not args.no_compile and device.type == "cuda"
    TINY["on"] = tiny
    DEADLINE["t"] = time.monotonic() + args.budget_s
    rows: list[Row] = []
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "tiny": tiny, "date": time.strftime("%Y-%m-%d")}
    ceiling = matmul_ceiling(device, tiny)
    meta["matmul_ceiling_tflops"] = ceiling
    print(f"device {meta['device']}, torch {torch.__version__}; matrix-product ceiling {ceiling:.1f} TFLOP/s", flush=True)
    print("| workload | variant | throughput | time per item | peak memory | TFLOP/s | MFU | note |\n|---|---|---|---|---|---|---|---|")

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
    if "msm" in only:
        bench_msm(device, tiny, ceiling, rows, batch_sizes=(4, 8) if tiny else (100, 256))
        save()
    if "generation" in only:
        bench_generation(device, tiny, ceiling, rows, gen_batch=2 if tiny else 5,
                         baseline_steps=4 if tiny else 250, fast_steps=3 if tiny else 25)
        save()
    if "stageb" in only:
        bench_stageb(device, tiny, ceiling, rows, batches=(2, 2) if tiny else (8, 25))
        save()
    return rows


if __name__ == "__main__":
    main()
