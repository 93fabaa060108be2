//! How a stream asks to be turned for display: the display-matrix side data (or, from older
//! muxers, a `rotate` tag), reduced to the quarter turns players honour.

/// A clockwise quarter turn applied to decoded pictures before they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Rotation {
    #[default]
    None,
    Clockwise90,
    Clockwise180,
    Clockwise270,
}

impl Rotation {
    /// The nearest quarter turn to `degrees` clockwise (any sign, any number of turns).
    pub fn from_clockwise_degrees(degrees: f64) -> Self {
        if !degrees.is_finite() {
            return Self::None;
        }
        match ((degrees / 90.0).round() as i64).rem_euclid(4) {
            1 => Self::Clockwise90,
            2 => Self::Clockwise180,
            3 => Self::Clockwise270,
            _ => Self::None,
        }
    }

    /// The rotation FFmpeg itself applies for a 3×3 display matrix (16.16 fixed point, row-major
    /// as stored in side data): `av_display_rotation_get` gives the counter-clockwise angle of
    /// the matrix and the ffmpeg tool turns the picture by its negative.
    pub fn from_display_matrix(matrix: &[i32; 9]) -> Self {
        let fixed = |v: i32| f64::from(v) / 65536.0;
        let scale_x = fixed(matrix[0]).hypot(fixed(matrix[3]));
        let scale_y = fixed(matrix[1]).hypot(fixed(matrix[4]));
        if scale_x == 0.0 || scale_y == 0.0 {
            return Self::None;
        }
        let counter_clockwise = -(fixed(matrix[1]) / scale_y)
            .atan2(fixed(matrix[0]) / scale_x)
            .to_degrees();
        Self::from_clockwise_degrees(-counter_clockwise)
    }

    /// Parses display-matrix side data bytes (nine native-endian `i32`).
    pub fn from_display_matrix_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 36 {
            return None;
        }
        let mut matrix = [0i32; 9];
        for (value, chunk) in matrix.iter_mut().zip(bytes.chunks_exact(4)) {
            *value = i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Some(Self::from_display_matrix(&matrix))
    }

    pub fn clockwise_degrees(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Clockwise90 => 90,
            Self::Clockwise180 => 180,
            Self::Clockwise270 => 270,
        }
    }

    /// True when the turn swaps width and height.
    pub fn swaps_dimensions(self) -> bool {
        matches!(self, Self::Clockwise90 | Self::Clockwise270)
    }

    /// Where display pixel (x, y) comes from in a stored picture of `width` × `height`
    /// (stored orientation), for a display picture of the turned size.
    pub(crate) fn source_of(
        self,
        x: usize,
        y: usize,
        width: usize,
        height: usize,
    ) -> (usize, usize) {
        match self {
            Self::None => (x, y),
            Self::Clockwise90 => (y, height - 1 - x),
            Self::Clockwise180 => (width - 1 - x, height - 1 - y),
            Self::Clockwise270 => (width - 1 - y, x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: i32 = 1 << 16;

    #[test]
    fn display_matrices_map_to_ffmpeg_turns() {
        let identity = [ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30];
        assert_eq!(Rotation::from_display_matrix(&identity), Rotation::None);
        // What `ffmpeg -metadata:s:v rotate=90 -c copy` writes; ffmpeg shows it turned a quarter
        // counter-clockwise (ffprobe reports "rotation=90").
        let written_for_rotate_90 = [0, -ONE, 0, ONE, 0, 0, 0, 0, 1 << 30];
        assert_eq!(
            Rotation::from_display_matrix(&written_for_rotate_90),
            Rotation::Clockwise270
        );
        let half_turn = [-ONE, 0, 0, 0, -ONE, 0, 0, 0, 1 << 30];
        assert_eq!(
            Rotation::from_display_matrix(&half_turn),
            Rotation::Clockwise180
        );
        let quarter_clockwise = [0, ONE, 0, -ONE, 0, 0, 0, 0, 1 << 30];
        assert_eq!(
            Rotation::from_display_matrix(&quarter_clockwise),
            Rotation::Clockwise90
        );
        assert_eq!(Rotation::from_display_matrix(&[0; 9]), Rotation::None);
    }

    #[test]
    fn degrees_round_to_quarter_turns() {
        assert_eq!(
            Rotation::from_clockwise_degrees(-90.0),
            Rotation::Clockwise270
        );
        assert_eq!(
            Rotation::from_clockwise_degrees(450.0),
            Rotation::Clockwise90
        );
        assert_eq!(
            Rotation::from_clockwise_degrees(179.0),
            Rotation::Clockwise180
        );
        assert_eq!(Rotation::from_clockwise_degrees(f64::NAN), Rotation::None);
    }

    #[test]
    fn source_pixels_follow_the_turn() {
        // A 3×2 stored picture; its corners in display space after each turn.
        let (w, h) = (3, 2);
        // Clockwise: the stored bottom-left corner becomes the display top-left.
        assert_eq!(Rotation::Clockwise90.source_of(0, 0, w, h), (0, 1));
        assert_eq!(Rotation::Clockwise90.source_of(1, 0, w, h), (0, 0));
        assert_eq!(Rotation::Clockwise180.source_of(0, 0, w, h), (2, 1));
        // Counter-clockwise: the stored top-right corner becomes the display top-left.
        assert_eq!(Rotation::Clockwise270.source_of(0, 0, w, h), (2, 0));
        assert_eq!(Rotation::Clockwise270.source_of(0, 2, w, h), (0, 0));
    }
}
