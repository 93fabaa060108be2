//! A visual encoder that needs no weights: colour, layout, edges and motion of each frame.
//!
//! Every frame is first averaged down to a 64×64 working image (the whole frame, aspect ratio
//! not kept), so the descriptor means the same at any resolution. Its 217 values are six blocks:
//!
//! | block           | width | what                                                                 |
//! |-----------------|-------|----------------------------------------------------------------------|
//! | `rgb_histogram` | 64    | joint RGB histogram, 4 levels per channel                             |
//! | `hsv_histogram` | 24    | hue (16 bins, weighted by chroma so greys do not vote), saturation (4), value (4) |
//! | `layout`        | 48    | mean RGB of a 4×4 grid of cells                                       |
//! | `gradients`     | 36    | unsigned gradient orientation histograms (9 bins) of 2×2 cells, magnitude-weighted |
//! | `motion`        | 27    | change from the clip's previous frame: mean absolute difference over the frame (1) and a 4×4 grid (16); block-matched displacement as an 8-direction histogram (8) and mean (2) |
//! | `silhouette`    | 18    | the object in front of the background (pixels several border deviations from the border's colour, largest component): area, fill of its bounding circle, centre coverage, radial profile (4), outline harmonics 1–8, its mean RGB (3) |
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
/// Silhouette: area, fill of the bounding circle, centre, 4 radial bins, 8 angular harmonics,
/// the object's mean colour.
const RADIAL_BINS: usize = 4;
const HARMONICS: usize = 8;
const ANGLE_BINS: usize = 32;
const SILHOUETTE: usize = 3 + RADIAL_BINS + HARMONICS + 3;
const SHAPE_WEIGHT: f32 = 8.0;
const COLOUR_WEIGHT: f32 = 3.0;
/// A pixel is foreground when it stands this many border deviations from the border's colour.
const FOREGROUND_DEVIATIONS: f32 = 3.0;
/// Smallest object, in working pixels, that gets a silhouette.
const MIN_OBJECT: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorVisualEncoder;

