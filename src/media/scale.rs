//! Decoded pictures to packed RGB at a requested size: swscale does the colour conversion and the
//! scaling in one pass; the quarter turn and the padding or cropping are plain copies after it.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;

use super::frame::RgbFrame;
use super::rotation::Rotation;

/// How a picture is brought to a size of another shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect ratio and the whole picture; the rest of the box is black.
    Pad,
    /// Keep the aspect ratio and fill the box; what sticks out is cut off equally on both sides.
    #[default]
    Crop,
    /// Scale each axis on its own to the box.
    Stretch,
}

/// The output size of decoded frames and how pictures are fitted to it. Sizes are of the picture
/// as displayed, i.e. after the stream's rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
}

impl FrameSize {
    pub fn new(width: u32, height: u32, fit: Fit) -> Self {
        Self { width, height, fit }
    }

    pub fn square(side: u32, fit: Fit) -> Self {
        Self::new(side, side, fit)
    }
}

/// Where the scaled picture goes: swscale makes a `scaled_width` × `scaled_height` picture in the
/// stored orientation; after the turn, display pixel (x, y) of the output takes the scaled
/// picture's display pixel (x + `shift_x`, y + `shift_y`) when that lies inside it, black otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub scaled_width: u32,
    pub scaled_height: u32,
    pub out_width: u32,
    pub out_height: u32,
    pub shift_x: i64,
    pub shift_y: i64,
}

/// Plans the conversion of a stored `width` × `height` picture with the given sample aspect ratio
/// (pixel width / pixel height) and rotation to `size` (`None`: the display size).
pub(crate) fn plan_layout(
    width: u32,
    height: u32,
    sample_aspect: f64,
    rotation: Rotation,
    size: Option<FrameSize>,
) -> Layout {
    let aspect = if sample_aspect.is_finite() && sample_aspect > 0.0 {
        sample_aspect
    } else {
        1.0
    };
    // The picture as displayed, in (fractional) pixels.
    let (stored_w, stored_h) = (f64::from(width) * aspect, f64::from(height));
    let (display_w, display_h) = if rotation.swaps_dimensions() {
        (stored_h, stored_w)
    } else {
        (stored_w, stored_h)
    };
    let at_least_one = |v: f64| (v.round() as u32).max(1);
    let (content_w, content_h, out_w, out_h) = match size {
        None => {
            let (w, h) = (at_least_one(display_w), at_least_one(display_h));
            (w, h, w, h)
        }
        Some(FrameSize { width, height, fit }) => {
            let (box_w, box_h) = (width.max(1), height.max(1));
            let sx = f64::from(box_w) / display_w;
            let sy = f64::from(box_h) / display_h;
            match fit {
                Fit::Stretch => (box_w, box_h, box_w, box_h),
                Fit::Pad => {
                    let s = sx.min(sy);
                    let w = at_least_one(display_w * s).min(box_w);
                    let h = at_least_one(display_h * s).min(box_h);
                    (w, h, box_w, box_h)
                }
                Fit::Crop => {
                    let s = sx.max(sy);
                    let w = at_least_one(display_w * s).max(box_w);
                    let h = at_least_one(display_h * s).max(box_h);
                    (w, h, box_w, box_h)
                }
            }
        }
    };
    // Centre the content in the box (padding, negative shift) or the box in the content (crop).
    let shift_x = (i64::from(content_w) - i64::from(out_w)).div_euclid(2);
    let shift_y = (i64::from(content_h) - i64::from(out_h)).div_euclid(2);
    let (scaled_width, scaled_height) = if rotation.swaps_dimensions() {
        (content_h, content_w)
    } else {
        (content_w, content_h)
    };
    Layout {
        scaled_width,
        scaled_height,
        out_width: out_w,
        out_height: out_h,
        shift_x,
        shift_y,
    }
}

/// Turns decoded frames into [`RgbFrame`]s, keeping its swscale context between frames of the
/// same shape.
pub(crate) struct RgbConverter {
    scaler: Option<(ScalerKey, scaling::Context)>,
    scaled: VideoFrame,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: Pixel,
    width: u32,
    height: u32,
    scaled_width: u32,
    scaled_height: u32,
}

impl std::fmt::Debug for RgbConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbConverter")
            .field("has_scaler", &self.scaler.is_some())
            .finish()
    }
}

impl RgbConverter {
    pub fn new() -> Self {
        Self {
            scaler: None,
            scaled: VideoFrame::empty(),
        }
    }

