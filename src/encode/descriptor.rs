//! A visual encoder that needs no weights: colour, layout, edges and motion of each frame.
//!
//! Every frame is first averaged down to a 64×64 working image (the whole frame, aspect ratio
//! not kept), so the descriptor means the same at any resolution. Its 199 values are five blocks:
//!
//! | block           | width | what                                                                 |
//! |-----------------|-------|----------------------------------------------------------------------|
//! | `rgb_histogram` | 64    | joint RGB histogram, 4 levels per channel                             |
//! | `hsv_histogram` | 24    | hue (16 bins, weighted by chroma so greys do not vote), saturation (4), value (4) |
//! | `layout`        | 48    | mean RGB of a 4×4 grid of cells                                       |
//! | `gradients`     | 36    | unsigned gradient orientation histograms (9 bins) of 2×2 cells, magnitude-weighted |
//! | `motion`        | 27    | change from the clip's previous frame: mean absolute difference over the frame (1) and a 4×4 grid (16); block-matched displacement as an 8-direction histogram (8) and mean (2) |
//!
//! Histograms are Hellinger-normalised (fractions, square-rooted: unit L2 norm; the three HSV
//! histograms share the block equally); `layout` and `gradients` are scaled to unit L2 norm (all
//! zeros stay zero). `motion` keeps absolute units, so that a still frame is all zeros and more
//! motion is larger: differences are on the 0–1 intensity scale, and displacements are in units
//! of the ±4-pixel search range of a 32×32 grey copy (x to the right, y down, direction bin 0
//! centred on +x, counter-clockwise on screen). A clip's first frame has no predecessor and no motion.

use std::ops::Range;

use super::resample::{Filter, resample_rgb};
use super::{EncodeError, InputSize, VisualEncoder, check_frames, normalize_l2};
use crate::media::RgbFrame;

const WORK: usize = 64;
const MOTION: usize = WORK / 2;
const GRID: usize = 4;
const RGB_LEVELS: usize = 4;
const HUE_BINS: usize = 16;
const SATURATION_BINS: usize = 4;
const VALUE_BINS: usize = 4;
const GRADIENT_CELLS: usize = 2;
const ORIENTATIONS: usize = 9;
const DIRECTIONS: usize = 8;
const SEARCH: i32 = 4;
/// A shift must beat standing still by this much SAD to count as motion, so that flat blocks,
/// where every shift matches equally, stay still.
const MATCH_MARGIN: f32 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorVisualEncoder;

impl DescriptorVisualEncoder {
    /// The blocks of a descriptor, in order, with their widths.
    pub const BLOCKS: [(&'static str, usize); 5] = [
        ("rgb_histogram", RGB_LEVELS * RGB_LEVELS * RGB_LEVELS),
        ("hsv_histogram", HUE_BINS + SATURATION_BINS + VALUE_BINS),
        ("layout", GRID * GRID * 3),
        ("gradients", GRADIENT_CELLS * GRADIENT_CELLS * ORIENTATIONS),
        ("motion", 1 + GRID * GRID + DIRECTIONS + 2),
    ];
    pub const DIM: usize = 199;

    pub fn new() -> Self {
        Self
    }

    /// Where block `name` lies in a descriptor.
    pub fn block(name: &str) -> Option<Range<usize>> {
        let mut start = 0;
        for (block, width) in Self::BLOCKS {
            if block == name {
                return Some(start..start + width);
            }
            start += width;
        }
        None
    }
}

impl VisualEncoder for DescriptorVisualEncoder {
    fn name(&self) -> &str {
        "descriptor"
    }

    fn dim(&self) -> usize {
        Self::DIM
    }

    fn input_size(&self) -> InputSize {
        InputSize {
            width: WORK as u32,
            height: WORK as u32,
        }
    }

