//! Atomic file replacement: the new contents go to a temporary file in the destination's own
//! directory (so the rename never crosses file systems), are flushed to disk, and only then renamed
//! over the destination. A reader sees the old file or the new one, never a torn one, and a write
//! that fails half-way leaves the old file as it was.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::ProjectError;

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProjectError> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Replaces `path` atomically with what `write` writes (buffered), for contents too large to
/// assemble in memory first. If `write` fails, `path` is untouched and the temporary file removed.
pub fn write_atomic_with<F>(path: &Path, write: F) -> Result<(), ProjectError>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    replace_atomic(path, |temp| {
        let file = File::create_new(temp).map_err(|e| ProjectError::io("write", path, e))?;
        let mut out = BufWriter::new(file);
        write(&mut out)
            .and_then(|()| out.flush())
            .map_err(|e| ProjectError::io("write", path, e))
    })
}

/// Replaces `path` atomically with a safetensors file of `tensors` and the optional `__metadata__`
/// map. Serialization streams to disk, so the tensors are not copied into one buffer first. The
/// bytes depend only on what is written: the metadata keys are in sorted order (safetensors
/// writes them in its `HashMap`'s order, which changes from run to run), so two writes of the
/// same tensors and metadata give byte-identical files.
pub fn write_safetensors_atomic<S, V, I>(
    path: &Path,
    tensors: I,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), ProjectError>
where
    S: AsRef<str> + Ord + Display,
    V: safetensors::View,
    I: IntoIterator<Item = (S, V)>,
{
    replace_atomic(path, |temp| {
        let sorted: Option<BTreeMap<String, String>> = metadata
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        safetensors::serialize_to_file(tensors, metadata, temp).map_err(|source| {
            ProjectError::WriteSafetensors {
                path: path.to_path_buf(),
                source,
            }
        })?;
        match sorted {
            Some(sorted) => {
                sort_metadata(temp, &sorted).map_err(|e| ProjectError::io("write", path, e))
            }
            None => Ok(()),
        }
    })
}

/// The start of a safetensors header with metadata, as safetensors writes it.
const METADATA_PREFIX: &[u8] = b"{\"__metadata__\":";

/// Rewrites the `__metadata__` object of the safetensors file at `path` with its keys sorted.
/// Any order of the same entries serializes to the same length, so the object is overwritten in
/// place; what is there is checked first to be those entries.
fn sort_metadata(path: &Path, sorted: &BTreeMap<String, String>) -> std::io::Result<()> {
    let json = serde_json::to_vec(sorted).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let at = 8 + METADATA_PREFIX.len();
    let mut head = vec![0u8; at + json.len()];
    file.read_exact(&mut head)?;
    let as_written = serde_json::from_slice::<BTreeMap<String, String>>(&head[at..]).ok();
    if &head[8..at] != METADATA_PREFIX || as_written.as_ref() != Some(sorted) {
        return Err(std::io::Error::other(
            "the header does not start with the metadata as expected; not rewritten",
        ));
    }
    file.seek(SeekFrom::Start(at as u64))?;
    file.write_all(&json)
}

