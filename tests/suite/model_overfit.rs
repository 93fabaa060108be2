//! Both heads can learn: 8 clip–sentence pairs, a symmetric InfoNCE written here with candle ops,
//! 100 AdamW steps with dropout on; afterwards every clip retrieves its sentence and back.

use crate::support::model::*;
use candle_core::{D, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use crossclr::model::{HeadKind, Mode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn unit_rows(x: &Tensor) -> Tensor {
    let norm = x
        .sqr()
        .unwrap()
        .sum_keepdim(D::Minus1)
        .unwrap()
        .sqrt()
        .unwrap();
    x.broadcast_div(&norm).unwrap()
}

/// Symmetric InfoNCE: cross-entropy of a's rows against b's, and of b's against a's, positives on
/// the diagonal, temperature 0.1.
fn info_nce(a: &Tensor, b: &Tensor) -> Tensor {
    let n = a.dim(0).unwrap();
    let logits = (unit_rows(a).matmul(&unit_rows(b).t().unwrap()).unwrap() / 0.1).unwrap();
    let targets = Tensor::arange(0u32, n as u32, a.device()).unwrap();
    let forward = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
    let backward = candle_nn::loss::cross_entropy(&logits.t().unwrap(), &targets).unwrap();
    ((forward + backward).unwrap() / 2.0).unwrap()
}

/// For each row of `a`, the index of its most similar row of `b` (cosine).
fn nearest(a: &Tensor, b: &Tensor) -> Vec<u32> {
    unit_rows(a)
        .matmul(&unit_rows(b).t().unwrap())
        .unwrap()
        .argmax(1)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn both_heads_overfit_eight_pairs() {
    for kind in [HeadKind::Mlp, HeadKind::Coot] {
        let cfg = config(kind);
        let (head, varmap) = build(&cfg, 21);
        // 4 videos of 2 clips; clips and sentences of different lengths.
        let batch = input(
            &cfg,
            &[4, 6, 3, 5, 7, 2, 4, 5],
            &[3, 5, 4, 2, 6, 3, 4, 5],
            &[2, 2, 2, 2],
            true,
            500,
        );
        let expected: Vec<u32> = (0..8).collect();
        let before = head.forward(&batch, Mode::Eval).unwrap();
        assert_ne!(
            nearest(&before.clip, &before.sentence),
            expected,
            "{kind}: retrieval was already perfect before training"
        );
        let params = ParamsAdamW {
            lr: 3e-3,
            weight_decay: 1e-4,
            ..Default::default()
        };
        let mut optimiser = AdamW::new(varmap.all_vars(), params).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut first_loss = None;
        let mut last_loss = 0.0;
        for _ in 0..100 {
            let out = head.forward(&batch, Mode::Train { rng: &mut rng }).unwrap();
            let loss = (info_nce(&out.clip, &out.sentence)
                + (info_nce(&out.video, &out.paragraph) * 0.6).unwrap())
            .unwrap();
            last_loss = loss.to_scalar::<f32>().unwrap();
            first_loss.get_or_insert(last_loss);
            optimiser.backward_step(&loss).unwrap();
        }
        let first_loss = first_loss.unwrap();
        assert!(
            last_loss < 0.25 * first_loss,
            "{kind}: loss {first_loss} → {last_loss}"
        );
        let after = head.forward(&batch, Mode::Eval).unwrap();
        assert_eq!(
            nearest(&after.clip, &after.sentence),
            expected,
            "{kind}: clip → sentence"
        );
        assert_eq!(
            nearest(&after.sentence, &after.clip),
            expected,
            "{kind}: sentence → clip"
        );
        let videos: Vec<u32> = (0..4).collect();
        assert_eq!(
            nearest(&after.video, &after.paragraph),
            videos,
            "{kind}: video → paragraph"
        );
    }
}
