//! Making a project from precomputed features: the result every importer produces, how it is
//! written, and the `--features` importer (one safetensors file, all splits, padded or pooled).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::config::{EncoderSpec, HeadKind, PRECOMPUTED, ProjectConfig, SourceKind};
use super::error::ProjectError;
use super::features::{Sequences, SplitFeatures};
use super::manifest::ManifestEntry;
use super::{Project, is_valid_split_name, sort_splits};

/// An item (clip, video, split) an importer left out, and why. The import goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What was skipped: `video abc`, `train clip 12 (train-clip-00012)`, `split test`.
    pub item: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.item, self.reason)
    }
}

/// Everything an importer read, held in memory until it is written as a project, so a failed
/// import leaves no half-made project behind.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// Train, val, test first, then the rest by name; none is empty.
    pub splits: Vec<SplitFeatures>,
    /// One entry per clip, split by split, in store order.
    pub manifest: Vec<ManifestEntry>,
    pub skipped: Vec<Skipped>,
}

impl Import {
    pub fn num_clips(&self) -> usize {
        self.splits.iter().map(SplitFeatures::num_clips).sum()
    }

    pub fn num_videos(&self) -> usize {
        self.splits.iter().map(SplitFeatures::num_videos).sum()
    }

    /// Width of a frame's feature vector (the same in every split).
    pub fn video_dim(&self) -> Option<usize> {
        self.splits.first().map(|s| s.video.dim)
    }

    /// Width of a token's feature vector (the same in every split).
    pub fn text_dim(&self) -> Option<usize> {
        self.splits.first().map(|s| s.text.dim)
    }

    /// The most frames any clip has.
    pub fn max_frames_per_clip(&self) -> usize {
        self.splits
            .iter()
            .flat_map(|s| (0..s.video.len()).map(|i| s.video.rows(i)))
            .max()
            .unwrap_or(0)
    }

    /// Records the encoders (`precomputed`, with the data's widths) and picks the head: COOT's
    /// transformers when clips have frames to attend over, the MLP on pooled features otherwise.
    pub fn configure(&self, config: &mut ProjectConfig) {
        if let (Some(video), Some(text)) = (self.video_dim(), self.text_dim()) {
            config.encoders.video = Some(EncoderSpec {
                name: PRECOMPUTED.into(),
                dim: video,
            });
            config.encoders.text = Some(EncoderSpec {
                name: PRECOMPUTED.into(),
                dim: text,
            });
        }
        config.model.head = if self.max_frames_per_clip() > 1 {
            HeadKind::Coot
        } else {
            HeadKind::Mlp
        };
    }

    /// Creates the project in `dir` (missing or empty) with `config`, the manifest and one
    /// feature file per split. If writing fails part-way (a full disk), what this call wrote is
    /// removed again, so the same command can simply be rerun.
    ///
    /// A source whose training split (`train.train_split`) was there but lost every clip (all
    /// skipped: no frames, bad values) makes no project: there would be nothing to train on. The
    /// error says why, what was skipped first and what was imported. (A source without that
    /// split at all, features for evaluation only, is still made.)
    pub fn write(&self, dir: &Path, config: ProjectConfig) -> Result<Project, ProjectError> {
        let train = &config.train.train_split;
        let lost = self
            .skipped
            .iter()
            .find(|s| s.item == format!("split {train}"));
        if let Some(lost) = lost
            && !self.splits.iter().any(|s| &s.split == train)
        {
            let imported: Vec<String> = self
                .splits
                .iter()
                .map(|s| format!("`{}` ({} clips)", s.split, s.num_clips()))
                .collect();
            let first = self
                .skipped
                .first()
                .map(|s| format!("; {} items skipped, the first: {s}", self.skipped.len()))
                .unwrap_or_default();
            return Err(ProjectError::file(
                dir,
                format!(
                    "not made: the training split `{train}` has no clips ({}){first}; \
                     imported: {}. A project needs clips to train on",
                    lost.reason,
                    if imported.is_empty() {
                        "nothing".to_string()
                    } else {
                        imported.join(", ")
                    }
                ),
            ));
        }
        Project::create_filled(dir, config, |project| {
            project.write_manifest(&self.manifest)?;
            self.splits
                .iter()
                .try_for_each(|split| project.save_split(split))
        })
    }
}

