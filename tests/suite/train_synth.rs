//! Training end to end on synthetic features where the truth is known: it learns, it is
//! reproducible to the byte, it resumes exactly, and a diverging run stops naming the culprit.

use candle_core::Device;
use crossclr::crossclr::LossSettings;
use crossclr::jobs::{CancelToken, progress_channel};
use crossclr::model::{EncoderSpec, HeadConfig, HeadKind};
use crossclr::project::SplitFeatures;
use crossclr::synth::{SynthConfig, generate};
use crossclr::train::{
    CorpusView, MemoryStore, Outcome, PlateauConfig, RAdamConfig, TrainConfig, TrainError,
    TrainEvent, train,
};

fn data(videos: [usize; 3]) -> Vec<SplitFeatures> {
    let mut synth = SynthConfig::small(11);
    synth.videos = videos;
    generate(&synth).into_iter().map(|s| s.features).collect()
}

fn config(epochs: usize, seed: u64) -> TrainConfig {
    let synth = SynthConfig::small(11);
    let head = HeadConfig {
        kind: HeadKind::Coot,
        video_dim: synth.video_dim,
        text_dim: synth.text_dim,
        joint_dim: 32,
        attention_dim: 32,
        local_heads: 4,
        global_heads: 4,
        pool_heads: 2,
        dropout: 0.05,
        max_positions: 64,
    };
    let loss = LossSettings {
        queue: 128,
        ..Default::default()
    };
    TrainConfig {
        head,
        loss,
        optimizer: RAdamConfig {
            lr: 1e-3,
            ..Default::default()
        },
        epochs,
        videos_per_batch: 16,
        warmup_epochs: 1,
        plateau: PlateauConfig::default(),
        seed,
        max_steps: 16,
        max_context_steps: 48,
        video_encoder: EncoderSpec {
            name: "synthetic".into(),
            dim: synth.video_dim,
        },
        text_encoder: EncoderSpec {
            name: "synthetic".into(),
            dim: synth.text_dim,
        },
    }
}

fn run(
    config: &TrainConfig,
    splits: &[SplitFeatures],
    store: &mut MemoryStore,
    cancel_after: Option<usize>,
    resume: bool,
) -> Result<Outcome, TrainError> {
    let (events, receiver) = progress_channel(1024);
    let cancel = CancelToken::new();
    std::thread::scope(|scope| {
        let watcher = cancel.clone();
        let watch = scope.spawn(move || {
            let mut steps = 0;
            for event in receiver {
                if let TrainEvent::Step { .. } = event {
                    steps += 1;
                    if Some(steps) == cancel_after {
                        watcher.cancel();
                    }
                }
            }
        });
        let outcome = train(
            config,
            &CorpusView::of(&splits[0]),
            &CorpusView::of(&splits[1]),
            &Device::Cpu,
            store,
            &events,
            &cancel,
            resume,
        );
        drop(events);
        watch.join().unwrap();
        outcome
    })
}

#[test]
fn training_on_planted_structure_beats_chance_by_a_wide_margin() {
    let splits = data([96, 32, 32]);
    let mut store = MemoryStore::default();
    let outcome = run(&config(8, 0), &splits, &mut store, None, false).unwrap();
    assert_eq!(outcome, Outcome::Completed);
    let best = store
        .metrics
        .iter()
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .unwrap();
    let clips = splits[1].num_clips() as f64;
    let videos = splits[1].num_videos() as f64;
    let v = &best.validation;
    eprintln!("best epoch {}: {v:?}", best.epoch);
    // Chance: R@1 = 1/N. Demand five times that (8 epochs on 96 videos measured about 9×).
    assert!(
        v.clip_to_sentence.r1 > 5.0 / clips,
        "clip→sentence R@1 {} (chance {:.4})",
        v.clip_to_sentence.r1,
        1.0 / clips
    );
    assert!(
        v.sentence_to_clip.r1 > 5.0 / clips,
        "sentence→clip R@1 {}",
        v.sentence_to_clip.r1
    );
    assert!(
        v.video_to_paragraph.r1 > 5.0 / videos,
        "video→paragraph R@1 {}",
        v.video_to_paragraph.r1
    );
    assert!(
        v.clip_to_sentence.median_rank < clips / 3.0,
        "median rank {}",
        v.clip_to_sentence.median_rank
    );
    assert!(
        store
            .metrics
            .iter()
            .all(|r| r.pruned_fraction > 0.0 && r.pruned_fraction < 1.0)
    );
}

#[test]
fn the_same_seed_gives_identical_checkpoint_bytes() {
    let splits = data([24, 8, 8]);
    let mut a = MemoryStore::default();
    let mut b = MemoryStore::default();
    let mut c = MemoryStore::default();
    run(&config(2, 5), &splits, &mut a, None, false).unwrap();
    run(&config(2, 5), &splits, &mut b, None, false).unwrap();
    run(&config(2, 6), &splits, &mut c, None, false).unwrap();
    assert!(
        a.checkpoint == b.checkpoint,
        "checkpoints of the same seed differ"
    );
    assert!(a.state == b.state, "states of the same seed differ");
    assert!(
        a.checkpoint.unwrap().0 != c.checkpoint.unwrap().0,
        "another seed gave the same weights"
    );
}

#[test]
fn a_cancelled_run_resumes_to_the_same_bytes_as_an_uninterrupted_one() {
    let splits = data([40, 8, 8]);
    let config = config(3, 9);
    let mut whole = MemoryStore::default();
    run(&config, &splits, &mut whole, None, false).unwrap();
    // 40 videos, 16 per batch: 3 steps per epoch. Cancel in the middle of the second epoch
    // (epochs count from 1).
    let mut interrupted = MemoryStore::default();
    let outcome = run(&config, &splits, &mut interrupted, Some(4), false).unwrap();
    assert!(
        matches!(outcome, Outcome::Cancelled { epoch: 2, .. }),
        "{outcome:?}"
    );
    assert_eq!(interrupted.metrics.len(), 1);
    let outcome = run(&config, &splits, &mut interrupted, None, true).unwrap();
    assert_eq!(outcome, Outcome::Completed);
    assert!(
        interrupted.checkpoint == whole.checkpoint,
        "resumed checkpoint differs"
    );
    assert!(interrupted.state == whole.state, "resumed state differs");
    let scores = |s: &MemoryStore| s.metrics.iter().map(|r| r.score).collect::<Vec<_>>();
    assert_eq!(scores(&interrupted), scores(&whole));
}

#[test]
fn a_diverging_run_names_the_culprit_and_keeps_the_last_good_checkpoint() {
    let splits = data([24, 8, 8]);
    let mut store = MemoryStore::default();
    run(&config(1, 3), &splits, &mut store, None, false).unwrap();
    let good = store.checkpoint.clone().unwrap();
    let mut poisoned = config(2, 3);
    // An infinite step: the parameters become ±∞ (or NaN where the gradient is 0).
    poisoned.optimizer.lr = f64::INFINITY;
    poisoned.warmup_epochs = 0;
    // A fresh run into the same store: it must fail before it writes anything over the good run.
    let error = run(&poisoned, &splits, &mut store, None, false).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, TrainError::NonFinite { epoch: 1, .. }),
        "{message}"
    );
    assert!(
        message.contains("embeddings") || message.contains("loss"),
        "{message}"
    );
    // The fresh run had saved nothing of its own, and says so.
    assert!(message.contains("no epoch had finished"), "{message}");
    assert!(
        store.checkpoint.unwrap() == good,
        "the last good checkpoint was overwritten"
    );
}
