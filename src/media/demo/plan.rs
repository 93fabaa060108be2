//! The collection's plan: which concepts each video's clips show (Zipf-popular, so many clips
//! are semantic duplicates), where the shapes start, the captions with their paraphrases, and the
//! split of each video. A pure function of [`DemoConfig`].

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::vocabulary::*;

/// What a clip shows that its caption talks about. Clips of the same concept are semantic
/// duplicates of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concept {
    pub shape: Shape,
    pub colour: Colour,
    pub size: Size,
    pub texture: Texture,
    pub motion: Motion,
}

/// One clip: its concept, where the shape starts, and its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoClip {
    pub concept: Concept,
    /// Index of the concept in the plan's concept list (equal index = semantic duplicate).
    pub concept_id: usize,
    /// Start of the shape's path, as fractions of the frame's width and height.
    pub start_x: f32,
    pub start_y: f32,
    /// Seconds from the start of its video.
    pub start: f64,
    pub end: f64,
    pub caption: String,
}

/// One video: clips one after the other over a single background.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoVideo {
    /// File stem, unique in the collection (`demo_000`, ...).
    pub name: String,
    pub split: &'static str,
    pub background: Background,
    /// Seeds the grain of the `Static` background.
    pub grain_seed: u64,
    pub clips: Vec<DemoClip>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    pub seed: u64,
    pub videos: usize,
    /// Fewest and most clips per video.
    pub clips_per_video: (usize, usize),
    /// Distinct concepts to draw clips from; fewer concepts, more duplicates.
    pub concepts: usize,
    /// Zipf exponent of concept popularity (0 = uniform).
    pub popularity: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub clip_seconds: f64,
    /// Fractions of videos in `val` and `test` (by video, the rest in `train`).
    pub val_fraction: f64,
    pub test_fraction: f64,
}

impl Default for DemoConfig {
    /// About 630 clips: enough examples of each colour × shape pair for typed queries to find
    /// them (80 videos found min(3, a pair's clips) in 63%, 44% and 70% of the pairs for seeds
    /// 0, 1, 2; 160 in 86%, 85% and 90%), and still rendered, ingested and trained on two cores
    /// in under three minutes.
    fn default() -> Self {
        Self {
            seed: 0,
            videos: 160,
            clips_per_video: (3, 5),
            concepts: 72,
            popularity: 0.7,
            width: 160,
            height: 120,
            fps: 12,
            clip_seconds: 2.0,
            val_fraction: 0.15,
            test_fraction: 0.15,
        }
    }
}

/// Every concept that can be drawn (spins only on shapes where a spin shows).
fn all_concepts() -> Vec<Concept> {
    let mut concepts = Vec::new();
    for &shape in &SHAPES {
        for &colour in &COLOURS {
            for &size in &SIZES {
                for &texture in &TEXTURES {
                    for &motion in &MOTIONS {
                        if motion == Motion::Spin && !shape.shows_spin() {
                            continue;
                        }
                        concepts.push(Concept {
                            shape,
                            colour,
                            size,
                            texture,
                            motion,
                        });
                    }
                }
            }
        }
    }
    concepts
}

