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

mod plan;
mod render;
mod vocabulary;

pub use plan::{Concept, DemoClip, DemoConfig, DemoVideo, plan};
pub use render::{CAPTIONS_FILE, CollectionSummary, video_path, write_collection};
pub use vocabulary::{
    BACKGROUNDS, Background, COLOURS, Colour, Motion, SHAPES, Shape, Size, Texture,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::RgbFrame;
    use plan::start_position;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
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
    fn the_default_collection_has_some_six_hundred_clips_with_duplicates_and_paraphrases() {
        let config = DemoConfig::default();
        let videos = plan(&config);
        let clips: Vec<&DemoClip> = videos.iter().flat_map(|v| &v.clips).collect();
        assert!((500..=760).contains(&clips.len()), "{} clips", clips.len());
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
