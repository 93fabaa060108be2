//! The building blocks of the heads: dropout driven by the caller's generator, LayerNorm with a
//! gradient, COOT's post-norm transformer layer, attention-aware pooling, and the position table.
//!
//! Activations stay 2-D, (n·t, A) with the t steps of a sequence in consecutive rows, and the
//! elementwise chains are fused ops (see `ops`): candle's backward pass allocates and adds a zero
//! gradient for every node of the graph, so each reshape or separate dropout multiply would cost
//! two more passes over the activations.

use std::sync::Arc;

use candle_core::{Device, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use rand::RngCore;

use super::Mode;
use super::ops::{self, Keep};

impl Mode<'_> {
    /// Whether dropout is active.
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// The multipliers of one dropout over `count` entries: 0 (dropped) or 1/(1 − p) (kept), or
    /// `None` when nothing is dropped (Eval, or p = 0), in which case nothing is drawn.
    ///
    /// candle's own dropout draws from an unseeded generator; here each mask is drawn on the host
    /// from one u64 of the caller's ChaCha8 generator (the seed of the mask's parallel streams,
    /// see [`ops::keep_multipliers`]), so a training step is reproducible from its seed.
    pub(crate) fn keep_mask(&mut self, count: usize, p: f64) -> Keep {
        let Mode::Train { rng } = self else {
            return None;
        };
        if p <= 0.0 {
            return None;
        }
        let seed = rng.next_u64();
        Some(Arc::new(ops::keep_multipliers(seed, count, p)))
    }

    /// Inverted dropout of `x` as a plain product (the heads fuse their dropouts into other ops).
    #[cfg(test)]
    pub(crate) fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        match self.keep_mask(x.elem_count(), p) {
            None => Ok(x.clone()),
            Some(keep) => x * Tensor::from_vec(keep.to_vec(), x.shape(), x.device())?,
        }
    }
}

/// The ε of every LayerNorm (PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// LayerNorm over the last dimension with a gain (`weight`) and `bias`. Build it under a path
/// segment containing `norm`: [`super::initialise`] recognises LayerNorm gains by that name.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    pub fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
        })
    }

    /// `LN(x)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_dropped(x, None)
    }

    /// `LN(k ⊙ x)`: the input LayerNorm after input dropout.
    pub fn forward_dropped(&self, x: &Tensor, keep: Keep) -> Result<Tensor> {
        ops::layer_norm(None, x, keep, &self.weight, &self.bias, LAYER_NORM_EPS)
    }

    /// `LN(x + k ⊙ y)`: a post-norm residual connection with dropout on the sublayer's output.
    pub fn forward_residual(&self, x: &Tensor, y: &Tensor, keep: Keep) -> Result<Tensor> {
        ops::layer_norm(Some(x), y, keep, &self.weight, &self.bias, LAYER_NORM_EPS)
    }
}

/// `y = x·Wᵀ + b` on rows (n, in) → (n, out), PyTorch's layout and names (`weight` (out, in),
/// `bias` (out)). The bias add is the fused op, whose gradient is a parallel column sum rather than
/// candle's strided reduction.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(input: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        let bias = vb.get_with_hints(output, "bias", Init::Const(0.0))?;
        Ok(Self {
            bias: Some(bias),
            ..Self::without_bias(input, output, vb)?
        })
    }

    pub fn without_bias(input: usize, output: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(
                (output, input),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?,
            bias: None,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        match &self.bias {
            Some(bias) => ops::add_bias(&y, bias),
            None => Ok(y),
        }
    }
}

pub(crate) fn linear(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    Linear::new(input, output, vb)
}

/// `Dropout(GELU(x))`, GELU in the exact (erf) form of PyTorch's `nn.GELU()` that COOT uses.
pub(crate) fn gelu_dropout(x: &Tensor, mode: &mut Mode, p: f64) -> Result<Tensor> {
    let keep = mode.keep_mask(x.elem_count(), p);
    ops::gelu(x, keep)
}

