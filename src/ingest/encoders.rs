//! Which encoders a project is ingested with: the names asked for, else the ones the project
//! recorded (so a rerun encodes the same way), else the defaults.

use candle_core::Device;

use crate::encode::{
    EncodeError, TextEncoder, VisualEncoder, minilm_dir, text_encoder, visual_encoder,
};
use crate::project::config::EncodersSection;

/// A pair of live encoders, and what the caller should tell the user about the choice.
#[derive(Debug)]
pub struct ChosenEncoders {
    pub visual: Box<dyn VisualEncoder>,
    pub text: Box<dyn TextEncoder>,
    /// Set when a default had to give way (MiniLM is not installed).
    pub note: Option<String>,
}

/// The built-in frame descriptor for video; MiniLM for text where its folder is installed, the
/// hashed encoder otherwise.
pub fn choose_encoders(
    recorded: &EncodersSection,
    visual: Option<&str>,
    text: Option<&str>,
) -> Result<ChosenEncoders, EncodeError> {
    let mut note = None;
    let visual_name = visual
        .map(str::to_string)
        .or_else(|| recorded.video.as_ref().map(|spec| spec.name.clone()))
        .unwrap_or_else(|| "descriptor".into());
    let text_name = text
        .map(str::to_string)
        .or_else(|| recorded.text.as_ref().map(|spec| spec.name.clone()))
        .unwrap_or_else(|| {
            if minilm_dir().is_ok_and(|dir| dir.is_dir()) {
                "minilm".into()
            } else {
                note = Some(
                    "all-MiniLM-L6-v2 is not installed (scripts/setup.sh installs it); captions are encoded by the built-in hashed encoder"
                        .into(),
                );
                "hashed".into()
            }
        });
    let device = Device::Cpu;
    let built = |side: &'static str, name: &str, error: EncodeError| EncodeError::Build {
        side,
        name: name.to_string(),
        source: Box::new(error),
    };
    let visual =
        visual_encoder(&visual_name, &device).map_err(|e| built("video", &visual_name, e))?;
    let text = text_encoder(&text_name, &device).map_err(|e| built("text", &text_name, e))?;
    Ok(ChosenEncoders { visual, text, note })
}
