//! CSV captions: `video,caption[,start,end[,split]]` per record, RFC 4180 quoting (a caption with
//! commas, quotes or newlines is in double quotes, a quote inside doubled). A first row whose
//! cells name a video and a caption column (`video,caption,start,end`, `video_id,sentence`, …)
//! is a header: columns are then found by name, in any order, and unknown ones are ignored.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
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
    let mut collector = Collector::default();
    let mut columns: Option<Vec<Option<Field>>> = None;
    let mut ignored_columns = Vec::new();
    let mut first = true;
    // Where reading starts: the whole file, then after an unclosed quote the line after the one
    // it opened on (the lines it swallowed are read again, as the records they are).
    let mut resume: Option<(u64, usize)> = Some((0, 0));
    while let Some((offset, lines_before)) = resume.take() {
        let mut file = File::open(path).map_err(|e| ProjectError::io("open", path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| ProjectError::io("read", path, e))?;
        let mut reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LineCounter::new(file));
        let mut record = ByteRecord::new();
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
            let line = lines_before + reader.get_ref().line_of_record(start);
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
            // The record holding the open quote is the last, and ends where the file does.
            let end = reader.position().byte();
            if let Some(unclosed) = reader.get_ref().unclosed
                && (start..end).contains(&unclosed.offset)
            {
                let quote_line = lines_before + unclosed.line;
                let last_line = lines_before + reader.get_ref().lines_read();
                let again = match unclosed.next_line {
                    Some(next) if quote_line < last_line => {
                        resume = Some((offset + next, quote_line));
                        if quote_line + 1 == last_line {
                            format!("; line {last_line} after it is read again as a record")
                        } else {
                            format!(
                                "; lines {}–{last_line} after it are read again as records",
                                quote_line + 1
                            )
                        }
                    }
                    _ => String::new(),
                };
                collector.problem(
                    location,
                    format!(
                        "the `\"` on line {quote_line} opens a quoted field that is never \
                         closed (the file ends inside it); the entry is skipped{again}"
                    ),
                );
                break;
            }
            if let Some(tail) = comma_separated_tail(&record) {
                collector.problem(
                    location,
                    format!(
                        "a quoted field runs over lines {line}–{} and holds a line with \
                         comma-separated fields after a line break ({tail:?}); is a closing \
                         `\"` missing? (those lines were read as part of it, not as captions; \
                         a caption that really runs over lines must not hold such a line)",
                        line + inner_newlines
                    ),
                );
                continue;
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
    }
    Ok(collector.finish(path, CaptionFormat::Csv, ignored_columns))
}

/// The first line after a line break inside a field of `record` that holds a comma (shortened):
/// the mark of a quote left open, which reads the records after it into one field.
fn comma_separated_tail(record: &ByteRecord) -> Option<String> {
    record.iter().find_map(|cell| {
        cell.split(|&b| b == b'\n')
            .skip(1)
            .find(|line| line.contains(&b','))
            .map(|line| {
                let text = String::from_utf8_lossy(line.trim_ascii());
                text.chars().take(60).collect()
            })
    })
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
///
/// It also follows the quoting as csv reads it (RFC 4180: a `"` at the start of a field opens a
/// quoted field, `""` inside is a quote, any other `"` closes it), to tell a quote still open
/// when the file ends: csv takes the rest of the file into that field without a word.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Whether the line being read so far holds anything but `\r`.
    line_has_content: bool,
    newlines: RefCell<Newlines>,
    /// Every newline read so far.
    newline_count: usize,
    quoting: Quoting,
    /// The quoted field open now: where it opened.
    open: Option<Unclosed>,
    /// Set at the end of the file when a quoted field is still open.
    unclosed: Option<Unclosed>,
}

/// Where csv is in a record, as far as quotes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: a doubled quote if another follows, else the field's end.
    QuoteInQuoted,
}

