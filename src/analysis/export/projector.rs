//! TensorBoard's Embedding Projector: `tensors.tsv` (one clip embedding per line),
//! `metadata.tsv` (a header row, then one line per clip), `sprite.png` (the thumbnails in a grid,
//! at most 8192×8192: more thumbnails than fit at full size are shrunk) and
//! `projector_config.pbtxt` tying them together. Load the folder with the projector's "Load"
//! button, or point TensorBoard's log directory at it.

use std::fmt::Write as _;
use std::path::Path;

use image::{ImageEncoder, Rgb, RgbImage};

use super::ClipTable;
use crate::analysis::AnalysisError;
use crate::media::ThumbnailCache;
use crate::project::write_atomic;

/// The projector's limit on a sprite's side.
pub const MAX_SPRITE_SIDE: u32 = 8192;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectorReport {
    pub points: usize,
    pub dim: usize,
    /// The side of one sprite tile, when a sprite was written (some clip had a thumbnail).
    pub tile: Option<u32>,
    /// Tiles shrunk below the thumbnails' own size to fit the sprite limit.
    pub shrunk: bool,
    /// Clips without a thumbnail (grey tiles).
    pub missing_thumbnails: usize,
}

/// A TSV field: tabs and line breaks would start a new column or row.
fn field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

/// Writes the projector files of `table` into the folder `dir` (made if missing), each atomically.
pub fn write_projector(
    table: &ClipTable,
    project_dir: &Path,
    dir: &Path,
) -> Result<ProjectorReport, AnalysisError> {
    std::fs::create_dir_all(dir).map_err(|e| AnalysisError::write(dir, e))?;
    let n = table.len();
    let embedding = &table.video_embedding;
    let mut tensors = String::with_capacity(n * embedding.cols * 10);
    for i in 0..n {
        for (c, v) in embedding.row(i).iter().enumerate() {
            if c > 0 {
                tensors.push('\t');
            }
            write!(tensors, "{v}").expect("writing to a String");
        }
        tensors.push('\n');
    }
    write_atomic(&dir.join("tensors.tsv"), tensors.as_bytes())?;

    let mut metadata = String::from(
        "key\tvideo\tsplit\tcaption\tstart\tend\tinfluential_video\tscore_video\tdegree_video\tinfluential_text\tscore_text\n",
    );
    let optional = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for i in 0..n {
        let (video, text) = (&table.graph.video, &table.graph.text);
        writeln!(
            metadata,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4}\t{}\t{}\t{:.4}",
            field(&table.keys[i]),
            field(&table.videos[i]),
            field(&table.splits[i]),
            field(table.captions[i].as_deref().unwrap_or("")),
            optional(table.starts[i]),
            optional(table.ends[i]),
            video.influential[i],
            video.score[i],
            video.degree[i],
            text.influential[i],
            text.score[i],
        )
        .expect("writing to a String");
    }
    write_atomic(&dir.join("metadata.tsv"), metadata.as_bytes())?;

    let missing = table.thumbnails.iter().filter(|t| t.is_none()).count();
    let mut report = ProjectorReport {
        points: n,
        dim: embedding.cols,
        tile: None,
        shrunk: false,
        missing_thumbnails: missing,
    };
    let mut sprite_config = String::new();
    if missing < n {
        let per_row = (n as f64).sqrt().ceil() as u32;
        let native = ThumbnailCache::DEFAULT_SIDE;
        let tile = native.min(MAX_SPRITE_SIDE / per_row.max(1));
        if tile == 0 {
            return Err(AnalysisError::Settings(format!(
                "{n} thumbnails do not fit a {MAX_SPRITE_SIDE}² sprite even at one pixel each"
            )));
        }
        let mut sprite = RgbImage::from_pixel(per_row * tile, per_row * tile, Rgb([0, 0, 0]));
        for (i, thumbnail) in table.thumbnails.iter().enumerate() {
            let (x, y) = ((i as u32 % per_row) * tile, (i as u32 / per_row) * tile);
            let image = match thumbnail {
                Some(path) => {
                    let path = project_dir.join(path);
                    let decoded = image::open(&path).map_err(|e| {
                        AnalysisError::file(&path, format!("cannot read the thumbnail: {e}"))
                    })?;
                    image::imageops::resize(
                        &decoded.to_rgb8(),
                        tile,
                        tile,
                        image::imageops::FilterType::Triangle,
                    )
                }
                None => RgbImage::from_pixel(tile, tile, Rgb([128, 128, 128])),
            };
            image::imageops::replace(&mut sprite, &image, i64::from(x), i64::from(y));
        }
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(
                sprite.as_raw(),
                sprite.width(),
                sprite.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| AnalysisError::write(dir.join("sprite.png"), e))?;
        write_atomic(&dir.join("sprite.png"), &png)?;
        report.tile = Some(tile);
        report.shrunk = tile < native;
        sprite_config = format!(
            "  sprite {{\n    image_path: \"sprite.png\"\n    single_image_dim: {tile}\n    single_image_dim: {tile}\n  }}\n"
        );
    }
    let config = format!(
        "embeddings {{\n  tensor_name: \"crossclr clip embeddings ({})\"\n  tensor_shape: {n}\n  tensor_shape: {}\n  tensor_path: \"tensors.tsv\"\n  metadata_path: \"metadata.tsv\"\n{sprite_config}}}\n",
        field(&table.run).replace('"', "'"),
        embedding.cols
    );
    write_atomic(&dir.join("projector_config.pbtxt"), config.as_bytes())?;
    Ok(report)
}