impl DescriptorVisualEncoder {
    /// The blocks of a descriptor, in order, with their widths.
    pub const BLOCKS: [(&'static str, usize); 6] = [
        ("rgb_histogram", RGB_LEVELS * RGB_LEVELS * RGB_LEVELS),
        ("hsv_histogram", HUE_BINS + SATURATION_BINS + VALUE_BINS),
        ("layout", GRID * GRID * 3),
        ("gradients", GRADIENT_CELLS * GRADIENT_CELLS * ORIENTATIONS),
        ("motion", 1 + GRID * GRID + DIRECTIONS + 2),
        ("silhouette", SILHOUETTE),
    ];
    pub const DIM: usize = 199 + SILHOUETTE;

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
            out.extend(silhouette(&image));
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

/// Luma (ITU-R BT.601 weights) of one RGB pixel.
fn luma(p: &[f32]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// Luma of an interleaved RGB image.
fn grey(image: &[f32]) -> Vec<f32> {
    image.chunks(3).map(luma).collect()
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

/// Luma and two chroma axes of an RGB pixel.
fn luma_chroma(p: &[f32]) -> [f32; 3] {
    let luma = luma(p);
    [luma, p[0] - luma, p[2] - luma]
}

/// The object in front of the background, as a mask: pixels far from the border's colour, in
/// units of the border's own spread per axis (so a grainy grey background hides luma noise while
/// a coloured shape on it still stands out), closed over one pixel (stripes and dots do not cut
/// the object), largest 4-connected component kept.
fn foreground(image: &[f32]) -> Vec<bool> {
    let pixel =
        |x: usize, y: usize| luma_chroma(&image[(y * WORK + x) * 3..(y * WORK + x) * 3 + 3]);
    let mut border = Vec::with_capacity(8 * WORK);
    for i in 0..WORK {
        for (x, y) in [
            (i, 0),
            (i, 1),
            (i, WORK - 1),
            (i, WORK - 2),
            (0, i),
            (1, i),
            (WORK - 1, i),
            (WORK - 2, i),
        ] {
            border.push(pixel(x, y));
        }
    }
    let mut centre = [0.0f32; 3];
    let mut spread = [0.0f32; 3];
    for axis in 0..3 {
        let mut values: Vec<f32> = border.iter().map(|p| p[axis]).collect();
        values.sort_by(f32::total_cmp);
        centre[axis] = values[values.len() / 2];
        let mut deviations: Vec<f32> = values.iter().map(|v| (v - centre[axis]).abs()).collect();
        deviations.sort_by(f32::total_cmp);
        // The median absolute deviation, scaled to a standard deviation, with a floor for flat
        // backgrounds.
        spread[axis] = (1.4826 * deviations[deviations.len() / 2]).max(0.02);
    }
    let raw: Vec<bool> = (0..WORK * WORK)
        .map(|i| {
            let p = pixel(i % WORK, i / WORK);
            let z: f32 = (0..3)
                .map(|a| ((p[a] - centre[a]) / spread[a]).powi(2))
                .sum();
            z.sqrt() > FOREGROUND_DEVIATIONS
        })
        .collect();
    let closed = erode(&dilate(&raw));
    largest_component(&closed)
}

fn dilate(mask: &[bool]) -> Vec<bool> {
    neighbourhood(mask, |any, _| any)
}

fn erode(mask: &[bool]) -> Vec<bool> {
    neighbourhood(mask, |_, all| all)
}

/// Each pixel from whether any / all of its 3×3 neighbourhood (clamped at the edges) is set.
fn neighbourhood(mask: &[bool], rule: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    let mut out = vec![false; WORK * WORK];
    for y in 0..WORK {
        for x in 0..WORK {
            let (mut any, mut all) = (false, true);
            for ny in y.saturating_sub(1)..=(y + 1).min(WORK - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(WORK - 1) {
                    let set = mask[ny * WORK + nx];
                    any |= set;
                    all &= set;
                }
            }
            out[y * WORK + x] = rule(any, all);
        }
    }
    out
}

fn largest_component(mask: &[bool]) -> Vec<bool> {
    let mut label = vec![usize::MAX; WORK * WORK];
    let mut best = (0usize, usize::MAX);
    let mut stack = Vec::new();
    for start in 0..WORK * WORK {
        if !mask[start] || label[start] != usize::MAX {
            continue;
        }
        let mut size = 0;
        label[start] = start;
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % WORK, i / WORK);
            let mut visit = |j: usize| {
                if mask[j] && label[j] == usize::MAX {
                    label[j] = start;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < WORK {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - WORK);
            }
            if y + 1 < WORK {
                visit(i + WORK);
            }
        }
        if size > best.0 {
            best = (size, start);
        }
    }
    if best.0 == 0 {
        return vec![false; WORK * WORK];
    }
    label.iter().map(|&l| l == best.1).collect()
}

/// What shape the object is, whatever its place, size and rotation: its area (as the side of
/// an equal square, over the frame's), how much of its bounding circle it fills, how much of
/// its centre it covers (a ring does not), where its pixels lie from the centre (4 bins of
/// r / r_max), and the magnitudes of harmonics 1–8 of its outline's radius around the centre,
/// over the mean (a triangle rings at 3, a square at 4, a star at 5, a circle at none).
fn silhouette(image: &[f32]) -> Vec<f32> {
    let mask = foreground(image);
    let pixels: Vec<(f32, f32)> = (0..WORK * WORK)
        .filter(|&i| mask[i])
        .map(|i| ((i % WORK) as f32 + 0.5, (i / WORK) as f32 + 0.5))
        .collect();
    let mut block = vec![0.0f32; SILHOUETTE];
    if pixels.len() < MIN_OBJECT {
        return block;
    }
    let count = pixels.len() as f32;
    let cx = pixels.iter().map(|p| p.0).sum::<f32>() / count;
    let cy = pixels.iter().map(|p| p.1).sum::<f32>() / count;
    let radii: Vec<f32> = pixels
        .iter()
        .map(|p| ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt())
        .collect();
    // Half a pixel: the outermost pixel's centre lies inside the outline.
    let r_max = radii.iter().copied().fold(0.0f32, f32::max) + 0.5;
    block[0] = count.sqrt() / WORK as f32;
    block[1] = (count / (std::f32::consts::PI * r_max * r_max)).min(1.0);
    let inner = radii.iter().filter(|&&r| r < 0.3 * r_max).count() as f32;
    block[2] = (inner / (std::f32::consts::PI * (0.3 * r_max).powi(2)).max(1.0)).min(1.0);
    for &r in &radii {
        block[3 + bin(r / r_max, RADIAL_BINS)] += 1.0 / count;
    }
    let mut outline = [0.0f32; ANGLE_BINS];
    for (&(x, y), &r) in pixels.iter().zip(&radii) {
        let angle = (y - cy).atan2(x - cx).rem_euclid(std::f32::consts::TAU);
        let at = ((angle / std::f32::consts::TAU * ANGLE_BINS as f32) as usize).min(ANGLE_BINS - 1);
        outline[at] = outline[at].max(r + 0.5);
    }
    let mean = outline.iter().sum::<f32>() / ANGLE_BINS as f32;
    for k in 1..=HARMONICS {
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (i, &r) in outline.iter().enumerate() {
            let phase = std::f32::consts::TAU * (k * i) as f32 / ANGLE_BINS as f32;
            re += r * phase.cos();
            im += r * phase.sin();
        }
        block[3 + RADIAL_BINS + k - 1] =
            (re * re + im * im).sqrt() / (ANGLE_BINS as f32 * mean.max(1e-6));
    }
    // The object's shape and colour carry weights (8 and 3: measured on the demo, where they
    // bring the share of a clip's five nearest clips of the same shape from 0.51 to 0.92), so
    // that they are not drowned by the five frame-wide blocks, which mostly see the background.
    block.iter_mut().for_each(|v| *v *= SHAPE_WEIGHT);
    // The object's own colour: the frame's histograms are mostly its background's.
    for (x, y) in &pixels {
        let at = ((*y as usize) * WORK + *x as usize) * 3;
        for c in 0..3 {
            block[3 + RADIAL_BINS + HARMONICS + c] += COLOUR_WEIGHT * image[at + c] / count;
        }
    }
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

    /// A 64×64 image: `inside(u, v)` (coordinates from the shape's centre, in pixels) painted
    /// red over grey grain.
    fn shape_image(cx: f32, cy: f32, inside: impl Fn(f32, f32) -> bool) -> Vec<f32> {
        let mut image = Vec::with_capacity(WORK * WORK * 3);
        for y in 0..WORK {
            for x in 0..WORK {
                let (u, v) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if inside(u, v) {
                    image.extend([0.86, 0.16, 0.16]);
                } else {
                    let grain = (((x * 7919 + y * 104_729) % 97) as f32 / 97.0 - 0.5) * 0.4;
                    image.extend([0.5 + grain; 3]);
                }
            }
        }
        image
    }

    fn polygon(sides: usize, radius: f32) -> impl Fn(f32, f32) -> bool {
        move |u, v| {
            // Inside every edge of a regular polygon with a vertex pointing up.
            (0..sides).all(|k| {
                let angle = std::f32::consts::TAU * (k as f32 + 0.5) / sides as f32
                    - std::f32::consts::FRAC_PI_2;
                u * angle.cos() + v * angle.sin()
                    <= radius * (std::f32::consts::PI / sides as f32).cos()
            })
        }
    }

    fn harmonic(block: &[f32], k: usize) -> f32 {
        block[3 + RADIAL_BINS + k - 1]
    }

    #[test]
    fn silhouettes_tell_circles_rings_triangles_squares_and_stars_apart() {
        let circle = silhouette(&shape_image(30.0, 34.0, |u, v| {
            u * u + v * v <= 14.0 * 14.0
        }));
        let ring = silhouette(&shape_image(30.0, 34.0, |u, v| {
            (8.0f32.powi(2)..=14.0f32.powi(2)).contains(&(u * u + v * v))
        }));
        let triangle = silhouette(&shape_image(30.0, 34.0, polygon(3, 16.0)));
        let square = silhouette(&shape_image(30.0, 34.0, polygon(4, 16.0)));
        let star = silhouette(&shape_image(30.0, 34.0, |u, v| {
            let angle = v.atan2(u) + std::f32::consts::FRAC_PI_2;
            let sector = std::f32::consts::TAU / 5.0;
            let t = (angle.rem_euclid(sector) / sector - 0.5).abs() * 2.0;
            (u * u + v * v).sqrt() <= 7.0 + 9.0 * (1.0 - t)
        }));
        assert!(
            circle[1] > 0.85,
            "a circle fills its bounding circle: {}",
            circle[1]
        );
        assert!(
            circle[2] > 0.9 && ring[2] < 0.1,
            "centre coverage: circle {}, ring {}",
            circle[2],
            ring[2]
        );
        for (name, block, k) in [
            ("triangle", &triangle, 3),
            ("square", &square, 4),
            ("star", &star, 5),
        ] {
            let peak = harmonic(block, k);
            assert!(
                peak > 2.0 * harmonic(&circle, k),
                "{name}: harmonic {k} {peak} vs the circle's {}",
                harmonic(&circle, k)
            );
            for other in (2..=HARMONICS).filter(|&j| j != k && j != 2 * k) {
                assert!(
                    peak > harmonic(block, other),
                    "{name}: harmonic {k} ({peak}) under {other} ({})",
                    harmonic(block, other)
                );
            }
        }
        assert!(triangle[1] < square[1] && square[1] < circle[1]);
    }

    #[test]
    fn a_silhouette_does_not_depend_on_where_the_shape_is() {
        let here = silhouette(&shape_image(20.0, 22.0, polygon(3, 12.0)));
        let there = silhouette(&shape_image(42.0, 40.0, polygon(3, 12.0)));
        let distance: f32 = here
            .iter()
            .zip(&there)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt();
        let norm: f32 = here.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!(distance < 0.1 * norm, "{here:?} vs {there:?}");
    }

    #[test]
    fn a_frame_without_an_object_has_an_empty_silhouette() {
        let plain = shape_image(0.0, 0.0, |_, _| false);
        assert!(silhouette(&plain).iter().all(|&v| v == 0.0));
    }

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
