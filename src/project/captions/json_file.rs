//! JSON caption documents, told apart by their top-level keys:
//!
//! - YouCook2 (`database`): `{"database": {youtube_id: {"subset", "annotations": [{"segment":
//!   [start, end], "id", "sentence"}], …}}}`; each segment is a clip keyed by its `id`, the
//!   subset (`training`, `validation`, `testing`) is the video's split.
//! - MSR-VTT (`sentences`, usually with `videos`): each sentence is a caption of its whole video
//!   (the distributed clips are already cut to the `start time`…`end time` of the YouTube
//!   source, so those times are not times in the files), keyed by its `sen_id`; a video's
//!   `split` (`train`, `validate`, `test`) is its split.
//! - A top-level array of the objects JSON Lines holds one per line.
//!
//! The document is parsed an entry at a time (one video, one sentence), so a large file never
//! exists as one tree in memory. A document that is not valid JSON (including invalid UTF-8,
//! which JSON does not allow) is an error with its line and column: unlike a line-based file,
//! nothing after a syntax error can be trusted.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::jsonl_file::{kind, object_fields, raw_value};
use super::{
    CaptionFormat, Captions, Collector, Field, Location, RawCaption, RawValue, normalise_split,
};
use crate::project::error::ProjectError;

pub(super) fn read(path: &Path) -> Result<Captions, ProjectError> {
    let file = File::open(path).map_err(|e| ProjectError::io("open", path, e))?;
    let mut deserializer = serde_json::Deserializer::from_reader(BufReader::new(file));
    let mut document = Document::default();
    let not_json = |e: serde_json::Error| {
        if e.is_io() {
            ProjectError::io("read", path, e.into())
        } else {
            ProjectError::file(path, format!("not readable as caption JSON: {e}"))
        }
    };
    Top(&mut document)
        .deserialize(&mut deserializer)
        .map_err(not_json)?;
    deserializer.end().map_err(not_json)?;
    document.finish(path)
}

/// What the document held so far.
#[derive(Debug, Default)]
struct Document {
    collector: Collector,
    /// The first few top-level keys, to say what an unknown document holds.
    top_keys: Vec<String>,
    array: bool,
    database: bool,
    videos: bool,
    sentences: bool,
    /// MSR-VTT: the split of each video of `videos`, and where it was given.
    video_splits: HashMap<String, (String, String)>,
}

impl Document {
    fn finish(mut self, path: &Path) -> Result<Captions, ProjectError> {
        let format = if self.array {
            CaptionFormat::JsonArray
        } else if self.database && (self.videos || self.sentences) {
            return Err(ProjectError::file(
                path,
                "has both `database` (YouCook2) and `videos`/`sentences` (MSR-VTT); expected one \
                 dataset's annotations",
            ));
        } else if self.database {
            CaptionFormat::YouCook2
        } else if self.sentences {
            for clip in &mut self.collector.clips {
                if clip.split.is_none()
                    && let Some((split, _)) = self.video_splits.get(&clip.video)
                {
                    clip.split = Some(split.clone());
                }
            }
            CaptionFormat::MsrVtt
        } else if self.videos {
            return Err(ProjectError::file(
                path,
                "has MSR-VTT's `videos` but no `sentences`; the captions are in `sentences`",
            ));
        } else {
            let keys = if self.top_keys.is_empty() {
                "no keys".to_string()
            } else {
                format!("keys {}", self.top_keys.join(", "))
            };
            return Err(ProjectError::file(
                path,
                format!(
                    "unknown caption JSON (top-level {keys}); expected YouCook2's `database`, \
                     MSR-VTT's `videos` and `sentences`, or an array of {{\"video\", \
                     \"caption\"}} objects"
                ),
            ));
        };
        Ok(self.collector.finish(path, format, Vec::new()))
    }

    fn problem(&mut self, path: String, reason: impl Into<String>) {
        self.collector.problem(Location::Json(path), reason);
    }

