//! CSV captions: `video,caption[,start,end[,split]]` per record, RFC 4180 quoting (a caption with
//! commas, quotes or newlines is in double quotes, a quote inside doubled). A first row whose
//! cells name a video and a caption column (`video,caption,start,end`, `video_id,sentence`, …)
//! is a header: columns are then found by name, in any order, and unknown ones are ignored.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};

use super::{CaptionFormat, Captions, Collector, Field, Location, RawCaption, RawValue};
use crate::project::error::ProjectError;

/// The columns of a file without a header, in order.
const POSITIONAL: [Field; 5] = [
    Field::Video,
    Field::Caption,
    Field::Start,
    Field::End,
    Field::Split,
];

/// A record with more newlines inside its fields than this is taken for an unclosed quote that
/// swallowed the lines after it (a real caption has a few lines at most); it is reported, not
/// imported.
const MAX_RECORD_NEWLINES: usize = 16;

pub(super) fn read(path: &Path) -> Result<Captions, ProjectError> {
    let file = File::open(path).map_err(|e| ProjectError::io("open", path, e))?;
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(LineCounter::new(file));
    let mut collector = Collector::default();
    let mut record = ByteRecord::new();
    let mut columns: Option<Vec<Option<Field>>> = None;
    let mut ignored_columns = Vec::new();
    let mut first = true;
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| ProjectError::file(path, format!("cannot read the CSV: {e}")))?;
        if !more {
            break;
        }
        if record.iter().all(|cell| cell.trim_ascii().is_empty()) {
            continue;
        }
        // csv's own record positions point before any blank lines that precede a record.
        let start = record.position().map_or(0, |p| p.byte());
        let line = reader.get_ref().line_of_record(start);
        let inner_newlines = record
            .iter()
            .map(|cell| cell.iter().filter(|&&b| b == b'\n').count())
            .sum::<usize>();
        let location = Location::Line(line);
        if first {
            first = false;
            if let Some(header) = header(&record) {
                let header = header.map_err(|message| ProjectError::Line {
                    path: path.to_path_buf(),
                    line,
                    message,
                })?;
                ignored_columns = record
                    .iter()
                    .zip(&header)
                    .filter(|(_, field)| field.is_none())
                    .map(|(name, _)| String::from_utf8_lossy(name).trim().to_string())
                    .collect();
                columns = Some(header);
                continue;
            }
        }
        if inner_newlines > MAX_RECORD_NEWLINES {
            collector.problem(
                location,
                format!(
                    "a quoted field holds {inner_newlines} line breaks; is a closing `\"` \
                     missing? (the lines after it were read as part of it, not as captions)"
                ),
            );
            continue;
        }
        let checked = fields(&record, columns.as_deref())
            .and_then(|raw| raw.check(location.clone()))
            .map_err(|reason| {
                // Without a header, an unquoted comma in a caption turns its tail into `start`.
                let times = reason.contains("`start`") || reason.contains("`end`");
                if columns.is_none() && times {
                    format!("{reason} (a caption with commas must be in double quotes)")
                } else {
                    reason
                }
            });
        match checked {
            Ok(clip) => collector.clips.push(clip),
            Err(reason) => collector.problem(location, reason),
        }
    }
    Ok(collector.finish(path, CaptionFormat::Csv, ignored_columns))
}

/// The columns a first row names, if it is a header: `None` when it is data (it names no video
/// or no caption column), an error when a field is named twice.
fn header(record: &ByteRecord) -> Option<Result<Vec<Option<Field>>, String>> {
    let fields: Vec<Option<Field>> = record
        .iter()
        .map(|cell| std::str::from_utf8(cell).ok().and_then(Field::from_name))
        .collect();
    if !(fields.contains(&Some(Field::Video)) && fields.contains(&Some(Field::Caption))) {
        return None;
    }
    for (i, field) in fields.iter().enumerate() {
        if let Some(field) = field
            && let Some(j) = fields[..i].iter().position(|f| f == &Some(*field))
        {
            return Some(Err(format!(
                "header columns {} and {} both name the {}; keep one",
                j + 1,
                i + 1,
                field.name()
            )));
        }
    }
    Some(Ok(fields))
}

