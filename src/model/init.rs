//! Deterministic initialisation.
//!
//! candle's CPU `randn`/`rand` (what `VarMap` uses to create variables) are not seeded, so a head
//! is built first and then every variable is overwritten here from a ChaCha8 generator seeded by
//! `(seed, FNV-1a(name))`: each variable's values depend only on the seed and its own name, never
//! on the order a `HashMap` yields the variables in, nor on which other variables exist.

use crate::hash::fnv1a;
use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Standard deviation of the truncated normal (COOT's `init_std`).
pub const INIT_STD: f64 = 0.01;

/// How one variable starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitRule {
    /// Normal(0, 0.01) with draws beyond 2σ redrawn.
    TruncatedNormal,
    /// 1-D biases.
    Zeros,
    /// LayerNorm gains.
    Ones,
}

/// The rule for a variable: tensors of two or more dimensions get a truncated normal; 1-D ones
/// named `….bias` start at 0; 1-D `….weight` under a path segment containing `norm` (how the heads
/// name their LayerNorms) start at 1; any other 1-D parameter gets a truncated normal.
pub fn init_rule(name: &str, rank: usize) -> InitRule {
    if rank >= 2 {
        return InitRule::TruncatedNormal;
    }
    let mut segments = name.rsplit('.');
    let last = segments.next().unwrap_or("");
    let parent = segments.next().unwrap_or("");
    if last == "bias" || last.ends_with("bias") {
        InitRule::Zeros
    } else if last == "weight" && parent.contains("norm") {
        InitRule::Ones
    } else {
        InitRule::TruncatedNormal
    }
}

/// The generator of one variable: seed bytes 0..8 = `seed`, 8..16 = FNV-1a of the name.
fn variable_rng(seed: u64, name: &str) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a(name.as_bytes()).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// The initial values of variable `name` with `elements` entries and `rank` dimensions.
pub fn initial_values(seed: u64, name: &str, rank: usize, elements: usize) -> Vec<f32> {
    match init_rule(name, rank) {
        InitRule::Zeros => vec![0.0; elements],
        InitRule::Ones => vec![1.0; elements],
        InitRule::TruncatedNormal => {
            let mut rng = variable_rng(seed, name);
            let normal = Normal::new(0.0, INIT_STD).expect("a positive standard deviation");
            (0..elements)
                .map(|_| {
                    loop {
                        let x: f64 = normal.sample(&mut rng);
                        if x.abs() <= 2.0 * INIT_STD {
                            break x as f32;
                        }
                    }
                })
                .collect()
        }
    }
}

/// Overwrites every variable of `varmap` deterministically from `seed` (see the module notes).
pub fn initialise(varmap: &VarMap, seed: u64) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("the variable map's lock is poisoned".into()))?;
    for (name, var) in vars.iter() {
        let values = initial_values(seed, name, var.rank(), var.elem_count());
        let values = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&values)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_rank_and_name() {
        assert_eq!(
            init_rule("video_local.input_fc.weight", 2),
            InitRule::TruncatedNormal
        );
        assert_eq!(init_rule("video_local.input_fc.bias", 1), InitRule::Zeros);
        assert_eq!(
            init_rule("text_global.layer.ff_norm.weight", 1),
            InitRule::Ones
        );
        assert_eq!(init_rule("video.norm.weight", 1), InitRule::Ones);
        assert_eq!(init_rule("video.norm.bias", 1), InitRule::Zeros);
        assert_eq!(
            init_rule("video_local.pool.b1", 2),
            InitRule::TruncatedNormal
        );
        assert_eq!(init_rule("video.fc1.weight", 1), InitRule::TruncatedNormal);
    }

    #[test]
    fn truncated_normal_stays_within_two_sigma_and_depends_on_seed_and_name() {
        let a = initial_values(7, "x.weight", 2, 4000);
        assert!(a.iter().all(|v| v.abs() <= 0.02));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let std =
            (a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
        // A normal truncated at 2σ has std 0.880σ.
        assert!((std - 0.0088).abs() < 0.0004, "std {std}");
        assert_eq!(a, initial_values(7, "x.weight", 2, 4000));
        assert_ne!(a, initial_values(8, "x.weight", 2, 4000));
        assert_ne!(a, initial_values(7, "y.weight", 2, 4000));
    }
}
