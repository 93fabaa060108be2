//! The learning rate over a run: linear warm-up, then reduce-on-plateau on the validation score
//! (COOT's "reduce on plateau with warm-up").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauConfig {
    /// Epochs without improvement before the rate drops.
    pub patience: usize,
    /// Epochs after a drop during which bad epochs are not counted.
    pub cooldown: usize,
    pub factor: f64,
    pub min_lr: f64,
    /// Relative improvement that counts (PyTorch's `threshold`, mode "rel").
    pub threshold: f64,
}

impl Default for PlateauConfig {
    /// The project's default training settings (the paper's patience and cool-down).
    fn default() -> Self {
        Self::of(&crate::project::config::TrainSection::default())
    }
}

/// `torch.optim.lr_scheduler.ReduceLROnPlateau(mode="max", threshold_mode="rel")`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    config: PlateauConfig,
    lr: f64,
    /// The best score so far; none before the first epoch that counts. (Not −∞: JSON has no
    /// infinity, and a state saved before that epoch must read back.)
    best: Option<f64>,
    bad_epochs: usize,
    cooldown_left: usize,
}

impl Plateau {
    pub fn new(lr: f64, config: PlateauConfig) -> Self {
        Self {
            config,
            lr,
            best: None,
            bad_epochs: 0,
            cooldown_left: 0,
        }
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Records an epoch's score (higher is better); returns the rate for the next epoch.
    pub fn step(&mut self, score: f64) -> f64 {
        if self
            .best
            .is_none_or(|best| score > best * (1.0 + self.config.threshold))
        {
            self.best = Some(score);
            self.bad_epochs = 0;
        } else {
            self.bad_epochs += 1;
        }
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.bad_epochs = 0;
        }
        if self.bad_epochs > self.config.patience {
            let reduced = (self.lr * self.config.factor).max(self.config.min_lr);
            if self.lr - reduced > 1e-8 {
                self.lr = reduced;
            }
            self.cooldown_left = self.config.cooldown;
            self.bad_epochs = 0;
        }
        self.lr
    }
}

/// Warm-up over the first `warmup_steps` optimizer steps, then the plateau's rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    base_lr: f64,
    warmup_steps: usize,
    plateau: Plateau,
}

impl LrSchedule {
    pub fn new(base_lr: f64, warmup_steps: usize, plateau: PlateauConfig) -> Self {
        Self {
            base_lr,
            warmup_steps,
            plateau: Plateau::new(base_lr, plateau),
        }
    }

    /// The rate for optimizer step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            self.base_lr * (step + 1) as f64 / self.warmup_steps as f64
        } else {
            self.plateau.lr()
        }
    }

    /// Records the validation score of an epoch that ended at optimizer step `step`; during
    /// warm-up the plateau is not consulted (the rate is still rising by design).
    pub fn end_epoch(&mut self, step: usize, score: f64) {
        if step >= self.warmup_steps {
            self.plateau.step(score);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_matches_torch() {
        // torch 2.15: ReduceLROnPlateau(mode='max', factor=0.1, patience=2, cooldown=1,
        // min_lr=1e-3, threshold=1e-4) on SGD(lr=1.0).
        let scores = [
            0.1, 0.2, 0.2, 0.2, 0.2, 0.19, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
        ];
        let torch = [
            1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001,
            0.001,
        ];
        let mut plateau = Plateau::new(
            1.0,
            PlateauConfig {
                patience: 2,
                cooldown: 1,
                factor: 0.1,
                min_lr: 1e-3,
                threshold: 1e-4,
            },
        );
        for (score, want) in scores.iter().zip(torch) {
            let got = plateau.step(*score);
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn a_plateau_before_its_first_score_survives_a_json_round_trip() {
        let fresh = Plateau::new(1e-3, PlateauConfig::default());
        let json = serde_json::to_string(&fresh).unwrap();
        let back: Plateau = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fresh);
    }

    #[test]
    fn warm_up_rises_linearly_then_hands_over() {
        let mut schedule = LrSchedule::new(1e-3, 4, PlateauConfig::default());
        let rates: Vec<f64> = (0..6).map(|s| schedule.lr_at(s)).collect();
        assert_eq!(rates, vec![2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]);
        // Scores during warm-up are ignored: a bad warm-up cannot cut the rate.
        for _ in 0..20 {
            schedule.end_epoch(2, 0.0);
        }
        assert_eq!(schedule.lr_at(10), 1e-3);
    }
}
