//! The demo collection: short videos of coloured shapes moving over a background, rendered here,
//! captioned from the attributes that generated them.
//!
//! Its purpose is a first project with a known truth. Every clip shows one *concept* (shape,
//! colour, size, texture, motion); concepts are drawn with Zipf-like popularity, so many clips
//! show the same concept on different backgrounds and at different places — semantic duplicates,
//! the false negatives CrossCLR is about. Captions name the attributes with paraphrases ("a small
//! red circle drifts left", "a little crimson ball moves to the left"), so a text encoder has to
//! get past wording to match them. A video is a run of clips over one background, like a single
//! recording, which gives the video/paragraph level its own structure.
//!
//! Everything is a pure function of [`DemoConfig`] (its seed included): the same configuration
//! gives the same plan, captions and pixels.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::frame::RgbFrame;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Ring,
    Square,
    Triangle,
    Star,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
    White,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    Small,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Texture {
    Solid,
    Striped,
    Dotted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Motion {
    Left,
    Right,
    Up,
    Down,
    Spin,
    Bounce,
    Grow,
    Shrink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Background {
    Dark,
    Light,
    Sky,
    Grass,
    Static,
}

const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Ring,
    Shape::Square,
    Shape::Triangle,
    Shape::Star,
];
const COLOURS: [Colour; 7] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Orange,
    Colour::White,
];
const SIZES: [Size; 2] = [Size::Small, Size::Large];
const TEXTURES: [Texture; 3] = [Texture::Solid, Texture::Striped, Texture::Dotted];
const MOTIONS: [Motion; 8] = [
    Motion::Left,
    Motion::Right,
    Motion::Up,
    Motion::Down,
    Motion::Spin,
    Motion::Bounce,
    Motion::Grow,
    Motion::Shrink,
];
const BACKGROUNDS: [Background; 5] = [
    Background::Dark,
    Background::Light,
    Background::Sky,
    Background::Grass,
    Background::Static,
];

impl Shape {
    fn words(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["circle", "ball", "disc"],
            Shape::Ring => &["ring", "hoop", "donut"],
            Shape::Square => &["square", "box", "block"],
            Shape::Triangle => &["triangle", "three-sided shape"],
            Shape::Star => &["star", "five-pointed star"],
        }
    }

    /// A spin is only visible on a shape without rotational symmetry.
    fn shows_spin(self) -> bool {
        !matches!(self, Shape::Circle | Shape::Ring)
    }
}

impl Colour {
    fn words(self) -> &'static [&'static str] {
        match self {
            Colour::Red => &["red", "crimson", "scarlet"],
            Colour::Green => &["green", "emerald"],
            Colour::Blue => &["blue", "navy"],
            Colour::Yellow => &["yellow", "golden"],
            Colour::Purple => &["purple", "violet"],
            Colour::Orange => &["orange", "amber"],
            Colour::White => &["white", "pale"],
        }
    }

    pub fn rgb(self) -> [f32; 3] {
        match self {
            Colour::Red => [220.0, 40.0, 40.0],
            Colour::Green => [40.0, 175.0, 60.0],
            Colour::Blue => [40.0, 80.0, 225.0],
            Colour::Yellow => [240.0, 210.0, 40.0],
            Colour::Purple => [150.0, 60.0, 195.0],
            Colour::Orange => [245.0, 140.0, 25.0],
            Colour::White => [245.0, 245.0, 245.0],
        }
    }
}

impl Size {
    fn words(self) -> &'static [&'static str] {
        match self {
            Size::Small => &["small", "little", "tiny"],
            Size::Large => &["large", "big", "huge"],
        }
    }

    /// Radius as a fraction of the frame's shorter side.
    fn radius(self) -> f32 {
        match self {
            Size::Small => 0.13,
            Size::Large => 0.24,
        }
    }
}

impl Texture {
    fn words(self) -> &'static [&'static str] {
        match self {
            Texture::Solid => &["plain", "solid"],
            Texture::Striped => &["striped", "stripy"],
            Texture::Dotted => &["dotted", "spotted"],
        }
    }
}

impl Motion {
    fn phrases(self) -> &'static [&'static str] {
        match self {
            Motion::Left => &[
                "drifts left",
                "moves to the left",
                "slides leftwards",
                "glides to the left",
            ],
            Motion::Right => &[
                "drifts right",
                "moves to the right",
                "slides rightwards",
                "glides to the right",
            ],
            Motion::Up => &["rises", "moves up", "floats upwards", "climbs"],
            Motion::Down => &["falls", "sinks", "moves down", "drops downwards"],
            Motion::Spin => &["spins", "rotates", "turns in place", "twirls"],
            Motion::Bounce => &["bounces", "hops up and down", "jumps", "keeps bouncing"],
            Motion::Grow => &["grows", "gets bigger", "expands", "swells"],
            Motion::Shrink => &["shrinks", "gets smaller", "contracts", "dwindles"],
        }
    }
}

