//! Whether features, heads and encoders agree: a head trained on one encoder's features reads
//! another's as noise, so every hand-over (a checkpoint loaded on a project, a query encoded for a
//! run, features ingested into a project) compares names and widths and says what differs.

use thiserror::Error;

use super::config::{EncoderSpec, EncodersSection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Video,
    Text,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Video => "video",
            Side::Text => "text",
        })
    }
}

/// One side whose encoders differ; `None` where a side records no encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideMismatch {
    pub side: Side,
    pub project: Option<EncoderSpec>,
    pub other: Option<EncoderSpec>,
}

/// The project's encoders against those of `other` (a checkpoint, live encoders, ...).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct EncoderMismatch {
    pub other: String,
    pub sides: Vec<SideMismatch>,
}

impl std::fmt::Display for EncoderMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let describe = |spec: &Option<EncoderSpec>| match spec {
            Some(spec) => format!("`{}` ({}-d)", spec.name, spec.dim),
            None => "no encoder".to_string(),
        };
        write!(
            f,
            "the project's encoders differ from the {}'s:",
            self.other
        )?;
        for (i, mismatch) in self.sides.iter().enumerate() {
            let separator = if i == 0 { " " } else { "; " };
            write!(
                f,
                "{separator}{} side: the project has {}, the {} has {}",
                mismatch.side,
                describe(&mismatch.project),
                self.other,
                describe(&mismatch.other)
            )?;
        }
        Ok(())
    }
}

/// Compares both sides; `other` names what `found` came from in the message ("checkpoint").
pub fn check_encoders(
    project: &EncodersSection,
    found: &EncodersSection,
    other: &str,
) -> Result<(), EncoderMismatch> {
    let sides: Vec<SideMismatch> = [
        (Side::Video, &project.video, &found.video),
        (Side::Text, &project.text, &found.text),
    ]
    .into_iter()
    .filter(|(_, project, found)| project != found)
    .map(|(side, project, found)| SideMismatch {
        side,
        project: project.clone(),
        other: found.clone(),
    })
    .collect();
    if sides.is_empty() {
        Ok(())
    } else {
        Err(EncoderMismatch {
            other: other.to_string(),
            sides,
        })
    }
}

/// Compares one side only (a text query needs only the text encoder to agree).
pub fn check_side(
    side: Side,
    project: Option<&EncoderSpec>,
    found: &EncoderSpec,
    other: &str,
) -> Result<(), EncoderMismatch> {
    if project == Some(found) {
        return Ok(());
    }
    Err(EncoderMismatch {
        other: other.to_string(),
        sides: vec![SideMismatch {
            side,
            project: project.cloned(),
            other: Some(found.clone()),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dim: usize) -> Option<EncoderSpec> {
        Some(EncoderSpec::new(name, dim))
    }

    #[test]
    fn a_mismatch_names_side_encoders_and_dims() {
        let project = EncodersSection {
            video: spec("descriptor", 217),
            text: spec("minilm", 384),
        };
        let checkpoint = EncodersSection {
            video: spec("descriptor", 217),
            text: spec("hashed", 512),
        };
        let error = check_encoders(&project, &checkpoint, "checkpoint").unwrap_err();
        assert_eq!(error.sides.len(), 1);
        assert_eq!(error.sides[0].side, Side::Text);
        assert_eq!(
            error.to_string(),
            "the project's encoders differ from the checkpoint's: text side: the project has \
             `minilm` (384-d), the checkpoint has `hashed` (512-d)"
        );

        let empty = EncodersSection::default();
        let message = check_encoders(&empty, &checkpoint, "checkpoint")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("video side: the project has no encoder"),
            "{message}"
        );
        assert!(message.contains("; text side"), "{message}");
    }

    #[test]
    fn one_side_can_be_checked_alone() {
        let project = spec("hashed", 512);
        assert!(
            check_side(
                Side::Text,
                project.as_ref(),
                &spec("hashed", 512).unwrap(),
                "query encoder"
            )
            .is_ok()
        );
        let error = check_side(
            Side::Text,
            project.as_ref(),
            &spec("hashed:64", 64).unwrap(),
            "query encoder",
        )
        .unwrap_err();
        assert!(error.to_string().contains("`hashed:64` (64-d)"));
    }
}
