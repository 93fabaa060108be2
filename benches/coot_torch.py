"""PyTorch CPU twin of benches/coot_epoch.rs: the coot head, the CrossCLR objective and RAdam.

Two commands, each printing one JSON line on stdout:

  check --dir D   loads the checkpoint the Rust bench wrote (D/weights.safetensors, parameter names
                  as the Rust model's VarBuilder paths, strict) and the batches in D/io.safetensors;
                  compares the embeddings (eval mode), the objective of two consecutive batches (the
                  queue carries the first into the second) and the gradients of the second with the
                  Rust ones; exits 1 when they disagree beyond 1e-4 (embeddings, objective) or 1e-3
                  (gradient, relative norm per parameter).
  bench ...       builds the same synthetic corpus recipe with NumPy (same sizes and distribution, not
                  the same bits), trains --epochs epochs and reports seconds per epoch (the training
                  steps: batching, forward, loss, backward, RAdam) and VmHWM.

The model mirrors src/model/ (coot.rs, layers.rs): per network input dropout → LayerNorm →
Linear → GELU (erf) → dropout → + sinusoid positions → one post-norm encoder layer (attention
without key bias, LayerNorm(x + dropout(attn)), Linear-GELU-dropout-Linear, LayerNorm(x + dropout(ff)))
→ attention-aware pooling (GenPool without its output bias, dropout on the hidden layer and on the
weights); global networks append a context cross-attention layer's output. Attention uses
F.scaled_dot_product_attention with an additive key mask (what a PyTorch user would write).
The loss mirrors src/crossclr/ paper mode: queue at the clip level, in-batch at the video level,
connectivity and weights in float64, removed entries at −∞; objective L_local + 0.6·L_global.
No safetensors package is needed: the files are read with json + NumPy.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MASKED_LOGIT = -1e9


# ------------------------------------------------------------------------------------ model
def sinusoid_table(rows, width):
    pos = np.arange(rows, dtype=np.float64)[:, None]
    pair = (np.arange(width) // 2).astype(np.float64)[None, :]
    angle = pos / np.power(10000.0, 2.0 * pair / width)
    table = np.where(np.arange(width)[None, :] % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(table.astype(np.float32))


def key_bias(mask):
    return (mask.float() - 1.0) * -MASKED_LOGIT


class MultiHeadAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width)
        self.output = nn.Linear(width, width)
        self.heads = heads

    def forward(self, query, context, bias):
        n, tq, width = query.shape
        tk = context.shape[1]
        h, d = self.heads, width // self.heads
        q = self.query(query).view(n, tq, h, d).transpose(1, 2)
        k = self.key(context).view(n, tk, h, d).transpose(1, 2)
        v = self.value(context).view(n, tk, h, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None, None, :])
        return self.output(out.transpose(1, 2).reshape(n, tq, width))


class FeedForward(nn.Module):
    def __init__(self, width, dropout):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.fc2(self.drop(F.gelu(self.fc1(x))))


class EncoderLayer(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        self.attention = MultiHeadAttention(width, heads)
        self.attention_norm = nn.LayerNorm(width, eps=1e-5)
        self.ff = FeedForward(width, dropout)
        self.ff_norm = nn.LayerNorm(width, eps=1e-5)
        self.drop = nn.Dropout(dropout)

    def forward(self, query, context, bias):
        x = self.attention_norm(query + self.drop(self.attention(query, context, bias)))
        return self.ff_norm(x + self.drop(self.ff(x)))


class GenPool(nn.Module):
    def __init__(self, width, heads, dropout):
        super().__init__()
        d = width // heads
        self.w1 = nn.Parameter(torch.zeros(heads, width, d))
        self.b1 = nn.Parameter(torch.zeros(heads, d))
        self.w2 = nn.Parameter(torch.zeros(heads, d, d))
        self.heads = heads
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        n, t, width = x.shape
        h, d = self.heads, width // self.heads
        w1 = self.w1.transpose(0, 1).reshape(width, width)
        hidden = self.drop(F.gelu(x.reshape(n * t, width) @ w1 + self.b1.reshape(width)))
        logits = torch.bmm(hidden.view(n * t, h, d).transpose(0, 1), self.w2)
        logits = logits.transpose(0, 1).reshape(n, t, width)
        weights = self.drop(torch.softmax(logits + bias[:, :, None], dim=1))
        return (weights * x).sum(1)


class Network(nn.Module):
    def __init__(self, input_dim, cfg, heads, with_context, positions):
        super().__init__()
        a, p = cfg["attention_dim"], cfg["dropout"]
        self.input_norm = nn.LayerNorm(input_dim, eps=1e-5)
        self.input_fc = nn.Linear(input_dim, a)
        self.layer = EncoderLayer(a, heads, p)
        self.context = EncoderLayer(a, cfg["global_heads"], p) if with_context else None
        self.pool = GenPool(a, cfg["pool_heads"], p)
        self.drop = nn.Dropout(p)
        self.register_buffer("positions", positions, persistent=False)

    def forward(self, values, bias, context=None):
        t = values.shape[1]
        x = self.input_norm(self.drop(values))
        x = self.drop(F.gelu(self.input_fc(x))) + self.positions[:t]
        steps = self.layer(x, x, bias)
        pooled = self.pool(steps, bias)
        if self.context is None:
            return pooled
        attended = self.context(context[:, None, :], steps, bias)[:, 0]
        return torch.cat([pooled, attended], 1)


class CootHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        a = cfg["attention_dim"]
        positions = sinusoid_table(cfg["max_positions"], a)
        local, glob = cfg["local_heads"], cfg["global_heads"]
        self.video_local = Network(cfg["video_dim"], cfg, local, False, positions)
        self.video_global = Network(a, cfg, glob, True, positions)
        self.text_local = Network(cfg["text_dim"], cfg, local, False, positions)
        self.text_global = Network(a, cfg, glob, True, positions)

    @staticmethod
    def side(local, glob, items, items_mask, context, context_mask, grouping):
        index, group_mask = grouping
        local_emb = local(items, key_bias(items_mask))
        context_emb = local(context, key_bias(context_mask))
        videos, longest = group_mask.shape
        regrouped = local_emb[index].view(videos, longest, -1)
        return local_emb, glob(regrouped, key_bias(group_mask), context_emb)

    def forward(self, batch):
        grouping = batch["grouping"]
        clip, video = self.side(self.video_local, self.video_global, batch["video_clips"],
                                batch["video_clips_mask"], batch["video_context"],
                                batch["video_context_mask"], grouping)
        sentence, paragraph = self.side(self.text_local, self.text_global,
                                        batch["text_sentences"], batch["text_sentences_mask"],
                                        batch["text_context"], batch["text_context_mask"],
                                        grouping)
        return clip, sentence, video, paragraph


def make_grouping(groups):
    """groups: list of (start, end) → (gather index, (videos, longest) mask), as model/input.rs."""
    longest = max(end - start for start, end in groups)
    index, mask = [], []
    for start, end in groups:
        for slot in range(longest):
            real = slot < end - start
            index.append(start + slot if real else start)
            mask.append(1.0 if real else 0.0)
    return (torch.tensor(index, dtype=torch.long),
            torch.tensor(mask, dtype=torch.float32).view(len(groups), longest))


# ------------------------------------------------------------------------------------- loss
def influential(c, gamma):
    top = c.max()
    if not torch.isfinite(top) or top <= 0:
        return torch.zeros_like(c, dtype=torch.bool)
    return c / top > gamma


def sample_weights(c, kappa):
    total = c.sum()
    if not torch.isfinite(total) or total <= 0:
        return torch.full_like(c, 1.0 / c.numel())
    return torch.softmax(c / total / kappa, 0)


def direction(anchors, candidates, bank, cross_pruned, intra_pruned, own, weights, hp):
    """Σ_i ω_i ℓ_i for rows [anchors·candidatesᵀ/τ | anchors·bankᵀ/τ + ln λ], removed = −∞."""
    b, m = anchors.shape[0], bank.shape[0]
    cross = anchors @ candidates.T / hp["tau"]
    intra = anchors @ bank.T / hp["tau"] + math.log(hp["lambda"])
    eye = torch.eye(b, dtype=torch.bool)
    cross = cross.masked_fill(cross_pruned[None, :] & ~eye, float("-inf"))
    removed = intra_pruned[None, :].expand(b, m).clone()
    rows = torch.arange(b)
    has_own = own >= 0
    removed[rows[has_own], own[has_own]] = True
    intra = intra.masked_fill(removed, float("-inf"))
    per_sample = torch.logsumexp(torch.cat([cross, intra], 1), 1) - cross.diagonal()
    return (weights.to(per_sample.dtype) * per_sample).sum()


def crossclr_batch(v, t, xv, xt, hp):
    """Paper mode without a queue (the video/paragraph level): intra negatives in-batch."""
    vn, tn = F.normalize(v, dim=1), F.normalize(t, dim=1)
    b = v.shape[0]
    own = torch.arange(b)
    total = 0.0
    for anchors, others, x in ((vn, tn, xv), (tn, vn, xt)):
        c = (x @ x.sum(0) - (x * x).sum(1)) / b
        infl = influential(c, hp["gamma"])
        total = total + direction(anchors, others, anchors, infl, infl, own,
                                  sample_weights(c, hp["kappa"]), hp)
    return 0.5 * total


class PaperQueue:
    """Paper mode with a FIFO queue (the clip/sentence level), as src/crossclr/queue.rs."""

    def __init__(self, capacity, hp):
        self.capacity, self.hp = capacity, hp
        self.pointer = self.filled = 0
        self.buffers = None

    def __call__(self, v, t, xv, xt):
        hp, k = self.hp, self.capacity
        vn, tn = F.normalize(v, dim=1), F.normalize(t, dim=1)
        b = v.shape[0]
        if self.buffers is None:
            self.buffers = [torch.zeros(k, v.shape[1]), torch.zeros(k, t.shape[1]),
                            torch.zeros(k, xv.shape[1], dtype=torch.float64),
                            torch.zeros(k, xt.shape[1], dtype=torch.float64)]
        start = self.pointer
        written = min(b, k - start)
        for buffer, rows in zip(self.buffers, (vn.detach(), tn.detach(), xv, xt)):
            buffer[start:start + written] = rows[:written]
        self.pointer = (start + b) % k
        self.filled = min(k, self.filled + written)
        filled = self.filled
        own = torch.tensor([start + i if i < written else -1 for i in range(b)])
        qv, qt, qxv, qxt = (buffer[:filled] for buffer in self.buffers)
        total = 0.0
        for anchors, others, bank, x, qx in ((vn, tn, qv, xv, qxv), (tn, vn, qt, xt, qxt)):
            sums = qx.sum(0)
            c = x @ sums / filled
            g = qx @ sums / filled
            total = total + direction(anchors, others, bank, influential(c, hp["gamma"]),
                                      influential(g, hp["gamma"]), own,
                                      sample_weights(c, hp["kappa"]), hp)
        return 0.5 * total


class Objective:
    def __init__(self, loss):
        cc = loss["crossclr"]
        assert loss["kind"] == "crossclr" and cc["mode"] == "paper" and not cc.get("multi_positive")
        self.hp = dict(tau=cc["tau"], kappa=cc["kappa"], gamma=cc["gamma"])
        self.hp["lambda"] = cc["lambda"]
        self.queue = PaperQueue(loss["queue"], self.hp)
        self.global_weight = loss["global_weight"]

    def __call__(self, embeddings, batch):
        clip, sentence, video, paragraph = embeddings
        local = self.queue(clip, sentence, batch["clip_video_in"].double(),
                           batch["clip_text_in"].double())
        glob = crossclr_batch(video, paragraph, batch["video_in"].double(),
                              batch["paragraph_in"].double(), self.hp)
        return local + self.global_weight * glob, local, glob


# ---------------------------------------------------------------------------------- helpers
def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    types = {"F32": np.float32, "F64": np.float64, "U32": np.uint32, "I64": np.int64,
             "U8": np.uint8, "F16": np.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[8 + size + start:8 + size + end], dtype=types[info["dtype"]])
        out[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return out


def memory_mib():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(rest.split()[0]) / 1024.0
    return fields.get("VmHWM", float("nan")), fields.get("VmRSS", float("nan"))


# ------------------------------------------------------------------------------------ check
def check(a):
    torch.set_num_threads(a.threads)
    meta = json.load(open(f"{a.dir}/weights.json"))
    model = CootHead(meta["head"])
    model.load_state_dict(read_safetensors(f"{a.dir}/weights.safetensors"), strict=True)
    model.eval()
    io = read_safetensors(f"{a.dir}/io.safetensors")
    expected = json.load(open(f"{a.dir}/io.json"))
    objective = Objective(meta["loss"])
    emb_err, loss_err, grad_err, worst = 0.0, 0.0, 0.0, None
    for b in range(expected["batches"]):
        p = f"batch{b}."
        batch = {k[len(p):]: v for k, v in io.items() if k.startswith(p)}
        batch["grouping"] = make_grouping(batch["groups"].long().tolist())
        out = model(batch)
        for name, tensor in zip(("clip", "sentence", "video", "paragraph"), out):
            emb_err = max(emb_err, (tensor.detach() - batch[f"out.{name}"]).abs().max().item())
        total, local, glob = objective(out, batch)
        want = expected["losses"][b]
        for got, key in ((total, "total"), (local, "local"), (glob, "global")):
            loss_err = max(loss_err, abs(got.item() - want[key]) / abs(want[key]))
        if b == 1:
            total.backward()
            for name, param in model.named_parameters():
                rust = io.get(f"grad.{name}")
                if rust is None or param.grad is None:
                    grad_err, worst = float("inf"), f"{name}: gradient on one side only"
                    continue
                rel = ((param.grad - rust).norm() / rust.norm().clamp_min(1e-30)).item()
                if rel > grad_err:
                    grad_err, worst = rel, name
    ok = emb_err < 1e-4 and loss_err < 1e-4 and grad_err < 1e-3
    print(json.dumps({
        "ok": ok, "embedding_max_abs": emb_err, "loss_max_rel": loss_err,
        "grad_max_rel": grad_err, "grad_worst": worst,
        "parameters": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
    }))
    if not ok:
        sys.exit(1)


# ------------------------------------------------------------------------------------ bench
LATENT, TOPICS, VIDEO_DIM, TEXT_DIM = 32, 40, 512, 768


def make_split(rng, clips, frames, tokens):
    """The recipe of coot_epoch.rs: latent = topic + 0.5·detail + 0.3·style; frames and tokens
    relu(A l + 0.3 ε), A ~ N(0, 1/32). float32, (clips, steps, dim)."""
    video_map = rng.standard_normal((VIDEO_DIM, LATENT)) / math.sqrt(LATENT)
    text_map = rng.standard_normal((TEXT_DIM, LATENT)) / math.sqrt(LATENT)
    topics = rng.standard_normal((TOPICS, LATENT))
    latents, groups = [], []
    for count in clips:
        topic = topics[rng.integers(TOPICS)]
        style = 0.3 * rng.standard_normal(LATENT)
        start = len(latents)
        latents.extend(topic + style + 0.5 * rng.standard_normal(LATENT) for _ in range(count))
        groups.append((start, start + count))
    latents = np.stack(latents)

    def view(mapping, steps, dim):
        out = rng.standard_normal((len(latents), steps, dim), dtype=np.float32)
        out *= 0.3
        out += (latents @ mapping.T).astype(np.float32)[:, None, :]
        np.maximum(out, 0.0, out=out)
        return out

    return view(video_map, frames, VIDEO_DIM), view(text_map, tokens, TEXT_DIM), groups


def even_indices(length, count):
    if length <= count:
        return np.arange(length)
    return np.minimum(((np.arange(count) + 0.5) * length / count).astype(np.int64), length - 1)


def make_batch(video, text, groups, videos, max_steps, max_context):
    """As train/data.rs make_batch for equal-length clips: padded tensors, masks, pooled inputs."""
    clip_ids = np.concatenate([np.arange(*groups[v]) for v in videos])
    local_groups, start = [], 0
    for v in videos:
        count = groups[v][1] - groups[v][0]
        local_groups.append((start, start + count))
        start += count

    def sequences(data):
        keep = even_indices(data.shape[1], max_steps)
        values = torch.from_numpy(data[clip_ids][:, keep])
        return values, torch.ones(values.shape[:2])

    def contexts(data):
        rows = [data[groups[v][0]:groups[v][1]].reshape(-1, data.shape[2]) for v in videos]
        picked = [r[even_indices(len(r), max_context)] for r in rows]
        longest = max(len(p) for p in picked)
        values = torch.zeros(len(videos), longest, data.shape[2])
        mask = torch.zeros(len(videos), longest)
        for i, p in enumerate(picked):
            values[i, :len(p)] = torch.from_numpy(p)
            mask[i, :len(p)] = 1.0
        means = torch.from_numpy(np.stack([r.mean(0, dtype=np.float64) for r in rows]))
        return values, mask, means

    vc, vcm = sequences(video)
    tc, tcm = sequences(text)
    vx, vxm, video_in = contexts(video)
    tx, txm, paragraph_in = contexts(text)
    return {
        "video_clips": vc, "video_clips_mask": vcm, "text_sentences": tc,
        "text_sentences_mask": tcm, "video_context": vx, "video_context_mask": vxm,
        "text_context": tx, "text_context_mask": txm, "grouping": make_grouping(local_groups),
        "clip_video_in": torch.from_numpy(video[clip_ids].mean(1, dtype=np.float64)),
        "clip_text_in": torch.from_numpy(text[clip_ids].mean(1, dtype=np.float64)),
        "video_in": video_in, "paragraph_in": paragraph_in,
    }


def init_like_rust(model):
    """COOT's init as src/model/init.rs: truncated N(0, 0.01²) for matrices, 0 biases, 1 gains."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2 or not (name.endswith("bias") or name.endswith(".weight")):
                nn.init.trunc_normal_(p, std=0.01, a=-0.02, b=0.02)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)