impl Background {
    fn phrases(self) -> &'static [&'static str] {
        match self {
            Background::Dark => &["on a dark background", "against black"],
            Background::Light => &["on a light background", "against a pale backdrop"],
            Background::Sky => &["in a blue sky", "against the sky"],
            Background::Grass => &["over green grass", "on a lawn"],
            Background::Static => &["over noisy static", "on a grainy background"],
        }
    }

    /// Whether `colour` stands out on this background (no white shapes on white, ...).
    fn contrasts_with(self, colour: Colour) -> bool {
        !matches!(
            (self, colour),
            (Background::Light, Colour::White)
                | (Background::Light, Colour::Yellow)
                | (Background::Grass, Colour::Green)
                | (Background::Sky, Colour::Blue)
                | (Background::Dark, Colour::Purple)
        )
    }
}

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
    /// A few hundred clips (about 320) small enough to render, encode, ingest and train on two
    /// cores in well under three minutes.
    fn default() -> Self {
        Self {
            seed: 0,
            videos: 80,
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
fn start_position(rng: &mut ChaCha8Rng, motion: Motion) -> (f32, f32) {
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

impl DemoVideo {
    pub fn seconds(&self, config: &DemoConfig) -> f64 {
        self.clips.len() as f64 * config.clip_seconds
    }

    pub fn frame_count(&self, config: &DemoConfig) -> usize {
        (self.seconds(config) * config.fps as f64).round() as usize
    }

    /// Frame `index` of the video (time = index / fps).
    pub fn render_frame(&self, index: usize, config: &DemoConfig) -> RgbFrame {
        let seconds = index as f64 / config.fps.max(1) as f64;
        let clip_index = ((seconds / config.clip_seconds) as usize).min(self.clips.len() - 1);
        let clip = &self.clips[clip_index];
        let progress = ((seconds - clip.start) / config.clip_seconds).clamp(0.0, 1.0) as f32;
        let (width, height) = (config.width, config.height);
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                pixels.extend(self.background_at(x, y, height));
            }
        }
        draw_shape(&mut pixels, width, height, clip, progress);
        RgbFrame {
            width,
            height,
            pixels,
            seconds,
        }
    }

    fn background_at(&self, x: u32, y: u32, height: u32) -> [u8; 3] {
        let v = y as f32 / height.max(1) as f32;
        let mix = |a: [f32; 3], b: [f32; 3], t: f32| {
            [0, 1, 2].map(|i| (a[i] + (b[i] - a[i]) * t).clamp(0.0, 255.0) as u8)
        };
        match self.background {
            Background::Dark => mix([28.0, 28.0, 40.0], [10.0, 10.0, 16.0], v),
            Background::Light => mix([232.0, 230.0, 220.0], [205.0, 203.0, 195.0], v),
            Background::Sky => mix([110.0, 160.0, 235.0], [200.0, 225.0, 250.0], v),
            Background::Grass => {
                let blade = (hash3(self.grain_seed, x / 2, y) % 24) as f32 - 12.0;
                mix([70.0, 150.0, 60.0], [40.0, 110.0, 35.0], v)
                    .map(|c| (c as f32 + blade).clamp(0.0, 255.0) as u8)
            }
            Background::Static => {
                let grain = (hash3(self.grain_seed, x, y) % 90) as u8;
                [80 + grain, 80 + grain, 80 + grain]
            }
        }
    }
}

/// A fixed hash of (seed, x, y) for the grain of textured backgrounds.
fn hash3(seed: u64, x: u32, y: u32) -> u64 {
    let mut h = seed ^ ((x as u64) << 32 | y as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The shape's centre (pixels), radius scale and rotation (radians) at `progress` ∈ [0, 1].
fn pose(clip: &DemoClip, width: u32, height: u32, progress: f32) -> (f32, f32, f32, f32) {
    let (w, h) = (width as f32, height as f32);
    let travel = 0.45;
    let (mut x, mut y) = (clip.start_x * w, clip.start_y * h);
    let (mut scale, mut angle) = (1.0, 0.0);
    match clip.concept.motion {
        Motion::Left => x -= travel * w * progress,
        Motion::Right => x += travel * w * progress,
        Motion::Up => y -= travel * h * progress,
        Motion::Down => y += travel * h * progress,
        Motion::Spin => angle = progress * std::f32::consts::TAU,
        Motion::Bounce => y -= 0.4 * h * (progress * 2.0 * std::f32::consts::PI).sin().abs(),
        Motion::Grow => scale = 0.5 + progress,
        Motion::Shrink => scale = 1.5 - progress,
    }
    (x, y, scale, angle)
}

/// Whether the point (u, v) of the unit shape (radius 1, y down) is inside it.
fn inside(shape: Shape, u: f32, v: f32) -> bool {
    let r2 = u * u + v * v;
    match shape {
        Shape::Circle => r2 <= 1.0,
        Shape::Ring => (0.36..=1.0).contains(&r2),
        Shape::Square => u.abs() <= 0.8 && v.abs() <= 0.8,
        Shape::Triangle => {
            // Apex up at (0, −1), base corners at (±0.92, 0.6).
            (-1.0..=0.6).contains(&v) && u.abs() <= 0.575 * (v + 1.0)
        }
        Shape::Star => {
            let angle = v.atan2(u) + std::f32::consts::FRAC_PI_2;
            let sector = std::f32::consts::TAU / 5.0;
            let phase = (angle.rem_euclid(sector) / sector - 0.5).abs() * 2.0;
            // 1 at a point, 0.45 between points, straight-ish edges in between.
            r2.sqrt() <= 0.45 + 0.55 * phase.powf(1.6)
        }
    }
}

/// The shape's colour at unit coordinates (u, v), textured.
fn shade(clip: &DemoClip, u: f32, v: f32) -> [f32; 3] {
    let base = clip.concept.colour.rgb();
    let darker = base.map(|c| c * 0.55);
    match clip.concept.texture {
        Texture::Solid => base,
        Texture::Striped => {
            if ((u + 2.0) * 3.0).floor() as i32 % 2 == 0 {
                base
            } else {
                darker
            }
        }
        Texture::Dotted => {
            let (fu, fv) = ((u + 2.0) * 2.5, (v + 2.0) * 2.5);
            let (du, dv) = (fu - fu.floor() - 0.5, fv - fv.floor() - 0.5);
            if du * du + dv * dv < 0.06 {
                darker
            } else {
                base
            }
        }
    }
}

/// Draws the clip's shape over `pixels`, 2×2 supersampled at the edges.
fn draw_shape(pixels: &mut [u8], width: u32, height: u32, clip: &DemoClip, progress: f32) {
    let (cx, cy, scale, angle) = pose(clip, width, height, progress);
    let radius = clip.concept.size.radius() * width.min(height) as f32 * scale;
    if radius <= 0.5 {
        return;
    }
    let (sin, cos) = (-angle).sin_cos();
    let x0 = ((cx - radius).floor().max(0.0)) as u32;
    let y0 = ((cy - radius).floor().max(0.0)) as u32;
    let x1 = ((cx + radius).ceil().min(width as f32 - 1.0)).max(0.0) as u32;
    let y1 = ((cy + radius).ceil().min(height as f32 - 1.0)).max(0.0) as u32;
    if cx + radius < 0.0 || cy + radius < 0.0 {
        return;
    }
    const OFFSETS: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    for y in y0..=y1 {
        for x in x0..=x1 {
            let mut sum = [0.0f32; 3];
            let mut covered = 0;
            for (ox, oy) in OFFSETS {
                let (dx, dy) = ((x as f32 + ox - cx) / radius, (y as f32 + oy - cy) / radius);
                let (u, v) = (dx * cos - dy * sin, dx * sin + dy * cos);
                if inside(clip.concept.shape, u, v) {
                    let colour = shade(clip, u, v);
                    for i in 0..3 {
                        sum[i] += colour[i];
                    }
                    covered += 1;
                }
            }
            if covered == 0 {
                continue;
            }
            let at = (y as usize * width as usize + x as usize) * 3;
            let coverage = covered as f32 / 4.0;
            for i in 0..3 {
                let shape = sum[i] / covered as f32;
                let behind = pixels[at + i] as f32;
                pixels[at + i] = (behind + (shape - behind) * coverage).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn tiny() -> DemoConfig {
        DemoConfig {
            videos: 12,
            ..DemoConfig::default()
        }
    }

    #[test]
    fn the_plan_is_a_function_of_the_seed() {
        assert_eq!(plan(&tiny()), plan(&tiny()));
        let other = plan(&DemoConfig { seed: 1, ..tiny() });
        assert_ne!(plan(&tiny()), other);
        let video = &plan(&tiny())[0];
        assert_eq!(
            video.render_frame(5, &tiny()),
            video.render_frame(5, &tiny())
        );
    }

    #[test]
    fn the_default_collection_has_a_few_hundred_clips_with_duplicates_and_paraphrases() {
        let config = DemoConfig::default();
        let videos = plan(&config);
        let clips: Vec<&DemoClip> = videos.iter().flat_map(|v| &v.clips).collect();
        assert!((240..=400).contains(&clips.len()), "{} clips", clips.len());
        let mut per_concept: HashMap<usize, Vec<&DemoClip>> = HashMap::new();
        for clip in &clips {
            per_concept.entry(clip.concept_id).or_default().push(clip);
        }
        let most = per_concept.values().map(Vec::len).max().unwrap();
        assert!(most >= 15, "the most popular concept has only {most} clips");
        let duplicated = per_concept.values().filter(|c| c.len() >= 2).count();
        assert!(duplicated >= 30, "{duplicated} concepts have duplicates");
        // Duplicates are described in different words more often than not.
        let popular = per_concept.values().max_by_key(|c| c.len()).unwrap();
        let wordings: HashSet<&str> = popular.iter().map(|c| c.caption.as_str()).collect();
        assert!(wordings.len() * 2 > popular.len(), "{wordings:?}");
        let splits: HashSet<&str> = videos.iter().map(|v| v.split).collect();
        assert_eq!(splits, HashSet::from(["train", "val", "test"]));
    }

    #[test]
    fn captions_name_the_attributes() {
        for video in plan(&tiny()) {
            for clip in &video.clips {
                let text = &clip.caption;
                let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
                assert!(has(clip.concept.shape.words()), "{text}");
                assert!(has(clip.concept.colour.words()), "{text}");
                assert!(has(clip.concept.size.words()), "{text}");
                assert!(has(clip.concept.motion.phrases()), "{text}");
            }
        }
    }

    /// Centre of the pixels close to the clip's colour.
    fn centroid(frame: &RgbFrame, colour: [f32; 3]) -> Option<(f32, f32)> {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for y in 0..frame.height {
            for x in 0..frame.width {
                let p = frame.pixel(x, y);
                let distance: f32 = (0..3).map(|i| (p[i] as f32 - colour[i]).abs()).sum();
                if distance < 30.0 {
                    sx += x as f32;
                    sy += y as f32;
                    n += 1.0;
                }
            }
        }
        (n > 0.0).then(|| (sx / n, sy / n))
    }

    fn one_clip(motion: Motion, background: Background) -> (DemoVideo, DemoConfig) {
        let config = tiny();
        let concept = Concept {
            shape: Shape::Square,
            colour: Colour::Red,
            size: Size::Small,
            texture: Texture::Solid,
            motion,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (start_x, start_y) = start_position(&mut rng, motion);
        let clip = DemoClip {
            concept,
            concept_id: 0,
            start_x,
            start_y,
            start: 0.0,
            end: config.clip_seconds,
            caption: String::new(),
        };
        let video = DemoVideo {
            name: "t".into(),
            split: "train",
            background,
            grain_seed: 7,
            clips: vec![clip],
        };
        (video, config)
    }

    #[test]
    fn motions_move_the_shape_the_way_the_caption_says() {
        let red = Colour::Red.rgb();
        for (motion, dx, dy) in [
            (Motion::Left, -1.0, 0.0),
            (Motion::Right, 1.0, 0.0),
            (Motion::Up, 0.0, -1.0),
            (Motion::Down, 0.0, 1.0),
        ] {
            let (video, config) = one_clip(motion, Background::Dark);
            let last = video.frame_count(&config) - 1;
            let (x0, y0) = centroid(&video.render_frame(0, &config), red).unwrap();
            let (x1, y1) = centroid(&video.render_frame(last, &config), red).unwrap();
            let travel = config.width.min(config.height) as f32 * 0.3;
            assert!(
                (x1 - x0) * dx + (y1 - y0) * dy > travel,
                "{motion:?}: ({x0}, {y0}) → ({x1}, {y1})"
            );
        }
        // Growing: more red pixels at the end than at the start.
        let (video, config) = one_clip(Motion::Grow, Background::Sky);
        let count = |frame: &RgbFrame| {
            frame
                .pixels
                .chunks(3)
                .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
                .count()
        };
        let last = video.frame_count(&config) - 1;
        assert!(
            count(&video.render_frame(last, &config)) > 3 * count(&video.render_frame(0, &config))
        );
    }

    #[test]
    fn backgrounds_differ_and_static_grain_is_seeded() {
        let mean = |background: Background| {
            let (video, config) = one_clip(Motion::Spin, background);
            let frame = video.render_frame(0, &config);
            let sums = frame.pixels.chunks(3).fold([0u64; 3], |mut s, p| {
                for i in 0..3 {
                    s[i] += p[i] as u64;
                }
                s
            });
            sums.map(|s| s / (frame.pixels.len() / 3) as u64)
        };
        let dark = mean(Background::Dark);
        let light = mean(Background::Light);
        let sky = mean(Background::Sky);
        let grass = mean(Background::Grass);
        assert!(dark.iter().all(|&c| c < 60), "{dark:?}");
        assert!(light.iter().all(|&c| c > 180), "{light:?}");
        assert!(sky[2] > sky[0] + 40, "{sky:?}");
        assert!(grass[1] > grass[0] + 40, "{grass:?}");
    }
}
