use serde::{Deserialize, Serialize};

use super::LossError;

/// Which CrossCLR to compute (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The paper's equations: λ multiplies exp(logit), removed entries are −∞, the self-similarity
    /// is removed, influential = c/max(c) > γ in both negative sets, stable weights, empty queue.
    #[default]
    Paper,
    /// The authors' released code, quirks included: λ multiplies the logit, pruned cross entries and
    /// the self-similarity become logit 0, intra negatives kept are c/max(c) < γ, weights are
    /// computed literally (they overflow as written), the queue starts from noise and masks the slot
    /// at the pointer after the enqueue.
    Official,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Paper => "paper",
            Mode::Official => "official",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paper" => Ok(Mode::Paper),
            "official" => Ok(Mode::Official),
            other => Err(format!(
                "unknown mode `{other}`; expected `paper` or `official`"
            )),
        }
    }
}

/// Multiple positives (supplementary §3.1): each anchor's K nearest samples by input similarity
/// become extra positives with target weight β.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MultiPositive {
    pub k: usize,
    pub beta: f64,
}

/// The settings of a CrossCLR loss. Defaults are the paper's YouCook2 values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrossClrConfig {
    pub mode: Mode,
    /// Temperature τ of the logits.
    pub tau: f64,
    /// Temperature κ of the sample weights.
    pub kappa: f64,
    /// Weight λ of the intra-modal negatives.
    pub lambda: f64,
    /// Pruning threshold γ on the normalised connectivity.
    pub gamma: f64,
    pub multi_positive: Option<MultiPositive>,
}

impl Default for CrossClrConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Paper,
            tau: 0.03,
            kappa: 35e-4,
            lambda: 0.8,
            gamma: 0.9,
            multi_positive: None,
        }
    }
}

impl CrossClrConfig {
    pub fn validate(&self) -> Result<(), LossError> {
        let positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(LossError::Config(format!(
                    "{name} = {value}; expected a finite number > 0"
                )))
            }
        };
        positive("tau", self.tau)?;
        positive("kappa", self.kappa)?;
        positive("lambda", self.lambda)?;
        if !self.gamma.is_finite() {
            return Err(LossError::Config(format!(
                "gamma = {}; expected a finite threshold (0.9 in the paper)",
                self.gamma
            )));
        }
        if let Some(multi) = self.multi_positive {
            if multi.k == 0 {
                return Err(LossError::Config(
                    "multiple positives need k >= 1 extra positives per anchor".into(),
                ));
            }
            if !(multi.beta.is_finite() && multi.beta >= 0.0) {
                return Err(LossError::Config(format!(
                    "beta = {}; expected a finite weight >= 0",
                    multi.beta
                )));
            }
        }
        Ok(())
    }
}