/// Linear → GELU → Dropout → Linear, width preserved (COOT's position-wise feed-forward).
#[derive(Debug, Clone)]
pub(crate) struct FeedForward {
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    pub fn new(width: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: linear(width, width, vb.pp("fc1"))?,
            fc2: linear(width, width, vb.pp("fc2"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: &mut Mode, p: f64) -> Result<Tensor> {
        self.fc2
            .forward(&gelu_dropout(&self.fc1.forward(x)?, mode, p)?)
    }
}

/// Multi-head attention with separate query, key, value and output projections (COOT's
/// `MultiHeadAttention`). Padded keys are excluded by an additive bias on the logits.
///
/// The key projection has no bias: a key bias b adds `q·b` to all logits of a query alike, which
/// the softmax ignores, so its gradient is identically zero (COOT's `nn.Linear` carries one that
/// never learns).
#[derive(Debug, Clone)]
pub(crate) struct MultiHeadAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    heads: usize,
}

impl MultiHeadAttention {
    pub fn new(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            query: linear(width, width, vb.pp("query"))?,
            key: Linear::without_bias(width, width, vb.pp("key"))?,
            value: linear(width, width, vb.pp("value"))?,
            output: linear(width, width, vb.pp("output"))?,
            heads,
        })
    }

    /// (n·t, A) → (n·H, t, A/H), heads as the batch of a batched matmul.
    fn split_heads(&self, x: &Tensor, n: usize, t: usize, scale: f64) -> Result<Tensor> {
        let width = x.dim(1)?;
        let d = width / self.heads;
        ops::swap_axes(x, [n, t, self.heads, d], scale, &[n * self.heads, t, d])
    }

    /// Attends from `query` (n·tq, A: n sequences of tq steps) to `context` (n·tk, A), with
    /// `key_bias` (n, tk) added to the logits of every query. Returns the output (n·tq, A) and the
    /// attention probabilities (n·H, tq, tk).
    pub fn attend(
        &self,
        query: &Tensor,
        context: &Tensor,
        key_bias: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (n, tk) = key_bias.dims2()?;
        let (rows, width) = query.dims2()?;
        let tq = rows / n.max(1);
        let head_width = width / self.heads;
        // The 1/√d scale rides on the query's head split (one pass fewer).
        let scale = 1.0 / (head_width as f64).sqrt();
        let q = self.split_heads(&self.query.forward(query)?, n, tq, scale)?;
        let k = self.split_heads(&self.key.forward(context)?, n, tk, 1.0)?;
        let v = self.split_heads(&self.value.forward(context)?, n, tk, 1.0)?;
        let logits = q.matmul(&k.t()?)?;
        let probabilities = ops::masked_softmax(&logits, key_bias, self.heads)?;
        let attended = probabilities.matmul(&v)?;
        let merged = ops::swap_axes(
            &attended,
            [n, self.heads, tq, head_width],
            1.0,
            &[n * tq, width],
        )?;
        Ok((self.output.forward(&merged)?, probabilities))
    }
}

/// One post-norm transformer encoder layer (COOT's `TransformerEncoderLayer` with its `Sublayer`s):
/// `x = LN(q + Dropout(MHA(q, c, c)))`, then `x = LN(x + Dropout(FF(x)))`. With `c = q` it is
/// self-attention; with a one-step query it is COOT's context cross-attention.
#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    attention: MultiHeadAttention,
    attention_norm: LayerNorm,
    ff: FeedForward,
    ff_norm: LayerNorm,
}

impl EncoderLayer {
    pub fn new(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            attention: MultiHeadAttention::new(width, heads, vb.pp("attention"))?,
            attention_norm: LayerNorm::new(width, vb.pp("attention_norm"))?,
            ff: FeedForward::new(width, vb.pp("ff"))?,
            ff_norm: LayerNorm::new(width, vb.pp("ff_norm"))?,
        })
    }

    /// `query` (n·tq, A), `context` (n·tk, A), `key_bias` (n, tk) → (n·tq, A).
    pub fn forward(
        &self,
        query: &Tensor,
        context: &Tensor,
        key_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        let (attended, _) = self.attention.attend(query, context, key_bias)?;
        let keep = mode.keep_mask(attended.elem_count(), p);
        let x = self
            .attention_norm
            .forward_residual(query, &attended, keep)?;
        let ff = self.ff.forward(&x, mode, p)?;
        let keep = mode.keep_mask(ff.elem_count(), p);
        self.ff_norm.forward_residual(&x, &ff, keep)
    }

    #[cfg(test)]
    pub fn attention(&self) -> &MultiHeadAttention {
        &self.attention
    }
}

