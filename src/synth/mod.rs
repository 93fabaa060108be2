//! Synthetic features where the truth is known, to test CrossCLR's claim: latent topics shared by
//! many samples (semantic duplicates — false negatives for InfoNCE), noisy video and text views of
//! each latent, and a clip/video hierarchy.
//!
//! Every clip has a latent `l = μ_topic + detail·ε_clip + style·s_video`. Topics are drawn with
//! Zipf-like popularity, so a few topics hold most clips: their clips are near-duplicates, told
//! apart only by the small `ε_clip`. The video view of a clip is a few frames
//! `relu(A_v l + noise)`, the text view a few tokens `relu(A_t l + noise)`, with different random
//! maps `A_v`, `A_t`: the model must learn both maps, and retrieval succeeds only by the details.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The knobs of the generator.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub seed: u64,
    pub topics: usize,
    /// Zipf exponent of topic popularity: larger means more duplicates of the popular topics.
    pub popularity: f64,
    pub latent_dim: usize,
    pub video_dim: usize,
    pub text_dim: usize,
    /// Videos in the train, val and test splits.
    pub videos: [usize; 3],
    /// Clips per video, inclusive range.
    pub clips: (usize, usize),
    /// Frames per clip and tokens per sentence, inclusive ranges.
    pub frames: (usize, usize),
    pub tokens: (usize, usize),
    /// Scale of the clip-specific part of the latent (what tells duplicates apart).
    pub detail: f64,
    /// Scale of the per-video style shared by its clips.
    pub style: f64,
    /// Noise added to every frame and token.
    pub noise: f64,
}

impl SynthConfig {
    /// Small enough to train in seconds in a test.
    pub fn small(seed: u64) -> Self {
        Self {
            seed,
            topics: 12,
            popularity: 1.1,
            latent_dim: 16,
            video_dim: 48,
            text_dim: 40,
            videos: [160, 40, 40],
            clips: (3, 6),
            frames: (4, 10),
            tokens: (4, 10),
            detail: 0.5,
            style: 0.3,
            noise: 0.3,
        }
    }

    /// The benchmark's size.
    pub fn large(seed: u64) -> Self {
        Self {
            topics: 40,
            latent_dim: 32,
            video_dim: 256,
            text_dim: 192,
            videos: [1600, 300, 300],
            clips: (4, 8),
            frames: (8, 16),
            tokens: (6, 14),
            ..Self::small(seed)
        }
    }
}

/// Packed sequences: sequence i is rows `offsets[i]..offsets[i+1]` of `data` (`dim` per row).
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    pub dim: usize,
    pub data: Vec<f32>,
    pub offsets: Vec<usize>,
}

impl Packed {
    fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            offsets: vec![0],
        }
    }

    fn push(&mut self, rows: impl IntoIterator<Item = Vec<f32>>) {
        for row in rows {
            self.data.extend(row);
        }
        self.offsets.push(self.data.len() / self.dim);
    }
}

/// One generated split.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSplit {
    pub name: &'static str,
    pub clip_keys: Vec<String>,
    pub video_keys: Vec<String>,
    pub video_of_clip: Vec<u32>,
    /// The latent topic of every clip (the planted truth).
    pub topic_of_clip: Vec<u32>,
    pub video: Packed,
    pub text: Packed,
    pub captions: Vec<String>,
}

fn gaussian(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| StandardNormal.sample(rng)).collect()
}

fn matvec(matrix: &[f64], vector: &[f64], rows: usize) -> Vec<f64> {
    let cols = vector.len();
    (0..rows)
        .map(|r| (0..cols).map(|c| matrix[r * cols + c] * vector[c]).sum())
        .collect()
}

/// A view of latent `l`: `count` rows of `relu(A l + noise)`.
fn view(
    rng: &mut ChaCha8Rng,
    map: &[f64],
    dim: usize,
    latent: &[f64],
    count: usize,
    noise: f64,
) -> Vec<Vec<f32>> {
    let mean = matvec(map, latent, dim);
    (0..count)
        .map(|_| {
            mean.iter()
                .map(|m| {
                    let n: f64 = StandardNormal.sample(rng);
                    (m + noise * n).max(0.0) as f32
                })
                .collect()
        })
        .collect()
}

