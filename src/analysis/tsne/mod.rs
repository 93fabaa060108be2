//! t-SNE layouts (van der Maaten & Hinton 2008), seeded, steppable and fast.
//!
//! The default recipe is FIt-SNE's and openTSNE's: sparse affinities over 3·perplexity nearest
//! neighbours (exact up to [`crate::analysis::knn::EXACT_MAX_POINTS`] points, approximate above),
//! PCA initialisation scaled to a standard deviation of 1e-4, early exaggeration 12 for 250
//! iterations with momentum 0.5, then 500 iterations at momentum 0.8, the learning rate
//! max(200, N/12), per-coordinate gains (+0.2 when the gradient changes sign, ×0.8 otherwise,
//! at least 0.01), and the repulsion interpolated on a grid and convolved by FFT.
//!
//! Inputs that have no sensible layout are typed errors ([`TsneError`]): fewer than four points,
//! a perplexity that needs as many neighbours as there are points, non-finite values (the error
//! names the row), all points identical. Duplicate points are laid out: they get the same
//! affinities, start a jitter apart, and end next to each other.
//!
//! Determinism: every parallel loop writes per-point results, and every sum over points runs in
//! point order, so the same input, config and seed give the same bytes on any number of threads.

mod affinity;
mod bh;
mod fft;
mod gradient;
mod init;
mod linfa;
mod warm;

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use thiserror::Error;

use crate::analysis::knn::{self, KnnMethod};
use crate::analysis::matrix::{Matrix, MatrixError};
use crate::jobs::{CancelToken, ProgressSender, progress_channel, spawn_named};

pub use affinity::Affinities;
pub use init::INITIAL_STD;
pub use linfa::linfa_layout;
pub use warm::{WarmStart, warm_start};

