//! The demo's promise, measured: typed colour × shape queries find the clips they name. For
//! every colour × shape pair the demo's captions hold, "a <colour> <shape>" is searched, and the
//! clips of that colour and shape among the best five are counted; a pair passes with
//! min(3, its clips) of them. The truth is the captions' own words, as a new user would read them.

use std::collections::HashMap;

use serde::Serialize;

use super::AnalysisError;
use super::search::SearchIndex;
use crate::media::demo::{BACKGROUNDS, COLOURS, Colour, SHAPES, Shape};
use crate::project::Project;

/// Results looked at per query.
pub const TOP: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairQuery {
    pub query: String,
    /// Clips whose captions name this colour and shape.
    pub clips: usize,
    /// Of those, how many are among the best [`TOP`].
    pub found: usize,
    pub needed: usize,
}

impl PairQuery {
    pub fn passed(&self) -> bool {
        self.found >= self.needed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoQueryReport {
    pub pairs: Vec<PairQuery>,
}

impl DemoQueryReport {
    pub fn passed(&self) -> usize {
        self.pairs.iter().filter(|p| p.passed()).count()
    }

    /// The share of pairs that passed.
    pub fn share(&self) -> f64 {
        self.passed() as f64 / self.pairs.len().max(1) as f64
    }
}

/// The colour and shape a demo caption names, when it names exactly one of each. Background
/// phrases ("in a blue sky", "over green grass", "against a pale backdrop") are taken out first:
/// their colour words are not the shape's.
pub fn colour_and_shape(caption: &str) -> Option<(Colour, Shape)> {
    let mut text = format!(" {} ", caption.to_lowercase());
    for background in BACKGROUNDS {
        for phrase in background.phrases() {
            text = text.replace(phrase, " ");
        }
    }
    let words: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let names = |phrase: &str| {
        let parts: Vec<&str> = phrase.split(' ').collect();
        words.windows(parts.len()).any(|w| w == parts.as_slice())
    };
    let mut colours = COLOURS
        .iter()
        .filter(|c| c.words().iter().any(|w| names(w)));
    let mut shapes = SHAPES.iter().filter(|s| s.words().iter().any(|w| names(w)));
    match (colours.next(), colours.next(), shapes.next(), shapes.next()) {
        (Some(&colour), None, Some(&shape), None) => Some((colour, shape)),
        _ => None,
    }
}

/// Searches "a <colour> <shape>" ("an orange star") for every pair the project's captions hold.
pub fn colour_shape_queries(
    project: &Project,
    index: &SearchIndex,
) -> Result<DemoQueryReport, AnalysisError> {
    let manifest = project.read_manifest()?;
    let mut clips_of: HashMap<(Colour, Shape), usize> = HashMap::new();
    for entry in &manifest.entries {
        if let Some(pair) = entry.caption.as_deref().and_then(colour_and_shape) {
            *clips_of.entry(pair).or_default() += 1;
        }
    }
    // In the vocabulary's order: colours, then shapes.
    let held = COLOURS
        .iter()
        .flat_map(|&c| SHAPES.iter().map(move |&s| (c, s)));
    let mut pairs = Vec::with_capacity(clips_of.len());
    for (colour, shape) in held {
        let Some(&clips) = clips_of.get(&(colour, shape)) else {
            continue;
        };
        let colour_word = colour.words()[0];
        let article = if colour_word.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let query = format!("{article} {colour_word} {}", shape.words()[0]);
        let hits = index.search(&query, TOP)?;
        let found = hits
            .iter()
            .filter(|hit| {
                hit.caption.as_deref().and_then(colour_and_shape) == Some((colour, shape))
            })
            .count();
        pairs.push(PairQuery {
            query,
            clips,
            found,
            needed: clips.min(3),
        });
    }
    Ok(DemoQueryReport { pairs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_name_their_shape_and_colour_but_not_their_background() {
        assert_eq!(
            colour_and_shape("a little crimson ball moves to the left in a blue sky"),
            Some((Colour::Red, Shape::Circle))
        );
        assert_eq!(
            colour_and_shape("a tiny three-sided shape in scarlet keeps bouncing over green grass"),
            Some((Colour::Red, Shape::Triangle))
        );
        assert_eq!(
            colour_and_shape(
                "a tiny dotted five-pointed star in amber turns in place against a pale backdrop"
            ),
            Some((Colour::Orange, Shape::Star))
        );
        assert_eq!(colour_and_shape("a red and blue ring"), None);
    }
}
