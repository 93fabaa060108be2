//! Caption files: the captions of a folder of videos, read from CSV, JSON Lines, a JSON array,
//! MSR-VTT's `videodatainfo` JSON or YouCook2's annotation JSON into one list of
//! [`CaptionedClip`]s.
//!
//! Reading is forgiving per entry and strict about reporting, like the manifest: an entry that
//! cannot be used (a missing field, bad times, an empty caption, invalid UTF-8) is skipped and
//! listed with its line or JSON path, and the rest is read. Only an unreadable file, an unknown
//! format or a JSON document that is not valid JSON is an error. CSV and JSON Lines are read a
//! record at a time and JSON documents an entry at a time, so memory grows with the captions
//! kept, not with the size of the file or of its largest entry.

mod csv_file;
mod json_file;
mod jsonl_file;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::error::ProjectError;
use super::is_valid_split_name;

/// The caption file layouts this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionFormat {
    /// `video,caption[,start,end[,split]]`, with an optional header row naming the columns.
    Csv,
    /// One caption object per line (`video`, `caption`, optional `start`, `end`, `split`, `clip`).
    JsonLines,
    /// A JSON array of the objects JSON Lines has one per line.
    JsonArray,
    /// MSR-VTT's `train_val_videodatainfo.json`: `videos` (with `split`) and `sentences`.
    MsrVtt,
    /// YouCook2's `youcookii_annotations_*.json`: `database` of videos with timed segments.
    YouCook2,
}

impl fmt::Display for CaptionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Csv => "CSV",
            Self::JsonLines => "JSON Lines",
            Self::JsonArray => "JSON array",
            Self::MsrVtt => "MSR-VTT JSON",
            Self::YouCook2 => "YouCook2 JSON",
        })
    }
}

/// Where in the caption file an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line (for CSV, the line the record starts on).
    Line(usize),
    /// A JSON path such as `database.GLd3aX16zBg.annotations[3]` or `sentences[17]`.
    Json(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => write!(f, "line {line}"),
            Self::Json(path) => f.write_str(path),
        }
    }
}

/// An entry that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionProblem {
    pub location: Location,
    pub reason: String,
}

impl fmt::Display for CaptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// One caption of (a segment of) a video, checked: the video key and caption are not empty,
/// times come in pairs with `0 ≤ start < end`, and the split is a valid split name.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionedClip {
    /// The video as the caption file names it: a file stem, file name or relative path.
    pub video: String,
    /// Trimmed at both ends; inner newlines are kept.
    pub caption: String,
    /// Seconds; `None` when the caption is of the whole video.
    pub start: Option<f64>,
    pub end: Option<f64>,
    /// `train`, `val`, `test` (from any of the spellings datasets use) or another split name.
    pub split: Option<String>,
    /// The clip's whole key, when the file gives one (a `clip` column or field).
    pub clip: Option<String>,
    /// The file's own number for this caption of the video (YouCook2's segment `id`, MSR-VTT's
    /// `sen_id`).
    pub id: Option<u64>,
    pub origin: Location,
}

/// What a caption file holds: the usable captions in file order, and the skipped entries.
#[derive(Debug, Clone)]
pub struct Captions {
    pub path: PathBuf,
    pub format: CaptionFormat,
    pub clips: Vec<CaptionedClip>,
    pub problems: Vec<CaptionProblem>,
    /// Columns of a CSV header (or nothing for other formats) that name no caption field.
    pub ignored_columns: Vec<String>,
}

/// Reads the captions in `path`, its format told by the extension and the content (see
/// [`detect_format`]).
pub fn read_captions(path: &Path) -> Result<Captions, ProjectError> {
    match detect_format(path)? {
        Detected::Csv => csv_file::read(path),
        Detected::JsonLines => jsonl_file::read(path),
        Detected::JsonDocument => json_file::read(path),
    }
}

/// What [`detect_format`] can tell before parsing; a JSON document says which dataset it is by
/// its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Csv,
    JsonLines,
    JsonDocument,
}

/// The longest JSON Lines line (and the most of a first line looked at to tell the format); one
/// caption is far shorter, so a longer line is a different kind of file.
const MAX_LINE_BYTES: usize = 1 << 20;

