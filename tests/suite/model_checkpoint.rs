//! Checkpoints: round trips, stable bytes, and errors that name every tensor that does not fit.

use std::collections::BTreeMap;

use crate::support::model::*;
use candle_core::{DType, Device, Tensor};
use crossclr::model::{
    CheckpointMeta, EncoderSpec, HeadConfig, HeadKind, Mode, ModelError, TensorMismatch,
    checkpoint_bytes, load_checkpoint, parameter_shapes,
};

fn meta(cfg: &HeadConfig) -> CheckpointMeta {
    CheckpointMeta {
        head: cfg.clone(),
        video_encoder: EncoderSpec {
            name: "s3d-howto100m".into(),
            dim: cfg.video_dim,
        },
        text_encoder: EncoderSpec {
            name: "all-MiniLM-L6-v2".into(),
            dim: cfg.text_dim,
        },
        loss: serde_json::json!({"kind": "crossclr", "mode": "paper", "tau": 0.03}),
        seed: 7,
        epoch: 12,
        metrics: serde_json::json!({"val_r1": 0.25}),
    }
}

#[test]
fn a_loaded_checkpoint_gives_identical_outputs_and_bytes() {
    for kind in [HeadKind::Mlp, HeadKind::Coot] {
        let cfg = config(kind);
        let (head, varmap) = build(&cfg, 7);
        let (weights, sidecar) = checkpoint_bytes(&varmap, &meta(&cfg)).unwrap();
        assert!(
            sidecar.contains(&format!("\"kind\": \"{kind}\"")),
            "{sidecar}"
        );
        assert!(sidecar.contains('\n'), "the sidecar is pretty-printed");

        let (loaded, loaded_map, loaded_meta) =
            load_checkpoint(&weights, &sidecar, &Device::Cpu).unwrap();
        assert_eq!(loaded_meta, meta(&cfg));
        assert_eq!(loaded.config(), &cfg);
        let batch = input(&cfg, &[3, 5, 2, 4], &[2, 4, 3, 3], &[1, 3], true, 300);
        let before = head.forward(&batch, Mode::Eval).unwrap();
        let after = loaded.forward(&batch, Mode::Eval).unwrap();
        for (a, b) in [
            (&before.clip, &after.clip),
            (&before.sentence, &after.sentence),
            (&before.video, &after.video),
            (&before.paragraph, &after.paragraph),
        ] {
            assert_eq!(values(a), values(b), "{kind}");
        }
        let (again, _) = checkpoint_bytes(&loaded_map, &loaded_meta).unwrap();
        assert_eq!(
            again, weights,
            "{kind}: save → load → save changed the bytes"
        );
    }
}

#[test]
fn a_checkpoint_of_another_video_width_names_each_tensor_and_both_shapes() {
    let cfg = config(HeadKind::Coot);
    let wide = HeadConfig {
        video_dim: 20,
        ..cfg.clone()
    };
    let (_, varmap) = build(&wide, 7);
    let (weights, _) = checkpoint_bytes(&varmap, &meta(&wide)).unwrap();
    let sidecar = serde_json::to_string(&meta(&cfg)).unwrap();
    let Err(error) = load_checkpoint(&weights, &sidecar, &Device::Cpu) else {
        panic!("a checkpoint of 20-d video features loaded into a 12-d head");
    };
    let message = error.to_string();
    assert!(
        message.contains("video_local.input_fc.weight: expected [32, 12], found [32, 20]"),
        "{message}"
    );
    assert!(
        message.contains("video_local.input_norm.weight: expected [12], found [20]"),
        "{message}"
    );
    assert!(
        message.contains("video_local.input_norm.bias: expected [12], found [20]"),
        "{message}"
    );
    let ModelError::Mismatch(problems) = error else {
        panic!("expected a mismatch, got {error}");
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn missing_and_unexpected_tensors_are_reported_together() {
    let cfg = config(HeadKind::Mlp);
    let (_, varmap) = build(&cfg, 7);
    let (weights, sidecar) = checkpoint_bytes(&varmap, &meta(&cfg)).unwrap();
    let mut tensors: BTreeMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&weights, &Device::Cpu)
            .unwrap()
            .into_iter()
            .collect();
    tensors.remove("text.fc2.bias");
    tensors.insert(
        "text.fc3.weight".into(),
        Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "video.fc1.bias".into(),
        Tensor::zeros(16, DType::U32, &Device::Cpu).unwrap(),
    );
    let edited =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None).unwrap();
    let Err(error) = load_checkpoint(&edited, &sidecar, &Device::Cpu) else {
        panic!("edited weights loaded");
    };
    let ModelError::Mismatch(problems) = &error else {
        panic!("expected a mismatch, got {error}");
    };
    assert_eq!(
        problems,
        &[
            TensorMismatch::Missing {
                name: "text.fc2.bias".into(),
                expected: vec![16]
            },
            TensorMismatch::Unexpected {
                name: "text.fc3.weight".into(),
                found: vec![4, 4]
            },
            TensorMismatch::DType {
                name: "video.fc1.bias".into(),
                dtype: "U32".into()
            },
        ]
    );
    let message = error.to_string();
    assert!(message.contains("(3 tensors)"), "{message}");
    assert!(
        message.contains("text.fc2.bias: expected [16], missing"),
        "{message}"
    );
}