def bench(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    clips = [a.clips_per_video] * (a.videos - 1) + [a.clips - a.clips_per_video * (a.videos - 1)]
    started = time.perf_counter()
    video, text, groups = make_split(rng, clips, a.frames, a.tokens)
    val_video, val_text, val_groups = make_split(np.random.default_rng(2),
                                                 [a.clips_per_video] * a.val_videos,
                                                 a.frames, a.tokens)
    data_seconds = time.perf_counter() - started
    _, rss_after_data = memory_mib()
    cfg = dict(attention_dim=384, local_heads=8, global_heads=8, pool_heads=2, dropout=0.05,
               max_positions=1024, video_dim=VIDEO_DIM, text_dim=TEXT_DIM)
    loss = dict(kind="crossclr", queue=5000, global_weight=0.6,
                crossclr=dict(mode="paper", tau=0.03, kappa=35e-4, gamma=0.9, multi_positive=None,
                              **{"lambda": 0.8}))
    model = CootHead(cfg)
    init_like_rust(model)
    objective = Objective(loss)
    base_lr = 7e-4
    optimizer = torch.optim.RAdam(model.parameters(), lr=base_lr, betas=(0.56, 0.98), eps=1e-8)
    steps_per_epoch = math.ceil(a.videos / a.batch_videos)
    warmup = 4 * steps_per_epoch
    step = 0
    epoch_seconds, epoch_walls, losses = [], [], []
    order_rng = np.random.default_rng(3)
    for epoch in range(a.epochs):
        model.train()
        wall = time.perf_counter()
        seconds, total_loss = 0.0, 0.0
        order = order_rng.permutation(a.videos)
        for b in range(steps_per_epoch):
            start = time.perf_counter()
            lr = base_lr * (step + 1) / warmup if step < warmup else base_lr
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = make_batch(video, text, groups, order[b * a.batch_videos:(b + 1) * a.batch_videos],
                               a.max_steps, a.max_context)
            total, local, glob = objective(model(batch), batch)
            value = total.item()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            total_loss += value
            step += 1
            seconds += time.perf_counter() - start
            if (b + 1) % 50 == 0 or b + 1 == steps_per_epoch:
                print(f"  pytorch: step {b + 1}/{steps_per_epoch}", file=sys.stderr, flush=True)
        model.eval()
        with torch.no_grad():
            model(make_batch(val_video, val_text, val_groups, np.arange(a.val_videos),
                             a.max_steps, a.max_context))
        epoch_seconds.append(seconds)
        epoch_walls.append(time.perf_counter() - wall)
        losses.append(total_loss / steps_per_epoch)
    hwm, rss = memory_mib()
    print(json.dumps({
        "epoch_seconds": epoch_seconds, "epoch_wall_seconds": epoch_walls, "loss": losses,
        "steps_per_epoch": steps_per_epoch, "data_seconds": data_seconds,
        "rss_after_data_mib": rss_after_data, "rss_end_mib": rss, "vmhwm_mib": hwm,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cpu_seconds": sum(os.times()[:2]),
        "load_average_end": open("/proc/loadavg").read().strip(),
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("--dir", required=True)
    c.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("bench")
    b.add_argument("--epochs", type=int, default=1)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--videos", type=int, default=1429)
    b.add_argument("--clips", type=int, default=10000)
    b.add_argument("--clips-per-video", type=int, default=7)
    b.add_argument("--frames", type=int, default=16)
    b.add_argument("--tokens", type=int, default=16)
    b.add_argument("--val-videos", type=int, default=8)
    b.add_argument("--batch-videos", type=int, default=64)
    b.add_argument("--max-steps", type=int, default=80)
    b.add_argument("--max-context", type=int, default=160)
    a = p.parse_args()
    check(a) if a.command == "check" else bench(a)


if __name__ == "__main__":
    main()