#[derive(Debug, Error)]
pub enum TsneError {
    #[error("t-SNE needs at least 4 points; got {n}")]
    TooFewPoints { n: usize },
    #[error("the points have no dimensions")]
    NoDimensions,
    #[error(
        "perplexity {perplexity} is too large for {n} points: it uses 3·perplexity neighbours, \
         so it can be at most {max:.2} here"
    )]
    PerplexityTooLarge { perplexity: f64, n: usize, max: f64 },
    #[error("perplexity must be a finite number of at least 1; got {perplexity}")]
    BadPerplexity { perplexity: f64 },
    #[error("{setting} {reason}")]
    BadSetting {
        setting: &'static str,
        reason: String,
    },
    #[error("row {row} holds a non-finite value ({value}) in column {column}")]
    NonFinite {
        row: usize,
        column: usize,
        value: f32,
    },
    #[error(
        "all {n} points are identical: their layout would be noise (are the embeddings from \
         an untrained or constant model?)"
    )]
    AllIdentical { n: usize },
    #[error("the initial layout has {got} rows; the data has {expected}")]
    InitShape { expected: usize, got: usize },
    #[error("row {row} of the initial layout is not finite")]
    InitNonFinite { row: usize },
    #[error("{keys} keys for {rows} rows")]
    KeyCount { keys: usize, rows: usize },
    #[error("the earlier layout shares no key with these points, so it cannot start them")]
    NoKeyInCommon,
    #[error("the linfa method runs in one call; it cannot be stepped (use `tsne::run`)")]
    NotSteppable,
    #[error("linfa-tsne failed")]
    Linfa(#[source] linfa_tsne::TSneError),
    #[error(transparent)]
    Matrix(#[from] MatrixError),
}

/// How the repulsive forces are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Interpolation on a grid and convolution by FFT: O(N), the default.
    #[default]
    Fft,
    /// Barnes–Hut with the config's θ: O(N log N).
    BarnesHut,
    /// All pairs: O(N²), for small N and checks. Uses the same sparse affinities as the others.
    Exact,
    /// linfa-tsne, in one call (see [`linfa_layout`]).
    Linfa,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Fft => "fft",
            Method::BarnesHut => "bh",
            Method::Exact => "exact",
            Method::Linfa => "linfa",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Init {
    /// The first two principal components, scaled to [`INITIAL_STD`], jittered.
    #[default]
    Pca,
    /// Gaussian of standard deviation [`INITIAL_STD`].
    Random,
    /// Given positions, N×2 row-major, used as they are (see [`warm_start`]).
    Positions(Vec<f32>),
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LearningRate {
    /// max(200, N / early exaggeration) in every phase: FIt-SNE's default (Belkina et al. 2019).
    #[default]
    Auto,
    /// N / the phase's exaggeration: openTSNE's default (N/12 early, N after).
    PerExaggeration,
    Fixed(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TsneConfig {
    pub perplexity: f64,
    /// Iterations in all, early exaggeration included.
    pub iterations: usize,
    pub early_iterations: usize,
    pub early_exaggeration: f64,
    /// Exaggeration after the early phase (1: plain t-SNE).
    pub exaggeration: f64,
    pub learning_rate: LearningRate,
    pub initial_momentum: f64,
    pub final_momentum: f64,
    /// Longest step one point may take in an iteration (openTSNE's `max_step_norm`), so that a
    /// point with a huge gradient cannot shoot off; `None` to not clip.
    pub max_step: Option<f64>,
    pub method: Method,
    /// Barnes–Hut's opening angle.
    pub theta: f64,
    pub knn: KnnMethod,
    pub init: Init,
    pub seed: u64,
}

impl Default for TsneConfig {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 750,
            early_iterations: 250,
            early_exaggeration: 12.0,
            exaggeration: 1.0,
            learning_rate: LearningRate::Auto,
            initial_momentum: 0.5,
            final_momentum: 0.8,
            max_step: Some(5.0),
            method: Method::Fft,
            theta: 0.5,
            knn: KnnMethod::Auto,
            init: Init::Pca,
            seed: 0,
        }
    }
}

impl TsneConfig {
    /// Starts from `positions` without early exaggeration: an already spread-out layout would
    /// be squeezed and re-expanded by it, which is the jump a warm start is there to avoid.
    pub fn warm(mut self, positions: Vec<f32>) -> Self {
        self.init = Init::Positions(positions);
        self.early_iterations = 0;
        self
    }

    fn check(&self, n: usize) -> Result<(), TsneError> {
        let p = self.perplexity;
        if !(p.is_finite() && p >= 1.0) {
            return Err(TsneError::BadPerplexity { perplexity: p });
        }
        if (3.0 * p).floor() as usize > n - 1 {
            return Err(TsneError::PerplexityTooLarge {
                perplexity: p,
                n,
                max: (n - 1) as f64 / 3.0,
            });
        }
        let positive = |setting: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TsneError::BadSetting {
                    setting,
                    reason: format!("must be a positive number; got {v}"),
                })
            }
        };
        positive("early exaggeration", self.early_exaggeration)?;
        positive("exaggeration", self.exaggeration)?;
        positive("theta", self.theta)?;
        if let LearningRate::Fixed(rate) = self.learning_rate {
            positive("learning rate", rate)?;
        }
        if let Some(step) = self.max_step {
            positive("max step", step)?;
        }
        for (setting, m) in [
            ("initial momentum", self.initial_momentum),
            ("final momentum", self.final_momentum),
        ] {
            if !(0.0..1.0).contains(&m) {
                return Err(TsneError::BadSetting {
                    setting,
                    reason: format!("must be in [0, 1); got {m}"),
                });
            }
        }
        Ok(())
    }
}

/// The layout after some iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Iterations done so far.
    pub iteration: usize,
    /// N×2, row-major.
    pub positions: Vec<f32>,
    /// KL(P‖Q) of the positions the last iteration started from (computed with the method's
    /// approximation of Q); `None` before the first iteration.
    pub kl_divergence: Option<f64>,
}

fn check_data(data: Matrix<'_>) -> Result<(), TsneError> {
    let n = data.rows();
    if n < 4 {
        return Err(TsneError::TooFewPoints { n });
    }
    if data.cols() == 0 {
        return Err(TsneError::NoDimensions);
    }
    if let Some((row, column)) = data.first_non_finite() {
        return Err(TsneError::NonFinite {
            row,
            column,
            value: data.row(row)[column],
        });
    }
    let first = data.row(0);
    if (1..n).all(|i| data.row(i) == first) {
        return Err(TsneError::AllIdentical { n });
    }
    Ok(())
}

/// A t-SNE optimisation in progress.
#[derive(Debug)]
pub struct Tsne {
    config: TsneConfig,
    n: usize,
    p: Affinities,
    y: Vec<f64>,
    update: Vec<f64>,
    gains: Vec<f64>,
    grad: Vec<f64>,
    rep: Vec<f64>,
    iteration: usize,
    kl_divergence: Option<f64>,
    fft: fft::FftRepulsion,
}

/// Seeds for the separate random streams, so that changing one use of randomness never shifts
/// another's numbers.
fn stream(seed: u64, purpose: u64) -> u64 {
    crate::hash::fnv1a(&[seed.to_le_bytes(), purpose.to_le_bytes()].concat())
}