/// Where imported features came from, as `crossclr.toml`'s `[source]` records it.
#[derive(Debug, Clone, Copy)]
pub enum FeatureSource<'a> {
    /// A safetensors file of features.
    Features(&'a Path),
    /// COOT's release.
    Coot(&'a super::coot::CootPaths),
}

impl FeatureSource<'_> {
    /// Records the source's kind and paths (absolute) in `config`.
    pub fn record(&self, config: &mut ProjectConfig) {
        let source = &mut config.source;
        let path = |p: &Path| Some(super::recorded_path(p));
        match self {
            FeatureSource::Features(features) => {
                source.kind = SourceKind::Features;
                source.features = path(features);
            }
            FeatureSource::Coot(paths) => {
                source.kind = SourceKind::Coot;
                source.coot_meta = path(&paths.meta);
                source.video_h5 = path(&paths.video_h5);
                source.text_h5 = path(&paths.text_h5);
                source.sentence_splits = path(&paths.sentence_splits);
            }
        }
    }
}

/// The tensors a split may have in a `--features` file, `{split}/{field}`.
const FIELDS: [&str; 5] = [
    "video",
    "video_frames",
    "text",
    "text_tokens",
    "video_of_clip",
];

/// Reads a `--features` file: per split S, `S/video` (N×T×Dv with `S/video_frames`, or pooled
/// N×Dv), `S/text` (N×L×Dt with `S/text_tokens`, or N×Dt), `S/video_of_clip` (N ints, the clips
/// of a video consecutive); floats in f32, f64, f16 or bf16, counts in any integer type. Keys
/// come from the `S/clip_keys` and `S/video_keys` metadata (JSON arrays; video keys indexed by
/// `video_of_clip`) or are generated as `S-clip-00000` and `S-video-00000`.
///
/// A file that does not have this layout is an error naming the tensor and its shape. A clip
/// whose own values are bad (a count of 0 or past the padding, a non-finite value) is skipped and
/// reported; a video left without clips goes with it.
pub fn import_features(path: &Path) -> Result<Import, ProjectError> {
    let bytes = std::fs::read(path).map_err(|e| ProjectError::io("read", path, e))?;
    let not_safetensors = |e: safetensors::SafeTensorError| {
        ProjectError::file(path, format!("not a readable safetensors file: {e}"))
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(not_safetensors)?;
    let file = SafeTensors::deserialize(&bytes).map_err(not_safetensors)?;
    let empty = HashMap::new();
    let metadata = header.metadata().as_ref().unwrap_or(&empty);

    let mut by_split: BTreeMap<String, HashMap<&str, TensorView<'_>>> = BTreeMap::new();
    for (name, view) in file.iter() {
        let parsed = name.rsplit_once('/').and_then(|(split, field)| {
            let field = FIELDS.iter().copied().find(|f| *f == field)?;
            is_valid_split_name(split).then_some((split, field))
        });
        let Some((split, field)) = parsed else {
            return Err(ProjectError::tensor(
                path,
                name,
                format!(
                    "unexpected; expected tensors named SPLIT/FIELD with FIELD one of {}",
                    FIELDS.join(", ")
                ),
            ));
        };
        by_split
            .entry(split.to_string())
            .or_default()
            .insert(field, view);
    }
    if by_split.is_empty() {
        return Err(ProjectError::file(
            path,
            "holds no tensors; expected SPLIT/video, SPLIT/text and SPLIT/video_of_clip per split",
        ));
    }

    let mut import = Import::default();
    let mut dims: Option<(usize, usize, String)> = None;
    let mut names: Vec<String> = by_split.keys().cloned().collect();
    sort_splits(&mut names);
    for split in names {
        let tensors = &by_split[&split];
        let reader = SplitReader {
            path,
            split: &split,
            tensors,
            metadata,
        };
        let (features, skipped) = reader.read()?;
        let none_readable = !skipped.is_empty();
        import.skipped.extend(skipped);
        let Some(features) = features else {
            import.skipped.push(Skipped {
                item: format!("split {split}"),
                reason: if none_readable {
                    "every clip was skipped".into()
                } else {
                    "holds no clips".into()
                },
            });
            continue;
        };
        match &dims {
            None => dims = Some((features.video.dim, features.text.dim, split.clone())),
            Some((video, text, first)) => {
                if *video != features.video.dim {
                    return Err(ProjectError::tensor(
                        path,
                        format!("{split}/video"),
                        format!(
                            "frames are {} wide but `{first}/video`'s are {video}; every split \
                             needs the same encoder",
                            features.video.dim
                        ),
                    ));
                }
                if *text != features.text.dim {
                    return Err(ProjectError::tensor(
                        path,
                        format!("{split}/text"),
                        format!(
                            "tokens are {} wide but `{first}/text`'s are {text}; every split \
                             needs the same encoder",
                            features.text.dim
                        ),
                    ));
                }
            }
        }
        for (clip, key) in features.clip_keys.iter().enumerate() {
            import.manifest.push(ManifestEntry {
                clip: key.clone(),
                video: features.video_keys[features.video_of_clip[clip] as usize].clone(),
                split: split.clone(),
                start: None,
                end: None,
                caption: None,
                path: None,
            });
        }
        import.splits.push(features);
    }
    if import.splits.is_empty() {
        return Err(ProjectError::file(
            path,
            "no clip could be imported (see the skipped items above)",
        ));
    }
    check_unique_clip_keys(path, &import)?;
    Ok(import)
}

/// Clip keys must be unique in the whole project, since the manifest is keyed by them.
fn check_unique_clip_keys(path: &Path, import: &Import) -> Result<(), ProjectError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for split in &import.splits {
        for key in &split.clip_keys {
            if let Some(other) = seen.insert(key, &split.split) {
                return Err(ProjectError::file(
                    path,
                    format!(
                        "clip key {key:?} is used by split `{other}` and split `{}`; clip keys \
                         must be unique across splits",
                        split.split
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One sequence field of a split: the values, and how many rows each clip really has.
struct Field {
    name: String,
    /// `N × padded × dim`, row-major.
    values: Vec<f32>,
    padded: usize,
    dim: usize,
    /// The count tensor's name and the real rows per clip; `None` for a pooled field (one row
    /// each).
    counts: Option<(String, Vec<i64>)>,
}

impl Field {
    /// The real rows of clip `i`, or why it has none usable.
    fn clip(&self, i: usize) -> Result<&[f32], String> {
        let rows = match &self.counts {
            None => 1,
            Some((counts_name, counts)) => {
                let count = counts[i];
                if count < 1 || count as usize > self.padded {
                    return Err(format!(
                        "tensor `{counts_name}` says clip {i} has {count} rows; expected 1 to {} \
                         (the padded length of `{}`)",
                        self.padded, self.name
                    ));
                }
                count as usize
            }
        };
        let start = i * self.padded * self.dim;
        let values = &self.values[start..start + rows * self.dim];
        if let Some(index) = values.iter().position(|x| !x.is_finite()) {
            return Err(format!(
                "tensor `{}` clip {i}, row {} holds {}; expected finite values",
                self.name,
                index / self.dim,
                values[index]
            ));
        }
        Ok(values)
    }
}

struct SplitReader<'a, 'data> {
    path: &'a Path,
    split: &'a str,
    tensors: &'a HashMap<&'static str, TensorView<'data>>,
    metadata: &'a HashMap<String, String>,
}

impl SplitReader<'_, '_> {
    fn name(&self, field: &str) -> String {
        format!("{}/{field}", self.split)
    }

    fn error(&self, field: &str, message: String) -> ProjectError {
        ProjectError::tensor(self.path, self.name(field), message)
    }

    fn get(&self, field: &str) -> Option<&TensorView<'_>> {
        self.tensors.get(field)
    }

    fn require(&self, field: &str) -> Result<&TensorView<'_>, ProjectError> {
        self.get(field).ok_or_else(|| {
            let mut present: Vec<String> = self.tensors.keys().map(|f| self.name(f)).collect();
            present.sort();
            self.error(
                field,
                format!(
                    "missing; split `{}` has only {}",
                    self.split,
                    present.join(", ")
                ),
            )
        })
    }

    /// `S/video` or `S/text` with its count tensor: N×D pooled, or N×T×D padded with counts.
    fn field(&self, field: &str, count_field: &str) -> Result<Field, ProjectError> {
        let view = self.require(field)?;
        let values = floats(view).ok_or_else(|| {
            self.error(
                field,
                format!(
                    "has dtype {:?}; expected f32, f64, f16 or bf16",
                    view.dtype()
                ),
            )
        })?;
        let shape = view.shape();
        let (padded, dim) = match *shape {
            [_, dim] => (1, dim),
            [_, padded, dim] => (padded, dim),
            _ => {
                return Err(self.error(
                    field,
                    format!(
                        "has shape {shape:?}; expected N×D (pooled) or N×T×D (padded, with \
                         `{}`)",
                        self.name(count_field)
                    ),
                ));
            }
        };
        if dim == 0 || padded == 0 {
            return Err(self.error(
                field,
                format!("has shape {shape:?}; expected rows at least 1 wide and 1 long"),
            ));
        }
        let counts = match (shape.len(), self.get(count_field)) {
            (2, None) => None,
            (2, Some(_)) => {
                return Err(self.error(
                    count_field,
                    format!(
                        "is given but `{}` has shape {shape:?} (pooled, one row per clip); \
                         counts go with N×T×D tensors",
                        self.name(field)
                    ),
                ));
            }
            (_, None) => {
                return Err(self.error(
                    count_field,
                    format!(
                        "missing; `{}` has shape {shape:?} (padded), so the real number of rows \
                         per clip is needed",
                        self.name(field)
                    ),
                ));
            }
            (_, Some(_)) => Some((self.name(count_field), self.ints(count_field, shape[0])?)),
        };
        Ok(Field {
            name: self.name(field),
            values,
            padded,
            dim,
            counts,
        })
    }

    /// A 1-D integer tensor of `n` entries.
    fn ints(&self, field: &str, n: usize) -> Result<Vec<i64>, ProjectError> {
        let view = self.require(field)?;
        if view.shape() != [n] {
            return Err(self.error(
                field,
                format!(
                    "has shape {:?}; expected [{n}] (one entry per clip, as `{}` has {n} clips)",
                    view.shape(),
                    self.name("video")
                ),
            ));
        }
        ints(view)
            .ok_or_else(|| {
                self.error(
                    field,
                    format!("has dtype {:?}; expected an integer type", view.dtype()),
                )
            })?
            .map_err(|value| {
                self.error(
                    field,
                    format!("holds {value}, too large for a count or index"),
                )
            })
    }

    /// A metadata JSON array of `n` strings, if present.
    fn keys(&self, field: &str) -> Result<Option<Vec<String>>, ProjectError> {
        let key = self.name(field);
        let Some(json) = self.metadata.get(&key) else {
            return Ok(None);
        };
        let keys: Vec<String> = serde_json::from_str(json).map_err(|e| {
            ProjectError::file(
                self.path,
                format!("metadata `{key}` is not a JSON array of strings: {e}"),
            )
        })?;
        let mut seen = HashSet::new();
        for k in &keys {
            if k.is_empty() {
                return Err(ProjectError::file(
                    self.path,
                    format!("metadata `{key}` holds an empty key"),
                ));
            }
            if !seen.insert(k) {
                return Err(ProjectError::file(
                    self.path,
                    format!("metadata `{key}` holds {k:?} twice; keys must be unique"),
                ));
            }
        }
        Ok(Some(keys))
    }

    /// The split's features (`None` when every clip was skipped) and what was skipped.
    fn read(&self) -> Result<(Option<SplitFeatures>, Vec<Skipped>), ProjectError> {
        let video = self.field("video", "video_frames")?;
        let n = self.require("video")?.shape()[0];
        let text = self.field("text", "text_tokens")?;
        let text_n = self.require("text")?.shape()[0];
        if text_n != n {
            return Err(self.error(
                "text",
                format!(
                    "has shape {:?}: {text_n} clips, but `{}` has shape {:?}: {n} clips",
                    self.require("text")?.shape(),
                    self.name("video"),
                    self.require("video")?.shape()
                ),
            ));
        }
        let video_of_clip = self.ints("video_of_clip", n)?;
        // Clips of a video must be consecutive: a video may not come back after another.
        let mut finished = HashSet::new();
        for (clip, pair) in video_of_clip.windows(2).enumerate() {
            if pair[0] != pair[1] {
                finished.insert(pair[0]);
                if finished.contains(&pair[1]) {
                    return Err(self.error(
                        "video_of_clip",
                        format!(
                            "clip {} belongs to video {} again after other videos; the clips of \
                             a video must be consecutive",
                            clip + 1,
                            pair[1]
                        ),
                    ));
                }
            }
        }
        if let Some(&negative) = video_of_clip.iter().find(|&&v| v < 0) {
            return Err(self.error(
                "video_of_clip",
                format!("holds {negative}; expected video indices ≥ 0"),
            ));
        }
        let clip_keys = match self.keys("clip_keys")? {
            Some(keys) if keys.len() != n => {
                return Err(ProjectError::file(
                    self.path,
                    format!(
                        "metadata `{}` has {} keys but the split has {n} clips",
                        self.name("clip_keys"),
                        keys.len()
                    ),
                ));
            }
            Some(keys) => keys,
            None => (0..n)
                .map(|i| format!("{}-clip-{i:05}", self.split))
                .collect(),
        };
        let given_video_keys = self.keys("video_keys")?;
        if let Some(keys) = &given_video_keys
            && let Some(&v) = video_of_clip.iter().find(|&&v| v as usize >= keys.len())
        {
            return Err(ProjectError::file(
                self.path,
                format!(
                    "metadata `{}` has {} keys but `{}` refers to video {v}",
                    self.name("video_keys"),
                    keys.len(),
                    self.name("video_of_clip")
                ),
            ));
        }

        let mut skipped = Vec::new();
        let mut features = SplitFeatures {
            split: self.split.to_string(),
            clip_keys: Vec::new(),
            video_keys: Vec::new(),
            video_of_clip: Vec::new(),
            video: Sequences::new(video.dim),
            text: Sequences::new(text.dim),
        };
        let mut current: Option<i64> = None;
        for clip in 0..n {
            let rows = match (video.clip(clip), text.clip(clip)) {
                (Ok(v), Ok(t)) => Ok((v, t)),
                (Err(reason), _) | (_, Err(reason)) => Err(reason),
            };
            let (video_rows, text_rows) = match rows {
                Ok(rows) => rows,
                Err(reason) => {
                    skipped.push(Skipped {
                        item: format!("{} clip {clip} ({})", self.split, clip_keys[clip]),
                        reason,
                    });
                    continue;
                }
            };
            let v = video_of_clip[clip];
            if current != Some(v) {
                current = Some(v);
                features.video_keys.push(match &given_video_keys {
                    Some(keys) => keys[v as usize].clone(),
                    None => format!("{}-video-{v:05}", self.split),
                });
            }
            features.clip_keys.push(clip_keys[clip].clone());
            features
                .video_of_clip
                .push((features.video_keys.len() - 1) as u32);
            features.video.push(video_rows);
            features.text.push(text_rows);
        }
        if features.clip_keys.is_empty() {
            return Ok((None, skipped));
        }
        features
            .validate()
            .map_err(|(tensor, message)| self.error(tensor, message))?;
        Ok((Some(features), skipped))
    }
}

/// The values of a floating-point tensor as f32, or `None` for other dtypes.
fn floats(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let data = view.data();
    Some(match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// The values of an integer tensor, or `None` for other dtypes; `Err` carries a u64 too large
/// for i64.
fn ints(view: &TensorView<'_>) -> Option<Result<Vec<i64>, u64>> {
    let data = view.data();
    let values: Vec<i64> = match view.dtype() {
        Dtype::I8 => data.iter().map(|&b| i64::from(b as i8)).collect(),
        Dtype::U8 => data.iter().map(|&b| i64::from(b)).collect(),
        Dtype::I16 => data
            .chunks_exact(2)
            .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::U16 => data
            .chunks_exact(2)
            .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::I32 => data
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::U32 => data
            .chunks_exact(4)
            .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        Dtype::I64 => data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
            .collect(),
        Dtype::U64 => {
            let mut values = Vec::with_capacity(data.len() / 8);
            for c in data.chunks_exact(8) {
                let value = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
                match i64::try_from(value) {
                    Ok(v) => values.push(v),
                    Err(_) => return Some(Err(value)),
                }
            }
            values
        }
        _ => return None,
    };
    Some(Ok(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A features file with splits `train` and `val` of two pooled-text clips each (one video
    /// per clip, frames 2 × 3); `train_frames` are the train clips' frame counts.
    fn features_file(path: &Path, train_frames: [i64; 2]) {
        let video: Vec<u8> = (0..2 * 2 * 3)
            .flat_map(|i| (i as f32 * 0.1).to_le_bytes())
            .collect();
        let text: Vec<u8> = (0..2 * 4)
            .flat_map(|i| (i as f32 * 0.2).to_le_bytes())
            .collect();
        let frames =
            |counts: [i64; 2]| -> Vec<u8> { counts.iter().flat_map(|c| c.to_le_bytes()).collect() };
        let train_frames = frames(train_frames);
        let val_frames = frames([2, 1]);
        let video_of_clip: Vec<u8> = [0i64, 1].iter().flat_map(|c| c.to_le_bytes()).collect();
        let mut views = Vec::new();
        for (split, counts) in [("train", &train_frames), ("val", &val_frames)] {
            views.push((
                format!("{split}/video"),
                view(Dtype::F32, vec![2, 2, 3], &video),
            ));
            views.push((
                format!("{split}/video_frames"),
                view(Dtype::I64, vec![2], counts),
            ));
            views.push((format!("{split}/text"), view(Dtype::F32, vec![2, 4], &text)));
            views.push((
                format!("{split}/video_of_clip"),
                view(Dtype::I64, vec![2], &video_of_clip),
            ));
        }
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    fn view<'a>(dtype: Dtype, shape: Vec<usize>, bytes: &'a [u8]) -> TensorView<'a> {
        TensorView::new(dtype, shape, bytes).unwrap()
    }

    #[test]
    fn a_training_split_whose_clips_all_have_no_frames_makes_no_project() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("features.safetensors");
        features_file(&input, [2, 1]);
        let import = import_features(&input).unwrap();
        assert_eq!(import.num_clips(), 4);
        import
            .write(&dir.path().join("fine"), ProjectConfig::default())
            .unwrap();

        features_file(&input, [0, 0]);
        let import = import_features(&input).unwrap();
        assert_eq!(import.num_clips(), 2, "the val clips are read");
        let target = dir.path().join("project");
        let message = import
            .write(&target, ProjectConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("training split `train` has no clips")
                && message.contains("every clip was skipped")
                && message.contains("`val` (2 clips)"),
            "{message}"
        );
        assert!(!target.join("crossclr.toml").exists(), "nothing is made");
    }
}
