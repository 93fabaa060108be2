//! The clip table as one Parquet file, written with the `parquet` crate's column writer (no
//! Arrow, no compression codecs): one row group, plain or dictionary pages, standard logical
//! types — strings as `STRING`, embeddings as three-level `LIST<FLOAT>` — so pandas, pyarrow and
//! polars read it with no extra step.

use std::path::Path;
use std::sync::Arc;

use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, FloatType, Int32Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use super::ClipTable;
use crate::analysis::AnalysisError;
use crate::project::{EmbeddingMatrix, write_atomic};

/// The schema, with the map's `x`, `y` only when the table has a layout.
fn schema(with_layout: bool) -> String {
    let list = |name: &str| {
        format!(
            "  REQUIRED group {name} (LIST) {{\n    REPEATED group list {{\n      REQUIRED FLOAT element;\n    }}\n  }}\n"
        )
    };
    let mut message = String::from(
        "message crossclr_clips {\n  REQUIRED BYTE_ARRAY key (STRING);\n  REQUIRED BYTE_ARRAY video (STRING);\n  OPTIONAL BYTE_ARRAY caption (STRING);\n  REQUIRED BYTE_ARRAY split (STRING);\n  OPTIONAL DOUBLE start;\n  OPTIONAL DOUBLE end;\n  OPTIONAL BYTE_ARRAY thumbnail (STRING);\n",
    );
    if with_layout {
        message.push_str("  OPTIONAL FLOAT x;\n  OPTIONAL FLOAT y;\n");
    }
    message.push_str(&list("video_embedding"));
    message.push_str(&list("text_embedding"));
    for side in ["video", "text"] {
        message.push_str(&format!(
            "  REQUIRED DOUBLE connectivity_{side};\n  REQUIRED DOUBLE score_{side};\n  REQUIRED BOOLEAN influential_{side};\n  REQUIRED INT32 degree_{side};\n"
        ));
    }
    message.push('}');
    message
}

/// One column's values, in schema order.
enum Column {
    Strings(Vec<Option<String>>, bool),
    Doubles(Vec<Option<f64>>, bool),
    Floats(Vec<Option<f32>>),
    List(EmbeddingMatrix),
    Bools(Vec<bool>),
    Ints(Vec<i32>),
}

fn levels<T: Clone>(values: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let present = values.iter().flatten().cloned().collect();
    let defined = values.iter().map(|v| i16::from(v.is_some())).collect();
    (present, defined)
}

fn strings(values: Vec<String>) -> Vec<Option<String>> {
    values.into_iter().map(Some).collect()
}

/// Writes `table` to `path` (atomically).
pub fn write_parquet(table: &ClipTable, path: &Path) -> Result<(), AnalysisError> {
    let with_layout = table.layout.is_some();
    let schema = Arc::new(
        parse_message_type(&schema(with_layout)).map_err(|e| AnalysisError::write(path, e))?,
    );
    let mut columns = vec![
        Column::Strings(strings(table.keys.clone()), true),
        Column::Strings(strings(table.videos.clone()), true),
        Column::Strings(table.captions.clone(), false),
        Column::Strings(strings(table.splits.clone()), true),
        Column::Doubles(table.starts.clone(), false),
        Column::Doubles(table.ends.clone(), false),
        Column::Strings(table.thumbnails.clone(), false),
    ];
    if let Some(layout) = &table.layout {
        columns.push(Column::Floats(
            layout.iter().map(|p| p.map(|p| p[0])).collect(),
        ));
        columns.push(Column::Floats(
            layout.iter().map(|p| p.map(|p| p[1])).collect(),
        ));
    }
    columns.push(Column::List(table.video_embedding.clone()));
    columns.push(Column::List(table.text_embedding.clone()));
    for side in [&table.graph.video, &table.graph.text] {
        columns.push(Column::Doubles(
            side.connectivity.iter().copied().map(Some).collect(),
            true,
        ));
        columns.push(Column::Doubles(
            side.score.iter().copied().map(Some).collect(),
            true,
        ));
        columns.push(Column::Bools(side.influential.clone()));
        columns.push(Column::Ints(
            side.degree
                .iter()
                .map(|&d| i32::try_from(d).unwrap_or(i32::MAX))
                .collect(),
        ));
    }
    let fail = |e: parquet::errors::ParquetError| AnalysisError::write(path, e);
    let mut bytes = Vec::new();
    let properties = Arc::new(
        WriterProperties::builder()
            .set_created_by("crossclr export".into())
            .build(),
    );
    let mut writer = SerializedFileWriter::new(&mut bytes, schema, properties).map_err(fail)?;
    let mut group = writer.next_row_group().map_err(fail)?;
    let mut columns = columns.into_iter();
    while let Some(mut column) = group.next_column().map_err(fail)? {
        let values = columns.next().expect("one value list per schema column");
        match values {
            Column::Strings(values, required) => {
                let (present, defined) = levels(&values);
                let present: Vec<ByteArray> = present
                    .into_iter()
                    .map(|s| ByteArray::from(s.into_bytes()))
                    .collect();
                let defined = (!required).then_some(defined.as_slice());
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&present, defined, None)
                    .map_err(fail)?;
            }
            Column::Doubles(values, required) => {
                let (present, defined) = levels(&values);
                let defined = (!required).then_some(defined.as_slice());
                column
                    .typed::<DoubleType>()
                    .write_batch(&present, defined, None)
                    .map_err(fail)?;
            }
            Column::Floats(values) => {
                let (present, defined) = levels(&values);
                column
                    .typed::<FloatType>()
                    .write_batch(&present, Some(&defined), None)
                    .map_err(fail)?;
            }
            Column::List(matrix) => {
                // Every list is non-empty and every element present: definition level 1
                // throughout; repetition level 0 opens a row's list, 1 continues it.
                let defined = vec![1i16; matrix.data.len()];
                let repeated: Vec<i16> = (0..matrix.data.len())
                    .map(|i| i16::from(i % matrix.cols.max(1) != 0))
                    .collect();
                column
                    .typed::<FloatType>()
                    .write_batch(&matrix.data, Some(&defined), Some(&repeated))
                    .map_err(fail)?;
            }
            Column::Bools(values) => {
                column
                    .typed::<BoolType>()
                    .write_batch(&values, None, None)
                    .map_err(fail)?;
            }
            Column::Ints(values) => {
                column
                    .typed::<Int32Type>()
                    .write_batch(&values, None, None)
                    .map_err(fail)?;
            }
        }
        column.close().map_err(fail)?;
    }
    group.close().map_err(fail)?;
    writer.close().map_err(fail)?;
    Ok(write_atomic(path, &bytes)?)
}