impl Tsne {
    /// Checks the data and config, finds the neighbours, computes the affinities and the initial
    /// layout. This is the expensive part before the first step (the kNN search above all).
    pub fn new(data: Matrix<'_>, config: TsneConfig) -> Result<Self, TsneError> {
        check_data(data)?;
        let n = data.rows();
        config.check(n)?;
        if config.method == Method::Linfa {
            return Err(TsneError::NotSteppable);
        }
        let y = match &config.init {
            Init::Positions(positions) => {
                if positions.len() != 2 * n {
                    return Err(TsneError::InitShape {
                        expected: n,
                        got: positions.len() / 2,
                    });
                }
                if let Some(at) = positions.iter().position(|v| !v.is_finite()) {
                    return Err(TsneError::InitNonFinite { row: at / 2 });
                }
                positions.iter().map(|&v| v as f64).collect()
            }
            Init::Random => init::random(n, stream(config.seed, 1)),
            // Data without spread along a first axis has no PCA scale; random is then as good.
            Init::Pca => init::pca(data, stream(config.seed, 1))
                .unwrap_or_else(|| init::random(n, stream(config.seed, 1))),
        };
        let k = (3.0 * config.perplexity).floor() as usize;
        let graph = knn::knn(data, k, config.knn, stream(config.seed, 2));
        let p = affinity::affinities(&graph, config.perplexity);
        Ok(Self::from_parts(config, p, y))
    }

    fn from_parts(config: TsneConfig, p: Affinities, y: Vec<f64>) -> Self {
        let n = y.len() / 2;
        Self {
            config,
            n,
            p,
            y,
            update: vec![0.0; 2 * n],
            gains: vec![1.0; 2 * n],
            grad: vec![0.0; 2 * n],
            rep: vec![0.0; 2 * n],
            iteration: 0,
            kl_divergence: None,
            fft: fft::FftRepulsion::new(),
        }
    }

    pub fn config(&self) -> &TsneConfig {
        &self.config
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn iteration(&self) -> usize {
        self.iteration
    }

    /// Whether the config's iterations are done (stepping further continues the last phase).
    pub fn is_done(&self) -> bool {
        self.iteration >= self.config.iterations
    }

    pub fn affinities(&self) -> &Affinities {
        &self.p
    }

    pub fn positions(&self) -> Vec<f32> {
        self.y.iter().map(|&v| v as f32).collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            iteration: self.iteration,
            positions: self.positions(),
            kl_divergence: self.kl_divergence,
        }
    }

    fn learning_rate(&self, exaggeration: f64) -> f64 {
        let n = self.n as f64;
        match self.config.learning_rate {
            LearningRate::Auto => (n / self.config.early_exaggeration).max(200.0),
            LearningRate::PerExaggeration => n / exaggeration,
            LearningRate::Fixed(rate) => rate,
        }
    }

    /// The repulsion and Z at the current positions, by the config's method.
    fn repulsion(&mut self) -> f64 {
        match self.config.method {
            Method::Fft => self.fft.repulsion(&self.y, &mut self.rep),
            Method::BarnesHut => bh::repulsion(&self.y, &mut self.rep, self.config.theta),
            Method::Exact | Method::Linfa => gradient::exact_repulsion(&self.y, &mut self.rep),
        }
    }

    /// Runs `iterations` iterations and returns the layout after them.
    pub fn step(&mut self, iterations: usize) -> Snapshot {
        for done in 0..iterations {
            let early = self.iteration < self.config.early_iterations;
            let (exaggeration, momentum) = if early {
                (self.config.early_exaggeration, self.config.initial_momentum)
            } else {
                (self.config.exaggeration, self.config.final_momentum)
            };
            let rate = self.learning_rate(exaggeration);
            let z = self.repulsion();
            let with_kl = done + 1 == iterations;
            let kl = gradient::combine(
                &self.p,
                &self.y,
                &self.rep,
                z,
                exaggeration,
                &mut self.grad,
                with_kl,
            );
            if kl.is_some() {
                self.kl_divergence = kl;
            }
            self.descend(rate, momentum);
            self.iteration += 1;
        }
        self.snapshot()
    }