    fn encode(&self, frames: &[RgbFrame]) -> Result<Vec<f32>, EncodeError> {
        check_frames(frames)?;
        let mut out = Vec::with_capacity(frames.len() * Self::DIM);
        let mut previous_grey: Option<Vec<f32>> = None;
        for frame in frames {
            let image: Vec<f32> = resample_rgb(
                &frame.pixels,
                frame.width as usize,
                frame.height as usize,
                WORK,
                WORK,
                Filter::Box,
            )
            .into_iter()
            .map(|v| (v / 255.0).clamp(0.0, 1.0))
            .collect();
            let grey = grey(&image);
            let small = halve(&grey, WORK);
            out.extend(rgb_histogram(&image));
            out.extend(hsv_histogram(&image));
            out.extend(layout(&image));
            out.extend(gradients(&grey));
            out.extend(motion(&small, previous_grey.as_deref()));
            previous_grey = Some(small);
        }
        Ok(out)
    }
}

/// Fractions, square-rooted: unit L2 norm, or zeros for an empty histogram.
fn hellinger(histogram: &mut [f32]) {
    let total: f32 = histogram.iter().sum();
    if total > 0.0 {
        histogram.iter_mut().for_each(|h| *h = (*h / total).sqrt());
    }
}

/// The bin of `value` in `0..=1` among `bins` equal bins.
fn bin(value: f32, bins: usize) -> usize {
    ((value * bins as f32) as usize).min(bins - 1)
}

fn rgb_histogram(image: &[f32]) -> Vec<f32> {
    let mut histogram = vec![0.0f32; RGB_LEVELS.pow(3)];
    for pixel in image.chunks(3) {
        let [r, g, b] = [0, 1, 2].map(|c| bin(pixel[c], RGB_LEVELS));
        histogram[(r * RGB_LEVELS + g) * RGB_LEVELS + b] += 1.0;
    }
    hellinger(&mut histogram);
    histogram
}

fn hsv_histogram(image: &[f32]) -> Vec<f32> {
    let mut hue = vec![0.0f32; HUE_BINS];
    let mut saturation = vec![0.0f32; SATURATION_BINS];
    let mut value = vec![0.0f32; VALUE_BINS];
    for pixel in image.chunks(3) {
        let (r, g, b) = (pixel[0], pixel[1], pixel[2]);
        let max = r.max(g).max(b);
        let chroma = max - r.min(g).min(b);
        if chroma > 0.0 {
            let sector = if max == r {
                ((g - b) / chroma).rem_euclid(6.0)
            } else if max == g {
                (b - r) / chroma + 2.0
            } else {
                (r - g) / chroma + 4.0
            };
            hue[bin(sector / 6.0, HUE_BINS)] += chroma;
        }
        let s = if max > 0.0 { chroma / max } else { 0.0 };
        saturation[bin(s, SATURATION_BINS)] += 1.0;
        value[bin(max, VALUE_BINS)] += 1.0;
    }
    let share = 1.0 / 3f32.sqrt();
    let mut block = Vec::with_capacity(HUE_BINS + SATURATION_BINS + VALUE_BINS);
    for mut histogram in [hue, saturation, value] {
        hellinger(&mut histogram);
        block.extend(histogram.iter().map(|h| h * share));
    }
    block
}

fn layout(image: &[f32]) -> Vec<f32> {
    let cell = WORK / GRID;
    let mut block = vec![0.0f32; GRID * GRID * 3];
    for y in 0..WORK {
        for x in 0..WORK {
            let at = ((y / cell) * GRID + x / cell) * 3;
            for c in 0..3 {
                block[at + c] += image[(y * WORK + x) * 3 + c];
            }
        }
    }
    let area = (cell * cell) as f32;
    block.iter_mut().for_each(|v| *v /= area);
    normalize_l2(&mut block);
    block
}

/// Luma (ITU-R BT.601 weights) of an interleaved RGB image.
fn grey(image: &[f32]) -> Vec<f32> {
    image
        .chunks(3)
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect()
}

/// A `size × size` grey image averaged down to half its size.
fn halve(grey: &[f32], size: usize) -> Vec<f32> {
    let half = size / 2;
    let mut out = vec![0.0f32; half * half];
    for y in 0..half {
        for x in 0..half {
            let at = |dy: usize, dx: usize| grey[(2 * y + dy) * size + 2 * x + dx];
            out[y * half + x] = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
        }
    }
    out
}

/// HOG-like: central differences, orientation modulo π split linearly between the two nearest
/// of the 9 bins, per cell, weighted by magnitude.
fn gradients(grey: &[f32]) -> Vec<f32> {
    let cell = WORK / GRADIENT_CELLS;
    let mut block = vec![0.0f32; GRADIENT_CELLS * GRADIENT_CELLS * ORIENTATIONS];
    let at = |x: usize, y: usize| grey[y * WORK + x];
    for y in 0..WORK {
        for x in 0..WORK {
            let gx = at((x + 1).min(WORK - 1), y) - at(x.saturating_sub(1), y);
            let gy = at(x, (y + 1).min(WORK - 1)) - at(x, y.saturating_sub(1));
            let magnitude = (gx * gx + gy * gy).sqrt();
            if magnitude == 0.0 {
                continue;
            }
            let angle = gy.atan2(gx).rem_euclid(std::f32::consts::PI);
            let position = angle / std::f32::consts::PI * ORIENTATIONS as f32 - 0.5;
            let lower = position.floor();
            let upper_share = position - lower;
            let lower_bin = (lower as i32).rem_euclid(ORIENTATIONS as i32) as usize;
            let upper_bin = (lower_bin + 1) % ORIENTATIONS;
            let base = ((y / cell) * GRADIENT_CELLS + x / cell) * ORIENTATIONS;
            block[base + lower_bin] += magnitude * (1.0 - upper_share);
            block[base + upper_bin] += magnitude * upper_share;
        }
    }
    normalize_l2(&mut block);
    block
}

/// Change from `previous` to `current` (both `MOTION × MOTION` grey).
fn motion(current: &[f32], previous: Option<&[f32]>) -> Vec<f32> {
    let width = 1 + GRID * GRID + DIRECTIONS + 2;
    let Some(previous) = previous else {
        return vec![0.0; width];
    };
    let cell = MOTION / GRID;
    let mut block = Vec::with_capacity(width);
    let mut cells = vec![0.0f32; GRID * GRID];
    for y in 0..MOTION {
        for x in 0..MOTION {
            let difference = (current[y * MOTION + x] - previous[y * MOTION + x]).abs();
            cells[(y / cell) * GRID + x / cell] += difference;
        }
    }
    let area = (cell * cell) as f32;
    cells.iter_mut().for_each(|c| *c /= area);
    block.push(cells.iter().sum::<f32>() / cells.len() as f32);
    block.extend(&cells);

    let mut directions = vec![0.0f32; DIRECTIONS];
    let mut mean = [0.0f32; 2];
    let blocks = (GRID * GRID) as f32;
    for by in 0..GRID {
        for bx in 0..GRID {
            let (dx, dy) = displacement(current, previous, bx * cell, by * cell, cell);
            if dx == 0 && dy == 0 {
                continue;
            }
            let (dx, dy) = (dx as f32 / SEARCH as f32, dy as f32 / SEARCH as f32);
            // Counter-clockwise on screen, where y grows downwards.
            let angle = (-dy).atan2(dx).rem_euclid(std::f32::consts::TAU);
            let sector = std::f32::consts::TAU / DIRECTIONS as f32;
            let direction = ((angle / sector + 0.5) as usize) % DIRECTIONS;
            directions[direction] += (dx * dx + dy * dy).sqrt() / blocks;
            mean[0] += dx / blocks;
            mean[1] += dy / blocks;
        }
    }
    block.extend(&directions);
    block.extend(mean);
    block
}

/// Where the `size × size` block of `current` at (`left`, `top`) came from in `previous`: the
/// shift within ±`SEARCH` with the least sum of absolute differences (reads outside the image
/// clamp to its edge). Ties go to the shortest shift; a shift must beat standing still by
/// `MATCH_MARGIN`.
fn displacement(
    current: &[f32],
    previous: &[f32],
    left: usize,
    top: usize,
    size: usize,
) -> (i32, i32) {
    let last = MOTION as i32 - 1;
    let cost = |sx: i32, sy: i32| -> f32 {
        let mut sad = 0.0f32;
        for y in top..top + size {
            let from_y = (y as i32 - sy).clamp(0, last) as usize;
            for x in left..left + size {
                let from_x = (x as i32 - sx).clamp(0, last) as usize;
                sad += (current[y * MOTION + x] - previous[from_y * MOTION + from_x]).abs();
            }
        }
        sad
    };
    let still = cost(0, 0);
    let mut best = (0, 0);
    let mut best_cost = still - MATCH_MARGIN;
    let mut shifts: Vec<(i32, i32)> = (-SEARCH..=SEARCH)
        .flat_map(|sy| (-SEARCH..=SEARCH).map(move |sx| (sx, sy)))
        .filter(|&shift| shift != (0, 0))
        .collect();
    shifts.sort_by_key(|&(sx, sy)| sx * sx + sy * sy);
    for (sx, sy) in shifts {
        let sad = cost(sx, sy);
        if sad < best_cost {
            best = (sx, sy);
            best_cost = sad;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_add_up_to_the_dimension() {
        let total: usize = DescriptorVisualEncoder::BLOCKS.iter().map(|(_, w)| w).sum();
        assert_eq!(total, DescriptorVisualEncoder::DIM);
        assert_eq!(DescriptorVisualEncoder::block("motion"), Some(172..199));
        assert_eq!(DescriptorVisualEncoder::block("sound"), None);
    }

    #[test]
    fn a_flat_block_does_not_move() {
        let flat = vec![0.5f32; MOTION * MOTION];
        assert_eq!(displacement(&flat, &flat, 8, 8, 8), (0, 0));
    }

    #[test]
    fn a_shifted_pattern_is_found() {
        // A diagonal ramp moved 2 right and 1 down.
        let previous: Vec<f32> = (0..MOTION * MOTION)
            .map(|i| ((i % MOTION) * 7 + (i / MOTION) * 3) as f32 / 400.0)
            .collect();
        let mut current = vec![0.0f32; MOTION * MOTION];
        for y in 0..MOTION {
            for x in 0..MOTION {
                let from = (y.saturating_sub(1)) * MOTION + x.saturating_sub(2);
                current[y * MOTION + x] = previous[from];
            }
        }
        assert_eq!(displacement(&current, &previous, 8, 8, 8), (2, 1));
    }
}