/// A caption of `concept` in one of several phrasings, with paraphrased words.
fn caption(rng: &mut ChaCha8Rng, concept: &Concept, background: Background) -> String {
    let pick = |rng: &mut ChaCha8Rng, words: &[&'static str]| -> &'static str {
        words.choose(rng).copied().unwrap_or_default()
    };
    let shape = pick(rng, concept.shape.words());
    let colour = pick(rng, concept.colour.words());
    let size = pick(rng, concept.size.words());
    let motion = pick(rng, concept.motion.phrases());
    // Plain texture is usually left unsaid, as people would.
    let texture = match concept.texture {
        Texture::Solid if rng.random_bool(0.7) => None,
        texture => Some(pick(rng, texture.words())),
    };
    let place = rng
        .random_bool(0.35)
        .then(|| pick(rng, background.phrases()));
    let adjectives = [Some(size), texture, Some(colour)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = match rng.random_range(0..4) {
        0 => format!("a {adjectives} {shape} {motion}"),
        1 => format!("the {adjectives} {shape} {motion}"),
        2 => {
            let texture = texture.map(|t| format!("{t} ")).unwrap_or_default();
            format!("a {size} {texture}{shape} in {colour} {motion}")
        }
        _ => format!("there is a {adjectives} {shape} that {motion}"),
    };
    if let Some(place) = place {
        text.push(' ');
        text.push_str(place);
    }
    text
}

/// Draws an index in 0..n with probability ∝ 1/(i+1)^s.
fn zipf_index(rng: &mut ChaCha8Rng, cumulative: &[f64]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let u = rng.random::<f64>() * total;
    cumulative
        .partition_point(|&c| c <= u)
        .min(cumulative.len().saturating_sub(1))
}

/// The collection: videos, their clips, concepts and captions.
pub fn plan(config: &DemoConfig) -> Vec<DemoVideo> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut pool = all_concepts();
    // A seeded choice of which concepts exist in this collection, most popular first.
    for i in (1..pool.len()).rev() {
        pool.swap(i, rng.random_range(0..=i));
    }
    pool.truncate(config.concepts.clamp(1, pool.len()));
    let mut cumulative = Vec::with_capacity(pool.len());
    let mut running = 0.0;
    for rank in 0..pool.len() {
        running += 1.0 / ((rank + 1) as f64).powf(config.popularity);
        cumulative.push(running);
    }

    let test = (config.videos as f64 * config.test_fraction).round() as usize;
    let val = (config.videos as f64 * config.val_fraction).round() as usize;
    let (least, most) = (
        config.clips_per_video.0.max(1),
        config
            .clips_per_video
            .1
            .max(config.clips_per_video.0.max(1)),
    );
    (0..config.videos)
        .map(|v| {
            let background = BACKGROUNDS[rng.random_range(0..BACKGROUNDS.len())];
            let count = rng.random_range(least..=most);
            let clips = (0..count)
                .map(|c| {
                    let concept_id = loop {
                        let id = zipf_index(&mut rng, &cumulative);
                        if background.contrasts_with(pool[id].colour) {
                            break id;
                        }
                    };
                    let concept = pool[concept_id];
                    let (start_x, start_y) = start_position(&mut rng, concept.motion);
                    DemoClip {
                        concept,
                        concept_id,
                        start_x,
                        start_y,
                        start: c as f64 * config.clip_seconds,
                        end: (c + 1) as f64 * config.clip_seconds,
                        caption: caption(&mut rng, &concept, background),
                    }
                })
                .collect();
            // Videos are shuffled already (every draw is random), so the split is by position.
            let split = if v < test {
                "test"
            } else if v < test + val {
                "val"
            } else {
                "train"
            };
            DemoVideo {
                name: format!("demo_{v:03}"),
                split,
                background,
                grain_seed: rng.random(),
                clips,
            }
        })
        .collect()
}

/// Where a path starts so that it stays in the frame.
pub(super) fn start_position(rng: &mut ChaCha8Rng, motion: Motion) -> (f32, f32) {
    let mut around = |centre: f32, spread: f32| centre + rng.random_range(-spread..=spread);
    match motion {
        Motion::Left => (around(0.72, 0.05), around(0.5, 0.2)),
        Motion::Right => (around(0.28, 0.05), around(0.5, 0.2)),
        Motion::Up => (around(0.5, 0.25), around(0.7, 0.04)),
        Motion::Down => (around(0.5, 0.25), around(0.3, 0.04)),
        Motion::Bounce => (around(0.5, 0.25), around(0.68, 0.04)),
        Motion::Spin | Motion::Grow | Motion::Shrink => (around(0.5, 0.15), around(0.5, 0.1)),
    }
}
