//! Fuzz entry points: one function per reader of a user's files, taking the file's bytes. The
//! `fuzz/` crate (cargo-fuzz, libFuzzer) calls them, and so does `cargo test`, which replays the
//! committed corpus `fuzz/corpus/<target>/` and mutates it (`mutation_tests.rs`).
//!
//! The readers take paths (they stream, seek and name the file in their errors), so each input
//! is written to a file first: the code under test is the real reader, file handling included.
//! A reader may return any value or error; a panic, an overflow or an allocation failure is the
//! bug being looked for. Where a reader promises more (a checked value), that is asserted too.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;

use super::config::ProjectConfig;
use super::coot::{self, CootPaths};
use super::{SplitFeatures, captions, manifest};
use crate::model::{CheckpointMeta, EncoderSpec, HeadConfig, HeadKind, load_checkpoint};

/// Every fuzzed reader. The name is the cargo-fuzz target's and its corpus folder's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    CaptionsCsv,
    CaptionsJsonl,
    /// MSR-VTT's and YouCook2's `.json` documents (one reader; the corpus holds both).
    CaptionsJson,
    Manifest,
    ConfigToml,
    CootMeta,
    CootSentenceSplits,
    FeaturesSafetensors,
    CheckpointSafetensors,
}

impl Target {
    pub const ALL: [Target; 9] = [
        Target::CaptionsCsv,
        Target::CaptionsJsonl,
        Target::CaptionsJson,
        Target::Manifest,
        Target::ConfigToml,
        Target::CootMeta,
        Target::CootSentenceSplits,
        Target::FeaturesSafetensors,
        Target::CheckpointSafetensors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::CaptionsCsv => "captions_csv",
            Target::CaptionsJsonl => "captions_jsonl",
            Target::CaptionsJson => "captions_json",
            Target::Manifest => "manifest",
            Target::ConfigToml => "config_toml",
            Target::CootMeta => "coot_meta",
            Target::CootSentenceSplits => "coot_sentence_splits",
            Target::FeaturesSafetensors => "features_safetensors",
            Target::CheckpointSafetensors => "checkpoint_safetensors",
        }
    }

    /// Feeds `data` to the target's reader.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::CaptionsCsv => captions_file("captions.csv", data),
            Target::CaptionsJsonl => captions_file("captions.jsonl", data),
            Target::CaptionsJson => captions_file("captions.json", data),
            Target::Manifest => {
                let _ = manifest::read_manifest(&input_file("manifest.jsonl", data));
            }
            Target::ConfigToml => {
                if let Ok(config) = ProjectConfig::load(&input_file("crossclr.toml", data)) {
                    assert!(config.validate().is_ok(), "load returned an invalid config");
                }
            }
            Target::CootMeta => coot_meta(data),
            Target::CootSentenceSplits => coot_sentence_splits(data),
            Target::FeaturesSafetensors => {
                if let Ok(features) = SplitFeatures::load(&input_file("f.safetensors", data)) {
                    assert!(
                        features.validate().is_ok(),
                        "load returned features that fail their own check"
                    );
                }
            }
            Target::CheckpointSafetensors => checkpoint(data),
        }
    }
}

fn captions_file(name: &str, data: &[u8]) {
    let _ = captions::read_captions(&input_file(name, data));
}

/// Frame counts a video's features may have, to check the frames each segment is given.
const FRAME_COUNTS: [usize; 4] = [1, 2, 97, 10_000];

/// The most frames a clip is sampled to (COOT's default is 80).
const MAX_FRAMES: usize = 80;

/// `meta_all.json` up to the HDF5 files: the object, each entry's checks, and the frames each
/// segment of a valid entry would read, which must lie inside the video.
fn coot_meta(data: &[u8]) {
    let Ok(meta) = coot::read_json_object(&input_file("meta_all.json", data)) else {
        return;
    };
    for entry in meta.values() {
        let Ok(video) = coot::meta_video(entry) else {
            continue;
        };
        for frames in FRAME_COUNTS {
            for segment in &video.segments {
                let range = coot::segment_frames(
                    frames,
                    video.duration_sec,
                    segment.start_sec,
                    segment.stop_sec,
                );
                let sampled = coot::sample_frames(range, MAX_FRAMES);
                assert!(
                    !sampled.is_empty() && sampled.len() <= MAX_FRAMES,
                    "a segment got {} frames",
                    sampled.len()
                );
                assert!(
                    sampled.iter().all(|&f| f < frames),
                    "a segment reads past the video's {frames} frames"
                );
            }
        }
    }
}

/// `_sentence_splits.json`: each entry's token counts, checked against a paragraph as long as
/// the counts say (and one token shorter), as the importer checks them against its HDF5 rows.
fn coot_sentence_splits(data: &[u8]) {
    let paths = CootPaths {
        meta: "meta_all.json".into(),
        video_h5: "video.h5".into(),
        text_h5: "text.h5".into(),
        sentence_splits: input_file("sentence_splits.json", data),
    };
    let Ok(splits) = coot::read_json_object(&paths.sentence_splits) else {
        return;
    };
    for entry in splits.values() {
        let segments = entry.as_array().map_or(0, Vec::len);
        for tokens in [64, 0] {
            if let Ok(counts) = coot::sentence_counts(Some(entry), &paths, segments, tokens) {
                assert_eq!(counts.len(), segments);
                assert_eq!(counts.iter().sum::<usize>(), tokens);
            }
        }
    }
}

/// The sidecar the fuzzed checkpoint weights are read with: a small mlp head (video 3, text 2,
/// joint 4), so each execution builds the head quickly.
pub fn checkpoint_sidecar() -> String {
    let head = HeadConfig {
        kind: HeadKind::Mlp,
        video_dim: 3,
        text_dim: 2,
        joint_dim: 4,
        ..HeadConfig::default()
    };
    let meta = CheckpointMeta {
        video_encoder: EncoderSpec::new("precomputed", head.video_dim),
        text_encoder: EncoderSpec::new("precomputed", head.text_dim),
        head,
        loss: serde_json::Value::Null,
        seed: 0,
        epoch: 1,
        metrics: serde_json::Value::Null,
    };
    serde_json::to_string(&meta).expect("a checkpoint sidecar serializes")
}

fn checkpoint(data: &[u8]) {
    thread_local! {
        static SIDECAR: String = checkpoint_sidecar();
    }
    SIDECAR.with(|sidecar| {
        let _ = load_checkpoint(data, sidecar, &Device::Cpu);
    });
}

/// A thread's input folder, removed when the thread ends (each test's thread, in `cargo test`).
struct InputFolder(PathBuf);

impl Drop for InputFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `data` as `name` in this thread's own folder and returns its path. Fuzzing (one
/// thread) and the parallel test threads each get their own, so no two inputs share a file.
fn input_file(name: &str, data: &[u8]) -> PathBuf {
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static DIR: RefCell<Option<InputFolder>> = const { RefCell::new(None) };
    }
    let dir = DIR.with(|dir| {
        dir.borrow_mut()
            .get_or_insert_with(|| {
                let thread = THREADS.fetch_add(1, Ordering::Relaxed);
                let dir = std::env::temp_dir()
                    .join(format!("crossclr-fuzz-{}-{thread}", std::process::id()));
                // A harness failure, not the reader's: without the file there is nothing to test.
                std::fs::create_dir_all(&dir).expect("create the fuzz input folder");
                InputFolder(dir)
            })
            .0
            .clone()
    });
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write the fuzz input");
    path
}
