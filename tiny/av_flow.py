"""Stage B of the tiny LTX-2 training (tiny/train_av.py): the latent bank, the prompts through the real text path
at 1024 tokens, the sigma sampler and the joint audio+video rectified-flow loss with I2AV / A2V conditioning."""

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..model.ltx2 import latents as L
from ..model.ltx2.streams import Stream
from ..model.ltx2.text_encoder import MAX_TOKENS
from . import av_audio, av_config, data
from .train import ATTRIBUTE_CLASSES, autocast, combo_attributes, combo_index, render_batch

NUM_COMBOS = math.prod(ATTRIBUTE_CLASSES)


def log(message: str, start: float) -> None:
    print(f"[{time.time() - start:7.1f} s] {message}", flush=True)


class Bank:
    """Encoded training clips (normalized video latents as tokens (N, f*h*w, C), audio latents as tokens (N, T, C))
    with their combination, and a table of tokenised captions: `per_combo` phrasings per (colour, shape, motion,
    background) and the empty caption last (caption dropout), so a batch of captions is one gather."""

    def __init__(self, video_vae, audio_vae, args, device):
        t0, videos, audios, combos = time.time(), [], [], []
        step = args.vae_batch * (8 if device.type == "cuda" else 1)
        for i in range(0, args.bank, step):
            specs, video, _ = render_batch(step, args.seed + 3 * 10**6 + i, args.frames, args.size, device)
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
        self.video_grid = f, h, w = video_vae.encode_normalized(video[:1]).shape[2:]  # latent (f, h, w)
        self.video_positions = L.video_positions(1, f, h, w, av_config.FRAME_RATE, device=device)  # (1, 3, Nv, 2)
        self.audio_positions = L.audio_positions(1, self.audio.shape[1], device=device)  # (1, 1, Na, 2)
        rng = np.random.default_rng(args.seed)
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
        self.ids, self.mask = (t.to(device) for t in caption_tokens(prompts))
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


def caption_tokens(prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
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
