//! The building blocks of the heads: dropout driven by the caller's generator, LayerNorm with a
//! gradient, COOT's post-norm transformer layer, attention-aware pooling, and the position table.

use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Init, Linear, VarBuilder};
use rand::Rng;

use super::Mode;
use super::ops::normalise_rows;

impl Mode<'_> {
    /// Whether dropout is active.
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train { .. })
    }

    /// Inverted dropout: each entry is kept with probability 1 − p and scaled by 1/(1 − p).
    ///
    /// candle's own dropout draws from an unseeded generator; here the keep-mask is drawn on the
    /// host from the caller's ChaCha8 generator (one u32 per entry, kept when it is ≥ p·2³²), so a
    /// training step is reproducible from its seed. Eval mode, and p = 0, are the identity and draw
    /// nothing.
    pub(crate) fn dropout(&mut self, x: &Tensor, p: f64) -> Result<Tensor> {
        let Mode::Train { rng } = self else {
            return Ok(x.clone());
        };
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let mut bits = vec![0u32; x.elem_count()];
        rng.fill(&mut bits[..]);
        let threshold = (p * 4_294_967_296.0) as u64;
        let scale = (1.0 / (1.0 - p)) as f32;
        let mask: Vec<f32> = bits
            .iter()
            .map(|&b| if b as u64 >= threshold { scale } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        normalise_rows(x, LAYER_NORM_EPS)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

pub(crate) fn linear(input: usize, output: usize, vb: VarBuilder) -> Result<Linear> {
    candle_nn::linear(input, output, vb)
}

/// GELU with the exact erf form (PyTorch's `nn.GELU()` default, which COOT uses).
pub(crate) fn gelu(x: &Tensor) -> Result<Tensor> {
    x.gelu_erf()
}

/// Softmax along `dim`. The shift by the maximum is detached: softmax does not depend on it, so
/// its gradient is exactly zero and need not be propagated through the max.
pub(crate) fn softmax(x: &Tensor, dim: usize) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(dim)?.detach())?;
    let exp = shifted.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(dim)?)
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
        let hidden = mode.dropout(&gelu(&self.fc1.forward(x)?)?, p)?;
        self.fc2.forward(&hidden)
    }
}

/// Multi-head attention with separate query, key, value and output projections (COOT's
/// `MultiHeadAttention`). Padded keys are excluded by an additive bias on the logits.
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
            key: linear(width, width, vb.pp("key"))?,
            value: linear(width, width, vb.pp("value"))?,
            output: linear(width, width, vb.pp("output"))?,
            heads,
        })
    }

    /// (n, t, A) → (n·heads, t, A/heads), heads as the batch of a batched matmul.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (n, t, width) = x.dims3()?;
        x.reshape((n, t, self.heads, width / self.heads))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n * self.heads, t, width / self.heads))
    }

    /// Attends from `query` (n, tq, A) to `context` (n, tk, A) with `key_bias` (n, tk) added to the
    /// logits of every query. Returns the output (n, tq, A) and the attention probabilities
    /// (n, heads, tq, tk).
    pub fn attend(
        &self,
        query: &Tensor,
        context: &Tensor,
        key_bias: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (n, tq, width) = query.dims3()?;
        let tk = context.dim(1)?;
        let head_width = width / self.heads;
        // Scaling the queries rather than the logits: the same product, on the smaller tensor
        // when the query is one context vector.
        let q = (self.split_heads(&self.query.forward(query)?)? / (head_width as f64).sqrt())?;
        let k = self.split_heads(&self.key.forward(context)?)?;
        let v = self.split_heads(&self.value.forward(context)?)?;
        let logits = q
            .matmul(&k.t()?)?
            .reshape((n, self.heads, tq, tk))?
            .broadcast_add(&key_bias.reshape((n, 1, 1, tk))?)?;
        let probabilities = softmax(&logits, 3)?;
        let attended = probabilities
            .reshape((n * self.heads, tq, tk))?
            .matmul(&v)?
            .reshape((n, self.heads, tq, head_width))?
            .transpose(1, 2)?
            .reshape((n, tq, width))?;
        Ok((self.output.forward(&attended)?, probabilities))
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

    pub fn forward(
        &self,
        query: &Tensor,
        context: &Tensor,
        key_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        let (attended, _) = self.attention.attend(query, context, key_bias)?;
        let x = self
            .attention_norm
            .forward(&(query + mode.dropout(&attended, p)?)?)?;
        let ff = self.ff.forward(&x, mode, p)?;
        self.ff_norm.forward(&(x + mode.dropout(&ff, p)?)?)
    }

    #[cfg(test)]
    pub fn attention(&self) -> &MultiHeadAttention {
        &self.attention
    }
}

/// Attention-aware pooling (COOT's `GenPool`, the generalised pooling of Chen et al. 2018).
///
/// Head h owns the channels `h·A/H .. (h+1)·A/H` and scores every step and channel with a small
/// MLP of the whole step vector, `a = W2_h·GELU(W1_h·x + b1_h) + b2_h` (W1_h: A → A/H, W2_h:
/// A/H → A/H); a softmax over the real steps, per channel, weighs the steps. GELU as in COOT.
/// Dropout follows the activation and is applied to the softmax weights.
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
    /// (H, A/H)
    b2: Tensor,
    heads: usize,
}

impl GenPool {
    pub fn new(width: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        let head_width = width / heads;
        // COOT initialises all four, biases included, with a truncated normal of std 0.01;
        // `initialise` does the same (they are not 1-D).
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.01,
        };
        Ok(Self {
            w1: vb.get_with_hints((heads, width, head_width), "w1", init)?,
            b1: vb.get_with_hints((heads, head_width), "b1", init)?,
            w2: vb.get_with_hints((heads, head_width, head_width), "w2", init)?,
            b2: vb.get_with_hints((heads, head_width), "b2", init)?,
            heads,
        })
    }

    /// The pooling weights (n, t, A): per sequence and channel, a distribution over the steps
    /// (exactly 0 on padded steps, whose `step_bias` is [`super::input::MASKED_LOGIT`]).
    pub fn weights(
        &self,
        x: &Tensor,
        step_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        let (n, t, width) = x.dims3()?;
        let head_width = width / self.heads;
        let w1 = self.w1.transpose(0, 1)?.reshape((width, width))?;
        let hidden = x
            .reshape((n * t, width))?
            .matmul(&w1)?
            .broadcast_add(&self.b1.reshape(width)?)?;
        let hidden = mode.dropout(&gelu(&hidden)?, p)?;
        let hidden = hidden
            .reshape((n * t, self.heads, head_width))?
            .transpose(0, 1)?
            .contiguous()?;
        let logits = hidden
            .matmul(&self.w2)?
            .transpose(0, 1)?
            .reshape((n, t, width))?
            .broadcast_add(&self.b2.reshape(width)?)?
            .broadcast_add(&step_bias.unsqueeze(2)?)?;
        mode.dropout(&softmax(&logits, 1)?, p)
    }

    /// (n, t, A) → (n, A): the weighted sum of the steps.
    pub fn forward(
        &self,
        x: &Tensor,
        step_bias: &Tensor,
        mode: &mut Mode,
        p: f64,
    ) -> Result<Tensor> {
        (self.weights(x, step_bias, mode, p)? * x)?.sum(1)
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