/// The general form, for writers that insist on a path of their own: `write` creates the file at
/// the temporary path it is given; it is then synced and renamed over `path`.
pub fn replace_atomic<F>(path: &Path, write: F) -> Result<(), ProjectError>
where
    F: FnOnce(&Path) -> Result<(), ProjectError>,
{
    let dir = parent_dir(path);
    let temp = TempFile::new(temp_path(path));
    write(&temp.path)?;
    // The data must be on disk before the rename is; otherwise a crash could leave the new name
    // pointing at an empty file, which is worse than the old contents.
    File::open(&temp.path)
        .and_then(|file| file.sync_all())
        .map_err(|e| ProjectError::io("sync", &temp.path, e))?;
    std::fs::rename(&temp.path, path).map_err(|e| ProjectError::io("replace", path, e))?;
    temp.disarm();
    sync_dir(&dir)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// How long a temporary must have gone unwritten before [`remove_stale_temporaries`] takes it
/// for one left by a writer that died.
pub const STALE_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Whether `name` is a temporary of [`replace_atomic`]: `.<name>.tmp-<process>-<n>`.
pub fn is_temporary_name(name: &str) -> bool {
    let Some((stem, tail)) = name.rsplit_once(".tmp-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    stem.len() > 1
        && stem.starts_with('.')
        && tail
            .split_once('-')
            .is_some_and(|(process, n)| digits(process) && digits(n))
}

/// Removes the temporaries of [`replace_atomic`] in `dir` (not below it) that were last written
/// `older_than` ago or more: those of a writer killed before its rename (`kill -9`, a power
/// cut). A live writer's temporary is younger, since it is written until renamed, so it is left
/// alone, also when that writer runs on another machine that shares the folder. Nothing ever
/// reads a temporary, so one that is not old enough yet is merely ignored. Returns how many
/// were removed; a folder that cannot be listed removes none.
pub fn remove_stale_temporaries(dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temporary_name) {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age >= older_than);
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn temp_path(path: &Path) -> PathBuf {
    // Unique per process and call, so concurrent writers of one file never share a temporary;
    // the leading dot and `.tmp-` suffix keep it out of directory listings that look for
    // `*.safetensors` or `*.toml`.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), ProjectError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ProjectError::io("sync directory", dir, e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), ProjectError> {
    // Directories cannot be opened as files here; the rename is as durable as the platform makes it.
    Ok(())
}

/// Removes the temporary file unless it was renamed into place, also when the writer panics.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tensors_and_metadata_give_byte_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..24u8).collect();
        let write = |name: &str| {
            let path = dir.path().join(name);
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &data)
                    .unwrap();
            // A fresh map each time, as every writer makes one: each has its own hash order.
            let metadata: HashMap<String, String> = (0..12)
                .map(|i| (format!("key{i}"), format!("value \"{i}\"")))
                .collect();
            write_safetensors_atomic(&path, [("t", view)], Some(metadata)).unwrap();
            std::fs::read(path).unwrap()
        };
        let first = write("0.safetensors");
        for i in 1..8 {
            assert!(
                write(&format!("{i}.safetensors")) == first,
                "write {i} differs"
            );
        }
        let (_, header) = safetensors::SafeTensors::read_metadata(&first).unwrap();
        let metadata = header.metadata().as_ref().unwrap();
        assert_eq!(metadata.len(), 12);
        assert_eq!(metadata["key7"], "value \"7\"");
        assert_eq!(
            safetensors::SafeTensors::deserialize(&first)
                .unwrap()
                .tensor("t")
                .unwrap()
                .data(),
            &data[..]
        );
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_contents_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(entries(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"precious").unwrap();
        let error = write_atomic_with(&path, |out| {
            out.write_all(b"half of the new con")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(error.to_string().contains("a.txt"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
        assert_eq!(entries(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_failed_safetensors_write_keeps_the_os_reason_in_the_error_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/a.safetensors");
        let data = [0u8; 8];
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
        let error = write_safetensors_atomic(&path, [("t", view)], None).unwrap_err();
        assert!(error.to_string().contains("a.safetensors"), "{error}");
        let mut cause: Option<&dyn std::error::Error> = Some(&error);
        let (mut kinds, mut chain) = (Vec::new(), String::new());
        while let Some(now) = cause {
            if let Some(io) = now.downcast_ref::<std::io::Error>() {
                kinds.push(io.kind());
            }
            chain.push_str(&format!("{now}: "));
            cause = now.source();
        }
        // The OS's own error (here: no such directory) as a source, not only words in a message.
        assert_eq!(kinds, [std::io::ErrorKind::NotFound], "{error:?}");
        let reason = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
        assert!(
            chain.contains("os error 2") || chain.to_lowercase().contains(&reason),
            "{chain}"
        );
    }

    #[test]
    fn stale_temporaries_are_removed_and_fresh_ones_and_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let write = |name: &str, stale: bool| {
            let path = dir.path().join(name);
            let file = File::create(&path).unwrap();
            if stale {
                file.set_modified(old).unwrap();
            }
        };
        write(".120ms-128x128-crop.jpg.tmp-4242-0", true);
        write(".train.safetensors.tmp-17-3", true);
        write(".state.safetensors.tmp-99-1", false);
        write("old-but-mine.jpg", true);
        write(".hidden.tmp-x-1", true);
        let removed = remove_stale_temporaries(dir.path(), STALE_TEMPORARY_AGE);
        assert_eq!(removed, 2);
        assert_eq!(
            entries(dir.path()),
            [
                ".hidden.tmp-x-1",
                ".state.safetensors.tmp-99-1",
                "old-but-mine.jpg"
            ]
        );
        // What this module writes is what it removes.
        let name = temp_path(&dir.path().join("a.json"));
        assert!(is_temporary_name(
            name.file_name().unwrap().to_str().unwrap()
        ));
        assert!(!is_temporary_name("a.json") && !is_temporary_name(".tmp-1-2"));
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/a.txt");
        let error = write_atomic(&path, b"x").unwrap_err();
        assert!(matches!(error, ProjectError::Io { .. }), "{error}");
        assert!(error.to_string().contains("a.txt"), "{error}");
    }
}
