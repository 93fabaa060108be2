//! The encoders that need no weights: hashed text features and the per-frame descriptor.

use crate::support::cosine;
use crossclr::encode::{
    DescriptorVisualEncoder, EncodeError, HashedTextEncoder, TextEncoder, VisualEncoder,
};
use crossclr::media::RgbFrame;

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[test]
fn hashed_paraphrases_sharing_words_score_higher_than_unrelated_sentences() {
    let encoder = HashedTextEncoder::default();
    let features = encoder
        .encode(&[
            "a man slices tomatoes",
            "the man is slicing a tomato",
            "a car drives on a highway",
            "spread margarine on two slices of white bread",
            "spread butter on the bread slices",
        ])
        .unwrap();
    let similarity = |a: usize, b: usize| cosine(features.sentence(a), features.sentence(b));
    assert!(similarity(0, 1) > similarity(0, 2) + 0.2);
    assert!(similarity(3, 4) > similarity(3, 2) + 0.2);
    assert!(similarity(1, 0) > similarity(1, 4));
}

#[test]
fn hashed_output_depends_only_on_the_input() {
    let first = HashedTextEncoder::default()
        .encode(&["whisk the eggs", "add flour"])
        .unwrap();
    let again = HashedTextEncoder::default()
        .encode(&["add flour", "whisk the eggs"])
        .unwrap();
    assert_eq!(first.sentence(0), again.sentence(1));
    assert_eq!(first.tokens.get(1), again.tokens.get(0));
    assert_eq!(first.tokens.rows(0), 3);
    assert_ne!(first.sentence(0), first.sentence(1));
}

/// A `width × height` frame painted by `paint(x, y)`.
fn frame(width: u32, height: u32, paint: impl Fn(u32, u32) -> [u8; 3]) -> RgbFrame {
    let pixels = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| paint(x, y))
        .collect();
    RgbFrame::new(width, height, pixels, 0.0).unwrap()
}

/// A red 16×16 square with its left edge at `left` on a grey 96×72 background.
fn square_at(left: u32) -> RgbFrame {
    frame(96, 72, |x, y| {
        if (left..left + 16).contains(&x) && (28..44).contains(&y) {
            [220, 30, 30]
        } else {
            [90, 90, 90]
        }
    })
}

fn block<'a>(features: &'a [f32], frame: usize, name: &str) -> &'a [f32] {
    let range = DescriptorVisualEncoder::block(name).unwrap();
    let start = frame * DescriptorVisualEncoder::DIM;
    &features[start + range.start..start + range.end]
}

#[test]
fn red_and_blue_frames_differ_in_colour_only() {
    let encoder = DescriptorVisualEncoder::new();
    let red = encoder
        .encode(&[frame(80, 60, |_, _| [200, 20, 20])])
        .unwrap();
    let blue = encoder
        .encode(&[frame(80, 60, |_, _| [20, 20, 200])])
        .unwrap();
    assert_eq!(red.len(), DescriptorVisualEncoder::DIM);
    for name in ["rgb_histogram", "hsv_histogram", "layout"] {
        let gap = distance(block(&red, 0, name), block(&blue, 0, name));
        assert!(gap > 0.5, "{name} differs by only {gap}");
    }
    for name in ["gradients", "motion"] {
        assert_eq!(block(&red, 0, name), block(&blue, 0, name), "{name}");
    }
}

#[test]
fn motion_tells_left_from_right() {
    let encoder = DescriptorVisualEncoder::new();
    let rightwards = encoder.encode(&[square_at(40), square_at(48)]).unwrap();
    let leftwards = encoder.encode(&[square_at(40), square_at(32)]).unwrap();
    let right = block(&rightwards, 1, "motion");
    let left = block(&leftwards, 1, "motion");
    // Layout: difference (1 + 16), directions (8, bin 0 = +x, bin 4 = -x), mean (dx, dy).
    let (directions, mean) = (&right[17..25], &right[25..27]);
    assert!(
        directions[0] > 0.0 && directions[4] == 0.0,
        "{directions:?}"
    );
    assert!(mean[0] > 0.0 && mean[1].abs() < 1e-6, "{mean:?}");
    let (directions, mean) = (&left[17..25], &left[25..27]);
    assert!(
        directions[4] > 0.0 && directions[0] == 0.0,
        "{directions:?}"
    );
    assert!(mean[0] < 0.0 && mean[1].abs() < 1e-6, "{mean:?}");
    // Both moved as far; the 96 → 64 resampling puts the edges at different sub-pixel places.
    assert!(
        right[0] > 0.0 && (right[0] - left[0]).abs() < 0.1 * right[0],
        "{right:?} {left:?}"
    );
    // The first frame of a clip has nothing to move from.
    assert!(block(&rightwards, 0, "motion").iter().all(|&v| v == 0.0));
}

#[test]
fn identical_frames_have_no_motion() {
    let encoder = DescriptorVisualEncoder::new();
    let features = encoder.encode(&[square_at(40), square_at(40)]).unwrap();
    assert!(block(&features, 1, "motion").iter().all(|&v| v == 0.0));
    assert_eq!(block(&features, 0, "layout"), block(&features, 1, "layout"));
}

#[test]
fn descriptors_are_deterministic_and_resolution_independent() {
    let encoder = DescriptorVisualEncoder::new();
    let textured = |scale: u32| {
        frame(64 * scale, 64 * scale, move |x, y| {
            let (x, y) = (x / scale, y / scale);
            [(x * 4) as u8, (y * 4) as u8, ((x ^ y) * 4) as u8]
        })
    };
    let clip = [textured(1), square_at(10), square_at(14)];
    let first = encoder.encode(&clip).unwrap();
    assert_eq!(first, encoder.encode(&clip).unwrap());
    assert_eq!(first.len(), 3 * DescriptorVisualEncoder::DIM);
    assert!(first.iter().all(|v| v.is_finite()));
    // A frame twice as large with each pixel doubled averages down to the same working image.
    let small = encoder.encode(&[textured(1)]).unwrap();
    let large = encoder.encode(&[textured(2)]).unwrap();
    assert!(distance(&small, &large) < 1e-5);
    assert!(block(&small, 0, "gradients").iter().any(|&v| v > 0.0));
}

#[test]
fn a_frame_with_the_wrong_number_of_bytes_is_named() {
    let mut broken = square_at(0);
    broken.pixels.truncate(100);
    let error = DescriptorVisualEncoder::new()
        .encode(&[square_at(0), broken])
        .unwrap_err();
    assert!(
        matches!(error, EncodeError::BadFrame { index: 1, .. }),
        "{error}"
    );
}