/// The fields of a data record, by the header's columns or by position.
fn fields(record: &ByteRecord, columns: Option<&[Option<Field>]>) -> Result<RawCaption, String> {
    let expected = match columns {
        Some(columns) => columns.len(),
        None => POSITIONAL.len(),
    };
    if record.len() > expected {
        return Err(match columns {
            Some(_) => format!(
                "{} fields, but the header has {expected} columns (a caption with commas must \
                 be in double quotes)",
                record.len()
            ),
            None => format!(
                "{} fields; expected video,caption[,start,end[,split]] (a caption with commas \
                 must be in double quotes)",
                record.len()
            ),
        });
    }
    let mut raw = RawCaption::default();
    for (i, cell) in record.iter().enumerate() {
        let field = match columns {
            Some(columns) => columns[i],
            None => Some(POSITIONAL[i]),
        };
        let Some(field) = field else { continue };
        let text = std::str::from_utf8(cell).map_err(|e| {
            format!(
                "the {} (field {}) is not valid UTF-8 (byte {} of the field); save the file as \
                 UTF-8",
                field.name(),
                i + 1,
                e.valid_up_to()
            )
        })?;
        let value = if text.trim().is_empty() {
            RawValue::Missing
        } else {
            RawValue::Text(text.to_string())
        };
        raw.set(field, field.name(), value)?;
    }
    Ok(raw)
}

/// A reader that notes where the newlines it passes on are and which end blank lines, so the
/// line a record starts on can be told. Only newlines the parser has not yet passed are kept
/// (csv reads ahead a buffer's worth), so memory stays bounded whatever the file's length.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Whether the line being read so far holds anything but `\r`.
    line_has_content: bool,
    newlines: RefCell<Newlines>,
}

#[derive(Default)]
struct Newlines {
    /// Newlines before the first of `ahead`.
    passed: usize,
    /// Offsets of the newlines not yet passed, and whether each ends a blank line.
    ahead: VecDeque<(u64, bool)>,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            line_has_content: false,
            newlines: RefCell::default(),
        }
    }

    /// The 1-based line of the first record after byte `start`, which is where the previous
    /// record ended: at its `\n`, or at the `\n` of its `\r\n`. Starts must not go backwards.
    fn line_of_record(&self, start: u64) -> usize {
        let mut newlines = self.newlines.borrow_mut();
        while let Some(&(offset, blank)) = newlines.ahead.front() {
            if offset > start && !blank {
                break;
            }
            newlines.ahead.pop_front();
            newlines.passed += 1;
        }
        newlines.passed + 1
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        let newlines = self.newlines.get_mut();
        for (i, &byte) in buffer[..n].iter().enumerate() {
            match byte {
                b'\n' => {
                    let blank = !self.line_has_content;
                    newlines.ahead.push_back((self.offset + i as u64, blank));
                    self.line_has_content = false;
                }
                b'\r' => {}
                _ => self.line_has_content = true,
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line numbers of the captions read from `text`.
    fn lines(text: &str) -> Vec<(String, usize)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, text).unwrap();
        read(&path)
            .unwrap()
            .clips
            .into_iter()
            .map(|clip| match clip.origin {
                Location::Line(line) => (clip.caption, line),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn records_keep_their_lines_across_blank_lines_line_endings_and_quoted_newlines() {
        let expected = [("a", 1), ("b\nc", 3), ("d", 7)];
        let expected: Vec<(String, usize)> =
            expected.iter().map(|(c, l)| (c.to_string(), *l)).collect();
        assert_eq!(lines("v,a\n\nv,\"b\nc\"\n\n\nv,d"), expected);
        assert_eq!(lines("v,a\r\n\r\nv,\"b\nc\"\r\n\r\n\r\nv,d\r\n"), expected);
        assert_eq!(
            lines("\n\r\nv,a\n   \nv,\"b\nc\"\nv,d"),
            [
                ("a".to_string(), 3),
                ("b\nc".to_string(), 5),
                ("d".to_string(), 7)
            ]
        );
    }
}
