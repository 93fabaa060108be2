//! Video in (DESIGN §3): decoding with FFmpeg, frame sampling, scaling, thumbnails, and the demo
//! video synthesis. Uses the project module only.

pub mod demo;
pub mod frame;

pub use frame::RgbFrame;
