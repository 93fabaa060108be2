//! The pretrained-model encoders on tiny models whose folders the tests write themselves (seeded
//! weights with the real tensor names): shapes, determinism, padding, and errors that name the
//! missing file or tensor.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use candle_transformers::models::clip::text_model::Activation;
use candle_transformers::models::clip::vision_model::{ClipVisionConfig, ClipVisionTransformer};
use crossclr::encode::{
    BertTextEncoder, ClipVisualEncoder, TextEncoder, VisualEncoder, text_encoder, visual_encoder,
};
use crossclr::media::RgbFrame;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Gives every variable seeded values in ±0.5, names in sorted order.
fn seed(varmap: &VarMap, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| rng.random_range(-0.5..0.5))
            .collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn write_json(path: &Path, value: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

const WORDS: [&str; 12] = [
    "cut", "the", "onion", "add", "salt", "stir", "a", "tomato", "slice", "bread", "on", "and",
];

fn bert_config() -> serde_json::Value {
    json!({
        "vocab_size": 4 + WORDS.len(), "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"
    })
}

/// A word-level tokenizer with BERT's special tokens around each sentence.
fn tokenizer_json() -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (id, token) in ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
        .into_iter()
        .chain(WORDS)
        .enumerate()
    {
        vocab.insert(token.into(), json!(id));
    }
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// A tiny BERT folder; `edit` may change the weights before they are saved.
fn write_bert(folder: &Path, edit: impl FnOnce(&VarMap)) {
    write_json(&folder.join("config.json"), bert_config());
    write_json(&folder.join("tokenizer.json"), tokenizer_json());
    let config: BertConfig = serde_json::from_value(bert_config()).unwrap();
    let varmap = VarMap::new();
    BertModel::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    seed(&varmap, 7);
    edit(&varmap);
    varmap.save(folder.join("model.safetensors")).unwrap();
}

fn sentence_transformers_modules(folder: &Path, pooling: &str) {
    write_json(
        &folder.join("modules.json"),
        json!([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        ]),
    );
    let mut pooling_config = json!({
        "word_embedding_dimension": 8, "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": false, "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false
    });
    pooling_config[pooling] = json!(true);
    write_json(&folder.join("1_Pooling/config.json"), pooling_config);
}

const SENTENCES: [&str; 4] = [
    "cut the onion",
    "add salt and stir",
    "slice a tomato on the bread",
    "stir",
];

#[test]
fn a_bert_folder_encodes_tokens_and_mean_pooled_sentences() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |_| {});
    let encoder = BertTextEncoder::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(encoder.dim(), 8);
    assert!(!encoder.normalizes(), "no modules.json: a plain BERT");
    assert_eq!(
        encoder.max_length(),
        32,
        "capped by the position embeddings"
    );
    let features = encoder.encode(&SENTENCES).unwrap();
    assert_eq!(features.len(), 4);
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let words = sentence.split(' ').count();
        assert_eq!(features.tokens.rows(i), words + 2, "[CLS] words [SEP]");
        let pooled = features.tokens.pooled(i);
        for (a, b) in pooled.iter().zip(features.sentence(i)) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    assert_ne!(features.sentence(0), features.sentence(1));
    assert_eq!(
        encoder.token_ids(&["Cut the ONION"]).unwrap(),
        vec![vec![1, 4, 5, 6, 2]]
    );
}

#[test]
fn padding_batch_size_and_reloading_do_not_change_outputs() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |_| {});
    let one_by_one = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap()
        .with_batch_size(1)
        .encode(&SENTENCES)
        .unwrap();
    let together = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap()
        .with_batch_size(8)
        .encode(&SENTENCES)
        .unwrap();
    let gap = one_by_one
        .sentences
        .iter()
        .zip(&together.sentences)
        .chain(one_by_one.tokens.data.iter().zip(&together.tokens.data))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-5, "padding moved outputs by {gap:e}");
    assert_eq!(one_by_one.tokens.offsets, together.tokens.offsets);
}

#[test]
fn sentences_longer_than_the_model_allows_are_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |_| {});
    let encoder = BertTextEncoder::load(dir.path(), &Device::Cpu).unwrap();
    let long = "stir the onion and ".repeat(10);
    let features = encoder.encode(&["stir", &long]).unwrap();
    assert_eq!(features.truncated, vec![1]);
    assert_eq!(features.tokens.rows(1), 32);
}

#[test]
fn sentence_transformers_modules_normalise_and_only_mean_pooling_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |_| {});
    sentence_transformers_modules(dir.path(), "pooling_mode_mean_tokens");
    let encoder = BertTextEncoder::load(dir.path(), &Device::Cpu).unwrap();
    assert!(encoder.normalizes());
    let features = encoder.encode(&SENTENCES).unwrap();
    for i in 0..features.len() {
        let norm: f32 = features
            .sentence(i)
            .iter()
            .map(|v| v * v)
            .sum::<f32>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    sentence_transformers_modules(dir.path(), "pooling_mode_cls_token");
    write_json(
        &dir.path().join("1_Pooling/config.json"),
        json!({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}),
    );
    let message = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("1_Pooling/config.json") && message.contains("pooling_mode_cls_token"),
        "{message}"
    );
}