/// Tells the format of `path`: `.csv` is CSV, `.jsonl`/`.ndjson` JSON Lines, `.json` a JSON
/// document (unless its first line is a whole object and the next starts another: JSON Lines by
/// another name). Any other name is told by the content: `{` or `[` first as for `.json`, a
/// comma in the first line as CSV. Anything else is an error saying what is expected.
pub fn detect_format(path: &Path) -> Result<Detected, ProjectError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => return Ok(Detected::Csv),
        Some("jsonl" | "ndjson") => return Ok(Detected::JsonLines),
        _ => {}
    }
    let file = File::open(path).map_err(|e| ProjectError::io("open", path, e))?;
    let mut reader = BufReader::new(file);
    let mut first = Vec::new();
    let mut second = Vec::new();
    let read = |reader: &mut BufReader<File>, line: &mut Vec<u8>| loop {
        match next_line(reader, line, MAX_LINE_BYTES) {
            Ok(Some(_)) if line.trim_ascii().is_empty() => continue,
            Ok(found) => return Ok(found),
            Err(e) => return Err(ProjectError::io("read", path, e)),
        }
    };
    let first_cut = read(&mut reader, &mut first)?;
    let first_text = strip_bom(first.trim_ascii());
    let looks_like_json = matches!(first_text.first(), Some(b'{' | b'['));
    if looks_like_json || extension.as_deref() == Some("json") {
        if first_cut == Some(false)
            && first_text.first() == Some(&b'{')
            && serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(first_text)
                .is_ok()
            && read(&mut reader, &mut second)?.is_some()
            && second.trim_ascii().first() == Some(&b'{')
        {
            return Ok(Detected::JsonLines);
        }
        return Ok(Detected::JsonDocument);
    }
    if first_cut.is_some() && first_text.contains(&b',') {
        return Ok(Detected::Csv);
    }
    let start = String::from_utf8_lossy(&first_text[..first_text.len().min(40)]).into_owned();
    Err(ProjectError::file(
        path,
        format!(
            "unknown caption format (the file starts with {start:?}); expected a .csv file \
             (video,caption[,start,end]), a .jsonl file (one {{\"video\", \"caption\"}} object \
             per line), or MSR-VTT's or YouCook2's .json annotations"
        ),
    ))
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Reads the next line, without its `\n` (or `\r\n`), into `line`, keeping at most `limit`
/// bytes of it and skipping the rest: `None` at the end of the file, else whether the line was
/// cut. Bounded, so one enormous line cannot exhaust memory.
fn next_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut cut = false;
    let mut any = false;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        any = true;
        let newline = buffer.iter().position(|&b| b == b'\n');
        let chunk = &buffer[..newline.unwrap_or(buffer.len())];
        let room = limit.saturating_sub(line.len());
        cut |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buffer.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(any.then_some(cut))
}

/// The caption fields the readers know; every format maps its names onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Video,
    Caption,
    Start,
    End,
    Split,
    Clip,
}

impl Field {
    /// The field a CSV column or JSON key names (case and surrounding space ignored). The
    /// synonyms are the names common datasets use.
    fn from_name(name: &str) -> Option<Self> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "video" | "video_id" | "videoid" | "video_key" => Self::Video,
            "caption" | "sentence" | "text" | "description" => Self::Caption,
            "start" | "start_time" | "start time" | "start_sec" | "start_s" => Self::Start,
            "end" | "end_time" | "end time" | "end_sec" | "end_s" | "stop" | "stop_sec" => {
                Self::End
            }
            "split" | "subset" => Self::Split,
            "clip" | "clip_id" | "clip_key" => Self::Clip,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Caption => "caption",
            Self::Start => "start",
            Self::End => "end",
            Self::Split => "split",
            Self::Clip => "clip",
        }
    }
}

/// A field's value as a file gives it, before checks.
#[derive(Debug, Clone)]
enum RawValue {
    Text(String),
    Number(f64),
    /// JSON `null` or an empty CSV cell: the field is not given.
    Missing,
}