    /// One YouCook2 video: a problem with the video itself skips all its segments.
    fn youcook2_video(&mut self, key: String, value: Value) {
        let path = format!("database.{key}");
        let Value::Object(video) = value else {
            let reason = format!(
                "is {}; expected a video object with `annotations`",
                kind(&value)
            );
            return self.problem(path, reason);
        };
        let split = match video.get("subset").map(|s| raw_value("subset", s)) {
            None | Some(Ok(RawValue::Missing)) => None,
            Some(Ok(RawValue::Text(subset))) => match normalise_split(&subset) {
                Ok(split) => Some(split),
                Err(reason) => return self.problem(path, reason.replace("`split`", "`subset`")),
            },
            Some(Ok(RawValue::Number(n))) => {
                return self.problem(path, format!("`subset` is {n}; expected a subset name"));
            }
            Some(Err(reason)) => return self.problem(path, reason),
        };
        let annotations = match video.get("annotations") {
            Some(Value::Array(annotations)) => annotations,
            Some(other) => {
                let reason = format!(
                    "`annotations` is {}; expected an array of segments",
                    kind(other)
                );
                return self.problem(path, reason);
            }
            None => return self.problem(path, "has no `annotations`"),
        };
        for (i, annotation) in annotations.iter().enumerate() {
            let location = Location::Json(format!("{path}.annotations[{i}]"));
            match youcook2_segment(&key, split.as_deref(), annotation) {
                Ok(raw) => self.collector.add(raw, location),
                Err(reason) => self.collector.problem(location, reason),
            }
        }
    }

    /// One MSR-VTT `videos` entry: only its id and split matter here.
    fn msr_video(&mut self, index: usize, value: Value) {
        let path = format!("videos[{index}]");
        let Value::Object(video) = value else {
            let reason = format!("is {}; expected a video object", kind(&value));
            return self.problem(path, reason);
        };
        let id = match video.get("video_id").map(|v| raw_value("video_id", v)) {
            Some(Ok(RawValue::Text(id))) if !id.trim().is_empty() => id.trim().to_string(),
            Some(Err(reason)) => return self.problem(path, reason),
            _ => return self.problem(path, "has no `video_id`"),
        };
        let split = match video.get("split").map(|v| raw_value("split", v)) {
            None | Some(Ok(RawValue::Missing)) => return,
            Some(Ok(RawValue::Text(split))) => match normalise_split(&split) {
                Ok(split) => split,
                Err(reason) => return self.problem(path, reason),
            },
            Some(Ok(RawValue::Number(n))) => {
                return self.problem(path, format!("`split` is {n}; expected a split name"));
            }
            Some(Err(reason)) => return self.problem(path, reason),
        };
        match self.video_splits.get(&id) {
            Some((first, first_path)) if *first != split => {
                let reason = format!(
                    "video {id:?} is in split `{split}` here but in `{first}` at {first_path}; \
                     the first is kept"
                );
                self.problem(path, reason);
            }
            Some(_) => {}
            None => {
                self.video_splits.insert(id, (split, path));
            }
        }
    }

    /// One MSR-VTT sentence: a caption of its whole video.
    fn msr_sentence(&mut self, index: usize, value: Value) {
        let location = Location::Json(format!("sentences[{index}]"));
        let raw = match value {
            Value::Object(sentence) => object_fields(&sentence).and_then(|mut raw| {
                raw.id = whole_number(&sentence, "sen_id")?;
                Ok(raw)
            }),
            other => Err(format!(
                "is {}; expected a sentence object {{\"video_id\", \"caption\"}}",
                kind(&other)
            )),
        };
        match raw {
            Ok(raw) => self.collector.add(raw, location),
            Err(reason) => self.collector.problem(location, reason),
        }
    }

