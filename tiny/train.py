"""Train the tiny model on the synthetic shape world (tiny/data.py).

Stage "vae": the causal VAE learns to reconstruct clips (weighted MSE + L1, weak KL, posterior samples); then the
per-channel latent statistics (mean-of-means, std-of-means) are measured on encoded training clips so normalized
latents have about unit variance. Writes <out>/tiny-vae.safetensors (VAE keys, float16). With --init and
--decoder-only it fine-tunes the decoder alone: encoder and statistics stay, so a DiT trained on them still fits.

Stage "dit": the DiT and the T5 encoder learn jointly with the rectified-flow objective: x_t = (1 - t) x0 + t eps,
target velocity v = eps - x0, t from a shifted logit-normal (the checkpoint's "Constant" schedule shift) mixed with
uniform. Keyframes are trained as model/conditioning.py and model/sampling.py apply them: a share of the samples
gets the first latent frame clean (I2V), and every --keyframe-every-th batch also gets the clip's image of a later
frame k (the last frame for half of the clips) as extra tokens prepended at temporal coordinate k (first-last and
mid-video keyframes). Conditioning tokens carry image_cond_noise_scale * t^2 noise, per-token timestep 0, and are
left out of the loss. Captions are dropped to "" for CFG. A linear head on the mean T5 feature predicts colour,
shape, motion and background (auxiliary cross-entropy, --attribute-weight; the head is not saved). On CUDA the
DiT and T5 run through torch.compile (eager if compiling fails). Latents come from a bank of encoded clips;
captions are re-phrased at every draw. EMA weights are saved: <out>/tiny-dit.safetensors (DiT keys, float16) and
<out>/t5-tiny.safetensors (T5 layout). --init-dit / --init-t5 continue from earlier files.

Stage "pack": assembles weights/videodit-tiny.safetensors (official single-file layout, config in metadata) from
the two stage outputs.

Held-out colour x shape x motion combinations (data.HELD_OUT) are never rendered for training.

GPU run (H100, bf16 autocast), device calls of at most 10 minutes (the package is the repo root: on the device
`mkdir -p /tmp/p && ln -s $PWD /tmp/p/videodit && export PYTHONPATH=/tmp/p`):
    python -m videodit.tiny.train --stage vae --out $OUT --minutes 9
    python -m videodit.tiny.train --stage dit --vae VAE --out $OUT --minutes 8.4
    python -m videodit.tiny.train --stage dit --vae VAE --init-dit DIT --init-t5 T5 --dit-lr 3e-4 --warmup 50 ...
(VAE, DIT, T5: the tiny-vae / tiny-dit / t5-tiny .safetensors they write) and here, on the CPU, the committed files:
    python -m videodit.tiny.train --stage pack --vae VAE --dit DIT --t5 T5 --out weights
(tiny/NOTES.md lists the exact sequence of calls and settings the committed weights were trained with.)
CPU smoke test (seconds, 9 frames of 64x64): python -m videodit.tiny.train --smoke --out /tmp/tiny-smoke
"""

import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ..model import frontend
from ..model.ltxv.dit import LTXVideoTransformer
from ..model.ltxv.positions import video_coords
from ..model.ltxv.vae import CausalVideoVAE
from . import configs, data

SEED = 20261122


# ---------------------------------------------------------------------------------------------------- helpers


class Schedule:
    """Linear warm-up then cosine decay to `floor` x lr; the number of steps is fixed once the step time is known
    (time-budgeted training)."""

    def __init__(self, optimizer, lr: float, warmup: int, floor: float = 0.1):
        self.optimizer, self.lr, self.warmup, self.floor = optimizer, lr, warmup, floor
        self.total = None

    def set(self, step: int):
        if step < self.warmup or self.total is None:
            factor = min(1.0, (step + 1) / self.warmup)
        else:
            progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            factor = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * factor


class Budget:
    """Fixes the number of steps so that training ends `budget_s` after `start`: a first estimate at step
    `first`, re-estimated from the step time since the previous estimate at steps 2x, 4x, 8x ... `first` while
    less than 3/4 of the steps are done (the first steps are slow: cudnn autotuning, allocator warm-up)."""

    def __init__(self, start: float, budget_s: float, first: int, max_steps: int, schedule: Schedule):
        self.start, self.budget_s, self.next, self.max_steps = start, budget_s, first, max_steps
        self.schedule = schedule  # its total follows every new estimate (the cosine decay ends with the budget)
        self.mark = (time.time(), 0)
        self.total = None

    def update(self, step: int) -> None:
        """Call after each step."""
        if self.total is None and step >= self.max_steps:
            self.total = self.schedule.total = self.max_steps
            return
        if step != self.next or (self.total is not None and step > 0.75 * self.total):
            return
        now = time.time()
        per_step = (now - self.mark[0]) / max(1, step - self.mark[1])
        self.mark, self.next = (now, step), 2 * step
        left = self.budget_s - (now - self.start)
        self.total = self.schedule.total = int(min(self.max_steps, step + max(0.0, left) / per_step))
        print(f"{per_step * 1000:.0f} ms/step -> {self.total} steps", flush=True)