/// Attention-aware pooling (COOT's `GenPool`, the generalised pooling of Chen et al. 2018).
///
/// Head h owns the channels `h·A/H .. (h+1)·A/H` and scores every step and channel with a small
/// MLP of the whole step vector, `a = W2_h·GELU(W1_h·x + b1_h)` (W1_h: A → A/H, W2_h:
/// A/H → A/H); a softmax over the real steps, per channel, weighs the steps. GELU as in COOT.
/// Dropout follows the activation and is applied to the softmax weights.
///
/// COOT also adds an output bias `b2_h`. It is left out: it adds the same number to every step of
/// a channel, and a softmax over the steps does not change under that, so its gradient is
/// identically zero (in COOT it only moves through the dropout COOT puts on the logits).
///
/// The H first layers are one (A × A) matmul (their weights side by side); the H second layers,
/// block-diagonal, are one batched matmul with the heads as the batch.
#[derive(Debug, Clone)]
pub(crate) struct GenPool {
    /// (H, A, A/H)
    w1: Tensor,
    /// (H, A/H)
    b1: Tensor,
    /// (H, A/H, A/H)
    w2: Tensor,
    heads: usize,
}

impl GenPool {
    pub fn new(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        let head_width = width / heads;
        // COOT initialises these, b1 included, with a truncated normal of std 0.01; `initialise`
        // does the same (none is 1-D).
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        };
        Ok(Self {
            w1: vb.get_with_hints((heads, width, head_width), "w1", init)?,
            b1: vb.get_with_hints((heads, head_width), "b1", init)?,
            w2: vb.get_with_hints((heads, head_width, head_width), "w2", init)?,
            heads,
        })
    }

    /// The pooling logits (n·t, A) of the step features `x` (n·t, A), before the step mask.
    fn logits(&self, x: &Tensor, mode: &mut Mode, p: f64) -> Result<Tensor> {
        let (rows, width) = x.dims2()?;
        let head_width = width / self.heads;
        let w1 = self.w1.transpose(0, 1)?.reshape((width, width))?;
        let hidden = ops::add_bias(&x.matmul(&w1)?, &self.b1.reshape(width)?)?;
        let hidden = gelu_dropout(&hidden, mode, p)?;
        let by_head = ops::swap_axes(
            &hidden,
            [1, rows, self.heads, head_width],
            1.0,
            &[self.heads, rows, head_width],
        )?;
        ops::swap_axes(
            &by_head.matmul(&self.w2)?,
            [1, self.heads, rows, head_width],
            1.0,
            &[rows, width],
        )
    }

    /// The pooling weights (n, t, A): per sequence and channel, a distribution over the steps
    /// (exactly 0 on padded steps, whose `step_bias` is [`super::input::MASKED_LOGIT`]), then
    /// dropout. Composed from candle ops; [`GenPool::forward`] fuses the same steps.
    #[cfg(test)]
    pub fn weights(
        &self,
        x: &Tensor,
        step_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        let (n, t) = step_bias.dims2()?;
        let logits = self.logits(x, mode, p)?.reshape((n, t, x.dim(1)?))?;
        mode.dropout(&ops::pool_weights_composed(&logits, step_bias)?, p)
    }

    /// Step features (n·t, A) with `step_bias` (n, t) → (n, A): the weighted sum of the steps.
    pub fn forward(
        &self,
        x: &Tensor,
        step_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        let logits = self.logits(x, mode, p)?;
        let keep = mode.keep_mask(logits.elem_count(), p);
        ops::pool_steps(&logits, x, step_bias, keep)
    }
}

/// The standard sinusoidal table: `PE[pos, 2i] = sin(pos/10000^(2i/A))`,
/// `PE[pos, 2i+1] = cos(pos/10000^(2i/A))`, computed in f64.
///
/// (COOT's own table uses the exponent `4i/A` for channel pair i, an indexing slip; the standard
/// table is used here.)
pub(crate) fn sinusoid_table(rows: usize, width: usize, device: &Device) -> Result<Tensor> {
    let mut table = Vec::with_capacity(rows * width);
    for pos in 0..rows {
        for channel in 0..width {
            let pair = (channel / 2) as f64;
            let angle = pos as f64 / 10000f64.powf(2.0 * pair / width as f64);
            table.push(if channel % 2 == 0 {
                angle.sin()
            } else {
                angle.cos()
            } as f32);
        }
    }
    Tensor::from_vec(table, (rows, width), device)
}
