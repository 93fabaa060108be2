//! A project from a folder of videos and a captions file (`crossclr new DIR --videos V/
//! --captions F`): each caption becomes a clip of the video file its key names, every video gets
//! one split, and the clips become the manifest. Nothing is decoded here; `crossclr ingest`
//! makes the features later.
//!
//! Splits are by video, never by clip, so no video is on both sides of an evaluation. A split
//! the captions file gives (YouCook2's subset, MSR-VTT's split, a `split` column) is kept;
//! videos without one are split by a seeded hash of their key, so the same files and seed
//! always give the same split, whatever order the captions come in.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::captions::{CaptionFormat, CaptionProblem, read_captions};
use super::config::{ProjectConfig, SourceKind};
use super::error::ProjectError;
use super::manifest::ManifestEntry;
use super::video_folder::{VideoFolder, VideoMatch};
use super::{Project, sort_splits};
use crate::hash::fnv1a;

/// How videos without a split in the captions file are split: `test` and `val` get these
/// fractions of them (rounded to whole videos), `train` the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    pub seed: u64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            seed: 0,
            val: 0.1,
            test: 0.1,
        }
    }
}

impl SplitFractions {
    /// Each fraction in [0, 1) and together below 1, so training keeps videos.
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [("val", self.val), ("test", self.test)] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!(
                    "the {name} fraction is {value}; expected 0 ≤ fraction < 1"
                ));
            }
        }
        if self.val + self.test >= 1.0 {
            return Err(format!(
                "the val and test fractions add up to {}; they must leave videos for training",
                self.val + self.test
            ));
        }
        Ok(())
    }
}

/// A caption video key that names no file in the folder, and how many captions it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVideo {
    pub key: String,
    pub captions: usize,
}

/// Everything `crossclr new --videos` read, held until it is written as a project.
#[derive(Debug, Clone)]
pub struct VideoImport {
    /// Split by split (train, val, test, then the rest), the videos of a split in the order
    /// the captions file first names them, a video's clips by start time.
    pub manifest: Vec<ManifestEntry>,
    pub format: CaptionFormat,
    /// Captions the file held that could be read.
    pub captions_read: usize,
    /// Entries of the captions file that were skipped.
    pub caption_problems: Vec<CaptionProblem>,
    /// CSV header columns that were ignored.
    pub ignored_columns: Vec<String>,
    /// Captions skipped after reading: a split unlike their video's, a clip key used before.
    pub clip_problems: Vec<CaptionProblem>,
    /// Video files in the folder that a caption key can name (all but `unnamed_files`).
    pub video_files: usize,
    /// Caption keys without a file, in the order the captions file names them.
    pub missing: Vec<MissingVideo>,
    /// Files no caption names (relative paths, sorted).
    pub uncaptioned: Vec<String>,
    /// Video files whose path is not UTF-8, so no caption can name them.
    pub unnamed_files: usize,
    /// Videos whose split the captions file gave.
    pub videos_with_given_split: usize,
    /// The seeded split, when some video had no split in the file.
    pub seeded: Option<SplitFractions>,
}

impl VideoImport {
    pub fn num_clips(&self) -> usize {
        self.manifest.len()
    }

    /// Per split (train, val, test first): clips and videos.
    pub fn split_counts(&self) -> Vec<(String, usize, usize)> {
        let mut counts: HashMap<&str, (usize, HashSet<&str>)> = HashMap::new();
        for entry in &self.manifest {
            let (clips, videos) = counts.entry(&entry.split).or_default();
            *clips += 1;
            videos.insert(&entry.video);
        }
        let mut names: Vec<String> = counts.keys().map(|s| s.to_string()).collect();
        sort_splits(&mut names);
        names
            .into_iter()
            .map(|name| {
                let (clips, videos) = &counts[name.as_str()];
                (name.clone(), *clips, videos.len())
            })
            .collect()
    }