#[test]
fn a_missing_bert_file_or_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |_| {});
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let message = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(message.contains("tokenizer.json is missing"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |varmap| {
        varmap
            .data()
            .lock()
            .unwrap()
            .remove("encoder.layer.0.attention.self.query.weight");
    });
    let message = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("model.safetensors")
            && message.contains("encoder.layer.0.attention.self.query.weight"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_bert(dir.path(), |varmap| {
        let wrong = Var::zeros((3, 8), DType::F32, &Device::Cpu).unwrap();
        varmap
            .data()
            .lock()
            .unwrap()
            .insert("embeddings.word_embeddings.weight".into(), wrong);
    });
    let message = BertTextEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("embeddings.word_embeddings.weight"),
        "{message}"
    );
}

const CLIP_PROJECTION: usize = 16;

fn clip_vision_config() -> ClipVisionConfig {
    ClipVisionConfig {
        embed_dim: 32,
        activation: Activation::QuickGelu,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        projection_dim: CLIP_PROJECTION,
        num_channels: 3,
        image_size: 32,
        patch_size: 8,
    }
}

/// A tiny CLIP folder in Hugging Face's layout (a full CLIP config; only the image tower's
/// weights); `edit` may change the weights before they are saved.
fn write_clip(folder: &Path, edit: impl FnOnce(&VarMap)) {
    write_json(
        &folder.join("config.json"),
        json!({
            "model_type": "clip", "projection_dim": CLIP_PROJECTION,
            "text_config": {"hidden_size": 32},
            "vision_config": {
                "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
                "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5
            }
        }),
    );
    let config = clip_vision_config();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // candle's CLIP draws the class embedding itself when a builder lacks it; make it a tensor.
    vb.pp("vision_model.embeddings")
        .get(config.embed_dim, "class_embedding")
        .unwrap();
    ClipVisionTransformer::new(vb.pp("vision_model"), &config).unwrap();
    candle_nn::linear_no_bias(
        config.embed_dim,
        CLIP_PROJECTION,
        vb.pp("visual_projection"),
    )
    .unwrap();
    seed(&varmap, 11);
    edit(&varmap);
    varmap.save(folder.join("model.safetensors")).unwrap();
}

fn gradient_frame(width: u32, height: u32, tint: u8) -> RgbFrame {
    let pixels = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| [(x * 5) as u8, (y * 3) as u8, tint])
        .collect();
    RgbFrame::new(width, height, pixels, 0.0).unwrap()
}

#[test]
fn a_clip_folder_encodes_frames_of_any_size_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    write_clip(dir.path(), |_| {});
    let encoder = ClipVisualEncoder::load(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(encoder.dim(), CLIP_PROJECTION);
    let size = encoder.input_size();
    assert_eq!((size.width, size.height), (32, 32));
    let frames = [
        gradient_frame(48, 36, 0),
        gradient_frame(32, 32, 200),
        gradient_frame(30, 50, 100),
    ];
    let features = encoder.encode(&frames).unwrap();
    assert_eq!(features.len(), 3 * CLIP_PROJECTION);
    for row in features.chunks(CLIP_PROJECTION) {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    assert_ne!(
        &features[..CLIP_PROJECTION],
        &features[CLIP_PROJECTION..2 * CLIP_PROJECTION]
    );
    assert_eq!(features, encoder.encode(&frames).unwrap());
    let reloaded = visual_encoder(&format!("clip:{}", dir.path().display()), &Device::Cpu).unwrap();
    assert_eq!(features, reloaded.encode(&frames).unwrap());
    // A frame alone gives what it gave in company (batches do not mix frames).
    let alone = encoder.encode(&frames[1..2]).unwrap();
    let gap = alone
        .iter()
        .zip(&features[CLIP_PROJECTION..2 * CLIP_PROJECTION])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-5, "{gap:e}");
}

#[test]
fn a_missing_or_misshapen_clip_tensor_is_named() {
    for missing in [
        "vision_model.post_layernorm.weight",
        "vision_model.embeddings.class_embedding",
        "visual_projection.weight",
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_clip(dir.path(), |varmap| {
            assert!(varmap.data().lock().unwrap().remove(missing).is_some());
        });
        let message = ClipVisualEncoder::load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("model.safetensors") && message.contains(missing),
            "{message}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write_clip(dir.path(), |varmap| {
        let wrong = Var::zeros((CLIP_PROJECTION, 31), DType::F32, &Device::Cpu).unwrap();
        varmap
            .data()
            .lock()
            .unwrap()
            .insert("visual_projection.weight".into(), wrong);
    });
    let message = ClipVisualEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(message.contains("visual_projection.weight"), "{message}");
}

#[test]
fn an_unsupported_clip_config_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_clip(dir.path(), |_| {});
    let config_path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    config["vision_config"]["hidden_act"] = json!("gelu");
    write_json(&config_path, config);
    let message = ClipVisualEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("config.json") && message.contains("hidden_act `gelu`"),
        "{message}"
    );
    std::fs::remove_file(&config_path).unwrap();
    let message = ClipVisualEncoder::load(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(message.contains("config.json is missing"), "{message}");
}

#[test]
fn bert_and_clip_folders_build_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_bert(&dir.path().join("bert"), |_| {});
    let name = format!("bert:{}", dir.path().join("bert").display());
    let encoder = text_encoder(&name, &Device::Cpu).unwrap();
    assert_eq!((encoder.name(), encoder.dim()), (name.as_str(), 8));
}