    fn descend(&mut self, rate: f64, momentum: f64) {
        const MIN_GAIN: f64 = 0.01;
        let sign = |v: f64| if v == 0.0 { 0.0 } else { v.signum() };
        for ((g, u), gain) in self.grad.iter().zip(&mut self.update).zip(&mut self.gains) {
            *gain = if sign(*g) != sign(*u) {
                *gain + 0.2
            } else {
                *gain * 0.8
            }
            .max(MIN_GAIN);
            *u = momentum * *u - rate * *gain * g;
        }
        if let Some(max_step) = self.config.max_step {
            for u in self.update.chunks_exact_mut(2) {
                let norm = (u[0] * u[0] + u[1] * u[1]).sqrt();
                if norm > max_step {
                    u[0] *= max_step / norm;
                    u[1] *= max_step / norm;
                }
            }
        }
        for (y, u) in self.y.iter_mut().zip(&self.update) {
            *y += u;
        }
        // t-SNE's objective does not see translations; centring keeps the grid small.
        let (mut mx, mut my) = (0.0, 0.0);
        for p in self.y.chunks_exact(2) {
            mx += p[0];
            my += p[1];
        }
        let (mx, my) = (mx / self.n as f64, my / self.n as f64);
        for p in self.y.chunks_exact_mut(2) {
            p[0] -= mx;
            p[1] -= my;
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TsneOutcome {
    Finished(Snapshot),
    /// Stopped by the cancel token: the layout as far as it got.
    Cancelled(Snapshot),
}

impl TsneOutcome {
    pub fn snapshot(&self) -> &Snapshot {
        match self {
            TsneOutcome::Finished(s) | TsneOutcome::Cancelled(s) => s,
        }
    }

    pub fn into_snapshot(self) -> Snapshot {
        match self {
            TsneOutcome::Finished(s) | TsneOutcome::Cancelled(s) => s,
        }
    }
}

/// Runs the config's iterations, sending a snapshot every `every` iterations (routine: dropped
/// when the receiver lags) and the last one as an important update; checks `cancel` between
/// snapshots. `Method::Linfa` runs in one call and sends only the final layout.
pub fn run(
    data: Matrix<'_>,
    config: TsneConfig,
    every: usize,
    progress: Option<&ProgressSender<Snapshot>>,
    cancel: &CancelToken,
) -> Result<TsneOutcome, TsneError> {
    if config.method == Method::Linfa {
        check_data(data)?;
        config.check(data.rows())?;
        let snapshot = Snapshot {
            iteration: config.iterations,
            positions: linfa_layout(data, &config)?,
            kl_divergence: None,
        };
        if let Some(progress) = progress {
            progress.send_important(snapshot.clone());
        }
        return Ok(TsneOutcome::Finished(snapshot));
    }
    let mut tsne = Tsne::new(data, config)?;
    Ok(run_steps(&mut tsne, every, progress, cancel))
}

/// The loop of [`run`] on an optimisation already made (a warm one, say).
pub fn run_steps(
    tsne: &mut Tsne,
    every: usize,
    progress: Option<&ProgressSender<Snapshot>>,
    cancel: &CancelToken,
) -> TsneOutcome {
    let every = every.max(1);
    while !tsne.is_done() {
        if cancel.is_cancelled() {
            let snapshot = tsne.snapshot();
            if let Some(progress) = progress {
                progress.send_important(snapshot.clone());
            }
            return TsneOutcome::Cancelled(snapshot);
        }
        let left = tsne.config.iterations - tsne.iteration;
        let snapshot = tsne.step(every.min(left));
        if let Some(progress) = progress {
            if tsne.is_done() {
                progress.send_important(snapshot.clone());
            } else {
                progress.send(snapshot.clone());
            }
        }
    }
    TsneOutcome::Finished(tsne.snapshot())
}

/// A layout computed on its own thread, for callers that must not block (the app).
#[derive(Debug)]
pub struct TsneJob {
    pub progress: Receiver<Snapshot>,
    pub cancel: CancelToken,
    handle: JoinHandle<Result<TsneOutcome, TsneError>>,
}

impl TsneJob {
    /// Starts [`run`] on `values` (rows × cols, row-major) on a thread named `tsne`.
    pub fn spawn(
        values: Vec<f32>,
        rows: usize,
        cols: usize,
        config: TsneConfig,
        every: usize,
    ) -> std::io::Result<Self> {
        let (sender, progress) = progress_channel(4);
        let cancel = CancelToken::new();
        let token = cancel.clone();
        let handle = spawn_named("tsne", move || {
            let data = Matrix::new(&values, rows, cols)?;
            run(data, config, every, Some(&sender), &token)
        })?;
        Ok(Self {
            progress,
            cancel,
            handle,
        })
    }

    /// Waits for the end of the job.
    pub fn join(self) -> Result<TsneOutcome, TsneError> {
        match self.handle.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests;