    /// Records the source in `config`: kind `videos`, both paths (absolute) and, when used, the
    /// seeded split.
    pub fn configure(&self, config: &mut ProjectConfig, videos: &Path, captions: &Path) {
        config.source.kind = SourceKind::Videos;
        config.source.videos = Some(super::recorded_path(videos));
        config.source.captions = Some(super::recorded_path(captions));
        if let Some(fractions) = self.seeded {
            config.source.split_seed = Some(fractions.seed);
            config.source.val_fraction = Some(fractions.val);
            config.source.test_fraction = Some(fractions.test);
        }
    }

    /// Creates the project in `dir` (missing or empty) with `config` and the manifest; a failed
    /// write leaves nothing behind.
    pub fn write(&self, dir: &Path, config: ProjectConfig) -> Result<Project, ProjectError> {
        Project::create_filled(dir, config, |project| {
            project.write_manifest(&self.manifest)
        })
    }
}

/// Reads `captions`, lists `videos` and matches them (see the module docs). Errors: an
/// unreadable or unknown captions file, a folder that cannot be listed or holds no videos, a key
/// that two files answer to, and nothing matched at all. Bad entries and missing videos are
/// skipped and reported.
pub fn import_videos(
    videos: &Path,
    captions: &Path,
    fractions: SplitFractions,
) -> Result<VideoImport, ProjectError> {
    fractions
        .check()
        .map_err(|message| ProjectError::file(captions, message))?;
    let mut read = read_captions(captions)?;
    if read.clips.is_empty() {
        let first = read
            .problems
            .first()
            .map(|p| format!("; the first: {p}"))
            .unwrap_or_default();
        return Err(ProjectError::file(
            captions,
            format!(
                "holds no usable caption ({} entries skipped{first})",
                read.problems.len()
            ),
        ));
    }
    let folder = VideoFolder::scan(videos)?;
    if folder.files().is_empty() {
        return Err(ProjectError::file(
            videos,
            format!(
                "holds no video files (looked for {} in it and its subfolders)",
                super::video_folder::VIDEO_EXTENSIONS
                    .map(|e| format!(".{e}"))
                    .join(", ")
            ),
        ));
    }

    // Videos in the order the captions first name them; each caption key resolved once.
    let mut groups: Vec<VideoGroup> = Vec::new();
    let mut group_of_file: HashMap<usize, usize> = HashMap::new();
    let mut resolved: HashMap<&str, Option<usize>> = HashMap::new();
    let mut missing: Vec<MissingVideo> = Vec::new();
    let mut missing_index: HashMap<&str, usize> = HashMap::new();
    let mut clip_problems = Vec::new();
    for (index, clip) in read.clips.iter().enumerate() {
        let file = match resolved.get(clip.video.as_str()) {
            Some(file) => *file,
            None => {
                let file = match folder.find(&clip.video) {
                    VideoMatch::Found(file) => Some(file),
                    VideoMatch::Missing => None,
                    VideoMatch::Ambiguous(files) => {
                        return Err(ProjectError::file(
                            captions,
                            format!(
                                "{}: video {:?} could be any of {} in {}; name it by its \
                                 relative path (for example {:?})",
                                clip.origin,
                                clip.video,
                                files.join(" and "),
                                videos.display(),
                                files[0].rsplit_once('.').map_or(files[0].as_str(), |p| p.0)
                            ),
                        ));
                    }
                };
                resolved.insert(&clip.video, file);
                file
            }
        };
        let Some(file) = file else {
            let index = *missing_index.entry(&clip.video).or_insert_with(|| {
                missing.push(MissingVideo {
                    key: clip.video.clone(),
                    captions: 0,
                });
                missing.len() - 1
            });
            missing[index].captions += 1;
            continue;
        };
        let group = *group_of_file.entry(file).or_insert_with(|| {
            groups.push(VideoGroup {
                file,
                key: folder.video_key(file),
                split: None,
                clips: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[group];
        match (&clip.split, &group.split) {
            (Some(split), Some((first, origin))) if split != first => {
                clip_problems.push(CaptionProblem {
                    location: clip.origin.clone(),
                    reason: format!(
                        "split `{split}`, but video {:?} is in `{first}` ({origin}); a video \
                         belongs to one split",
                        group.key
                    ),
                });
                continue;
            }
            (Some(split), None) => group.split = Some((split.clone(), clip.origin.to_string())),
            _ => {}
        }
        group.clips.push(index);
    }
    if groups.is_empty() {
        let sample = |names: Vec<&str>| names.into_iter().take(3).collect::<Vec<_>>().join(", ");
        return Err(ProjectError::file(
            captions,
            format!(
                "names {} videos and none is in {}: the captions name {}, …; the folder holds \
                 {}, …",
                missing.len(),
                videos.display(),
                sample(missing.iter().map(|m| m.key.as_str()).collect()),
                sample(folder.files().iter().map(String::as_str).collect())
            ),
        ));
    }

    let videos_with_given_split = groups.iter().filter(|g| g.split.is_some()).count();
    let unsplit: Vec<&str> = groups
        .iter()
        .filter(|g| g.split.is_none())
        .map(|g| g.key.as_str())
        .collect();
    let seeded_splits = split_by_video(&unsplit, &fractions);
    let seeded = (!unsplit.is_empty()).then_some(fractions);

    // Every clip's key, checked for uniqueness before any is moved into an entry.
    let mut keys: Vec<Option<String>> = vec![None; read.clips.len()];
    for group in &groups {
        for (ordinal, &index) in group.clips.iter().enumerate() {
            let clip = &read.clips[index];
            keys[index] = Some(match (&clip.clip, clip.id) {
                (Some(key), _) => key.clone(),
                (None, Some(id)) => format!("{}#{id}", group.key),
                (None, None) => format!("{}#{ordinal}", group.key),
            });
        }
    }
    let mut duplicate = vec![false; read.clips.len()];
    let mut first_use: HashMap<&str, usize> = HashMap::new();
    for &index in groups.iter().flat_map(|g| &g.clips) {
        let Some(key) = keys[index].as_deref() else {
            continue;
        };
        if let Some(&first) = first_use.get(key) {
            clip_problems.push(CaptionProblem {
                location: read.clips[index].origin.clone(),
                reason: format!(
                    "clip key {key:?} is already used by {}",
                    read.clips[first].origin
                ),
            });
            duplicate[index] = true;
        } else {
            first_use.insert(key, index);
        }
    }
    drop(first_use);

    // Captions move from what was read into the entries: a large file is not held twice.
    let mut manifest_of_split: HashMap<String, Vec<ManifestEntry>> = HashMap::new();
    for group in &groups {
        let split = match &group.split {
            Some((split, _)) => split.clone(),
            None => seeded_splits[group.key.as_str()].to_string(),
        };
        let mut members: Vec<usize> = group
            .clips
            .iter()
            .copied()
            .filter(|&index| !duplicate[index])
            .collect();
        // Clips in time order (the order the global level reads a video in); clips without
        // times keep the file's order.
        if members
            .iter()
            .all(|&index| read.clips[index].start.is_some())
        {
            members.sort_by(|&a, &b| {
                let start = |index: usize| read.clips[index].start.unwrap_or_default();
                start(a).total_cmp(&start(b))
            });
        }
        let path = &folder.files()[group.file];
        let entries = manifest_of_split.entry(split.clone()).or_default();
        for index in members {
            let Some(key) = keys[index].take() else {
                continue;
            };
            let clip = &mut read.clips[index];
            entries.push(ManifestEntry {
                clip: key,
                video: group.key.clone(),
                split: split.clone(),
                start: clip.start,
                end: clip.end,
                caption: Some(std::mem::take(&mut clip.caption)),
                path: Some(path.clone()),
            });
        }
    }
    let mut split_names: Vec<String> = manifest_of_split.keys().cloned().collect();
    sort_splits(&mut split_names);
    let manifest = split_names
        .iter()
        .flat_map(|split| manifest_of_split.remove(split).unwrap_or_default())
        .collect();

    let captioned: HashSet<usize> = groups.iter().map(|g| g.file).collect();
    let uncaptioned = (0..folder.files().len())
        .filter(|file| !captioned.contains(file))
        .map(|file| folder.files()[file].clone())
        .collect();
    Ok(VideoImport {
        manifest,
        format: read.format,
        captions_read: read.clips.len(),
        caption_problems: read.problems,
        ignored_columns: read.ignored_columns,
        clip_problems,
        video_files: folder.files().len(),
        missing,
        uncaptioned,
        unnamed_files: folder.unnamed().len(),
        videos_with_given_split,
        seeded,
    })
}

/// The captions of one video file.
struct VideoGroup {
    file: usize,
    key: String,
    /// The split the file gives the video, and where it first did.
    split: Option<(String, String)>,
    /// Indexes into the captions read, in file order.
    clips: Vec<usize>,
}

/// Assigns each video a split: the videos are ordered by a seeded hash of their key, the first
/// `round(n · test)` go to `test`, the next `round(n · val)` to `val`, the rest to `train`
/// (always at least one while there are videos). Depends only on the keys and the seed, not on
/// their order.
pub fn split_by_video<'a>(
    videos: &[&'a str],
    fractions: &SplitFractions,
) -> HashMap<&'a str, &'static str> {
    let mut order: Vec<(u64, &str)> = videos
        .iter()
        .map(|key| (seeded_hash(fractions.seed, key), *key))
        .collect();
    order.sort_unstable();
    order.dedup_by(|a, b| a.1 == b.1);
    let n = order.len();
    let mut test = (n as f64 * fractions.test).round() as usize;
    let mut val = (n as f64 * fractions.val).round() as usize;
    while n > 0 && test + val >= n {
        if val >= test && val > 0 {
            val -= 1;
        } else {
            test -= 1;
        }
    }
    order
        .into_iter()
        .enumerate()
        .map(|(rank, (_, key))| {
            let split = if rank < test {
                "test"
            } else if rank < test + val {
                "val"
            } else {
                "train"
            };
            (key, split)
        })
        .collect()
}

/// FNV-1a of the key, mixed with the seed by SplitMix64's finaliser: stable across platforms
/// and releases (unlike `std`'s hasher), so a recorded seed keeps meaning the same split.
fn seeded_hash(seed: u64, key: &str) -> u64 {
    let mut z = fnv1a(key.as_bytes()) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("video{i}")).collect()
    }

    #[test]
    fn seeded_split_has_the_asked_sizes_and_ignores_order() {
        let keys = keys(100);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let fractions = SplitFractions {
            seed: 7,
            val: 0.15,
            test: 0.1,
        };
        let split = split_by_video(&refs, &fractions);
        let count = |name: &str| split.values().filter(|s| **s == name).count();
        assert_eq!((count("train"), count("val"), count("test")), (75, 15, 10));
        let mut reversed = refs.clone();
        reversed.reverse();
        assert_eq!(split_by_video(&reversed, &fractions), split);
        let other_seed = split_by_video(
            &refs,
            &SplitFractions {
                seed: 8,
                ..fractions
            },
        );
        assert_ne!(other_seed, split, "the seed must matter");
    }

    #[test]
    fn training_keeps_a_video_when_fractions_round_up() {
        let keys = keys(2);
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let fractions = SplitFractions {
            seed: 0,
            val: 0.45,
            test: 0.45,
        };
        let split = split_by_video(&refs, &fractions);
        assert_eq!(split.values().filter(|s| **s == "train").count(), 1);
        assert!(split_by_video(&[], &fractions).is_empty());
    }

    #[test]
    fn fractions_are_checked() {
        for (val, test) in [(-0.1, 0.0), (1.0, 0.0), (0.5, 0.5), (0.0, f64::NAN)] {
            assert!(
                SplitFractions { seed: 0, val, test }.check().is_err(),
                "{val} {test}"
            );
        }
        assert!(SplitFractions::default().check().is_ok());
    }
}
