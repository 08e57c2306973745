"""Train the tiny LTX-2 audio+video model (tiny/av_config.py) on the synthetic world with soundtracks (tiny/data.py).

Stage A (autoencoders, on clips and soundtracks rendered on the device at every step):
  "video"  the LTX-2 video VAE: weighted MSE + L1 reconstruction, weak KL, posterior samples; then the per-channel
           latent statistics of encoded training clips (train.set_latent_statistics). -> <out>/tiny-ltx2-vae.safetensors
  "audio"  the audio VAE on the 16 kHz stereo log-mel (L1 reconstruction, weak KL; latent statistics over the
           patchified means), and jointly the HiFi-GAN vocoder from log-mel to waveform (multi-resolution STFT
           loss on left, right and mid; no discriminator), fed the true mel and, in the second half, also the VAE's
           reconstruction. -> <out>/tiny-ltx2-audio.safetensors
Stage B "dit": the transformer, the text connectors and the tiny Gemma learn from random weights (a frozen random
Gemma would not tell the attribute words apart). Gemma is first pre-trained alone on the caption task for
--gemma-minutes (cross-entropy of colour / shape / motion / background from its mean last hidden state through a
linear head that is not saved, batches of 2048 captions of the training combinations), then everything trains
jointly, the attribute loss kept as an auxiliary term (the flow loss reaches Gemma through the connectors).
Objective (LTX-2's): per sample a sigma from a shifted logit-normal
(sigmoid(N(0, 1)) through e^mu / (e^mu + 1/s - 1), mu = the pipeline schedule's shift, mixed with a uniform share),
x_s = (1 - s) x0 + s eps for video and audio tokens alike, target velocity eps - x0, per-token timesteps; in a share
of the samples the first latent frame is clean with timestep 0 (image-to-audio+video, as latents.replace_frames
conditions it), in another share all audio tokens are (audio-to-video, as latents.given); conditioning tokens are
left out of the loss. Captions are dropped to "" for CFG. Prompts go through the real text path at the pipeline's
1024 tokens: Gemma runs on the BOS + byte tokens (right-padded to 128), its hidden states are zero-padded to 1024
(the connectors put their registers there, as for left padding), so the contexts equal LTX2TextEncoder's (tested).
Latents come from a bank of encoded clips; captions are re-phrased at every draw. EMA weights are saved:
<out>/tiny-ltx2-av.safetensors (official LTX-2.3 single file: transformer, connectors, VAEs, vocoder, config in
metadata) and <out>/tiny-ltx2-gemma.safetensors (Gemma 3 file with the byte tokenizer inside), both fp16.

Held-out colour x shape x motion combinations (data.HELD_OUT) are never rendered for training.

GPU run (one H200, bf16 autocast, torch.compile with eager fallback; on the device
`mkdir -p /tmp/p && ln -s $PWD /tmp/p/videodit && export PYTHONPATH=/tmp/p`), in one process:
    python -m videodit.tiny.train_av --stage all --out $OUT --video-minutes 5 --audio-minutes 4 --dit-minutes 13
or in device calls of at most 10 minutes (tiny/NOTES-av.md): --stage video, --stage audio, then --stage dit with
--video-vae / --audio FILE, continued with --init-checkpoint / --init-gemma. CPU smoke run (every stage a few steps
on 9-frame 64x64 clips, all files written): python -m videodit.tiny.train_av --smoke --out /tmp/tiny-av-smoke
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..model.ltx2 import latents as L
from ..model.ltx2.schedules import PIPELINE_TOKENS, token_shift
from ..model.ltx2.streams import Stream
from ..model.ltx2.text_encoder import MAX_TOKENS
from . import av_audio, av_config, data
from .train import (
    ATTRIBUTE_CLASSES,
    Budget,
    Schedule,
    autocast,
    combo_attributes,
    combo_index,
    evaluate_vae,
    psnr_db,
    render_batch,
    round_to_half,
    set_latent_statistics,
)

SEED = 20261203
VIDEO_FILE, AUDIO_FILE = "tiny-ltx2-vae.safetensors", "tiny-ltx2-audio.safetensors"
CHECKPOINT_FILE, GEMMA_FILE = "tiny-ltx2-av.safetensors", "tiny-ltx2-gemma.safetensors"
NUM_COMBOS = math.prod(ATTRIBUTE_CLASSES)


def log(message: str, start: float) -> None:
    print(f"[{time.time() - start:7.1f} s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------- stage A


def train_video_vae(args, device):
    parts = av_config.build(SEED, ("video_vae",))
    vae = parts["video_vae"].to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedule = Schedule(optimizer, args.vae_lr, args.warmup)
    budget = Budget(time.time(), args.video_minutes * 60, args.warmup, args.max_steps or 10**9)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        _, video, coverage = render_batch(args.vae_batch, SEED + step, args.frames, args.size, device)
        with autocast(device):
            mean, logvar = vae.encoder(video).float().chunk(2, dim=1)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            recon = vae.decoder(z).float()
        weight = 1.0 + 4.0 * (coverage > 0.01).float()  # shape pixels count 5x (a few % of the frame)
        error = recon - video
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = (weight * error.pow(2)).mean() + 0.1 * (weight * error.abs()).mean() + args.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        step += 1
        if budget.update(step):
            schedule.total = budget.total
        if step % args.log_every == 0 or step == budget.total:
            log(f"video vae step {step}: loss {loss.item():.5f} psnr {psnr_db(recon.detach(), video):.2f} dB", t0)
    vae.eval()
    round_to_half(vae)  # the stored weights are float16: the statistics are measured with them
    set_latent_statistics(vae, args, device)
    report = evaluate_vae(vae, args, device)
    return vae, {**report, "steps": step, "seconds": time.time() - t0}


def train_audio(args, device):
    parts = av_config.build(SEED + 1, ("audio_vae", "vocoder"))
    vae, vocoder = parts["audio_vae"].to(device).train(), parts["vocoder"].to(device).train()
    mel_of = av_audio.log_mel(device)
    params = list(vae.parameters()) + list(vocoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.audio_lr, betas=(0.8, 0.99), weight_decay=0.0)
    schedule = Schedule(optimizer, args.audio_lr, args.warmup)
    budget = Budget(time.time(), args.audio_minutes * 60, args.warmup, args.max_steps or 10**9)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        specs = data.sample_specs(args.audio_batch, SEED + 7 * 10**6 + step, "train", args.frames, args.size)
        wave = av_audio.soundtracks(specs, args, device)
        mel = mel_of(wave)  # (B, 2, M, 64)
        with autocast(device):
            recon, kl = av_audio.vae_reconstruction(vae, mel)
            mel_loss = (recon.float() - mel).abs().mean()
            late = budget.total is not None and step > budget.total // 2
            source = (
                torch.where(torch.rand(mel.shape[0], 1, 1, 1, device=device) < 0.5, recon.detach(), mel)
                if late
                else mel
            )
            voice = vocoder(source).float()[..., : wave.shape[-1]]
        stft = av_audio.stft_loss(voice, wave)
        loss = mel_loss + args.kl_weight * kl + stft
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        if budget.update(step):
            schedule.total = budget.total
        if step % args.log_every == 0 or step == budget.total:
            log(f"audio step {step}: mel L1 {mel_loss.item():.4f} kl {kl.item():.2f} stft {stft.item():.4f}", t0)
    vae.eval(), vocoder.eval()
    round_to_half(vae), round_to_half(vocoder)
    av_audio.set_statistics(vae, args, device, SEED + 8 * 10**6)
    report = av_audio.evaluate(vae, vocoder, args, device, SEED + 9 * 10**6)
    log("audio eval: " + json.dumps({k: round(v, 3) for k, v in report.items()}), t0)
    return vae, vocoder, {**report, "steps": step, "seconds": time.time() - t0}


# ---------------------------------------------------------------------------------------------------- stage B


class Bank:
    """Encoded training clips (normalized video latents as tokens (N, f*h*w, C), audio latents as tokens (N, T, C))
    with their combination, and a table of tokenised captions: `per_combo` phrasings per (colour, shape, motion,
    background) and the empty caption last (caption dropout), so a batch of captions is one gather."""

    def __init__(self, video_vae, audio_vae, args, device):
        t0, videos, audios, combos = time.time(), [], [], []
        step = args.vae_batch * (8 if device.type == "cuda" else 1)
        for i in range(0, args.bank, step):
            specs, video, _ = render_batch(step, SEED + 3 * 10**6 + i, args.frames, args.size, device)
            wave = av_audio.soundtracks(specs, args, device)
            with torch.no_grad(), autocast(device):
                videos.append(L.patchify_video(video_vae.encode_normalized(video).float()))
                audio = audio_vae.encode_waveform(wave, av_config.SAMPLE_RATE).float()
            tokens = L.audio_token_count(args.frames, av_config.FRAME_RATE)
            audios.append(L.patchify_audio(audio[:, :, :tokens]))  # the pipeline crops the encoded track too
            combos += [combo_index(s) for s in specs]
            if time.time() - t0 > args.bank_seconds:
                break
        self.video, self.audio = torch.cat(videos), torch.cat(audios)
        self.set_combos(torch.tensor(combos, device=device))
        self.video_grid = video_vae.encode_normalized(video[:1]).shape[2:]  # (f, h, w)
        rng = np.random.default_rng(SEED)
        prompts = []
        for c in range(NUM_COMBOS):
            names = [
                n[i]
                for n, i in zip(
                    (tuple(data.COLORS), data.SHAPES, data.MOTIONS, tuple(data.BACKGROUNDS)), combo_attributes(c)
                )
            ]
            spec = data.ClipSpec(*names, 0.0, 0.0, 0.0, 0.0)  # speed 0: only speed-neutral adverbs
            prompts += [data.caption(spec, rng) for _ in range(args.captions_per_combo)]
        prompts.append("")
        self.ids, self.mask = (t.to(device) for t in av_config_tokens(prompts))
        self.per_combo = args.captions_per_combo
        log(f"bank: {len(self.combos)} clips, video tokens {tuple(self.video.shape[1:])} std {self.video.std():.3f}, "
            f"audio tokens {tuple(self.audio.shape[1:])} std {self.audio.std():.3f}; {len(prompts)} captions, e.g. "
            f"{prompts[:2]}", t0)  # fmt: skip

    def set_combos(self, combos: torch.Tensor) -> None:
        """combos (N,): the combination index of every clip; builds the per-combination index draw uses."""
        self.combos = combos
        self.by_combo = torch.argsort(combos, stable=True)  # clips grouped by combination
        counts = torch.bincount(combos, minlength=NUM_COMBOS)
        self.combo_start, self.combo_count = torch.cumsum(counts, 0) - counts, counts

    def draw(self, groups: int, per_group: int, generator) -> torch.Tensor:
        """groups x per_group clip indices (flat, group-major): each group is per_group random clips of one
        combination (that of a uniformly drawn clip), so one caption serves the whole group."""
        anchor = torch.randint(len(self.combos), (groups,), generator=generator).to(self.combos.device)
        combo = self.combos[anchor]
        offset = torch.rand(groups, per_group, generator=generator).to(combo.device) * self.combo_count[combo, None]
        picks = self.combo_start[combo, None] + offset.long().clamp(max=self.combo_count[combo, None] - 1)
        return self.by_combo[picks].flatten()

    def captions(self, idx, drop, generator):
        k = torch.randint(self.per_combo, idx.shape, generator=generator).to(self.combos.device)
        rows = self.combos[idx] * self.per_combo + k
        rows = torch.where(drop, self.ids.shape[0] - 1, rows)
        return self.ids[rows], self.mask[rows]


def av_config_tokens(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """BOS + utf-8 bytes through the byte tokenizer, right-padded to CAPTION_TOKENS: ids, mask (B, 128)."""
    batch = av_config.byte_tokenizer()(
        [p.strip() for p in prompts], padding="max_length", max_length=av_config.CAPTION_TOKENS, truncation=True,
        return_tensors="pt",
    )  # fmt: skip
    return batch["input_ids"], batch["attention_mask"]


def text_contexts(gemma, text_path, ids, mask, tokens: int = MAX_TOKENS):
    """Gemma on right-padded ids (B, L) -> (video (B, tokens, Dv), audio (B, tokens, Da), last hidden (B, L, D)).
    The hidden states are zero-padded to `tokens` positions with mask 0, where the connectors put registers."""
    states = gemma(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states
    pad = tokens - ids.shape[1]
    video, audio, _ = text_path([F.pad(s, (0, 0, 0, pad)) for s in states], F.pad(mask, (0, pad)))
    return video, audio, states[-1]


def sample_sigmas(n: int, generator, mu: float, uniform_share: float) -> torch.Tensor:
    """(n,) in (0, 1]: sigmoid(N(0, 1)) (a uniform share: U(0, 1)) through the shift e^mu / (e^mu + 1/s - 1)."""
    u = torch.sigmoid(torch.randn(n, generator=generator))
    u = torch.where(torch.rand(n, generator=generator) < uniform_share, torch.rand(n, generator=generator), u)
    k = math.exp(mu)
    return (k * u / (1 + (k - 1) * u)).clamp(1e-3, 1.0)


def flow_loss(model, bank: Bank, idx, generator, noise_generator, args, device):
    """(video loss, audio loss, attribute loss) of the bank clips idx (groups of args.clips_per_caption clips of
    one combination, Bank.draw); model = (transformer, text_path, gemma, head). One caption per group goes
    through Gemma and the text path, its contexts serve every clip of the group."""
    transformer, text_path, gemma, head = model
    x0v, x0a = bank.video[idx], bank.audio[idx]  # (B, Nv, Cv), (B, Na, Ca)
    b, per = x0v.shape[0], args.clips_per_caption
    f, h, w = bank.video_grid
    first = idx[::per]  # one clip per group: its combination names the group's caption
    dropped = (torch.rand(len(first), generator=generator) < args.caption_dropout).to(device)
    ids, mask = bank.captions(first, dropped, generator)
    s = sample_sigmas(b, generator, args.shift, args.uniform_share).to(device)
    i2v = (torch.rand(b, generator=generator) < args.i2v_share).to(device)
    a2v = (torch.rand(b, generator=generator) < args.a2v_share).to(device)
    cond_v = i2v[:, None] & (torch.arange(x0v.shape[1], device=device) < h * w)[None]  # latent frame 0 clean
    cond_a = a2v[:, None].expand(b, x0a.shape[1])  # the whole track given
    noise_v = torch.randn(x0v.shape, generator=noise_generator, device=device)
    noise_a = torch.randn(x0a.shape, generator=noise_generator, device=device)
    xv = torch.where(cond_v[..., None], x0v, (1 - s[:, None, None]) * x0v + s[:, None, None] * noise_v)
    xa = torch.where(cond_a[..., None], x0a, (1 - s[:, None, None]) * x0a + s[:, None, None] * noise_a)
    tau_v = torch.where(cond_v, 0.0, s[:, None].expand_as(cond_v.float()))
    tau_a = torch.where(cond_a, 0.0, s[:, None].expand_as(cond_a.float()))
    with autocast(device):
        video_ctx, audio_ctx, last = text_contexts(gemma, text_path, ids, mask)
        video_ctx, audio_ctx = video_ctx.repeat_interleave(per, 0), audio_ctx.repeat_interleave(per, 0)
        video = Stream(xv, s, tau_v, bank.video_positions.expand(b, -1, -1, -1), video_ctx)
        audio = Stream(xa, s, tau_a, bank.audio_positions.expand(b, -1, -1, -1), audio_ctx)
        pred_v, pred_a = transformer(video, audio)
    keep_v, keep_a = (~cond_v).float()[..., None], (~cond_a).float()[..., None]
    loss_v = ((pred_v.float() - (noise_v - x0v)).pow(2) * keep_v).sum() / (keep_v.sum() * x0v.shape[2])
    loss_a = ((pred_a.float() - (noise_a - x0a)).pow(2) * keep_a).sum() / (keep_a.sum() * x0a.shape[2]).clamp(min=1)
    return loss_v, loss_a, attribute_loss(head, last, mask, bank.combos[first], dropped)[0]


def attribute_loss(head, last, mask, combos, dropped) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (summed over colour, shape, motion, background) of the attributes predicted by a linear head
    from Gemma's mean last hidden state (B, L, D), and the share of captions with all four right; dropped
    captions ("") are left out."""
    pooled = (last.float() * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
    logits = head(pooled).split(ATTRIBUTE_CLASSES, dim=-1)
    labels = combo_attributes(combos)
    keep = (~dropped).float()
    loss = sum((F.cross_entropy(lg, lb, reduction="none") * keep).sum() for lg, lb in zip(logits, labels))
    right = torch.stack([lg.argmax(-1) == lb for lg, lb in zip(logits, labels)]).all(0).float()
    count = keep.sum().clamp(min=1.0)
    return loss / count, (right * keep).sum() / count


def pretrain_gemma(gemma, head, bank: Bank, args, device) -> dict:
    """Gemma alone on the caption task before the joint stage: the attribute loss on captions of the training
    combinations (those of the bank's clips), large batches of 128 tokens; fast, and the joint stage then starts
    from features that tell the attribute words apart."""
    params = list(gemma.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.gemma_lr, betas=(0.9, 0.99), weight_decay=0.01)
    schedule = Schedule(optimizer, args.gemma_lr, args.warmup)
    generator = torch.Generator().manual_seed(SEED + 5)
    budget = Budget(time.time(), args.gemma_minutes * 60, args.warmup, args.max_steps or 10**9)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        clips = torch.randint(len(bank.combos), (args.gemma_batch,), generator=generator).to(device)
        no_drop = torch.zeros(len(clips), dtype=torch.bool, device=device)
        ids, mask = bank.captions(clips, no_drop, generator)
        with autocast(device):
            last = gemma(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        loss, accuracy = attribute_loss(head, last, mask, bank.combos[clips], no_drop)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        if budget.update(step):
            schedule.total = budget.total
        if step % args.log_every == 0 or step == budget.total:
            log(
                f"gemma step {step}: attribute loss {loss.item():.4f}, all four right {100 * accuracy.item():.1f} %", t0
            )
    return {"steps": step, "seconds": time.time() - t0, "attribute_loss": loss.item(), "accuracy": accuracy.item()}


def train_dit(args, video_vae, audio_vae, device):
    torch.manual_seed(SEED)
    video_vae.eval().requires_grad_(False), audio_vae.eval().requires_grad_(False)
    bank = Bank(video_vae, audio_vae, args, device)
    f, h, w = bank.video_grid
    bank.video_positions = L.video_positions(1, f, h, w, av_config.FRAME_RATE, device=device)
    bank.audio_positions = L.audio_positions(1, bank.audio.shape[1], device=device)
    parts = av_config.build(SEED + 2, ("transformer", "text_path", "gemma"))
    if args.init_checkpoint:
        load_init(parts, args.init_checkpoint, args.init_gemma)
    trained = [parts[k].to(device).train() for k in ("transformer", "text_path", "gemma")]
    head = torch.nn.Linear(av_config.GEMMA_WIDTH, sum(ATTRIBUTE_CLASSES)).to(device)
    report = {}
    if args.gemma_minutes > 0 and not args.init_checkpoint:
        report["gemma"] = pretrain_gemma(parts["gemma"], head, bank, args, device)
    params = [p for m in trained for p in m.parameters()]
    ema = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(
        params + list(head.parameters()), lr=args.dit_lr, betas=(0.9, 0.99), weight_decay=0.01
    )
    schedule = Schedule(optimizer, args.dit_lr, args.warmup)
    generator = torch.Generator().manual_seed(SEED)
    noise_generator = torch.Generator(device).manual_seed(SEED)
    compiled = [torch.compile(m) for m in trained] if args.compile else trained
    budget = Budget(time.time(), args.dit_minutes * 60, args.warmup, args.max_steps or 10**9)
    t0, step, running = time.time(), 0, []
    while budget.total is None or step < budget.total:
        schedule.set(step)
        idx = bank.draw(args.dit_batch // args.clips_per_caption, args.clips_per_caption, generator)
        state = (generator.get_state(), noise_generator.get_state())

        def step_losses(modules, idx=idx):
            optimizer.zero_grad(set_to_none=True)
            loss_v, loss_a, aux = flow_loss((*modules, head), bank, idx, generator, noise_generator, args, device)
            (loss_v + args.audio_weight * loss_a + args.attribute_weight * aux).backward()
            return loss_v, loss_a, aux

        try:
            loss_v, loss_a, aux = step_losses(compiled)
        except Exception as error:  # torch.compile problems (no Triton, unsupported op) surface at the first step
            if compiled is trained or step > 0:
                raise
            log(f"torch.compile failed ({type(error).__name__}: {str(error)[:300]}); training eager", t0)
            compiled = trained
            generator.set_state(state[0]), noise_generator.set_state(state[1])
            loss_v, loss_a, aux = step_losses(compiled)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        step += 1
        running.append(torch.stack([loss_v.detach(), loss_a.detach(), aux.detach()]))
        if budget.update(step):
            schedule.total = budget.total
        if step % args.log_every == 0 or step == budget.total:
            v, a, x = torch.stack(running).mean(0).tolist()
            running = []
            log(f"dit step {step}/{budget.total}: video {v:.4f} audio {a:.4f} attributes {x:.4f} "
                f"lr {optimizer.param_groups[0]['lr']:.2e}", t0)  # fmt: skip
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    for m in trained:
        m.eval()
    return parts, {**report, "steps": step, "seconds": time.time() - t0, "bank": len(bank.combos)}


# ---------------------------------------------------------------------------------------------------- files


def save_stage(path: str, modules: dict) -> None:
    from ..model.checkpoint import save_ltx2_checkpoint

    sections = {"video_vae": "vae", "audio_vae": "audio_vae", "vocoder": "vocoder"}
    config = {sections[k]: av_config.SECTIONS[sections[k]] for k in modules}
    halves = {k: _half_copy(m) for k, m in modules.items()}
    save_ltx2_checkpoint(path, halves, config, av_config.MODEL_VERSION)


def _half_copy(module):
    import copy

    module = copy.deepcopy(module).cpu()
    keep = {k: v.clone() for k, v in module.state_dict().items() if "per_channel_statistics" in k}
    module.half()
    for k, v in keep.items():
        av_config._set_tensor(module, k, v)
    return module


def load_init(parts: dict, checkpoint: str, gemma: str) -> None:
    """Continue stage B: the transformer and text connectors of an earlier tiny-ltx2-av file, the Gemma of the
    tiny-ltx2-gemma file written with it (both through the pack's loaders)."""
    from ..model.ltx2.gemma import load_gemma

    earlier = load_stage([checkpoint], torch.device("cpu"))
    parts["transformer"].load_state_dict(earlier.transformer.state_dict())
    parts["text_path"].load_state_dict(earlier.text_path.state_dict())
    parts["gemma"].load_state_dict(load_gemma(gemma, torch.float32).model.state_dict())


def load_stage(paths: list[str], device):
    from ..model.checkpoint import load_ltx2_checkpoint

    return load_ltx2_checkpoint(paths, torch.float32, device)


# ---------------------------------------------------------------------------------------------------- main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stage", choices=("video", "audio", "dit", "all"), default="all")
    p.add_argument("--out", required=True, help="folder for the files")
    p.add_argument("--video-vae", help="dit stage: the video VAE file of the video stage")
    p.add_argument("--audio", help="dit stage: the audio VAE + vocoder file of the audio stage")
    p.add_argument("--init-checkpoint", help="dit stage: continue from this tiny-ltx2-av file (with --init-gemma)")
    p.add_argument("--init-gemma", help="dit stage: the tiny-ltx2-gemma file written with --init-checkpoint")
    p.add_argument("--seed", type=int, default=SEED, help="seed of all randomness")
    p.add_argument("--smoke", action="store_true", help="every stage a few CPU steps on 9-frame 64x64 clips")
    p.add_argument("--video-minutes", type=float, default=6.0)
    p.add_argument("--audio-minutes", type=float, default=4.0)
    p.add_argument("--dit-minutes", type=float, default=13.0)
    p.add_argument("--max-steps", type=int, default=0, help="cap on the steps of each stage (0: time budget only)")
    p.add_argument("--frames", type=int, default=av_config.FRAMES)
    p.add_argument("--size", type=int, default=av_config.SIZE)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=4e-4)
    p.add_argument("--kl-weight", type=float, default=1e-5)
    p.add_argument("--stat-batches", type=int, default=32)
    p.add_argument("--audio-batch", type=int, default=32)
    p.add_argument("--audio-lr", type=float, default=5e-4)
    p.add_argument("--dit-batch", type=int, default=512)
    p.add_argument("--dit-lr", type=float, default=6e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--gemma-minutes", type=float, default=1.0, help="dit stage: Gemma pre-training on the captions")
    p.add_argument("--gemma-batch", type=int, default=2048)
    p.add_argument("--gemma-lr", type=float, default=1e-3)
    p.add_argument("--bank", type=int, default=32768, help="clips in the latent bank")
    p.add_argument("--bank-seconds", type=float, default=60.0, help="stop filling the bank after this long")
    p.add_argument("--captions-per-combo", type=int, default=64)
    p.add_argument(
        "--clips-per-caption",
        type=int,
        default=4,
        help="clips of one combination sharing one caption per batch (the 1024-token text path is most of a step)",
    )
    p.add_argument("--shift", type=float, default=token_shift(PIPELINE_TOKENS), help="sigma shift mu (pipeline: 2.05)")
    p.add_argument("--uniform-share", type=float, default=0.2, help="share of uniformly drawn sigmas")
    p.add_argument("--i2v-share", type=float, default=0.2, help="share of samples with a clean first latent frame")
    p.add_argument("--a2v-share", type=float, default=0.2, help="share of samples with the audio given (clean)")
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--audio-weight", type=float, default=1.0)
    p.add_argument("--attribute-weight", type=float, default=0.1, help="weight of Gemma's auxiliary attribute loss")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--log-every", type=int, default=100)
    args = p.parse_args(argv)
    if args.smoke:
        args.frames, args.size, args.vae_batch, args.audio_batch, args.dit_batch = 9, 64, 2, 2, 2
        args.max_steps = args.max_steps or 2
        args.warmup, args.log_every, args.stat_batches = 1, 1, 1
        args.bank, args.captions_per_combo, args.clips_per_caption, args.gemma_batch = 4, 1, 2, 4
    if bool(args.init_checkpoint) != bool(args.init_gemma):
        p.error("--init-checkpoint and --init-gemma go together (the Gemma trained with that checkpoint)")
    if args.clips_per_caption < 1 or args.dit_batch % args.clips_per_caption:
        p.error(f"--dit-batch {args.dit_batch} must be a multiple of --clips-per-caption {args.clips_per_caption}")
    return args


def main(argv=None):
    global SEED
    args = parse(argv)
    SEED = args.seed
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    if args.compile is None:
        args.compile = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    summary = {"device": str(device), "args": vars(args)}
    video_path = os.path.join(args.out, VIDEO_FILE) if args.stage in ("video", "all") else args.video_vae
    audio_path = os.path.join(args.out, AUDIO_FILE) if args.stage in ("audio", "all") else args.audio
    if args.stage in ("video", "all"):
        vae, summary["video"] = train_video_vae(args, device)
        save_stage(video_path, {"video_vae": vae})
        log(f"video VAE -> {video_path}: {json.dumps({k: round(v, 3) for k, v in summary['video'].items()})}", start)
    if args.stage in ("audio", "all"):
        vae, vocoder, summary["audio"] = train_audio(args, device)
        save_stage(audio_path, {"audio_vae": vae, "vocoder": vocoder})
        log(f"audio VAE + vocoder -> {audio_path}", start)
    if args.stage in ("dit", "all"):
        if not (video_path and audio_path):
            raise SystemExit("--stage dit needs --video-vae FILE and --audio FILE (from the video and audio stages)")
        stage_a = load_stage([video_path, audio_path], device)
        parts, summary["dit"] = train_dit(args, stage_a.video_vae, stage_a.audio_vae, device)
        parts |= {"video_vae": stage_a.video_vae, "audio_vae": stage_a.audio_vae, "vocoder": stage_a.vocoder}
        checkpoint, gemma = os.path.join(args.out, CHECKPOINT_FILE), os.path.join(args.out, GEMMA_FILE)
        av_config.save_checkpoint(checkpoint, parts, torch.float16)
        av_config.save_gemma(gemma, parts["gemma"], torch.float16)
        log(f"-> {checkpoint} ({os.path.getsize(checkpoint) / 1e6:.1f} MB), {gemma}", start)
    with open(os.path.join(args.out, f"summary-av-{args.stage}.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    log(f"done ({args.stage})", start)


if __name__ == "__main__":
    main()
