//! Training: the optimizer, the learning-rate schedule, batching, the loop and its events.

pub mod radam;
pub mod schedule;

pub use radam::{RAdam, RAdamConfig};
pub use schedule::{LrSchedule, Plateau, PlateauConfig};
