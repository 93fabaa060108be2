//! The embedding heads through their public interface: shapes, padding invariance, seeded
//! initialisation and dropout, gradients, input errors.

use crate::support::model::*;
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::{VarBuilder, VarMap};
use crossclr::model::{
    CheckpointMeta, EmbeddingHead, EncoderSpec, HeadConfig, HeadKind, Mode, ModelInput,
    SequenceBatch, checkpoint_bytes, initialise,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const KINDS: [HeadKind; 2] = [HeadKind::Mlp, HeadKind::Coot];

#[test]
fn output_shapes_of_both_heads() {
    for kind in KINDS {
        let cfg = config(kind);
        let (head, _) = build(&cfg, 1);
        // Three videos of 2, 3 and 1 clips; clips of 3..7 frames, sentences of 2..6 tokens.
        let batch = input(
            &cfg,
            &[3, 7, 4, 5, 6, 3],
            &[2, 6, 3, 4, 5, 2],
            &[2, 3, 1],
            true,
            5,
        );
        let out = head.forward(&batch, Mode::Eval).unwrap();
        let (local, global) = match kind {
            HeadKind::Mlp => (16, 16),
            HeadKind::Coot => (32, 64),
        };
        assert_eq!((cfg.local_dim(), cfg.global_dim()), (local, global));
        assert_eq!(out.clip.dims(), [6, local], "{kind}");
        assert_eq!(out.sentence.dims(), [6, local], "{kind}");
        assert_eq!(out.video.dims(), [3, global], "{kind}");
        assert_eq!(out.paragraph.dims(), [3, global], "{kind}");
        for t in [&out.clip, &out.sentence, &out.video, &out.paragraph] {
            assert!(values(t).iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn pooled_features_work_in_both_heads() {
    for kind in KINDS {
        let cfg = config(kind);
        let (head, _) = build(&cfg, 2);
        let batch = ModelInput::pooled(
            &normal(&[5, cfg.video_dim], 1),
            &normal(&[5, cfg.text_dim], 2),
            groups(&[3, 2]),
        )
        .unwrap();
        let out = head.forward(&batch, Mode::Eval).unwrap();
        assert_eq!(out.clip.dims(), [5, cfg.local_dim()]);
        assert_eq!(out.paragraph.dims(), [2, cfg.global_dim()]);
    }
}

#[test]
fn a_clip_padded_to_5_or_9_steps_embeds_the_same() {
    for kind in KINDS {
        let cfg = config(kind);
        let (head, _) = build(&cfg, 3);
        let clip = normal(&[5, cfg.video_dim], 40);
        let sentence = normal(&[4, cfg.text_dim], 41);
        let embed = |other_frames: usize, other_tokens: usize| {
            let clips = SequenceBatch::from_sequences(&[
                clip.clone(),
                normal(&[other_frames, cfg.video_dim], 42),
            ])
            .unwrap();
            let sentences = SequenceBatch::from_sequences(&[
                sentence.clone(),
                normal(&[other_tokens, cfg.text_dim], 43),
            ])
            .unwrap();
            let out = head
                .forward(
                    &ModelInput {
                        video_clips: clips,
                        text_sentences: sentences,
                        video_context: None,
                        text_context: None,
                        groups: groups(&[1, 1]),
                    },
                    Mode::Eval,
                )
                .unwrap();
            (out.clip.i(0).unwrap(), out.sentence.i(0).unwrap())
        };
        let (clip5, sentence4) = embed(5, 4);
        let (clip9, sentence9) = embed(9, 9);
        assert_eq!(clip5.dims(), [cfg.local_dim()]);
        assert!(
            max_diff(&clip5, &clip9) < 1e-6,
            "{kind}: {}",
            max_diff(&clip5, &clip9)
        );
        assert!(max_diff(&sentence4, &sentence9) < 1e-6, "{kind}");
        // The comparison can fail: another clip embeds differently.
        let (other, _) = {
            let clips = SequenceBatch::from_sequences(&[normal(&[5, cfg.video_dim], 44)]).unwrap();
            let out = head
                .encode_video(&clips, None, &groups(&[1]), Mode::Eval)
                .unwrap();
            (out.local.i(0).unwrap(), ())
        };
        assert!(max_diff(&clip5, &other) > 1e-4, "{kind}");
    }
}

#[test]
fn a_video_embeds_the_same_alone_or_beside_other_videos() {
    for kind in KINDS {
        for contexts in [false, true] {
            let cfg = config(kind);
            let (head, _) = build(&cfg, 4);
            // Video V: 3 clips of 4, 2, 5 frames; sentences of 3, 5, 2 tokens.
            let alone = input(&cfg, &[4, 2, 5], &[3, 5, 2], &[3], contexts, 60);
            let out_alone = head.forward(&alone, Mode::Eval).unwrap();
            // V between two videos with more clips and longer clips and sentences (so V's rows and
            // its group are padded further), built from the same tensors.
            let left = input(&cfg, &[8, 3, 6, 2], &[7, 2, 3, 4], &[4], contexts, 70);
            let right = input(&cfg, &[1, 9, 3, 3, 2], &[9, 1, 2, 6, 3], &[5], contexts, 80);
            let parts = [&left, &alone, &right];
            let cat_rows = |get: &dyn Fn(&ModelInput) -> Vec<Tensor>| -> Vec<Tensor> {
                parts.iter().flat_map(|p| get(p)).collect()
            };
            let unpad = |batch: &SequenceBatch| -> Vec<Tensor> {
                let mask: Vec<Vec<f32>> = batch.mask.to_vec2().unwrap();
                mask.iter()
                    .enumerate()
                    .map(|(i, m)| {
                        let len = m.iter().filter(|&&x| x == 1.0).count();
                        batch.values.i(i).unwrap().narrow(0, 0, len).unwrap()
                    })
                    .collect()
            };
            let clips = cat_rows(&|p| unpad(&p.video_clips));
            let sentences = cat_rows(&|p| unpad(&p.text_sentences));
            let together = ModelInput {
                video_clips: SequenceBatch::from_sequences(&clips).unwrap(),
                text_sentences: SequenceBatch::from_sequences(&sentences).unwrap(),
                video_context: contexts.then(|| {
                    SequenceBatch::from_sequences(&cat_rows(&|p| {
                        unpad(p.video_context.as_ref().unwrap())
                    }))
                    .unwrap()
                }),
                text_context: contexts.then(|| {
                    SequenceBatch::from_sequences(&cat_rows(&|p| {
                        unpad(p.text_context.as_ref().unwrap())
                    }))
                    .unwrap()
                }),
                groups: groups(&[4, 3, 5]),
            };
            let out = head.forward(&together, Mode::Eval).unwrap();
            let video = out.video.i(1).unwrap();
            let paragraph = out.paragraph.i(1).unwrap();
            let d = max_diff(&video, &out_alone.video.i(0).unwrap());
            assert!(
                d < 1e-6,
                "{kind}, contexts {contexts}: video differs by {d}"
            );
            let d = max_diff(&paragraph, &out_alone.paragraph.i(0).unwrap());
            assert!(
                d < 1e-6,
                "{kind}, contexts {contexts}: paragraph differs by {d}"
            );
            let d = max_diff(&out.clip.narrow(0, 4, 3).unwrap(), &out_alone.clip);
            assert!(d < 1e-6, "{kind}: clips differ by {d}");
            // And the neighbours embed differently from V.
            assert!(max_diff(&out.video.i(0).unwrap(), &video) > 1e-4);
        }
    }
}

fn meta(cfg: &HeadConfig, seed: u64) -> CheckpointMeta {
    CheckpointMeta {
        head: cfg.clone(),
        video_encoder: EncoderSpec {
            name: "test-video".into(),
            dim: cfg.video_dim,
        },
        text_encoder: EncoderSpec {
            name: "test-text".into(),
            dim: cfg.text_dim,
        },
        loss: serde_json::json!({"kind": "crossclr"}),
        seed,
        epoch: 0,
        metrics: serde_json::json!({}),
    }
}

#[test]
fn the_same_seed_gives_identical_checkpoint_bytes() {
    for kind in KINDS {
        let cfg = config(kind);
        let bytes = |seed: u64| {
            let (_, varmap) = build(&cfg, seed);
            checkpoint_bytes(&varmap, &meta(&cfg, 0)).unwrap().0
        };
        let a = bytes(7);
        assert_eq!(a, bytes(7), "{kind}");
        assert_ne!(a, bytes(8), "{kind}");
    }
}

#[test]
fn initialisation_follows_the_rules() {
    let cfg = config(HeadKind::Coot);
    let (_, varmap) = build(&cfg, 11);
    let vars = varmap.data().lock().unwrap();
    let mut seen = [0usize; 3];
    for (name, var) in vars.iter() {
        let v = values(var.as_tensor());
        if var.rank() == 1 && name.ends_with("norm.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
            seen[0] += 1;
        } else if var.rank() == 1 && name.ends_with("bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
            seen[1] += 1;
        } else {
            assert!(v.iter().all(|&x| x.abs() <= 0.02), "{name}");
            assert!(v.iter().any(|&x| x != 0.0), "{name}");
            seen[2] += 1;
        }
    }
    // 4 networks: input norm + 2 norms per layer (+2 in the context layer of the global ones).
    assert_eq!(seen[0], 4 * 3 + 2 * 2);
    assert!(seen[1] > seen[0] && seen[2] > seen[0]);
    // The values do not depend on the variable map a name sits in: rebuilding gives the same.
    drop(vars);
    let (_, again) = build(&cfg, 11);
    let again = again.data().lock().unwrap();
    for (name, var) in varmap.data().lock().unwrap().iter() {
        assert_eq!(
            values(var.as_tensor()),
            values(again[name].as_tensor()),
            "{name}"
        );
    }
}

#[test]
fn dropout_is_reproducible_in_train_mode_and_absent_in_eval_mode() {
    for kind in KINDS {
        let cfg = config(kind);
        let (head, varmap) = build(&cfg, 12);
        let batch = input(&cfg, &[3, 5, 4, 2], &[4, 2, 3, 5], &[2, 2], true, 90);
        let train = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            head.forward(&batch, Mode::Train { rng: &mut rng }).unwrap()
        };
        let (a, b, c) = (train(1), train(1), train(2));
        for (x, y, z) in [
            (&a.clip, &b.clip, &c.clip),
            (&a.sentence, &b.sentence, &c.sentence),
            (&a.video, &b.video, &c.video),
            (&a.paragraph, &b.paragraph, &c.paragraph),
        ] {
            assert_eq!(values(x), values(y), "{kind}: same seed, different outputs");
            assert_ne!(
                values(x),
                values(z),
                "{kind}: different seeds, same outputs"
            );
        }
        let eval = head.forward(&batch, Mode::Eval).unwrap();
        let eval_again = head.forward(&batch, Mode::Eval).unwrap();
        assert_eq!(values(&eval.video), values(&eval_again.video));
        assert_ne!(values(&eval.clip), values(&a.clip));
        // Eval is the network without dropout: the same weights with p = 0 in train mode.
        let no_dropout = HeadConfig {
            dropout: 0.0,
            ..cfg.clone()
        };
        let same_weights = EmbeddingHead::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &no_dropout,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let plain = same_weights
            .forward(&batch, Mode::Train { rng: &mut rng })
            .unwrap();
        assert_eq!(values(&plain.clip), values(&eval.clip), "{kind}");
        assert_eq!(values(&plain.paragraph), values(&eval.paragraph), "{kind}");
    }
}

#[test]
fn gradients_reach_every_parameter() {
    for kind in KINDS {
        let cfg = config(kind);
        let (head, varmap) = build(&cfg, 13);
        let batch = input(&cfg, &[3, 5, 4, 2, 6], &[4, 2, 3, 5, 3], &[2, 3], true, 100);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let out = head.forward(&batch, Mode::Train { rng: &mut rng }).unwrap();
        // A random projection of every output: no symmetry can hide a parameter's gradient.
        let mut scalar = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
        for (i, t) in [&out.clip, &out.sentence, &out.video, &out.paragraph]
            .into_iter()
            .enumerate()
        {
            let weights = normal(t.dims(), 200 + i as u64);
            scalar = (scalar + (t * weights).unwrap().sum_all().unwrap()).unwrap();
        }
        let grads = scalar.backward().unwrap();
        let vars = varmap.data().lock().unwrap();
        assert!(!vars.is_empty());
        let mut largest = Vec::new();
        for (name, var) in vars.iter() {
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{kind}: no gradient for {name}"));
            assert_eq!(grad.dims(), var.dims());
            let value: f32 = grad.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(value.is_finite(), "{kind}: {name} gradient {value}");
            largest.push((name.clone(), value));
        }
        // Rounding noise of a parameter the outputs do not depend on sits ~1e-12 below the
        // largest gradient; the smallest real ones here ~1e-7.
        let top = largest.iter().map(|(_, v)| *v).fold(0f32, f32::max);
        for (name, value) in largest {
            assert!(
                value > 1e-9 * top,
                "{kind}: {name} gradient {value} against {top}"
            );
        }
    }
}

#[test]
fn a_frozen_head_gives_the_same_embeddings_without_a_graph() {
    let cfg = config(HeadKind::Coot);
    let (head, varmap) = build(&cfg, 16);
    let frozen = EmbeddingHead::frozen(&varmap, &cfg, &Device::Cpu).unwrap();
    let batch = input(&cfg, &[3, 5, 4], &[4, 2, 3], &[2, 1], true, 130);
    let a = head.forward(&batch, Mode::Eval).unwrap();
    let b = frozen.forward(&batch, Mode::Eval).unwrap();
    assert_eq!(values(&a.video), values(&b.video));
    assert_eq!(values(&a.sentence), values(&b.sentence));
    // No variable takes part in the frozen graph.
    let grads = b.video.sum_all().unwrap().backward().unwrap();
    for var in varmap.all_vars() {
        assert!(grads.get(var.as_tensor()).is_none());
    }
    // It reads the variables' current values: an update is seen without rebuilding.
    let var = varmap.data().lock().unwrap()["video_global.input_fc.weight"].clone();
    var.set(&(var.as_tensor() * 3.0).unwrap()).unwrap();
    let after = frozen.forward(&batch, Mode::Eval).unwrap();
    assert!(max_diff(&after.video, &b.video) > 1e-4);
    assert_eq!(
        values(&after.video),
        values(&head.forward(&batch, Mode::Eval).unwrap().video)
    );
}

#[test]
fn inputs_that_do_not_fit_are_named() {
    let cfg = config(HeadKind::Coot);
    let (head, _) = build(&cfg, 14);
    let good = input(&cfg, &[3, 4], &[2, 3], &[2], false, 110);
    let error = |batch: &ModelInput| head.forward(batch, Mode::Eval).unwrap_err().to_string();

    let mut wide = good.clone();
    wide.video_clips = SequenceBatch::from_sequences(&sequences(&[3, 4], 13, 1)).unwrap();
    let message = error(&wide);
    assert!(
        message.contains("video_clips") && message.contains("12"),
        "{message}"
    );

    let mut short = good.clone();
    short.text_sentences = SequenceBatch::from_sequences(&sequences(&[3], 10, 1)).unwrap();
    assert!(
        error(&short).contains("text_sentences has 1"),
        "{}",
        error(&short)
    );

    let mut empty_group = good.clone();
    empty_group.groups = vec![0..2, 2..2];
    assert!(error(&empty_group).contains("groups[1]"));

    let mut long = good.clone();
    long.video_clips = SequenceBatch::from_sequences(&sequences(&[65, 4], 12, 1)).unwrap();
    assert!(error(&long).contains("max_positions"), "{}", error(&long));

    let mut unmasked = good.clone();
    unmasked.video_clips.mask = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(error(&unmasked).contains("no real step"));

    let varmap = VarMap::new();
    let bad = HeadConfig {
        local_heads: 5,
        ..cfg.clone()
    };
    let message = EmbeddingHead::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &bad,
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("local_heads (5)"), "{message}");
    // initialise on an empty map is a no-op, not an error.
    initialise(&VarMap::new(), 1).unwrap();
}
