//! What a pair of live encoders records: compared with a project's or a checkpoint's by
//! `project::encoders`.

use super::{TextEncoder, VisualEncoder};
use crate::project::config::{EncoderSpec, EncodersSection};

/// What a pair of live encoders would record.
pub fn live_encoders(video: &dyn VisualEncoder, text: &dyn TextEncoder) -> EncodersSection {
    EncodersSection {
        video: Some(EncoderSpec::new(video.name(), video.dim())),
        text: Some(EncoderSpec::new(text.name(), text.dim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{DescriptorVisualEncoder, HashedTextEncoder};
    use crate::project::encoders::check_encoders;

    fn spec(name: &str, dim: usize) -> Option<EncoderSpec> {
        Some(EncoderSpec::new(name, dim))
    }

    #[test]
    fn live_encoders_match_what_they_recorded() {
        let live = live_encoders(&DescriptorVisualEncoder, &HashedTextEncoder::default());
        assert_eq!(live.video, spec("descriptor", 217));
        assert_eq!(live.text, spec("hashed", 512));
        assert_eq!(check_encoders(&live, &live, "live encoders"), Ok(()));
    }
}