    /// One element of a top-level array of caption objects.
    fn array_entry(&mut self, index: usize, value: Value) {
        let location = Location::Json(format!("[{index}]"));
        let raw = match value {
            Value::Object(object) => object_fields(&object),
            other => Err(format!(
                "is {}; expected a caption object {{\"video\", \"caption\", …}}",
                kind(&other)
            )),
        };
        match raw {
            Ok(raw) => self.collector.add(raw, location),
            Err(reason) => self.collector.problem(location, reason),
        }
    }
}

/// One YouCook2 segment of video `key`.
fn youcook2_segment(
    key: &str,
    split: Option<&str>,
    annotation: &Value,
) -> Result<RawCaption, String> {
    let Value::Object(annotation) = annotation else {
        return Err(format!(
            "is {}; expected a segment object {{\"segment\", \"sentence\", \"id\"}}",
            kind(annotation)
        ));
    };
    let mut raw = RawCaption::default();
    raw.set(
        Field::Video,
        "database key",
        RawValue::Text(key.to_string()),
    )?;
    if let Some(split) = split {
        raw.set(Field::Split, "subset", RawValue::Text(split.to_string()))?;
    }
    if let Some(sentence) = annotation.get("sentence") {
        raw.set(Field::Caption, "sentence", raw_value("sentence", sentence)?)?;
    }
    let bounds = match annotation.get("segment") {
        Some(Value::Array(pair)) if pair.len() == 2 => {
            pair.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>()
        }
        _ => None,
    };
    let Some(bounds) = bounds else {
        return Err(match annotation.get("segment") {
            None => "has no `segment`; expected [start, end] in seconds".into(),
            Some(other) => format!("`segment` is {other}; expected [start, end] in seconds"),
        });
    };
    raw.set(Field::Start, "segment[0]", RawValue::Number(bounds[0]))?;
    raw.set(Field::End, "segment[1]", RawValue::Number(bounds[1]))?;
    raw.id = whole_number(annotation, "id")?;
    Ok(raw)
}

/// An optional id field: a whole number ≥ 0.
fn whole_number(object: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` is {value}; expected a whole number ≥ 0")),
    }
}

/// The whole document: an object with known top-level keys, or an array.
struct Top<'a>(&'a mut Document);

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (YouCook2 or MSR-VTT annotations) or an array of captions")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let document = self.0;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "database" => {
                    document.database = true;
                    map.next_value_seed(EachEntry {
                        expecting: "`database` as an object of YouCook2 videos keyed by id",
                        visit: |key, value| document.youcook2_video(key, value),
                    })?;
                }
                "videos" => {
                    document.videos = true;
                    map.next_value_seed(EachElement {
                        expecting: "`videos` as an array of MSR-VTT video objects",
                        visit: |i, value| document.msr_video(i, value),
                    })?;
                }
                "sentences" => {
                    document.sentences = true;
                    map.next_value_seed(EachElement {
                        expecting: "`sentences` as an array of MSR-VTT sentence objects",
                        visit: |i, value| document.msr_sentence(i, value),
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if document.top_keys.len() < 8 {
                document.top_keys.push(format!("{key:?}"));
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let document = self.0;
        document.array = true;
        EachElement {
            expecting: "an array of caption objects",
            visit: |i, value| document.array_entry(i, value),
        }
        .visit_seq(seq)
    }
}

/// Hands each element of an array to `visit`, one parsed element at a time.
struct EachElement<F> {
    expecting: &'static str,
    visit: F,
}

impl<'de, F: FnMut(usize, Value)> DeserializeSeed<'de> for EachElement<F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(usize, Value)> Visitor<'de> for EachElement<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(value) = seq.next_element::<Value>()? {
            (self.visit)(index, value);
            index += 1;
        }
        Ok(())
    }
}

/// Hands each entry of an object to `visit`, one parsed value at a time.
struct EachEntry<F> {
    expecting: &'static str,
    visit: F,
}

impl<'de, F: FnMut(String, Value)> DeserializeSeed<'de> for EachEntry<F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, F: FnMut(String, Value)> Visitor<'de> for EachEntry<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            (self.visit)(key, value);
        }
        Ok(())
    }
}