/// One entry's fields as read, checked by [`RawCaption::check`].
#[derive(Debug, Default)]
struct RawCaption {
    video: Option<RawValue>,
    caption: Option<RawValue>,
    start: Option<RawValue>,
    end: Option<RawValue>,
    split: Option<RawValue>,
    clip: Option<RawValue>,
    id: Option<u64>,
    /// The name each field was given under, to report the same field given twice.
    given_as: Vec<(Field, String)>,
}

impl RawCaption {
    /// Sets `field` from a value given as `name`; a field given twice (`video` and `video_id`)
    /// is an error naming both.
    fn set(&mut self, field: Field, name: &str, value: RawValue) -> Result<(), String> {
        if let Some((_, first)) = self.given_as.iter().find(|(f, _)| *f == field) {
            return Err(format!(
                "`{first}` and `{name}` both give the {}; keep one",
                field.name()
            ));
        }
        self.given_as.push((field, name.to_string()));
        let slot = match field {
            Field::Video => &mut self.video,
            Field::Caption => &mut self.caption,
            Field::Start => &mut self.start,
            Field::End => &mut self.end,
            Field::Split => &mut self.split,
            Field::Clip => &mut self.clip,
        };
        *slot = Some(value);
        Ok(())
    }

    fn check(self, origin: Location) -> Result<CaptionedClip, String> {
        let video =
            text(self.video, Field::Video)?.ok_or("no video: `video` is missing or empty")?;
        let caption = text(self.caption, Field::Caption)?
            .ok_or("no caption: `caption` is missing or empty")?;
        let start = seconds(self.start, Field::Start)?;
        let end = seconds(self.end, Field::End)?;
        match (start, end) {
            (Some(_), None) => return Err("`start` is given without `end`".into()),
            (None, Some(_)) => return Err("`end` is given without `start`".into()),
            (Some(start), Some(end)) if start >= end => {
                return Err(format!(
                    "`start` {start} is not before `end` {end}; a clip needs start < end"
                ));
            }
            _ => {}
        }
        let split = text(self.split, Field::Split)?
            .map(|s| normalise_split(&s))
            .transpose()?;
        let clip = text(self.clip, Field::Clip)?;
        Ok(CaptionedClip {
            video,
            caption,
            start,
            end,
            split,
            clip,
            id: self.id,
            origin,
        })
    }
}

/// A text field, trimmed; `None` when missing or blank.
fn text(value: Option<RawValue>, field: Field) -> Result<Option<String>, String> {
    match value {
        None | Some(RawValue::Missing) => Ok(None),
        Some(RawValue::Text(text)) => {
            let trimmed = text.trim();
            Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
        }
        // A numeric video key or caption (MSR-VTT-like files with integer ids) is its decimal
        // form; integers print without a fraction.
        Some(RawValue::Number(n)) if field != Field::Caption => Ok(Some(n.to_string())),
        Some(RawValue::Number(n)) => Err(format!(
            "`{}` is the number {n}; expected text",
            field.name()
        )),
    }
}