/// A quoted field that was opened and (at the end of the file) never closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unclosed {
    /// Of the opening `"`.
    offset: u64,
    /// 1-based, of the opening `"`.
    line: usize,
    /// The offset just after the first newline inside the field: where its next line starts.
    next_line: Option<u64>,
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
            newline_count: 0,
            quoting: Quoting::FieldStart,
            open: None,
            unclosed: None,
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

    /// The lines read so far (a last line without a newline counts).
    fn lines_read(&self) -> usize {
        self.newline_count + usize::from(self.line_has_content)
    }

    fn follow_quotes(&mut self, at: u64, byte: u8) {
        let ends_field = matches!(byte, b',' | b'\n' | b'\r');
        self.quoting = match (self.quoting, byte) {
            (Quoting::FieldStart, b'"') => {
                self.open = Some(Unclosed {
                    offset: at,
                    line: self.newline_count + 1,
                    next_line: None,
                });
                Quoting::Quoted
            }
            (Quoting::FieldStart | Quoting::Unquoted, _) if ends_field => Quoting::FieldStart,
            (Quoting::FieldStart | Quoting::Unquoted, _) => Quoting::Unquoted,
            (Quoting::Quoted, b'"') => Quoting::QuoteInQuoted,
            (Quoting::Quoted, _) => {
                if let Some(open) = &mut self.open
                    && byte == b'\n'
                    && open.next_line.is_none()
                {
                    open.next_line = Some(at + 1);
                }
                Quoting::Quoted
            }
            (Quoting::QuoteInQuoted, b'"') => Quoting::Quoted,
            (Quoting::QuoteInQuoted, _) => {
                self.open = None;
                if ends_field {
                    Quoting::FieldStart
                } else {
                    Quoting::Unquoted
                }
            }
        };
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buffer)?;
        if n == 0 && !buffer.is_empty() && self.quoting == Quoting::Quoted {
            self.unclosed = self.open;
        }
        for (i, &byte) in buffer[..n].iter().enumerate() {
            let at = self.offset + i as u64;
            self.follow_quotes(at, byte);
            match byte {
                b'\n' => {
                    let blank = !self.line_has_content;
                    self.newlines.get_mut().ahead.push_back((at, blank));
                    self.newline_count += 1;
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

    /// The captions (with their lines) and the problems (line, reason) read from `text`.
    type ReadBack = (Vec<(String, usize)>, Vec<(usize, String)>);

    fn read_text(text: &str) -> ReadBack {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, text).unwrap();
        let captions = read(&path).unwrap();
        let line = |location: &Location| match location {
            Location::Line(line) => *line,
            other => panic!("{other:?}"),
        };
        (
            captions
                .clips
                .iter()
                .map(|clip| (clip.caption.clone(), line(&clip.origin)))
                .collect(),
            captions
                .problems
                .iter()
                .map(|problem| (line(&problem.location), problem.reason.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_quote_left_open_to_the_end_is_reported_with_its_line_and_the_rest_is_read() {
        let (clips, problems) = read_text(
            "video,caption,start,end\nv1,\"unterminated quote,0,2\nv2,fine caption,0,4\n",
        );
        assert_eq!(clips, [("fine caption".to_string(), 3)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, 2);
        assert!(
            problems[0].1.contains("line 2") && problems[0].1.contains("never closed"),
            "{problems:?}"
        );

        // On the last line, without a newline, and after a record that ran over lines.
        let (clips, problems) = read_text("v,\"a\nb\"\nv,\"open");
        assert_eq!(clips, [("a\nb".to_string(), 1)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, 3);
        assert!(problems[0].1.contains("never closed"), "{problems:?}");
    }

    #[test]
    fn a_quoted_field_that_swallows_records_is_reported_with_its_line() {
        let (clips, problems) = read_text(
            "video,caption,start,end\nv1,\"missing close,0,2\nv2,fine,0,4\nv3,\"ok\",1,2\n\
             v4,last,0,1\n",
        );
        assert_eq!(clips, [("last".to_string(), 5)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, 2);
        assert!(
            problems[0].1.contains("lines 2–4") && problems[0].1.contains("v2,fine,0,4"),
            "{problems:?}"
        );
        // A caption over two lines without such a tail is a caption.
        let (clips, problems) = read_text("v1,\"one line\nand the next.\",0,2\n");
        assert_eq!(clips, [("one line\nand the next.".to_string(), 1)]);
        assert!(problems.is_empty(), "{problems:?}");
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