def clipped_step(optimizer, loss: torch.Tensor, params) -> None:
    """One optimizer step on `loss` with the gradients clipped to norm 1."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()


def autocast(device):
    return (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )


def half_state(module: torch.nn.Module) -> dict:
    return {
        k: v.detach().to(torch.float16).contiguous().cpu() if v.is_floating_point() else v.contiguous().cpu()
        for k, v in module.state_dict().items()
    }


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    """a, b in [-1, 1]: PSNR of the [0, 1] images."""
    mse = F.mse_loss(a.float().clamp(-1, 1), b.float()).item() / 4.0
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def render_batch(n: int, seed: int, frames: int, size: int, device):
    specs = data.sample_specs(n, seed, "train", frames, size)
    video, coverage = data.render_torch(specs, frames, size, device)
    return specs, video, coverage


# ---------------------------------------------------------------------------------------------------- VAE


def train_vae(args, device) -> tuple[CausalVideoVAE, dict]:
    torch.manual_seed(SEED)
    vae = load_vae(args.init, device).train() if args.init else CausalVideoVAE(configs.vae_config()).to(device)
    # decoder only: the encoder and the latent statistics stay as they are, so a DiT trained on them still fits
    vae.encoder.requires_grad_(not args.decoder_only)
    params = ([] if args.decoder_only else list(vae.encoder.parameters())) + list(vae.decoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedule = Schedule(optimizer, args.vae_lr, warmup=args.warmup)
    t0, step, log = time.time(), 0, []
    budget = Budget(args.start, args.minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
    while budget.total is None or step < budget.total:
        schedule.set(step)
        _, video, coverage = render_batch(args.vae_batch, SEED + step, args.frames, args.size, device)
        with autocast(device):
            moments = vae.encoder(video)
            mean, logvar = moments.float().chunk(2, dim=1)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            recon = vae.decoder(z).float()
        weight = 1.0 + 4.0 * (coverage > 0.01).float()  # shape pixels count 5x (they are a few % of the frame)
        error = recon - video
        rec = (weight * error.pow(2)).mean() + 0.1 * (weight * error.abs()).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = rec + args.kl_weight * kl
        clipped_step(optimizer, loss, params)
        step += 1
        budget.update(step)
        if step % args.log_every == 0 or step == budget.total:
            p = psnr_db(recon.detach(), video)
            log.append({"step": step, "loss": loss.item(), "rec": rec.item(), "kl": kl.item(), "psnr": p})
            print(
                f"vae step {step}: loss {loss.item():.5f} kl {kl.item():.2f} logvar {logvar.mean().item():.2f} "
                f"psnr {p:.2f} dB ({time.time() - t0:.0f} s)",
                flush=True,
            )
    vae.eval()
    round_to_half(vae)  # the stored weights are float16: measure everything downstream with them
    if not args.decoder_only:
        set_latent_statistics(vae, args, device)
    report = evaluate_vae(vae, args, device)
    report.update({"steps": step, "seconds": time.time() - t0, "log": log})
    return vae, report


def round_to_half(module: torch.nn.Module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


@torch.no_grad()
def set_latent_statistics(vae: CausalVideoVAE, args, device):
    """mean-of-means / std-of-means per channel over the encoded (mean) latents of training clips."""
    latents = []
    for i in range(args.stat_batches):
        _, video, _ = render_batch(args.vae_batch, SEED + 10**6 + i, args.frames, args.size, device)
        with autocast(device):
            latents.append(vae.encode(video).float())
    z = torch.cat(latents).transpose(0, 1).flatten(1)  # (C, N*f*h*w)
    stats = vae.per_channel_statistics
    mean, std = z.mean(1), z.std(1)
    std = std.clamp(min=1e-2 * std.max().item())  # a (nearly) constant channel must not blow up
    getattr(stats, "mean-of-means").copy_(mean)
    getattr(stats, "std-of-means").copy_(std)
    getattr(stats, "mean-of-stds").copy_(std)  # not used by inference; kept meaningful
    getattr(stats, "mean-of-stds_over_std-of-means").fill_(1.0)


@torch.no_grad()
def evaluate_vae(vae: CausalVideoVAE, args, device) -> dict:
    """Reconstruction PSNR (posterior mean) of all frames and of frame 0 alone (the I2V image path)."""
    specs = data.sample_specs(args.vae_batch, SEED + 2 * 10**6, "all", args.frames, args.size)
    video, _ = data.render_torch(specs, args.frames, args.size, device)
    with autocast(device):
        z = vae.encode(video)
        recon = vae.decode(z).float()
        first = vae.decode(vae.encode(video[:, :, :1])).float()
    norm = vae.normalize(z.float())
    report = {
        "psnr_video": psnr_db(recon, video),
        "psnr_first_frame": psnr_db(first, video[:, :, :1]),
        "normalized_latent_std": norm.std().item(),
        "normalized_latent_mean": norm.mean().item(),
    }
    print("vae eval: " + json.dumps(report), flush=True)
    return report


# ---------------------------------------------------------------------------------------------------- DiT

ATTRIBUTES = (tuple(data.COLORS), data.SHAPES, data.MOTIONS, tuple(data.BACKGROUNDS))
ATTRIBUTE_CLASSES = tuple(len(names) for names in ATTRIBUTES)  # (8, 3, 5, 2)
NUM_COMBOS = math.prod(ATTRIBUTE_CLASSES)


def combo_index(spec: data.ClipSpec) -> int:
    """Index of the (colour, shape, motion, background) combination, 0 .. NUM_COMBOS - 1 (mixed radix, colour
    most significant)."""
    index = 0
    for names, value in zip(ATTRIBUTES, (spec.color, spec.shape, spec.motion, spec.background)):
        index = index * len(names) + names.index(value)
    return index


def combo_attributes(index):
    """Inverse of combo_index: (colour, shape, motion, background) class indices of an int or an int tensor."""
    parts = []
    for classes in reversed(ATTRIBUTE_CLASSES):
        parts.insert(0, index % classes)
        index = index // classes
    return tuple(parts)


class LatentBank:
    """Encoded (normalized) training clips, and a table of tokenised captions: `captions_per_combo` random
    phrasings for each (colour, shape, motion, background), plus one empty caption (last row) for caption
    dropout, so a batch of captions is one gather on the device."""

    def __init__(
        self,
        vae,
        count: int,
        batch: int,
        frames: int,
        size: int,
        device,
        budget_s: float,
        causal: bool,
        captions_per_combo: int = 256,
    ):
        specs, chunks, key_chunks, key_frames, t0 = [], [], [], [], time.time()
        picker = torch.Generator().manual_seed(SEED + 4 * 10**6)
        for i in range(0, count, batch):
            batch_specs, video, _ = render_batch(batch, SEED + 3 * 10**6 + i, frames, size, device)
            # one later frame per clip as a single image (the keyframe of first-last and mid-video conditioning):
            # the last frame for half of the clips, any frame 1 .. F-1 for the others
            k = torch.where(
                torch.rand(len(batch_specs), generator=picker) < 0.5,
                frames - 1,
                torch.randint(1, frames, (len(batch_specs),), generator=picker),
            )
            image = video[torch.arange(len(batch_specs)), :, k.to(device)][:, :, None]  # (B, 3, 1, H, W)
            with torch.no_grad(), autocast(device):
                chunks.append(frontend.encode_video(vae, video))
                key_chunks.append(frontend.encode_video(vae, image))
            key_frames.append(k)
            specs += batch_specs
            if time.time() - t0 > budget_s:
                break
        self.latents = torch.cat(chunks)  # (N, C, f, h, w) float32
        self.key_latents = torch.cat(key_chunks)  # (N, C, 1, h, w): frame key_frames[n] encoded alone
        self.key_frames = torch.cat(key_frames).to(device)  # (N,) pixel frame of that image
        # token coordinates (model/rope.video_coords): the video, and a single-image keyframe at every pixel frame
        _, _, f, h, w = self.latents.shape
        self.coords = video_coords(1, f, h, w, configs.FRAME_RATE, causal, device=device)  # (1, 3, f*h*w)
        self.key_coords = torch.cat(
            [video_coords(1, 1, h, w, configs.FRAME_RATE, causal, device=device, frame_offset=k) for k in range(frames)]
        )  # (frames, 3, h*w)
        self.combos = torch.tensor([combo_index(s) for s in specs], device=device)
        rng = np.random.default_rng(SEED)
        prompts = []
        for c in range(NUM_COMBOS):
            names = (n[i] for n, i in zip(ATTRIBUTES, combo_attributes(c)))
            spec = data.ClipSpec(*names, 0.0, 0.0, 0.0, 0.0)
            assert combo_index(spec) == c
            prompts += [data.caption(spec, rng) for _ in range(captions_per_combo)]
        prompts.append("")
        ids, mask = configs.byte_tokens(prompts)
        self.caption_ids, self.caption_mask = ids.to(device), mask.to(device)
        self.per_combo = captions_per_combo
        self.examples = prompts[:3]
        print(
            f"latent bank: {len(specs)} clips in {time.time() - t0:.0f} s, latent std "
            f"{self.latents.std().item():.3f}; {len(prompts)} captions, e.g. {self.examples}",
            flush=True,
        )

    def __len__(self):
        return self.latents.shape[0]

    def captions(self, idx: torch.Tensor, drop: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and mask (B, L) for the clips idx; rows with drop True get the empty caption."""
        k = torch.randint(self.per_combo, idx.shape, generator=generator)
        rows = self.combos[idx.to(self.combos.device)] * self.per_combo + k.to(self.combos.device)
        rows = torch.where(drop.to(rows.device), self.caption_ids.shape[0] - 1, rows)
        return self.caption_ids[rows], self.caption_mask[rows]


