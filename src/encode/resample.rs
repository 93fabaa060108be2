//! Image resampling as Pillow does it (`Image.resize`): separable, with the filter widened by the
//! scale factor when shrinking, so that downscaling averages instead of skipping pixels. CLIP's
//! preprocessing was defined with Pillow's bicubic filter; the descriptor averages areas (box).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    /// Area averaging.
    Box,
    /// Cubic convolution with a = -0.5 (Pillow's `BICUBIC`).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// For each output position along one axis: the first input position it reads and the weights.
fn coefficients(input: usize, output: usize, filter: Filter) -> Vec<(usize, Vec<f32>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..output)
        .map(|out| {
            let center = (out as f64 + 0.5) * scale;
            let first = ((center - support + 0.5).trunc().max(0.0)) as usize;
            let end = ((center + support + 0.5).trunc() as usize).min(input);
            let mut weights: Vec<f64> = (first..end)
                .map(|x| filter.weight((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = weights.iter().sum();
            if total != 0.0 {
                weights.iter_mut().for_each(|w| *w /= total);
            }
            (first, weights.into_iter().map(|w| w as f32).collect())
        })
        .collect()
}

/// Resamples packed RGB `width × height` to `out_width × out_height`; values stay on the 0–255
/// scale as `f32`, interleaved RGB.
pub(super) fn resample_rgb(
    pixels: &[u8],
    width: usize,
    height: usize,
    out_width: usize,
    out_height: usize,
    filter: Filter,
) -> Vec<f32> {
    let across = coefficients(width, out_width, filter);
    let mut rows = vec![0.0f32; height * out_width * 3];
    for y in 0..height {
        let source = &pixels[y * width * 3..(y + 1) * width * 3];
        let target = &mut rows[y * out_width * 3..(y + 1) * out_width * 3];
        for (x, (first, weights)) in across.iter().enumerate() {
            let mut sum = [0.0f32; 3];
            for (k, w) in weights.iter().enumerate() {
                let at = (first + k) * 3;
                for c in 0..3 {
                    sum[c] += w * f32::from(source[at + c]);
                }
            }
            target[x * 3..x * 3 + 3].copy_from_slice(&sum);
        }
    }
    let down = coefficients(height, out_height, filter);
    let row_len = out_width * 3;
    let mut out = vec![0.0f32; out_height * row_len];
    for (y, (first, weights)) in down.iter().enumerate() {
        let target = &mut out[y * row_len..(y + 1) * row_len];
        for (k, w) in weights.iter().enumerate() {
            let source = &rows[(first + k) * row_len..(first + k + 1) * row_len];
            for (t, s) in target.iter_mut().zip(source) {
                *t += w * s;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_shrinking_averages_blocks() {
        // 4×2 → 2×1: each output pixel is the mean of a 2×2 block.
        let pixels: Vec<u8> = [0u8, 10, 20, 30, 40, 50, 60, 70]
            .iter()
            .flat_map(|&v| [v, v, v])
            .collect();
        let out = resample_rgb(&pixels, 4, 2, 2, 1, Filter::Box);
        assert_eq!(out, vec![25.0, 25.0, 25.0, 45.0, 45.0, 45.0]);
    }

    #[test]
    fn weights_sum_to_one_and_flat_images_stay_flat() {
        for filter in [Filter::Box, Filter::Bicubic] {
            for (input, output) in [(640, 224), (100, 224), (7, 3), (224, 224)] {
                for (_, weights) in coefficients(input, output, filter) {
                    let total: f32 = weights.iter().sum();
                    assert!((total - 1.0).abs() < 1e-5, "{filter:?} {input}->{output}");
                }
            }
            let flat = vec![77u8; 9 * 5 * 3];
            for v in resample_rgb(&flat, 9, 5, 4, 7, filter) {
                assert!((v - 77.0).abs() < 1e-3);
            }
        }
    }

    #[test]
    fn matches_pillow_on_a_ramp() {
        // Pillow 13.0: Image.fromarray(np.arange(8, dtype=np.uint8).reshape(1, 8) * 30)
        //   .resize((width, 1), filter). Pillow computes 8-bit images in fixed point, so a value
        // may differ by one after rounding.
        let pixels: Vec<u8> = (0..8u8).flat_map(|v| [v * 30; 3]).collect();
        for (filter, width, pillow) in [
            (Filter::Bicubic, 3, vec![27, 105, 183]),
            (
                Filter::Bicubic,
                11,
                vec![0, 15, 40, 61, 83, 105, 127, 149, 170, 195, 212],
            ),
            (Filter::Box, 3, vec![30, 105, 180]),
        ] {
            let out = resample_rgb(&pixels, 8, 1, width, 1, filter);
            let ours: Vec<i32> = out
                .chunks(3)
                .map(|p| p[0].round().clamp(0.0, 255.0) as i32)
                .collect();
            for (a, b) in ours.iter().zip(&pillow) {
                assert!((a - b).abs() <= 1, "{ours:?} against Pillow's {pillow:?}");
            }
        }
    }
}
