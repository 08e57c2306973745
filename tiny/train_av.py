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
import os
import tempfile
import time

import torch

from ..model.ltx2.schedules import PIPELINE_TOKENS, token_shift
from . import av_audio, av_config, data
from .av_flow import Bank, attribute_loss, flow_loss, log
from .train import (
    ATTRIBUTE_CLASSES,
    Budget,
    Schedule,
    autocast,
    clipped_step,
    evaluate_vae,
    psnr_db,
    render_batch,
    round_to_half,
    set_latent_statistics,
)

DEFAULT_SEED = 20261203
VIDEO_FILE, AUDIO_FILE = "tiny-ltx2-vae.safetensors", "tiny-ltx2-audio.safetensors"
CHECKPOINT_FILE, GEMMA_FILE = "tiny-ltx2-av.safetensors", "tiny-ltx2-gemma.safetensors"
# ---------------------------------------------------------------------------------------------------- stage A


def train_video_vae(args, device):
    parts = av_config.build(args.seed, ("video_vae",))
    vae = parts["video_vae"].to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    schedule = Schedule(optimizer, args.vae_lr, args.warmup)
    budget = Budget(time.time(), args.video_minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        _, video, coverage = render_batch(args.vae_batch, args.seed + step, args.frames, args.size, device)
        with autocast(device):
            mean, logvar = vae.encoder(video).float().chunk(2, dim=1)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            recon = vae.decoder(z).float()
        weight = 1.0 + 4.0 * (coverage > 0.01).float()  # shape pixels count 5x (a few % of the frame)
        error = recon - video
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        loss = (weight * error.pow(2)).mean() + 0.1 * (weight * error.abs()).mean() + args.kl_weight * kl
        clipped_step(optimizer, loss, vae.parameters())
        step += 1
        budget.update(step)
        if step % args.log_every == 0 or step == budget.total:
            log(f"video vae step {step}: loss {loss.item():.5f} psnr {psnr_db(recon.detach(), video):.2f} dB", t0)
    vae.eval()
    round_to_half(vae)  # the stored weights are float16: the statistics are measured with them
    set_latent_statistics(vae, args, device)
    report = evaluate_vae(vae, args, device)
    return vae, {**report, "steps": step, "seconds": time.time() - t0}


def train_audio(args, device):
    parts = av_config.build(args.seed + 1, ("audio_vae", "vocoder"))
    vae, vocoder = parts["audio_vae"].to(device).train(), parts["vocoder"].to(device).train()
    mel_of = av_audio.log_mel(device)
    params = list(vae.parameters()) + list(vocoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.audio_lr, betas=(0.8, 0.99), weight_decay=0.0)
    schedule = Schedule(optimizer, args.audio_lr, args.warmup)
    budget = Budget(time.time(), args.audio_minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        specs = data.sample_specs(args.audio_batch, args.seed + 7 * 10**6 + step, "train", args.frames, args.size)
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
        clipped_step(optimizer, loss, params)
        step += 1
        budget.update(step)
        if step % args.log_every == 0 or step == budget.total:
            log(f"audio step {step}: mel L1 {mel_loss.item():.4f} kl {kl.item():.2f} stft {stft.item():.4f}", t0)
    vae.eval(), vocoder.eval()
    round_to_half(vae), round_to_half(vocoder)
    av_audio.set_statistics(vae, args, device, args.seed + 8 * 10**6)
    report = av_audio.evaluate(vae, vocoder, args, device, args.seed + 9 * 10**6)
    log("audio eval: " + json.dumps({k: round(v, 3) for k, v in report.items()}), t0)
    return vae, vocoder, {**report, "steps": step, "seconds": time.time() - t0}


# ---------------------------------------------------------------------------------------------------- stage B


def pretrain_gemma(gemma, head, bank: Bank, args, device) -> dict:
    """Gemma alone on the caption task before the joint stage: the attribute loss on captions of the training
    combinations (those of the bank's clips), large batches of 128 tokens; fast, and the joint stage then starts
    from features that tell the attribute words apart."""
    params = list(gemma.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.gemma_lr, betas=(0.9, 0.99), weight_decay=0.01)
    schedule = Schedule(optimizer, args.gemma_lr, args.warmup)
    generator = torch.Generator().manual_seed(args.seed + 5)
    budget = Budget(time.time(), args.gemma_minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
    t0, step = time.time(), 0
    while budget.total is None or step < budget.total:
        schedule.set(step)
        clips = torch.randint(len(bank.combos), (args.gemma_batch,), generator=generator).to(device)
        no_drop = torch.zeros(len(clips), dtype=torch.bool, device=device)
        ids, mask = bank.captions(clips, no_drop, generator)
        with autocast(device):
            last = gemma(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        loss, accuracy = attribute_loss(head, last, mask, bank.combos[clips], no_drop)
        clipped_step(optimizer, loss, params)
        step += 1
        budget.update(step)
        if step % args.log_every == 0 or step == budget.total:
            log(
                f"gemma step {step}: attribute loss {loss.item():.4f}, all four right {100 * accuracy.item():.1f} %", t0
            )
    return {"steps": step, "seconds": time.time() - t0, "attribute_loss": loss.item(), "accuracy": accuracy.item()}


def train_dit(args, video_vae, audio_vae, device):
    torch.manual_seed(args.seed)
    video_vae.eval().requires_grad_(False), audio_vae.eval().requires_grad_(False)
    bank = Bank(video_vae, audio_vae, args, device)
    parts = av_config.build(args.seed + 2, ("transformer", "text_path", "gemma"))
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
    generator = torch.Generator().manual_seed(args.seed)
    noise_generator = torch.Generator(device).manual_seed(args.seed)
    compiled = [torch.compile(m) for m in trained] if args.compile else trained
    budget = Budget(time.time(), args.dit_minutes * 60, args.warmup, args.max_steps or 10**9, schedule)
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
        budget.update(step)
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
    p.add_argument(
        "--out",
        default=os.path.join(tempfile.gettempdir(), "tiny-ltx2-av"),
        help="folder for the files (default: tiny-ltx2-av in the temporary folder; the trained files go to weights/)",
    )
    p.add_argument("--video-vae", help="dit stage: the video VAE file of the video stage")
    p.add_argument("--audio", help="dit stage: the audio VAE + vocoder file of the audio stage")
    p.add_argument("--init-checkpoint", help="dit stage: continue from this tiny-ltx2-av file (with --init-gemma)")
    p.add_argument("--init-gemma", help="dit stage: the tiny-ltx2-gemma file written with --init-checkpoint")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of all randomness")
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
    args = parse(argv)
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
