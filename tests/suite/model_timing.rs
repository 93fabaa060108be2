//! Cost of one coot training step at the paper's size (run in release: `cargo test --release
//! --test model_timing -- --ignored --nocapture`): 64 videos × 8 clips × 16 frames, Dv = 512,
//! Dt = 768, A = 384, with whole-video and whole-paragraph contexts.

// As in the binaries: candle allocates per op, and glibc hands large blocks back to the kernel, so
// every op would pay page faults on fresh memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use crate::support::model::*;
use candle_core::{DType, Device, Tensor};
use crossclr::model::{HeadConfig, HeadKind, Mode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn coot_forward_backward_at_paper_size() {
    let cfg = HeadConfig {
        kind: HeadKind::Coot,
        video_dim: 512,
        text_dim: 768,
        ..HeadConfig::default()
    };
    let (head, varmap) = build(&cfg, 1);
    let (videos, clips, frames, tokens) = (64, 8, 16, 16);
    let started = Instant::now();
    let batch = input(
        &cfg,
        &vec![frames; videos * clips],
        &vec![tokens; videos * clips],
        &vec![clips; videos],
        true,
        1,
    );
    eprintln!("inputs built in {:.2?}", started.elapsed());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut step = |report: bool| {
        let started = Instant::now();
        let out = head.forward(&batch, Mode::Train { rng: &mut rng }).unwrap();
        let mut scalar = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
        for t in [&out.clip, &out.sentence, &out.video, &out.paragraph] {
            scalar = (scalar + t.sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        let _ = scalar.to_scalar::<f32>().unwrap();
        let forward = started.elapsed();
        let grads = scalar.backward().unwrap();
        let total = started.elapsed();
        assert_eq!(
            varmap
                .all_vars()
                .iter()
                .filter(|v| grads.get(v.as_tensor()).is_some())
                .count(),
            varmap.all_vars().len()
        );
        if report {
            eprintln!(
                "forward {forward:.2?}, backward {:.2?}, total {total:.2?}",
                total - forward
            );
        }
        total
    };
    step(false);
    let mut totals: Vec<_> = (0..5).map(|_| step(true)).collect();
    totals.sort();
    eprintln!("step: fastest {:.2?}, median {:.2?}", totals[0], totals[2]);
    let started = Instant::now();
    let out = head.forward(&batch, Mode::Eval).unwrap();
    let _ = out.video.sum_all().unwrap().to_scalar::<f32>().unwrap();
    eprintln!("eval forward {:.2?}", started.elapsed());
}
