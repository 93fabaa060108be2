//! Encoders by the names projects record in `crossclr.toml`'s `[encoders]`:
//!
//! | name              | encoder                                                         |
//! |-------------------|-----------------------------------------------------------------|
//! | `hashed`, `hashed:<dim>` | [`HashedTextEncoder`], 512-d or `<dim>`-d               |
//! | `minilm`          | [`BertTextEncoder`] on all-MiniLM-L6-v2 in [`minilm_dir`]       |
//! | `minilm:<folder>`, `bert:<folder>` | [`BertTextEncoder`] on the folder             |
//! | `descriptor`      | [`DescriptorVisualEncoder`]                                     |
//! | `clip:<folder>`   | [`ClipVisualEncoder`] on the folder                             |
//!
//! A relative `<folder>` is looked up under [`models_dir`], so that a recorded name means the same
//! model on every machine; an absolute one is used as it is.

use std::path::PathBuf;

use candle_core::Device;

use super::{
    BertTextEncoder, ClipVisualEncoder, DescriptorVisualEncoder, EncodeError, HashedTextEncoder,
    TextEncoder, VisualEncoder, minilm_dir, models_dir,
};
use crate::project::config::PRECOMPUTED;

const TEXT_NAMES: &str = "hashed, hashed:<dim>, minilm, minilm:<folder>, bert:<folder>";
const VIDEO_NAMES: &str = "descriptor, clip:<folder>";

/// The text encoder a project names.
pub fn text_encoder(name: &str, device: &Device) -> Result<Box<dyn TextEncoder>, EncodeError> {
    let unknown = |reason: String| EncodeError::UnknownEncoder {
        side: "text",
        name: name.to_string(),
        reason,
    };
    let (kind, argument) = split(name);
    match (kind, argument) {
        ("hashed", None) => Ok(Box::new(HashedTextEncoder::default())),
        ("hashed", Some(dim)) => match dim.parse::<usize>() {
            Ok(dim) if dim > 0 => Ok(Box::new(HashedTextEncoder::new(dim))),
            _ => Err(unknown(format!("`{dim}` is not a positive width"))),
        },
        ("minilm", None) => {
            let folder = minilm_dir()?;
            if !folder.is_dir() {
                return Err(EncodeError::MissingFile {
                    path: folder,
                    what: "all-MiniLM-L6-v2's folder; scripts/setup.sh installs it",
                });
            }
            Ok(Box::new(
                BertTextEncoder::load(&folder, device)?.with_name(name),
            ))
        }
        ("minilm" | "bert", Some(folder)) => {
            let folder = resolve(folder)?;
            Ok(Box::new(
                BertTextEncoder::load(&folder, device)?.with_name(name),
            ))
        }
        (PRECOMPUTED, None) => Err(unknown(
            "the features were imported, and no encoder here makes them".into(),
        )),
        _ => Err(unknown(format!("known text encoders: {TEXT_NAMES}"))),
    }
}

/// The visual encoder a project names.
pub fn visual_encoder(name: &str, device: &Device) -> Result<Box<dyn VisualEncoder>, EncodeError> {
    let unknown = |reason: String| EncodeError::UnknownEncoder {
        side: "video",
        name: name.to_string(),
        reason,
    };
    match split(name) {
        ("descriptor", None) => Ok(Box::new(DescriptorVisualEncoder)),
        ("clip", Some(folder)) => {
            let folder = resolve(folder)?;
            Ok(Box::new(
                ClipVisualEncoder::load(&folder, device)?.with_name(name),
            ))
        }
        (PRECOMPUTED, None) => Err(unknown(
            "the features were imported, and no encoder here makes them".into(),
        )),
        _ => Err(unknown(format!("known video encoders: {VIDEO_NAMES}"))),
    }
}

/// `kind:argument` → (kind, Some(argument)); an empty argument counts as none.
fn split(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((kind, argument)) if !argument.is_empty() => (kind, Some(argument)),
        Some((kind, _)) => (kind, None),
        None => (name, None),
    }
}

fn resolve(folder: &str) -> Result<PathBuf, EncodeError> {
    let path = PathBuf::from(folder);
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(models_dir()?.join(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_encoders_come_back_under_their_names() {
        let cpu = Device::Cpu;
        for name in ["hashed", "hashed:64"] {
            assert_eq!(text_encoder(name, &cpu).unwrap().name(), name);
        }
        assert_eq!(
            visual_encoder("descriptor", &cpu).unwrap().name(),
            "descriptor"
        );
    }

    #[test]
    fn unknown_names_are_refused_with_what_is_known() {
        let cpu = Device::Cpu;
        let message = text_encoder("word2vec", &cpu).unwrap_err().to_string();
        assert!(
            message.contains("`word2vec`") && message.contains("minilm"),
            "{message}"
        );
        let message = text_encoder("hashed:0", &cpu).unwrap_err().to_string();
        assert!(message.contains("not a positive width"), "{message}");
        let message = visual_encoder("precomputed", &cpu).unwrap_err().to_string();
        assert!(message.contains("imported"), "{message}");
        let message = visual_encoder("clip", &cpu).unwrap_err().to_string();
        assert!(message.contains("clip:<folder>"), "{message}");
    }

    #[test]
    fn a_missing_folder_is_named() {
        let message = visual_encoder("clip:/nonexistent/clip-vit", &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("/nonexistent/clip-vit/config.json is missing"),
            "{message}"
        );
    }
}
