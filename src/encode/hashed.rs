//! A text encoder that needs no weights: hashed bag of words, word pairs and character n-grams.
//!
//! Text is lower-cased and split into words at every character that is not a letter or digit.
//! Each word contributes three kinds of features:
//!
//! - the word itself (weight 1),
//! - the pair it starts with the next word (weight 1), which tells "cut tomato" from "tomato cut",
//! - the character 3-, 4- and 5-grams of `<word>` (with boundary marks), each weighing `1/√m` for
//!   the word's `m` n-grams, so a word's spelling counts about as much as the word; they make
//!   "slices" and "slice" close.
//!
//! Each feature's summed weight `w` becomes `ln(1 + w)` (sublinear term frequency) and is added,
//! with a sign, to one of `dim` slots; both slot and sign come from a fixed hash (FNV-1a, then
//! splitmix64's finaliser), so the output is the same on every machine and run. Sentence
//! embeddings and per-word token features are L2-normalised. A sentence without words yields a
//! zero embedding and one zero token row.

use std::collections::BTreeMap;

use super::{EncodeError, TextEncoder, TextFeatures, normalize_l2};
use crate::project::Sequences;

/// Kinds of feature, hashed into different places.
const WORD: u8 = b'w';
const PAIR: u8 = b'p';
const CHARS: u8 = b'c';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedTextEncoder {
    name: String,
    dim: usize,
}

impl HashedTextEncoder {
    pub const DEFAULT_DIM: usize = 512;

    /// An encoder writing `dim`-wide features (at least 1); named `hashed` at the default width
    /// and `hashed:<dim>` otherwise.
    pub fn new(dim: usize) -> Self {
        let dim = dim.max(1);
        let name = if dim == Self::DEFAULT_DIM {
            "hashed".to_string()
        } else {
            format!("hashed:{dim}")
        };
        Self { name, dim }
    }

    /// Adds every feature of `words[k]` to `features`, keyed by hash.
    fn word_features(words: &[String], k: usize, features: &mut BTreeMap<u64, f32>) {
        let word = &words[k];
        *features.entry(feature_hash(WORD, &[word])).or_default() += 1.0;
        if let Some(next) = words.get(k + 1) {
            *features
                .entry(feature_hash(PAIR, &[word, " ", next]))
                .or_default() += 1.0;
        }
        let marked: Vec<char> = std::iter::once('<')
            .chain(word.chars())
            .chain(std::iter::once('>'))
            .collect();
        let grams: Vec<String> = (3..=5)
            .flat_map(|n| {
                marked
                    .windows(n)
                    .map(|gram| gram.iter().collect::<String>())
            })
            .collect();
        // "<a>" has one trigram; no word has none, but a division by zero would be silent.
        let weight = 1.0 / (grams.len().max(1) as f32).sqrt();
        for gram in &grams {
            *features.entry(feature_hash(CHARS, &[gram])).or_default() += weight;
        }
    }

    /// The hashed, sublinear, L2-normalised vector of a feature bag.
    fn embed(&self, features: &BTreeMap<u64, f32>) -> Vec<f32> {
        let mut vector = vec![0.0f32; self.dim];
        for (&hash, &weight) in features {
            let slot = (hash % self.dim as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[slot] += sign * weight.ln_1p();
        }
        normalize_l2(&mut vector);
        vector
    }
}

impl Default for HashedTextEncoder {
    fn default() -> Self {
        Self::new(Self::DEFAULT_DIM)
    }
}

impl TextEncoder for HashedTextEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&self, sentences: &[&str]) -> Result<TextFeatures, EncodeError> {
        let mut embeddings = Vec::with_capacity(sentences.len() * self.dim);
        let mut tokens = Sequences::new(self.dim);
        for sentence in sentences {
            let words = split_words(sentence);
            let mut sentence_features = BTreeMap::new();
            let mut rows = Vec::with_capacity(words.len().max(1) * self.dim);
            for k in 0..words.len() {
                let mut features = BTreeMap::new();
                Self::word_features(&words, k, &mut features);
                rows.extend(self.embed(&features));
                for (hash, weight) in features {
                    *sentence_features.entry(hash).or_default() += weight;
                }
            }
            if words.is_empty() {
                rows.resize(self.dim, 0.0);
            }
            embeddings.extend(self.embed(&sentence_features));
            tokens.push(&rows);
        }
        Ok(TextFeatures {
            sentences: embeddings,
            tokens,
            truncated: Vec::new(),
        })
    }
}

/// Lower-cased runs of letters and digits.
fn split_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// FNV-1a over a kind byte and the parts, finished with splitmix64's mixer so that both the low
/// bits (the slot) and the top bit (the sign) depend on every input byte.
fn feature_hash(kind: u8, parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let bytes = std::iter::once(kind).chain(parts.iter().flat_map(|part| part.bytes()));
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn words_are_lower_cased_runs_of_letters_and_digits() {
        assert_eq!(
            split_words("Cut 2 TOMATOES, then—slice!"),
            ["cut", "2", "tomatoes", "then", "slice"]
        );
        assert!(split_words(" ,.; ").is_empty());
    }

    #[test]
    fn the_hash_is_fixed() {
        // The pinned value (computed independently in Python) catches any change to the hash,
        // which would silently change every stored feature.
        assert_eq!(
            feature_hash(WORD, &["tomato"]),
            feature_hash(WORD, &["tom", "ato"])
        );
        assert_ne!(
            feature_hash(WORD, &["tomato"]),
            feature_hash(PAIR, &["tomato"])
        );
        assert_eq!(feature_hash(WORD, &["tomato"]), 0x49b0_c67c_a4ed_43de);
    }

    #[test]
    fn outputs_are_unit_length_with_one_token_row_per_word() {
        let encoder = HashedTextEncoder::default();
        let features = encoder.encode(&["a man slices tomatoes", ""]).unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(features.tokens.rows(0), 4);
        let norm = cosine(features.sentence(0), features.sentence(0));
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        for word in features.tokens.get(0).chunks(encoder.dim()) {
            assert!((cosine(word, word) - 1.0).abs() < 1e-5);
        }
        assert_eq!(features.tokens.rows(1), 1);
        assert!(features.sentence(1).iter().all(|&v| v == 0.0));
        assert!(features.tokens.get(1).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn names_say_the_width() {
        assert_eq!(HashedTextEncoder::default().name(), "hashed");
        assert_eq!(HashedTextEncoder::new(64).name(), "hashed:64");
        assert_eq!(HashedTextEncoder::new(64).dim(), 64);
    }
}
