//! Unit tests of the pieces the public tests cannot reach: attention and pooling weights, the
//! dropout mask, the grouping, the position table and the context fallback.

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::input::Grouping;
use super::layers::sinusoid_table;
use super::*;

fn small_config() -> HeadConfig {
    HeadConfig {
        kind: HeadKind::Coot,
        video_dim: 12,
        text_dim: 10,
        joint_dim: 16,
        attention_dim: 32,
        local_heads: 4,
        global_heads: 4,
        pool_heads: 2,
        dropout: 0.1,
        max_positions: 64,
    }
}

fn coot(cfg: &HeadConfig, seed: u64) -> (CootHead, VarMap) {
    let varmap = VarMap::new();
    let head = CootHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        cfg,
    )
    .unwrap();
    initialise(&varmap, seed).unwrap();
    (head, varmap)
}

fn normal(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// Three sequences of lengths 6, 2 and 4, padded to 6.
fn padded_batch(width: usize) -> SequenceBatch {
    let sequences: Vec<Tensor> = [6, 2, 4]
        .iter()
        .enumerate()
        .map(|(i, &t)| normal(&[t, width], 10 + i as u64))
        .collect();
    SequenceBatch::from_sequences(&sequences).unwrap()
}

#[test]
fn masked_keys_get_zero_attention() {
    let cfg = small_config();
    let (head, _) = coot(&cfg, 3);
    let batch = padded_batch(cfg.video_dim);
    let bias = batch.key_bias().unwrap();
    let network = &head.video_local;
    let steps = network
        .steps_for_test(&batch.values, &bias, &mut Mode::Eval)
        .unwrap();
    let (_, probabilities) = network
        .layer()
        .attention()
        .attend(&steps, &steps, &bias)
        .unwrap();
    assert_eq!(probabilities.dims(), [3 * cfg.local_heads, 6, 6]);
    let probabilities = probabilities.reshape((3, cfg.local_heads, 6, 6)).unwrap();
    let p: Vec<Vec<Vec<Vec<f32>>>> = (0..3)
        .map(|n| probabilities.i(n).unwrap().to_vec3().unwrap())
        .collect();
    let lengths = [6, 2, 4];
    for (n, &len) in lengths.iter().enumerate() {
        for head in &p[n] {
            for row in head {
                assert!(
                    row[len..].iter().all(|&w| w == 0.0),
                    "padding attended: {row:?}"
                );
                assert!(row[..len].iter().all(|&w| w > 0.0));
                let total: f32 = row.iter().sum();
                assert!((total - 1.0).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn pooling_weights_are_zero_on_padding_and_a_distribution_per_channel() {
    let cfg = small_config();
    let (head, _) = coot(&cfg, 4);
    let batch = padded_batch(cfg.text_dim);
    let bias = batch.key_bias().unwrap();
    let network = &head.text_local;
    let steps = network
        .steps_for_test(&batch.values, &bias, &mut Mode::Eval)
        .unwrap();
    let weights = network
        .pool()
        .weights(&steps, &bias, &mut Mode::Eval, cfg.dropout)
        .unwrap();
    assert_eq!(weights.dims(), [3, 6, cfg.attention_dim]);
    let lengths = [6, 2, 4];
    for (n, &len) in lengths.iter().enumerate() {
        let w: Vec<Vec<f32>> = weights.i(n).unwrap().to_vec2().unwrap();
        for channel in 0..cfg.attention_dim {
            let column: Vec<f32> = w.iter().map(|row| row[channel]).collect();
            assert!(column[len..].iter().all(|&x| x == 0.0));
            assert!((column.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn pooling_heads_own_disjoint_channel_blocks() {
    // Changing W2 of head 0 may change only the weights of channels 0..A/2.
    let cfg = small_config();
    let (head, varmap) = coot(&cfg, 5);
    let batch = padded_batch(cfg.video_dim);
    let bias = batch.key_bias().unwrap();
    let network = &head.video_local;
    let steps = network
        .steps_for_test(&batch.values, &bias, &mut Mode::Eval)
        .unwrap();
    let before = network
        .pool()
        .weights(&steps, &bias, &mut Mode::Eval, 0.0)
        .unwrap();
    let w2 = varmap.data().lock().unwrap()["video_local.pool.w2"].clone();
    let half = cfg.attention_dim / 2;
    let changed = Tensor::cat(
        &[
            &(w2.as_tensor().narrow(0, 0, 1).unwrap() * 50.0).unwrap(),
            &w2.as_tensor().narrow(0, 1, 1).unwrap(),
        ],
        0,
    )
    .unwrap();
    w2.set(&changed).unwrap();
    let after = network
        .pool()
        .weights(&steps, &bias, &mut Mode::Eval, 0.0)
        .unwrap();
    let diff = (after - before).unwrap().abs().unwrap();
    let first: f32 = diff
        .narrow(2, 0, half)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let second: f32 = diff
        .narrow(2, half, half)
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(first > 1e-4, "head 0's channels did not move: {first}");
    assert_eq!(second, 0.0);
}

#[test]
fn dropout_draws_from_the_generator_and_rescales() {
    let x = Tensor::ones((200, 50), DType::F32, &Device::Cpu).unwrap();
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Mode::Train { rng: &mut rng }
            .dropout(&x, 0.2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
    assert!((dropped - 0.2).abs() < 0.02, "dropped {dropped}");
    assert!(a.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
    let eval = Mode::Eval.dropout(&x, 0.2).unwrap();
    assert_eq!(
        eval.sum_all().unwrap().to_scalar::<f32>().unwrap(),
        10_000.0
    );
}

#[test]
fn grouping_regroups_with_padding_and_averages_members() {
    let rows = Tensor::from_vec(
        (0..10).map(|v| v as f32).collect::<Vec<_>>(),
        (5, 2),
        &Device::Cpu,
    )
    .unwrap();
    let grouping = Grouping::new(&[0..2, 2..5], 5, &Device::Cpu).unwrap();
    assert_eq!((grouping.videos, grouping.longest), (2, 3));
    assert_eq!(
        grouping.mask.to_vec2::<f32>().unwrap(),
        [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    );
    let regrouped = grouping.regroup(&rows).unwrap();
    assert_eq!(
        regrouped.i(1).unwrap().to_vec2::<f32>().unwrap(),
        [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
    );
    assert_eq!(
        grouping.mean(&rows).unwrap().to_vec2::<f32>().unwrap(),
        [[1.0, 2.0], [6.0, 7.0]]
    );
    assert!(Grouping::new(&[0..2, 2..2], 5, &Device::Cpu).is_err());
    assert!(Grouping::new(std::slice::from_ref(&(0..6)), 5, &Device::Cpu).is_err());
}

#[test]
fn position_table_is_the_standard_sinusoid() {
    let table = sinusoid_table(8, 6, &Device::Cpu).unwrap();
    let t: Vec<Vec<f32>> = table.to_vec2().unwrap();
    assert_eq!(t[0], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert!((t[1][0] - 1f32.sin()).abs() < 1e-7);
    assert!((t[1][1] - 1f32.cos()).abs() < 1e-7);
    // Channel pair 1 of width 6: frequency 10000^(−2/6).
    let angle = 3.0 / 10000f64.powf(2.0 / 6.0);
    assert!((t[3][2] as f64 - angle.sin()).abs() < 1e-7);
    assert!((t[3][3] as f64 - angle.cos()).abs() < 1e-7);
}

#[test]
fn missing_context_is_the_mean_of_the_clip_features_as_one_step() {
    let cfg = small_config();
    let varmap = VarMap::new();
    let head = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &cfg,
    )
    .unwrap();
    initialise(&varmap, 9).unwrap();
    let clips = padded_batch(cfg.video_dim);
    let groups = vec![0..2, 2..3];
    let without = head
        .encode_video(&clips, None, &groups, Mode::Eval)
        .unwrap();
    // The same context spelt out: per video the mean over its clips of their frame means.
    let pooled = clips.masked_mean().unwrap();
    let first = ((pooled.i(0).unwrap() + pooled.i(1).unwrap()).unwrap() / 2.0).unwrap();
    let second = pooled.i(2).unwrap();
    let context = SequenceBatch::pooled(&Tensor::stack(&[first, second], 0).unwrap()).unwrap();
    let with = head
        .encode_video(&clips, Some(&context), &groups, Mode::Eval)
        .unwrap();
    let diff: f32 = (without.global - with.global)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-6, "{diff}");
}

#[test]
fn fused_pooling_equals_the_composed_weights_in_train_mode() {
    let cfg = small_config();
    let (head, _) = coot(&cfg, 6);
    let batch = padded_batch(cfg.video_dim);
    let bias = batch.key_bias().unwrap();
    let network = &head.video_local;
    let steps = network
        .steps_for_test(&batch.values, &bias, &mut Mode::Eval)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let fused = network
        .pool()
        .forward(&steps, &bias, &mut Mode::Train { rng: &mut rng }, 0.3)
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let weights = network
        .pool()
        .weights(&steps, &bias, &mut Mode::Train { rng: &mut rng }, 0.3)
        .unwrap();
    let composed = (weights * steps.reshape((3, 6, cfg.attention_dim)).unwrap())
        .unwrap()
        .sum(1)
        .unwrap();
    let diff: f32 = (fused - composed)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(diff < 1e-5, "{diff}");
}

/// Outputs and every variable's gradient of one training step of `head` on a padded batch.
fn step_outputs(head: &EmbeddingHead, varmap: &VarMap, cfg: &HeadConfig) -> Vec<(String, Tensor)> {
    let input = ModelInput {
        video_clips: padded_batch(cfg.video_dim),
        text_sentences: padded_batch(cfg.text_dim),
        // Whole-video frames: two sequences of 9 and 4 steps.
        video_context: Some(
            SequenceBatch::from_sequences(&[
                normal(&[9, cfg.video_dim], 50),
                normal(&[4, cfg.video_dim], 51),
            ])
            .unwrap(),
        ),
        text_context: None,
        groups: vec![0..2, 2..3],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let out = head.forward(&input, Mode::Train { rng: &mut rng }).unwrap();
    let parts = [&out.clip, &out.sentence, &out.video, &out.paragraph];
    let mut scalar = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
    for (i, t) in parts.iter().enumerate() {
        let weights = normal(t.dims(), 300 + i as u64);
        scalar = (scalar + (*t * weights).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = scalar.backward().unwrap();
    let mut all: Vec<(String, Tensor)> = parts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("output {i}"), (*t).clone()))
        .collect();
    let vars = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        all.push((
            name.clone(),
            grads.get(vars[name].as_tensor()).unwrap().clone(),
        ));
    }
    all
}

#[test]
fn the_composed_path_other_devices_take_gives_the_same_heads() {
    for kind in [HeadKind::Mlp, HeadKind::Coot] {
        let cfg = HeadConfig {
            kind,
            ..small_config()
        };
        let varmap = VarMap::new();
        let head = EmbeddingHead::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &cfg,
        )
        .unwrap();
        initialise(&varmap, 31).unwrap();
        let fused = step_outputs(&head, &varmap, &cfg);
        super::ops::FORCE_COMPOSED.with(|forced| forced.set(true));
        let composed = step_outputs(&head, &varmap, &cfg);
        super::ops::FORCE_COMPOSED.with(|forced| forced.set(false));
        assert_eq!(fused.len(), composed.len());
        for ((name, a), (_, b)) in fused.iter().zip(&composed) {
            let scale: f32 = b.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let diff: f32 = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(scale > 0.0, "{kind}: {name} is zero");
            assert!(
                diff <= 1e-4 * scale.max(1e-3),
                "{kind}: {name} differs by {diff} (scale {scale})"
            );
        }
    }
}
