//! Helpers shared by the model tests: small heads, seeded inputs, comparisons.
#![allow(dead_code)]

use std::ops::Range;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use crossclr::model::{EmbeddingHead, HeadConfig, HeadKind, ModelInput, SequenceBatch, initialise};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Small enough for debug builds: A = 32, 4 heads.
pub fn config(kind: HeadKind) -> HeadConfig {
    HeadConfig {
        kind,
        video_dim: 12,
        text_dim: 10,
        joint_dim: 16,
        attention_dim: 32,
        local_heads: 4,
        global_heads: 4,
        pool_heads: 2,
        dropout: 0.1,
        max_positions: 64,
    }
}

pub fn build(cfg: &HeadConfig, seed: u64) -> (EmbeddingHead, VarMap) {
    let varmap = VarMap::new();
    let head = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        cfg,
    )
    .unwrap();
    initialise(&varmap, seed).unwrap();
    (head, varmap)
}

pub fn normal(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Sequences of the given lengths, each seeded by `seed + index`.
pub fn sequences(lengths: &[usize], width: usize, seed: u64) -> Vec<Tensor> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &t)| normal(&[t, width], seed + i as u64))
        .collect()
}

/// Consecutive groups of the given sizes.
pub fn groups(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut start = 0;
    sizes
        .iter()
        .map(|&n| {
            let group = start..start + n;
            start += n;
            group
        })
        .collect()
}

/// A batch with clips of `frames[i]` frames and sentences of `tokens[i]` tokens, grouped by
/// `sizes`, with whole-video and whole-paragraph context sequences when `contexts`.
pub fn input(
    cfg: &HeadConfig,
    frames: &[usize],
    tokens: &[usize],
    sizes: &[usize],
    contexts: bool,
    seed: u64,
) -> ModelInput {
    let clips = sequences(frames, cfg.video_dim, seed);
    let sentences = sequences(tokens, cfg.text_dim, seed + 1000);
    let groups = groups(sizes);
    let context = |items: &[Tensor]| {
        let whole: Vec<Tensor> = groups
            .iter()
            .map(|g| Tensor::cat(&items[g.clone()], 0).unwrap())
            .collect();
        SequenceBatch::from_sequences(&whole).unwrap()
    };
    ModelInput {
        video_clips: SequenceBatch::from_sequences(&clips).unwrap(),
        text_sentences: SequenceBatch::from_sequences(&sentences).unwrap(),
        video_context: contexts.then(|| context(&clips)),
        text_context: contexts.then(|| context(&sentences)),
        groups,
    }
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}