#[test]
fn half_precision_weights_load_as_f32() {
    let cfg = config(HeadKind::Coot);
    let (head, varmap) = build(&cfg, 9);
    let (weights, sidecar) = checkpoint_bytes(&varmap, &meta(&cfg)).unwrap();
    let half: BTreeMap<String, Tensor> =
        candle_core::safetensors::load_buffer(&weights, &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(n, t)| (n, t.to_dtype(DType::F16).unwrap()))
            .collect();
    let half = safetensors::serialize(half.iter().map(|(n, t)| (n.as_str(), t)), None).unwrap();
    let (loaded, loaded_map, _) = load_checkpoint(&half, &sidecar, &Device::Cpu).unwrap();
    for var in loaded_map.all_vars() {
        assert_eq!(var.dtype(), DType::F32);
    }
    let batch = input(&cfg, &[3, 4], &[2, 5], &[2], false, 310);
    let a = head.forward(&batch, Mode::Eval).unwrap();
    let b = loaded.forward(&batch, Mode::Eval).unwrap();
    let d = max_diff(&a.video, &b.video);
    // f16 keeps ~3 decimal digits of 0.01-scale weights.
    assert!(d > 0.0 && d < 1e-2, "{d}");
}

#[test]
fn checkpoints_must_describe_the_weights_they_carry() {
    let cfg = config(HeadKind::Coot);
    let (_, varmap) = build(&cfg, 7);
    // A sidecar claiming another attention width: refused before anything is written.
    let other = HeadConfig {
        attention_dim: 16,
        ..cfg.clone()
    };
    let error = checkpoint_bytes(&varmap, &meta(&other)).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("video_local.input_fc.weight: expected [16, 12], found [32, 12]"),
        "{error}"
    );
    // Encoders whose widths differ from the head's inputs.
    let mut wrong_encoder = meta(&cfg);
    wrong_encoder.text_encoder.dim = 384;
    let message = checkpoint_bytes(&varmap, &wrong_encoder)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("all-MiniLM-L6-v2") && message.contains("384"),
        "{message}"
    );
    // Broken files.
    assert!(matches!(
        load_checkpoint(
            b"not safetensors",
            &serde_json::to_string(&meta(&cfg)).unwrap(),
            &Device::Cpu
        ),
        Err(ModelError::Weights(_))
    ));
    assert!(matches!(
        load_checkpoint(&[], "{", &Device::Cpu),
        Err(ModelError::Sidecar(_))
    ));
}

#[test]
fn parameter_layout_of_the_coot_head() {
    let cfg = config(HeadKind::Coot);
    let shapes = parameter_shapes(&cfg).unwrap();
    let (_, varmap) = build(&cfg, 1);
    let built: BTreeMap<String, Vec<usize>> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect();
    assert_eq!(shapes, built);
    assert_eq!(shapes["video_local.pool.w1"], [2, 32, 16]);
    assert_eq!(
        shapes["text_global.context.attention.query.weight"],
        [32, 32]
    );
    assert!(!shapes.contains_key("text_local.context.attention.query.weight"));
    // 4 networks; each: input norm (2) + input fc (2) + layer (attention: 2 + 1 (a key needs no
    // bias) + 2 + 2, ff 2·2, norms 2·2 = 15) + pool (w1, b1, w2); the global ones add a context
    // layer (15).
    assert_eq!(shapes.len(), 4 * (2 + 2 + 15 + 3) + 2 * 15);
    assert!(!shapes.contains_key("video_local.layer.attention.key.bias"));
}