/// Generates the three splits (train, val, test). The same config gives the same data.
pub fn generate(config: &SynthConfig) -> Vec<SynthSplit> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let k = config.latent_dim;
    // Maps scaled so that a unit-variance latent gives unit-variance features.
    let scale = 1.0 / (k as f64).sqrt();
    let video_map: Vec<f64> = gaussian(&mut rng, config.video_dim * k)
        .iter()
        .map(|v| v * scale)
        .collect();
    let text_map: Vec<f64> = gaussian(&mut rng, config.text_dim * k)
        .iter()
        .map(|v| v * scale)
        .collect();
    let centres: Vec<Vec<f64>> = (0..config.topics).map(|_| gaussian(&mut rng, k)).collect();
    let weights: Vec<f64> = (1..=config.topics)
        .map(|r| 1.0 / (r as f64).powf(config.popularity))
        .collect();
    let total: f64 = weights.iter().sum();
    let pick_topic = |rng: &mut ChaCha8Rng| {
        let mut u = rng.random::<f64>() * total;
        for (t, w) in weights.iter().enumerate() {
            if u < *w {
                return t;
            }
            u -= w;
        }
        config.topics - 1
    };
    let between =
        |rng: &mut ChaCha8Rng, (lo, hi): (usize, usize)| rng.random_range(lo..=hi.max(lo));

    ["train", "val", "test"]
        .iter()
        .zip(config.videos)
        .map(|(&name, videos)| {
            let mut split = SynthSplit {
                name,
                clip_keys: Vec::new(),
                video_keys: Vec::new(),
                video_of_clip: Vec::new(),
                topic_of_clip: Vec::new(),
                video: Packed::new(config.video_dim),
                text: Packed::new(config.text_dim),
                captions: Vec::new(),
            };
            for v in 0..videos {
                let video_key = format!("{name}-video-{v:05}");
                let style = gaussian(&mut rng, k);
                let topic = pick_topic(&mut rng);
                for c in 0..between(&mut rng, config.clips) {
                    // Clips of a video mostly share its topic; some wander to another one.
                    let clip_topic = if rng.random::<f64>() < 0.75 {
                        topic
                    } else {
                        pick_topic(&mut rng)
                    };
                    let detail = gaussian(&mut rng, k);
                    let latent: Vec<f64> = (0..k)
                        .map(|i| {
                            centres[clip_topic][i]
                                + config.detail * detail[i]
                                + config.style * style[i]
                        })
                        .collect();
                    let frames = between(&mut rng, config.frames);
                    let tokens = between(&mut rng, config.tokens);
                    split.video.push(view(
                        &mut rng,
                        &video_map,
                        config.video_dim,
                        &latent,
                        frames,
                        config.noise,
                    ));
                    split.text.push(view(
                        &mut rng,
                        &text_map,
                        config.text_dim,
                        &latent,
                        tokens,
                        config.noise,
                    ));
                    split.clip_keys.push(format!("{video_key}-clip-{c:02}"));
                    split.video_of_clip.push(v as u32);
                    split.topic_of_clip.push(clip_topic as u32);
                    split
                        .captions
                        .push(format!("topic {clip_topic}, clip {c} of {video_key}"));
                }
                split.video_keys.push(video_key);
            }
            split
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_data() {
        let a = generate(&SynthConfig::small(3));
        assert_eq!(a, generate(&SynthConfig::small(3)));
        assert_ne!(
            a[0].video.data,
            generate(&SynthConfig::small(4))[0].video.data
        );
    }

    #[test]
    fn splits_have_the_configured_shape_and_a_hierarchy() {
        let config = SynthConfig::small(1);
        for (split, videos) in generate(&config).iter().zip(config.videos) {
            assert_eq!(split.video_keys.len(), videos);
            let clips = split.clip_keys.len();
            assert!(clips >= videos * config.clips.0 && clips <= videos * config.clips.1);
            assert_eq!(split.video.offsets.len(), clips + 1);
            assert_eq!(split.text.offsets.len(), clips + 1);
            assert!(
                split.video_of_clip.windows(2).all(|w| w[0] <= w[1]),
                "clips of a video are consecutive"
            );
            assert!(split.video.data.iter().all(|v| *v >= 0.0 && v.is_finite()));
        }
    }

    #[test]
    fn popular_topics_make_semantic_duplicates() {
        let split = &generate(&SynthConfig::small(2))[0];
        let mut counts = vec![0usize; 12];
        for &t in &split.topic_of_clip {
            counts[t as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let clips = split.topic_of_clip.len();
        // The top three topics hold far more than their 3/12 share of the clips.
        assert!(counts[..3].iter().sum::<usize>() * 2 > clips, "{counts:?}");
    }
}