/// A time field in seconds: a number, or text such as `12.5`, `1:02.5` or `0:01:02.5`.
fn seconds(value: Option<RawValue>, field: Field) -> Result<Option<f64>, String> {
    let name = field.name();
    let seconds = match value {
        None | Some(RawValue::Missing) => return Ok(None),
        Some(RawValue::Number(n)) => n,
        Some(RawValue::Text(text)) if text.trim().is_empty() => return Ok(None),
        Some(RawValue::Text(text)) => parse_seconds(&text).ok_or_else(|| {
            format!("`{name}` is {text:?}; expected seconds (12.5, 1:02.5 or 0:01:02.5)")
        })?,
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{name}` is {seconds}; expected seconds ≥ 0"));
    }
    Ok(Some(seconds))
}

/// `12.5`, `-3` (rejected later as negative), `1:02.5` (minutes) or `0:01:02.5` (hours); minutes
/// and seconds after a colon must be below 60.
pub fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    let parts: Vec<&str> = text.split(':').collect();
    let plain = |s: &str| {
        // Rust's float parser also takes `inf` and `NaN`; a time has digits.
        s.bytes().any(|b| b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
    };
    match parts.as_slice() {
        [seconds] => plain(seconds).then(|| seconds.parse().ok()).flatten(),
        [rest @ .., seconds] if rest.len() <= 2 => {
            let whole = |s: &str| {
                (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| s.parse::<u64>().ok())
                    .flatten()
            };
            let seconds = seconds
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
                .then(|| seconds.parse::<f64>().ok())
                .flatten()
                .filter(|s| *s < 60.0)?;
            let mut total = 0u64;
            for (i, part) in rest.iter().enumerate() {
                let value = whole(part)?;
                // Hours are unbounded; minutes after hours are below 60.
                if i > 0 && value >= 60 {
                    return None;
                }
                total = total * 60 + value;
            }
            Some(total as f64 * 60.0 + seconds)
        }
        _ => None,
    }
}

/// The split a file's name means: the spellings of YouCook2 (`training`, `validation`,
/// `testing`), MSR-VTT (`validate`) and others map to `train`, `val` and `test`; any other valid
/// split name is kept as written (lowercased).
pub fn normalise_split(name: &str) -> Result<String, String> {
    let lower = name.trim().to_ascii_lowercase();
    let split = match lower.as_str() {
        "train" | "training" => "train",
        "val" | "valid" | "validate" | "validation" | "dev" => "val",
        "test" | "testing" => "test",
        other => other,
    };
    if is_valid_split_name(split) {
        Ok(split.to_string())
    } else {
        Err(format!(
            "`split` is {name:?}; expected train, val, test or a name of letters, digits, `_`, \
             `-` and `.`"
        ))
    }
}

/// Where the readers put what they read.
#[derive(Debug, Default)]
struct Collector {
    clips: Vec<CaptionedClip>,
    problems: Vec<CaptionProblem>,
}

impl Collector {
    fn add(&mut self, raw: RawCaption, origin: Location) {
        match raw.check(origin.clone()) {
            Ok(clip) => self.clips.push(clip),
            Err(reason) => self.problem(origin, reason),
        }
    }

    fn problem(&mut self, location: Location, reason: impl Into<String>) {
        self.problems.push(CaptionProblem {
            location,
            reason: reason.into(),
        });
    }

    fn finish(self, path: &Path, format: CaptionFormat, ignored_columns: Vec<String>) -> Captions {
        Captions {
            path: path.to_path_buf(),
            format,
            clips: self.clips,
            problems: self.problems,
            ignored_columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_in_plain_and_clock_notation() {
        assert_eq!(parse_seconds("12.5"), Some(12.5));
        assert_eq!(parse_seconds(" 3 "), Some(3.0));
        assert_eq!(parse_seconds("1:02.5"), Some(62.5));
        assert_eq!(parse_seconds("1:00:02"), Some(3602.0));
        assert_eq!(parse_seconds("-1"), Some(-1.0));
        for bad in [
            "", "abc", "inf", "NaN", "1:60", "1:61:00", "1::2", "a:10", "1:2:3:4",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dataset_split_names_become_train_val_test() {
        for (given, expected) in [
            ("training", "train"),
            ("Validation", "val"),
            ("validate", "val"),
            ("testing", "test"),
            ("extra-1", "extra-1"),
        ] {
            assert_eq!(normalise_split(given).unwrap(), expected);
        }
        assert!(normalise_split("../x").is_err());
        assert!(normalise_split(".hidden").is_err());
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_and_the_next_line_still_read() {
        let mut reader = std::io::Cursor::new(b"abcdefgh\r\nxy\nlast".to_vec());
        let mut line = Vec::new();
        assert_eq!(next_line(&mut reader, &mut line, 4).unwrap(), Some(true));
        assert_eq!(line, b"abcd");
        assert_eq!(next_line(&mut reader, &mut line, 4).unwrap(), Some(false));
        assert_eq!(line, b"xy");
        assert_eq!(next_line(&mut reader, &mut line, 4).unwrap(), Some(false));
        assert_eq!(line, b"last");
        assert_eq!(next_line(&mut reader, &mut line, 4).unwrap(), None);
    }
}