    /// Converts `frame` (any pixel format swscale reads) to RGB at `size`, turned by `rotation`.
    pub fn convert(
        &mut self,
        frame: &VideoFrame,
        sample_aspect: f64,
        rotation: Rotation,
        size: Option<FrameSize>,
        seconds: f64,
    ) -> Result<RgbFrame, ffmpeg::Error> {
        let layout = plan_layout(frame.width(), frame.height(), sample_aspect, rotation, size);
        let key = ScalerKey {
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
            scaled_width: layout.scaled_width,
            scaled_height: layout.scaled_height,
        };
        if self.scaler.as_ref().map(|(k, _)| *k) != Some(key) {
            // Bicubic is what the ffmpeg tool's scale filter uses, so frames match its output.
            let context = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                Pixel::RGB24,
                key.scaled_width,
                key.scaled_height,
                scaling::Flags::BICUBIC,
            )?;
            self.scaler = Some((key, context));
            self.scaled = VideoFrame::empty();
        }
        let (_, scaler) = self.scaler.as_mut().expect("set above");
        scaler.run(frame, &mut self.scaled)?;
        Ok(compose(&self.scaled, &layout, rotation, seconds))
    }
}

/// Copies the scaled RGB picture into the output box, turning, padding or cropping on the way.
fn compose(scaled: &VideoFrame, layout: &Layout, rotation: Rotation, seconds: f64) -> RgbFrame {
    let stride = scaled.stride(0);
    let data = scaled.data(0);
    let (src_w, src_h) = (layout.scaled_width as usize, layout.scaled_height as usize);
    let (display_w, display_h) = if rotation.swaps_dimensions() {
        (src_h as i64, src_w as i64)
    } else {
        (src_w as i64, src_h as i64)
    };
    let (out_w, out_h) = (layout.out_width as usize, layout.out_height as usize);
    let mut pixels = vec![0u8; out_w * out_h * 3];
    for y in 0..out_h {
        let dy = y as i64 + layout.shift_y;
        if !(0..display_h).contains(&dy) {
            continue;
        }
        let row = &mut pixels[y * out_w * 3..(y + 1) * out_w * 3];
        let first_x = (-layout.shift_x).clamp(0, out_w as i64) as usize;
        let end_x = (display_w - layout.shift_x).clamp(0, out_w as i64) as usize;
        if rotation == Rotation::None {
            let sx = (first_x as i64 + layout.shift_x) as usize;
            let start = dy as usize * stride + sx * 3;
            let len = (end_x - first_x) * 3;
            row[first_x * 3..first_x * 3 + len].copy_from_slice(&data[start..start + len]);
            continue;
        }
        for x in first_x..end_x {
            let dx = (x as i64 + layout.shift_x) as usize;
            let (sx, sy) = rotation.source_of(dx, dy as usize, src_w, src_h);
            let at = sy * stride + sx * 3;
            row[x * 3..x * 3 + 3].copy_from_slice(&data[at..at + 3]);
        }
    }
    RgbFrame {
        width: layout.out_width,
        height: layout.out_height,
        pixels,
        seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_size_follows_rotation_and_pixel_aspect() {
        let plain = plan_layout(123, 77, 1.0, Rotation::None, None);
        assert_eq!((plain.out_width, plain.out_height), (123, 77));
        let turned = plan_layout(320, 240, 1.0, Rotation::Clockwise90, None);
        assert_eq!((turned.out_width, turned.out_height), (240, 320));
        assert_eq!((turned.scaled_width, turned.scaled_height), (320, 240));
        // Anamorphic DVD: 720×576 stored, 16:9 shown.
        let wide = plan_layout(720, 576, 64.0 / 45.0, Rotation::None, None);
        assert_eq!((wide.out_width, wide.out_height), (1024, 576));
    }

    #[test]
    fn pad_centres_the_whole_picture() {
        let layout = plan_layout(
            1920,
            1080,
            1.0,
            Rotation::None,
            Some(FrameSize::square(128, Fit::Pad)),
        );
        assert_eq!((layout.scaled_width, layout.scaled_height), (128, 72));
        assert_eq!((layout.out_width, layout.out_height), (128, 128));
        assert_eq!((layout.shift_x, layout.shift_y), (0, -28));
    }

    #[test]
    fn crop_fills_the_box_from_the_centre() {
        let layout = plan_layout(
            1920,
            1080,
            1.0,
            Rotation::None,
            Some(FrameSize::square(224, Fit::Crop)),
        );
        assert_eq!((layout.scaled_width, layout.scaled_height), (398, 224));
        assert_eq!((layout.shift_x, layout.shift_y), (87, 0));
        let turned = plan_layout(
            1920,
            1080,
            1.0,
            Rotation::Clockwise270,
            Some(FrameSize::new(100, 50, Fit::Crop)),
        );
        // Displayed 1080×1920 → 100×178 covers 100×50; scaled in stored orientation 178×100.
        assert_eq!((turned.scaled_width, turned.scaled_height), (178, 100));
        assert_eq!((turned.shift_x, turned.shift_y), (0, 64));
    }

    #[test]
    fn stretch_ignores_the_aspect() {
        let layout = plan_layout(
            123,
            77,
            1.0,
            Rotation::Clockwise90,
            Some(FrameSize::new(64, 32, Fit::Stretch)),
        );
        assert_eq!((layout.out_width, layout.out_height), (64, 32));
        assert_eq!((layout.scaled_width, layout.scaled_height), (32, 64));
        assert_eq!((layout.shift_x, layout.shift_y), (0, 0));
    }
}
