//! JSON Lines captions: one object per line with `video` and `caption` and optionally `start`,
//! `end` (seconds, or `1:02.5` text), `split` and `clip` (the clip's whole key). The synonyms
//! CSV headers accept (`video_id`, `sentence`, …) work as keys too; other keys are ignored.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde_json::{Map, Value};

use super::{
    CaptionFormat, Captions, Collector, Field, Location, MAX_LINE_BYTES, RawCaption, RawValue,
    next_line, strip_bom,
};
use crate::project::error::ProjectError;

pub(super) fn read(path: &Path) -> Result<Captions, ProjectError> {
    let file = File::open(path).map_err(|e| ProjectError::io("open", path, e))?;
    let mut reader = BufReader::new(file);
    let mut collector = Collector::default();
    let mut bytes = Vec::new();
    let mut line = 0;
    while let Some(cut) = next_line(&mut reader, &mut bytes, MAX_LINE_BYTES)
        .map_err(|e| ProjectError::io("read", path, e))?
    {
        line += 1;
        let location = Location::Line(line);
        let text = if line == 1 { strip_bom(&bytes) } else { &bytes };
        if cut {
            collector.problem(
                location,
                format!(
                    "longer than {MAX_LINE_BYTES} bytes; one caption object per line is expected"
                ),
            );
            continue;
        }
        let text = match std::str::from_utf8(text) {
            Ok(text) => text.trim(),
            Err(e) => {
                collector.problem(
                    location,
                    format!(
                        "not valid UTF-8 (byte {} of the line); save the file as UTF-8",
                        e.valid_up_to() + 1
                    ),
                );
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(other) => {
                collector.problem(
                    location,
                    format!(
                        "is {}; expected a caption object {{\"video\", \"caption\", …}}",
                        kind(&other)
                    ),
                );
                continue;
            }
            Err(e) => {
                collector.problem(location, format!("not valid JSON: {e}"));
                continue;
            }
        };
        match object_fields(&object) {
            Ok(raw) => collector.add(raw, location),
            Err(reason) => collector.problem(location, reason),
        }
    }
    Ok(collector.finish(path, CaptionFormat::JsonLines, Vec::new()))
}

/// The caption fields of one JSON object; keys that name no field are ignored.
pub(super) fn object_fields(object: &Map<String, Value>) -> Result<RawCaption, String> {
    let mut raw = RawCaption::default();
    for (key, value) in object {
        let Some(field) = Field::from_name(key) else {
            continue;
        };
        raw.set(field, key, raw_value(key, value)?)?;
    }
    Ok(raw)
}

/// A JSON value as a field's raw value: strings and numbers are values, `null` is missing.
pub(super) fn raw_value(key: &str, value: &Value) -> Result<RawValue, String> {
    match value {
        Value::Null => Ok(RawValue::Missing),
        Value::String(text) => Ok(RawValue::Text(text.clone())),
        Value::Number(number) => number
            .as_f64()
            .map(RawValue::Number)
            .ok_or_else(|| format!("`{key}` is {number}, not a representable number")),
        other => Err(format!(
            "`{key}` is {}; expected a string or a number",
            kind(other)
        )),
    }
}

/// How a JSON value is described in messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
