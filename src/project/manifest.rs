//! `manifest.jsonl`: one JSON object per clip, the human-readable index of the project's data.
//!
//! Reading is forgiving per line and strict about reporting: a bad line is skipped and returned
//! as a problem with its 1-based line number, so one hand-edited typo does not make a project
//! unreadable, and the caller decides whether problems are fatal.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::atomic::write_atomic_with;
use super::error::ProjectError;
use super::is_valid_split_name;

/// One clip: a segment of a video with (usually) a caption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Unique within the project.
    pub clip: String,
    /// The video the clip belongs to.
    pub video: String,
    pub split: String,
    /// Seconds from the start of the video (unknown for some imported features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The video file, for projects made from videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl ManifestEntry {
    /// What is wrong with this entry on its own (duplicates are checked across entries).
    pub fn check(&self) -> Result<(), String> {
        if self.clip.is_empty() {
            return Err("`clip` is empty; expected the clip's key".into());
        }
        if self.video.is_empty() {
            return Err("`video` is empty; expected the video's key".into());
        }
        if !is_valid_split_name(&self.split) {
            return Err(format!(
                "`split` is {:?}; expected letters, digits, `_`, `-` or `.`",
                self.split
            ));
        }
        for (key, value) in [("start", self.start), ("end", self.end)] {
            if let Some(value) = value
                && !(value.is_finite() && value >= 0.0)
            {
                return Err(format!("`{key}` is {value}; expected seconds ≥ 0"));
            }
        }
        if let (Some(start), Some(end)) = (self.start, self.end)
            && end < start
        {
            return Err(format!("`end` {end} is before `start` {start}"));
        }
        if let Some(path) = &self.path {
            check_video_path(path)?;
        }
        Ok(())
    }
}

/// What is wrong with a manifest's video `path`, which names a file inside the project's video
/// folder (`source.videos` in `crossclr.toml`) relative to it: an empty, absolute or
/// climbing path (`../other/clip.mp4`) would read a file from outside that folder. The check is
/// on the path as written; a link inside the folder is followed, as `crossclr new` follows it.
pub fn check_video_path(path: &str) -> Result<(), String> {
    use std::path::Component;
    if path.trim().is_empty() {
        return Err(
            "`path` is empty; expected the video file, relative to the video folder".into(),
        );
    }
    let mut depth = 0usize;
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            Component::ParentDir => {
                return Err(format!(
                    "`path` {path:?} leaves the video folder; expected a file inside it \
                     (source.videos in crossclr.toml), relative to it"
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "`path` {path:?} is absolute; expected a file inside the video folder \
                     (source.videos in crossclr.toml), relative to it"
                ));
            }
        }
    }
    Ok(())
}

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The good entries of a manifest, in file order, and the lines that were skipped.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub path: PathBuf,
    pub entries: Vec<ManifestEntry>,
    pub problems: Vec<LineProblem>,
}

/// Reads `path`. Only an unreadable file is an error; bad lines (invalid JSON or UTF-8, missing
/// or unknown fields, bad values, a clip key seen before) are skipped and listed in `problems`.
/// Blank lines are allowed.
pub fn read_manifest(path: &Path) -> Result<Manifest, ProjectError> {
    let bytes = std::fs::read(path).map_err(|e| ProjectError::io("read", path, e))?;
    let mut manifest = Manifest {
        path: path.to_path_buf(),
        ..Manifest::default()
    };
    let mut first_line_of: HashMap<String, usize> = HashMap::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let mut problem = |reason: String| manifest.problems.push(LineProblem { line, reason });
        let Ok(text) = std::str::from_utf8(raw) else {
            problem("not valid UTF-8".into());
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let entry: ManifestEntry = match serde_json::from_str(text) {
            Ok(entry) => entry,
            Err(e) => {
                // serde's position is within this one line: its column, not "line 1".
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(reason, _)| reason);
                problem(format!(
                    "not a manifest entry: {message} at column {}",
                    e.column()
                ));
                continue;
            }
        };
        if let Err(reason) = entry.check() {
            problem(reason);
            continue;
        }
        if let Some(first) = first_line_of.get(&entry.clip) {
            problem(format!(
                "clip `{}` already appears on line {first}",
                entry.clip
            ));
            continue;
        }
        first_line_of.insert(entry.clip.clone(), line);
        manifest.entries.push(entry);
    }
    Ok(manifest)
}

/// Writes `entries` as `path`, one JSON object per line, atomically. Entries are checked first, so
/// what is written reads back without problems.
pub fn write_manifest(path: &Path, entries: &[ManifestEntry]) -> Result<(), ProjectError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        entry.check().map_err(|reason| {
            ProjectError::file(
                path,
                format!("not written: entry {i} (clip `{}`): {reason}", entry.clip),
            )
        })?;
        if let Some(first) = seen.insert(&entry.clip, i) {
            return Err(ProjectError::file(
                path,
                format!(
                    "not written: entries {first} and {i} share the clip key `{}`",
                    entry.clip
                ),
            ));
        }
    }
    write_atomic_with(path, |out| {
        for entry in entries {
            serde_json::to_writer(&mut *out, entry).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })
}
