//! The settings of every loss this module computes: one definition of each, with its default, used
//! directly by projects (`crossclr.toml`), training, the `loss` command and the app.

use serde::{Deserialize, Serialize};

use super::ContrastiveLoss;
use super::LossError;
use super::baselines::{InfoNce, MaxMargin, XmlNet};
use super::pairwise::CrossClr;
use super::queue::{CrossClrQueue, QueueInit};

/// Which CrossCLR to compute (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
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

impl MultiPositive {
    /// The supplementary material's target weight of an extra positive.
    pub const DEFAULT_BETA: f64 = 0.15;
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
        Self::PAPER
    }
}

impl CrossClrConfig {
    /// The paper's YouCook2 values (DESIGN.md §4), in paper mode.
    pub const PAPER: Self = Self {
        mode: Mode::Paper,
        tau: 0.03,
        kappa: 35e-4,
        lambda: 0.8,
        gamma: 0.9,
        multi_positive: None,
    };

    /// The paper's LSMDC values, in paper mode.
    pub const PAPER_LSMDC: Self = Self {
        kappa: 55e-4,
        lambda: 0.65,
        ..Self::PAPER
    };

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

/// The loss families a run can train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// CrossCLR (Zolfaghari et al., ICCV 2021).
    #[default]
    Crossclr,
    /// Symmetric InfoNCE (CLIP).
    Infonce,
    /// COOT's max-margin loss.
    Maxmargin,
    /// InfoNCE excluding false negatives by output connectivity (X-MLNet).
    Xmlnet,
}

impl std::fmt::Display for LossKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LossKind::Crossclr => "crossclr",
            LossKind::Infonce => "infonce",
            LossKind::Maxmargin => "maxmargin",
            LossKind::Xmlnet => "xmlnet",
        })
    }
}

/// A loss and its settings: what a run trains with at both levels, and what `crossclr loss`
/// explains. The default is [`LossSettings::RECOMMENDED`]; the paper's exact values are
/// [`LossSettings::PAPER`] and [`LossSettings::PAPER_LSMDC`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSettings {
    pub kind: LossKind,
    /// τ, κ, λ, γ, mode and multiple positives (τ also serves InfoNCE and X-MLNet).
    pub crossclr: CrossClrConfig,
    /// Queue length at the local level (0: no queue). CrossCLR only.
    pub queue: usize,
    /// Weight of the video/paragraph-level loss against the clip/sentence level.
    pub global_weight: f64,
    /// Margin of the max-margin loss.
    pub margin: f64,
}

impl Default for LossSettings {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

impl LossSettings {
    /// The paper's objective: CrossCLR with a queue of 5000 at the clip level, `L_local + 0.6·L_global`.
    pub const PAPER: Self = Self {
        kind: LossKind::Crossclr,
        crossclr: CrossClrConfig::PAPER,
        queue: 5000,
        global_weight: 0.6,
        margin: MaxMargin::COOT_MARGIN,
    };

    /// What a new project trains with: the paper's objective in paper mode, without the queue
    /// and with sample weights of temperature κ 0.1 instead of 0.0035. Chosen by the comparison
    /// in the README (synthetic small and large, the demo): the queue's intra-modal negatives and
    /// the sharp weights each cost about half of clip→sentence R@1 on every shipped project.
    pub const RECOMMENDED: Self = Self {
        crossclr: CrossClrConfig {
            kappa: 0.1,
            ..CrossClrConfig::PAPER
        },
        queue: 0,
        ..Self::PAPER
    };

    /// The paper's LSMDC objective: its κ and λ, a queue of 3000.
    pub const PAPER_LSMDC: Self = Self {
        crossclr: CrossClrConfig::PAPER_LSMDC,
        queue: 3000,
        ..Self::PAPER
    };

    /// The loss without a queue (the video level, or the clip level when `queue` is 0).
    pub fn build(&self) -> Result<Box<dyn ContrastiveLoss>, LossError> {
        let tau = self.crossclr.tau;
        Ok(match self.kind {
            LossKind::Crossclr => Box::new(CrossClr::new(self.crossclr)?),
            LossKind::Infonce => Box::new(InfoNce::new(tau)?),
            LossKind::Maxmargin => Box::new(MaxMargin::new(self.margin)?),
            LossKind::Xmlnet => Box::new(XmlNet::with_tau(tau)?),
        })
    }

    /// Whether the clip level runs through a queue: CrossCLR with `queue` > 0 (the baselines
    /// have none, whatever `queue` says).
    pub fn uses_queue(&self) -> bool {
        self.kind == LossKind::Crossclr && self.queue > 0
    }

    /// CrossCLR with its queue of `queue` slots, starting from `init`, or `None` when
    /// [`LossSettings::uses_queue`] is false.
    pub fn build_queue(&self, init: QueueInit) -> Result<Option<CrossClrQueue>, LossError> {
        if !self.uses_queue() {
            return Ok(None);
        }
        CrossClrQueue::new(self.crossclr, self.queue, init).map(Some)
    }
}
