//! A decoded frame as the rest of the crate sees it: packed 8-bit RGB, no FFmpeg types.

/// One frame, packed RGB24, rows top to bottom with no padding (`pixels.len() == width * height * 3`).
#[derive(Debug, Clone, PartialEq)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    /// Presentation time of the frame in seconds from the start of the stream.
    pub seconds: f64,
}

impl RgbFrame {
    /// A frame from packed RGB24 bytes; `None` when the length does not match the size.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>, seconds: f64) -> Option<Self> {
        let expected = (width as usize)
            .checked_mul(height as usize)?
            .checked_mul(3)?;
        (pixels.len() == expected).then_some(Self {
            width,
            height,
            pixels,
            seconds,
        })
    }

    /// The RGB value at (x, y); callers keep x < width and y < height.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let at = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_length() {
        assert!(RgbFrame::new(2, 2, vec![0; 12], 0.0).is_some());
        assert!(RgbFrame::new(2, 2, vec![0; 11], 0.0).is_none());
        let frame = RgbFrame::new(2, 1, vec![1, 2, 3, 4, 5, 6], 0.5).unwrap();
        assert_eq!(frame.pixel(1, 0), [4, 5, 6]);
    }
}