def shifted_logit_normal(n: int, generator, device, uniform_share: float = 0.1) -> torch.Tensor:
    """t in (0, 1): sigmoid(N(0, 1)) through the schedule shift (mixed with a uniform share), shape (n,)."""
    u = torch.sigmoid(torch.randn(n, generator=generator))
    u = torch.where(torch.rand(n, generator=generator) < uniform_share, torch.rand(n, generator=generator), u)
    k = math.exp(configs.SHIFT_MU)
    return (k * u / (1 + (k - 1) * u)).clamp(1e-4, 1.0).to(device)


def text_features(t5, prompts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = configs.byte_tokens(prompts)
    ids, mask = ids.to(device), mask.to(device)
    return t5(input_ids=ids, attention_mask=mask).last_hidden_state, mask


def dit_loss(
    dit,
    t5,
    attributes,
    bank: LatentBank,
    idx: torch.Tensor,
    generator,
    noise_generator,
    args,
    device,
    keyframe: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flow-matching loss, attribute loss) of one batch of bank clips idx.

    Conditioning as model/conditioning.py and model/sampling.py apply it at inference (strength 1): a share of the
    samples gets latent frame 0 clean (I2V); with keyframe=True every sample also gets its bank image of a later
    pixel frame k as extra tokens prepended to the video, at temporal coordinate k. Conditioning tokens carry
    image_cond_noise_scale * t^2 noise, per-token timestep 0, and are left out of the loss."""
    x0 = bank.latents[idx.to(device)]  # (B, C, f, h, w)
    b, c, f, h, w = x0.shape
    first = h * w  # tokens of latent frame 0
    tokens0 = x0.flatten(2).transpose(1, 2)  # (B, N, C), (f h w) order
    dropped = torch.rand(b, generator=generator) < args.caption_dropout
    ids, mask = bank.captions(idx, dropped, generator)
    t = shifted_logit_normal(b, generator, device)
    i2v = (torch.rand(b, generator=generator) < (args.i2v_share if not keyframe else 0.5)).to(device)
    cond = torch.zeros(b, tokens0.shape[1], dtype=torch.bool, device=device)
    cond[:, :first] = i2v[:, None]
    coords = bank.coords  # (1, 3, N)
    if keyframe:
        key = bank.key_latents[idx.to(device)].flatten(2).transpose(1, 2)  # (B, h*w, C)
        key_coords = bank.key_coords[bank.key_frames[idx.to(device)]]  # (B, 3, h*w)
        tokens0 = torch.cat([key, tokens0], dim=1)  # (B, h*w + N, C): extra tokens first, as at inference
        cond = torch.cat([torch.ones(b, key.shape[1], dtype=torch.bool, device=device), cond], dim=1)
        coords = torch.cat([key_coords, coords.expand(b, -1, -1)], dim=2)
    noise = torch.randn(tokens0.shape, generator=noise_generator, device=device)
    xt = (1 - t[:, None, None]) * tokens0 + t[:, None, None] * noise
    target = noise - tokens0
    # pipeline: conditioning tokens are reset to keyframe + scale * eps * t^2 before every model call
    scale = torch.rand(b, generator=generator).to(device) * args.cond_noise
    cond_noise = torch.randn(tokens0.shape, generator=noise_generator, device=device)
    cond_tokens = tokens0 + (scale * t * t)[:, None, None] * cond_noise
    xt = torch.where(cond[..., None], cond_tokens, xt)
    tau = torch.where(cond, torch.zeros_like(xt[..., 0]), t[:, None].expand(b, tokens0.shape[1]))  # (B, N)
    with autocast(device):
        text = t5(input_ids=ids, attention_mask=mask).last_hidden_state
        pred = dit(xt, coords, text, mask, tau).float()
    keep = (~cond).float()[..., None]
    flow = ((pred - target).pow(2) * keep).sum() / (keep.sum() * c)
    return flow, attribute_loss(attributes, text.float(), mask, bank.combos[idx.to(device)], dropped.to(device))


def attribute_loss(
    head: torch.nn.Linear, text: torch.Tensor, mask: torch.Tensor, combos: torch.Tensor, dropped: torch.Tensor
) -> torch.Tensor:
    """Auxiliary training signal for the text encoder: cross-entropy of colour, shape, motion and background
    predicted by a linear head from the masked mean of the T5 features (B, L, D) (captions dropped to "" are left
    out). The flow loss reaches T5 only through the DiT's cross-attention; this loss makes the four attributes
    linearly readable from the features early. The head is not part of the saved model."""
    pooled = (text * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
    logits = head(pooled).split(ATTRIBUTE_CLASSES, dim=-1)
    keep = (~dropped).float()
    losses = [
        (F.cross_entropy(lg.float(), lb, reduction="none") * keep).sum()
        for lg, lb in zip(logits, combo_attributes(combos))
    ]
    return sum(losses) / keep.sum().clamp(min=1.0)


def train_dit(args, vae: CausalVideoVAE, device):
    from transformers import T5EncoderModel

    torch.manual_seed(SEED)
    vae.eval().requires_grad_(False)
    config = configs.transformer_config()
    bank = LatentBank(
        vae,
        args.bank,
        args.vae_batch * 8 if device.type == "cuda" else args.vae_batch,
        args.frames,
        args.size,
        device,
        args.bank_seconds,
        config.causal_temporal_positioning,
        args.captions_per_combo,
    )
    dit = LTXVideoTransformer(config).to(device)
    t5 = T5EncoderModel(configs.t5_config()).to(device)
    if args.init_dit:
        load_dit_t5(dit, t5, args.init_dit, args.init_t5)
    attributes = torch.nn.Linear(configs.TEXT_WIDTH, sum(ATTRIBUTE_CLASSES)).to(device)
    params = list(dit.parameters()) + list(t5.parameters())
    ema = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(
        params + list(attributes.parameters()), lr=args.dit_lr, betas=(0.9, 0.99), weight_decay=0.01
    )
    schedule = Schedule(optimizer, args.dit_lr, warmup=args.warmup)
    generator = torch.Generator().manual_seed(SEED)
    noise_generator = torch.Generator(device).manual_seed(SEED)
    # Compiled modules share their parameters with dit / t5 (the EMA and the saved files use those); a failure
    # to compile falls back to eager at the first step.
    step_dit, step_t5 = (torch.compile(dit, dynamic=False), torch.compile(t5)) if args.compile else (dit, t5)
    t0, step, log, running = time.time(), 0, [], []
    budget = Budget(args.start, args.minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
    n = len(bank)
    while budget.total is None or step < budget.total:
        schedule.set(step)
        idx = torch.randint(n, (args.dit_batch,), generator=generator)
        keyframe = args.keyframe_every > 0 and step % args.keyframe_every == args.keyframe_every - 1
        state = (generator.get_state(), noise_generator.get_state())

        def forward_backward(model, encoder, idx=idx, keyframe=keyframe):
            optimizer.zero_grad(set_to_none=True)
            flow, aux = dit_loss(
                model, encoder, attributes, bank, idx, generator, noise_generator, args, device, keyframe
            )
            (flow + args.attribute_weight * aux).backward()
            return flow, aux

        try:
            flow, aux = forward_backward(step_dit, step_t5)
        except Exception as error:  # torch.compile problems (no Triton, unsupported op) surface at the first step
            if step_dit is dit or step > max(0, args.keyframe_every - 1):  # both batch layouts compiled by then
                raise
            print(f"torch.compile failed ({type(error).__name__}: {str(error)[:300]}); training eager", flush=True)
            step_dit, step_t5 = dit, t5
            generator.set_state(state[0]), noise_generator.set_state(state[1])
            flow, aux = forward_backward(dit, t5)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        step += 1
        if step % 10 == 0 or args.smoke:
            running.append((flow.item(), aux.item()))
        budget.update(step)
        if step % args.log_every == 0 or step == budget.total:
            mean_flow, mean_aux = np.mean(running, axis=0) if running else (flow.item(), aux.item())
            running = []
            log.append({"step": step, "loss": float(mean_flow), "attribute_loss": float(mean_aux)})
            print(
                f"dit step {step}: loss {mean_flow:.4f} attributes {mean_aux:.4f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e} ({time.time() - t0:.0f} s)",
                flush=True,
            )
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    dit.eval(), t5.eval()
    return dit, t5, {"steps": step, "seconds": time.time() - t0, "bank": n, "captions": bank.examples, "log": log}


# ---------------------------------------------------------------------------------------------------- files


def save_vae(vae: CausalVideoVAE, path: str, report: dict):
    state = half_state(vae)
    for k in list(state):
        if k.startswith("per_channel_statistics."):
            state[k] = vae.state_dict()[k].float().cpu().contiguous()
    save_file(
        state,
        path,
        metadata={
            "config": json.dumps({"vae": vae.config.to_metadata()}),
            "report": json.dumps({k: v for k, v in report.items() if k != "log"}),
        },
    )


def load_vae(path: str, device) -> CausalVideoVAE:
    """A VAE file of the vae stage, or the VAE part (vae.*) of a packed checkpoint such as
    weights/videodit-tiny.safetensors."""
    state = load_file(path)
    if any(k.startswith("vae.") for k in state):
        state = {k[len("vae.") :]: v for k, v in state.items() if k.startswith("vae.")}
    vae = CausalVideoVAE(configs.vae_config())
    vae.load_state_dict({k: v.float() for k, v in state.items()})
    return vae.to(device).eval()


def load_dit_t5(dit, t5, dit_path: str, t5_path: str):
    """Continue training from a DiT file of the dit stage or a packed checkpoint (model.diffusion_model.*), and
    the T5 file written with it."""
    from ..model.text_encoder import load_text_encoder

    prefix = "model.diffusion_model."
    state = load_file(dit_path)
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    dit.load_state_dict({k: v.float() for k, v in state.items()})
    t5.load_state_dict(load_text_encoder(t5_path, dtype=torch.float32).model.state_dict())


def save_dit(dit, t5, out: str):
    save_file(
        half_state(dit),
        os.path.join(out, "tiny-dit.safetensors"),
        metadata={"config": json.dumps({"transformer": dit.config.to_metadata()})},
    )
    save_t5(t5, os.path.join(out, "t5-tiny.safetensors"))


def save_t5(t5, path: str):
    """T5 encoder single file (ComfyUI t5xxl layout, model/text_encoder.save_text_encoder), float16, with the
    byte-level tokenizer marker and the prompt length in the metadata."""
    from ..model.text_encoder import save_text_encoder

    t5 = copy.deepcopy(t5).to(torch.float16).cpu()
    save_text_encoder(path, t5, {"tokenizer": "byt5", "max_tokens": configs.MAX_TEXT_TOKENS})


def pack(vae_path: str, dit_path: str, out_path: str):
    """Official single file: DiT + VAE, config {"transformer", "vae", "scheduler", "videodit"} in metadata."""
    from ..model.checkpoint import save_checkpoint

    vae = load_vae(vae_path, torch.device("cpu"))
    dit = LTXVideoTransformer(configs.transformer_config())
    dit.load_state_dict(load_file(dit_path))
    statistics = {k: v.clone() for k, v in vae.per_channel_statistics.state_dict().items()}
    vae.half()
    vae.per_channel_statistics.float().load_state_dict(statistics)  # the latent statistics stay float32
    config = {
        "transformer": dit.config.to_metadata(),
        "vae": vae.config.to_metadata(),
        "scheduler": configs.SCHEDULER,
        "videodit": configs.DEFAULTS,
    }
    save_checkpoint(out_path, dit.half(), vae, config)


# ---------------------------------------------------------------------------------------------------- quick eval


@torch.no_grad()
def quick_eval(dit, t5, vae, args, device) -> dict:
    """Held-out prompts through model/sampling.sample + VAE decode (batched), tracked: T2V scores, I2V first-frame
    PSNR and scores, and how far the shape ends from its rendered end position with the first frame only and with
    the last frame as a second keyframe."""
    from ..model.conditioning import Keyframe
    from ..model.geometry import VideoGeometry
    from ..model.sampling import Guidance, TextCondition, sample
    from ..model.schedules import timesteps
    from . import evaluate

    cases = evaluate.eval_cases(held_out_only=True)
    prompts = [data.canonical_caption(*c) for c in cases]
    text, mask = text_features(t5, prompts, device)
    neg_text, neg_mask = text_features(t5, [""], device)
    positive, negative = TextCondition(text.float(), mask), TextCondition(neg_text.float(), neg_mask)
    geometry = VideoGeometry.of(vae.config, dit.config)
    lat = geometry.latent_shape(args.size, args.size, args.frames)
    start = frontend.empty_latent(geometry, args.size, args.size, args.frames, len(cases), device)
    rng = np.random.default_rng(SEED)
    specs = [data.make_spec(*c, rng, args.frames, args.size) for c in cases]
    clips = data.render_torch(specs, args.frames, args.size, device)[0]  # (B, 3, F, H, W)
    images, last_images = clips[:, :, :1], clips[:, :, -1:]  # (B, 3, 1, H, W) each
    # rendered frames are the keyframes as they are (no crop, no compression): frontend.encode_video
    key = Keyframe(frontend.encode_video(vae, images), 0)
    last = Keyframe(frontend.encode_video(vae, last_images), args.frames - 1)
    true_ends = np.array([s.center(args.frames - 1) for s in specs])  # (B, 2) x, y
    results = {}

    def decode(z):
        with autocast(device):
            return frontend.decode_latents(vae, z, seed=0, out_device="cpu").numpy()  # (B, F, H, W, 3)

    for steps, cfg in ((20, 2.0), (20, 3.0), (20, 4.0), (10, 3.0)):
        ts = timesteps("auto", steps, lat, configs.SCHEDULER)
        for seed in range(args.eval_seeds):
            frames = decode(sample(dit, start, positive, negative, ts, Guidance(cfg=cfg), seed))
            s = evaluate.score([evaluate.track(v) for v in frames], cases)
            results.setdefault(f"t2v steps {steps} cfg {cfg}", []).append(s)
        frames = decode(
            sample(
                dit, start, positive, negative, ts, Guidance(cfg=cfg), 0, keyframes=[key], image_cond_noise_scale=0.15
            )
        )
        ref = ((images[:, :, 0] + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()
        psnrs = [evaluate.psnr(v[0], r) for v, r in zip(frames, ref)]
        s = evaluate.score([evaluate.track(v) for v in frames], cases)
        results[f"i2v steps {steps} cfg {cfg}"] = {
            "psnr_mean": float(np.mean(psnrs)),
            "psnr_min": float(np.min(psnrs)),
            **s,
        }
        # first-last: frame 0 plus the rendered last frame as extra tokens; distance of the tracked end position
        # from the rendered one, in pixels, with and without the last keyframe
        first_last = decode(
            sample(
                dit,
                start,
                positive,
                negative,
                ts,
                Guidance(cfg=cfg),
                0,
                keyframes=[key, last],
                image_cond_noise_scale=0.15,
            )
        )
        for name, videos in (("i2v", frames), ("first-last", first_last)):
            ends = np.array([evaluate.track(v).centroids[-1] for v in videos])
            error = np.linalg.norm(ends - true_ends, axis=1)
            results[f"{name} end error px steps {steps} cfg {cfg}"] = {
                "mean": float(np.nanmean(error)),
                "max": float(np.nanmax(error)),
            }
    for k, v in results.items():
        if isinstance(v, list):
            results[k] = {
                m: float(np.mean([x[m] for x in v])) for m in ("color", "shape", "motion", "background", "all")
            }
        print(f"eval {k}: " + json.dumps({m: round(x, 3) for m, x in results[k].items()}), flush=True)
    return results


# ---------------------------------------------------------------------------------------------------- main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("vae", "dit", "all", "pack"), default="all")
    p.add_argument("--out", required=True, help="folder for the stage outputs (pack: the weights folder)")
    p.add_argument("--vae", help="VAE file from the vae stage (dit, pack)")
    p.add_argument("--init", help="vae stage: continue training from this VAE file")
    p.add_argument("--dit", help="DiT file from the dit stage (pack)")
    p.add_argument("--init-dit", help="dit stage: continue from this DiT file (or packed checkpoint)")
    p.add_argument("--init-t5", help="dit stage: continue from this T5 file (with --init-dit)")
    p.add_argument("--t5", help="T5 file from the dit stage (pack)")
    p.add_argument("--smoke", action="store_true", help="a few CPU steps on 9-frame 64x64 clips")
    p.add_argument("--minutes", type=float, default=6.0, help="time budget of the stage")
    p.add_argument("--max-steps", type=int, default=0, help="cap on the steps of a stage (0: budget only)")
    p.add_argument("--frames", type=int, default=data.FRAMES)
    p.add_argument("--size", type=int, default=data.SIZE)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=4e-4)
    p.add_argument("--kl-weight", type=float, default=1e-5)
    p.add_argument(
        "--decoder-only",
        action="store_true",
        help="vae stage with --init: train the decoder only (encoder and latent statistics unchanged)",
    )
    p.add_argument("--stat-batches", type=int, default=32)
    p.add_argument("--dit-batch", type=int, default=2048)
    p.add_argument("--dit-lr", type=float, default=8e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--bank", type=int, default=65536, help="clips in the latent bank")
    p.add_argument("--bank-seconds", type=float, default=60.0, help="stop filling the bank after this long")
    p.add_argument("--captions-per-combo", type=int, default=256, help="phrasings per caption combination")
    p.add_argument("--i2v-share", type=float, default=0.25, help="share of samples with a clean first frame")
    p.add_argument(
        "--keyframe-every",
        type=int,
        default=4,
        help="every n-th batch conditions on a later frame as extra tokens (0: never)",
    )
    p.add_argument("--cond-noise", type=float, default=0.2, help="max image_cond_noise_scale seen in training")
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument(
        "--attribute-weight",
        type=float,
        default=0.1,
        help="weight of the text encoder's auxiliary attribute loss (0: off)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the DiT and T5 for training (default: on CUDA)",
    )
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--log-every", type=int, default=250)
    p.add_argument("--eval-seeds", type=int, default=2)
    args = p.parse_args(argv)
    if args.decoder_only and not args.init:
        p.error("--decoder-only fine-tunes the decoder of an existing VAE: pass it with --init VAE_FILE")
    if args.smoke:
        args.frames, args.size, args.vae_batch, args.dit_batch = 9, 64, 1, 4
        args.max_steps, args.warmup, args.log_every, args.stat_batches = 3, 2, 1, 2
        args.bank, args.bank_seconds, args.eval_seeds, args.captions_per_combo = 4, 60.0, 0, 2
        args.keyframe_every = 2
    return args


def main(argv=None):
    args = parse(argv)
    args.start = time.time()
    os.makedirs(args.out, exist_ok=True)
    if args.stage == "pack":
        pack(args.vae, args.dit, os.path.join(args.out, "videodit-tiny.safetensors"))
        from ..model.text_encoder import load_text_encoder

        t5 = load_text_encoder(args.t5, dtype=torch.float32).model
        save_t5(t5, os.path.join(args.out, "t5-tiny.safetensors"))
        return
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.compile is None:
        args.compile = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    summary = {"device": str(device), "args": {k: v for k, v in vars(args).items() if k != "start"}}
    if args.stage in ("vae", "all"):
        vae, summary["vae"] = train_vae(args, device)
        save_vae(vae, os.path.join(args.out, "tiny-vae.safetensors"), summary["vae"])
        vae = load_vae(os.path.join(args.out, "tiny-vae.safetensors"), device)
        args.start = time.time()
    else:
        vae = load_vae(args.vae, device)
    if args.stage in ("dit", "all"):
        dit, t5, summary["dit"] = train_dit(args, vae, device)
        save_dit(dit, t5, args.out)
        if args.eval_seeds:
            summary["eval"] = quick_eval(dit, t5, vae, args, device)
        if args.smoke:  # the files of a smoke run must load through the real loaders too
            pack(
                os.path.join(args.out, "tiny-vae.safetensors") if args.stage == "all" else args.vae,
                os.path.join(args.out, "tiny-dit.safetensors"),
                os.path.join(args.out, "videodit-tiny.safetensors"),
            )
    with open(os.path.join(args.out, f"summary-{args.stage}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    short = {"seconds": round(time.time() - args.start)}
    for part in ("vae", "dit"):
        if part in summary:
            short[part] = {
                k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary[part].items() if k != "log"
            }
    print("SUMMARY " + json.dumps(short), flush=True)


if __name__ == "__main__":
    main()
