"""The GPU benchmark's workloads: the inductor smoke test, Stage A (one MSM step), Stage B (one fine-tuning step of an
SD 1.5-shaped UNet) and generation, each as reference-style and fast variants timed by ``gpu_harness``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from gpu_harness import (
    PRESETS,
    EEGBlock,
    EEGEncoder,
    MaskedSignalModel,
    Row,
    build,
    compile_regions,
    compiled,
    count_flops,
    fill,
    first_call,
    phase,
    reset_peak,
    run_variant,
    timed,
)
from torch import nn


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


def stageb_parts(device, tiny, classic, checkpointing, frozen_bf16):
    """One Stage B variant's models (seeded), the paper's trainable set and its AdamW."""
    enc_preset = PRESETS["tiny" if tiny else "paper"]
    enc_kwargs = {k: enc_preset[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
    torch.manual_seed(0)
    unet = build(lambda: sd15_unet(tiny), device)
    set_attention(unet, classic)
    paper_trainable(unet)
    if frozen_bf16:  # frozen weights in bf16 halve their memory; trainable ones stay fp32
        for p in unet.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    encoder = build(lambda: EEGEncoder(**enc_kwargs), device)
    mapper = build(lambda: TokenMapper(encoder.num_tokens, enc_kwargs["embed_dim"], unet.config.cross_attention_dim),
                   device)
    if checkpointing:
        unet.enable_gradient_checkpointing()
        encoder.gradient_checkpointing = True
    if not classic:
        unet.to(memory_format=torch.channels_last)
    params = [p for m in (unet, encoder, mapper) for p in m.parameters() if p.requires_grad]
    return unet, encoder, mapper, params, torch.optim.AdamW(params, lr=5.3e-5, fused=device.type == "cuda")


def bench_stageb(device, tiny, ceiling, rows, batches):
    latent = 8 if tiny else 64

    def variant(name, batch, classic, bf16, compile_unet, checkpointing, frozen_bf16=False, regional=False):
        def make_row():
            return Row("Stage B step (paper trainable set)", f"{name}, batch {batch}", "images/s")

        def go():
            from diffusers import DDPMScheduler

            reset_peak(device)
            unet, encoder, mapper, params, opt = stageb_parts(device, tiny, classic, checkpointing, frozen_bf16)
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
class GenerationBench:
    """Generation's shared parts (fp32 models, the sampler loop, FLOP counts) and its three kinds of variant."""

    SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

    def __init__(self, device, tiny, ceiling, gen_batch, baseline_steps, fast_steps):
        self.device, self.tiny, self.ceiling = device, tiny, ceiling
        self.gen_batch, self.baseline_steps, self.fast_steps = gen_batch, baseline_steps, fast_steps
        enc_preset = PRESETS["tiny" if tiny else "paper"]
        enc_kwargs = {k: enc_preset[k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
        self.latent = 8 if tiny else 64
        torch.manual_seed(0)
        self.unet32 = build(lambda: sd15_unet(tiny), device).eval()
        self.vae32 = build(lambda: sd_vae(tiny), device).eval()
        self.encoder32 = build(lambda: EEGEncoder(**enc_kwargs), device).eval()
        self.mapper32 = build(lambda: TokenMapper(self.encoder32.num_tokens, enc_kwargs["embed_dim"],
                                                  self.unet32.config.cross_attention_dim), device)
        self.null_cond = torch.zeros(1, 77, self.unet32.config.cross_attention_dim, device=device)
        self.images_plain = {}  # batch -> the plain path's images, which the compiled path must match

    @torch.no_grad()
    def generate(self, unet, vae, encoder, mapper, eeg, steps, scheduler, guidance, dtype, seed=0):
        device = self.device
        scheduler.set_timesteps(steps, device=device)
        cond = mapper(encoder(eeg.to(dtype)))
        if guidance > 1.0:
            cond = torch.cat([self.null_cond.to(dtype).expand(len(eeg), -1, -1), cond])
        g = torch.Generator(device=device).manual_seed(seed)
        lat = torch.randn(len(eeg), 4, self.latent, self.latent, generator=g, device=device, dtype=torch.float32)
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

    def flops_of(self, *args):
        return count_flops(lambda: self.generate(*args))

    def row(self, name, batch):
        return Row("generation 512 px" if not self.tiny else "generation (tiny)", f"{name}, batch {batch}", "images/s")

    def eeg(self, batch):
        return torch.randn(batch, 128, 512, device=self.device, generator=torch.Generator(self.device).manual_seed(batch))

    def baseline(self):
        """Reference style: fp32, classic attention, PLMS at the reference step count, no guidance."""
        from diffusers import PNDMScheduler

        device, n = self.device, self.gen_batch
        models = (self.unet32, self.vae32, self.encoder32, self.mapper32)
        reset_peak(device)
        set_attention(self.unet32, classic=True)
        torch.backends.cuda.matmul.allow_tf32 = False
        eeg = torch.randn(n, 128, 512, device=device)
        sched = PNDMScheduler(skip_prk_steps=True, **self.SCHEDULE)
        s = timed(lambda: self.generate(*models, eeg, self.baseline_steps, sched, 1.0, torch.float32), device,
                  warmup=0 if not self.tiny else 1, iters=1)
        # Count one and two steps: their difference is one UNet step; the rest (encoder, VAE decode) is once.
        f1 = self.flops_of(*models, eeg, 1, sched, 1.0, torch.float32)
        f2 = self.flops_of(*models, eeg, 2, sched, 1.0, torch.float32)
        flops = f1 + (self.baseline_steps - 1) * (f2 - f1)
        torch.backends.cuda.matmul.allow_tf32 = True
        set_attention(self.unet32, classic=False)
        r = fill(self.row(f"reference-style fp32, classic attention, PLMS {self.baseline_steps} steps, no CFG", n), s,
                 n, flops, self.ceiling, device)
        r.note = "FLOPs: 1 and 2 counted steps extrapolated to the step count"
        return r

    def make_fast(self):
        """The fast path's parts: bf16 weights (on a GPU), SDPA, channels-last, DPM-Solver++."""
        from diffusers import DPMSolverMultistepScheduler

        device, tiny = self.device, self.tiny
        self.dtype = dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        unet = build(lambda: sd15_unet(tiny), device).to(dtype).eval()
        unet.load_state_dict({k: v.to(dtype) for k, v in self.unet32.state_dict().items()})
        vae = build(lambda: sd_vae(tiny), device).to(dtype).eval()
        vae.load_state_dict({k: v.to(dtype) for k, v in self.vae32.state_dict().items()})
        set_attention(unet, classic=False)
        unet.to(memory_format=torch.channels_last)
        vae.to(memory_format=torch.channels_last)
        self.unet, self.vae = unet, vae
        self.encoder, self.mapper = self.encoder32.to(dtype), self.mapper32.to(dtype)
        self.dpm = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", **self.SCHEDULE)

    def fast_call(self, unet, eeg):
        return self.generate(unet, self.vae, self.encoder, self.mapper, eeg, self.fast_steps, self.dpm, 3.0, self.dtype)

    def plain(self, batch):
        device, eeg = self.device, self.eeg(batch)
        reset_peak(device)
        self.images_plain[batch] = self.fast_call(self.unet, eeg)
        s = timed(lambda: self.fast_call(self.unet, eeg), device, warmup=1, iters=2 if self.tiny else 3)
        flops = self.flops_of(self.unet, self.vae, self.encoder, self.mapper, eeg, self.fast_steps, self.dpm, 3.0,
                              self.dtype)
        return fill(self.row(f"bf16 + SDPA + channels-last, DPM-Solver++ {self.fast_steps} steps, CFG", batch), s,
                    batch, flops, self.ceiling, device)

    def compiled_variant(self, batch, mode):
        """torch.compile of the UNet (``mode`` "default" or "reduce-overhead" = CUDA graphs), checked against the
        plain path's images for the same seed."""
        device, eeg = self.device, self.eeg(batch)
        reset_peak(device)
        ref = self.images_plain.get(batch)  # (a child process has not run the plain variant)
        if ref is None:
            ref = self.fast_call(self.unet, eeg)
        cunet = compiled(self.unet, mode=None if mode == "default" else mode)
        cuda_graphs = mode == "reduce-overhead" and device.type == "cuda"

        def unet_step(*a, **k):  # CUDA graphs: mark each step, copy the output out of the graph's pool
            if cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            out = cunet(*a, **k)
            return type(out)(sample=out.sample.clone()) if cuda_graphs else out

        compile_s = first_call(lambda: self.fast_call(unet_step, eeg), device)
        s = timed(lambda: self.fast_call(unet_step, eeg), device, warmup=2, iters=2 if self.tiny else 5)
        img = self.fast_call(unet_step, eeg)
        phase("flops")
        flops = self.flops_of(self.unet, self.vae, self.encoder, self.mapper, eeg, self.fast_steps, self.dpm, 3.0,
                              self.dtype)
        r = fill(self.row(f"+ torch.compile ({mode}), DPM-Solver++ {self.fast_steps} steps, CFG", batch), s, batch,
                 flops, self.ceiling, device)
        r.compile_s = compile_s
        diff = (img - ref).abs()
        r.extra["max_abs_diff_vs_plain"] = float(diff.max())
        r.extra["mean_abs_diff_vs_plain"] = float(diff.mean())
        return r


def bench_generation(device, tiny, ceiling, rows, gen_batch, baseline_steps, fast_steps):
    bench = GenerationBench(device, tiny, ceiling, gen_batch, baseline_steps, fast_steps)
    run_variant(rows, lambda: bench.row("reference-style", gen_batch), bench.baseline)
    bench.make_fast()
    for batch in (gen_batch, 1):
        run_variant(rows, lambda batch=batch: bench.row("bf16 plain", batch), lambda batch=batch: bench.plain(batch))
    # torch.compile of the UNet (the VAE decode runs once per image: not worth its compile time);
    # CUDA graphs ("reduce-overhead") where kernel launches dominate (batch 1).
    for batch, mode in ((gen_batch, "default"), (1, "reduce-overhead")):
        run_variant(rows, lambda batch=batch, mode=mode: bench.row(f"+ torch.compile ({mode})", batch),
                    lambda batch=batch, mode=mode: bench.compiled_variant(batch, mode), compiles=True)
