//! The video files of a folder, searched recursively, and which file a caption's video key
//! names: the key may be the file's relative path (with or without extension), its name, or its
//! stem, so `video0`, `video0.mp4`, `GLd3aX16zBg` under `101/` and `101/GLd3aX16zBg` all work.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::error::ProjectError;

/// File extensions (lowercase) taken for videos.
pub const VIDEO_EXTENSIONS: [&str; 16] = [
    "mp4", "m4v", "mkv", "webm", "avi", "mov", "mpg", "mpeg", "wmv", "flv", "3gp", "ts", "mts",
    "m2ts", "ogv", "vob",
];

/// The video files under a folder, by relative path (`/`-separated, sorted), with the indexes a
/// key is looked up in.
#[derive(Debug, Clone, Default)]
pub struct VideoFolder {
    root: PathBuf,
    files: Vec<String>,
    /// Relative path without the extension → files (`a/x.mp4` and `a/x.webm` share one).
    by_path_stem: HashMap<String, Vec<usize>>,
    /// File name → files (the same name in two subfolders).
    by_name: HashMap<String, Vec<usize>>,
    /// File stem → files.
    by_stem: HashMap<String, Vec<usize>>,
    /// Files whose path is not UTF-8 and so cannot be named by a caption key.
    unnamed: Vec<PathBuf>,
}

/// Which file a key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoMatch {
    /// Index into [`VideoFolder::files`].
    Found(usize),
    Missing,
    /// Two or more files answer to the key (relative paths).
    Ambiguous(Vec<String>),
}

impl VideoFolder {
    /// Lists the video files under `root`, following symbolic links (each directory once) and
    /// skipping hidden entries (a leading `.`, such as macOS's `._name.mp4` resource files).
    pub fn scan(root: &Path) -> Result<Self, ProjectError> {
        if !root.is_dir() {
            return Err(ProjectError::file(
                root,
                "is not a folder; --videos needs the folder that holds the video files",
            ));
        }
        let mut folder = Self {
            root: root.to_path_buf(),
            ..Self::default()
        };
        let mut visited = HashSet::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let canonical = dir
                .canonicalize()
                .map_err(|e| ProjectError::io("resolve", &dir, e))?;
            if !visited.insert(canonical) {
                continue;
            }
            let entries = std::fs::read_dir(&dir).map_err(|e| ProjectError::io("list", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ProjectError::io("list", &dir, e))?;
                if entry.file_name().as_encoded_bytes().starts_with(b".") {
                    continue;
                }
                let path = entry.path();
                // `metadata` follows links; a dangling link is skipped like any non-video.
                let Ok(metadata) = std::fs::metadata(&path) else {
                    continue;
                };
                if metadata.is_dir() {
                    pending.push(path);
                } else if metadata.is_file() && is_video(&path) {
                    match relative_key(root, &path) {
                        Some(relative) => folder.files.push(relative),
                        None => folder.unnamed.push(path),
                    }
                }
            }
        }
        folder.files.sort();
        folder.unnamed.sort();
        for (index, file) in folder.files.iter().enumerate() {
            let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
            let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
            let path_stem = if dir.is_empty() {
                stem.to_string()
            } else {
                format!("{dir}/{stem}")
            };
            folder
                .by_path_stem
                .entry(path_stem)
                .or_default()
                .push(index);
            folder
                .by_name
                .entry(name.to_string())
                .or_default()
                .push(index);
            folder
                .by_stem
                .entry(stem.to_string())
                .or_default()
                .push(index);
        }
        Ok(folder)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Relative paths, `/`-separated, sorted.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Video files whose path is not valid UTF-8; no key can name them.
    pub fn unnamed(&self) -> &[PathBuf] {
        &self.unnamed
    }

    /// The file `key` names. The most specific reading wins: the exact relative path, then the
    /// relative path without extension, then the file name, then the stem; two files answering
    /// to the first reading that matches at all make the key ambiguous.
    pub fn find(&self, key: &str) -> VideoMatch {
        let key = key.trim().replace('\\', "/");
        let key = key.trim_start_matches("./");
        if let Ok(index) = self.files.binary_search_by(|f| f.as_str().cmp(key)) {
            return VideoMatch::Found(index);
        }
        for index in [&self.by_path_stem, &self.by_name, &self.by_stem] {
            match index.get(key).map(Vec::as_slice) {
                Some([one]) => return VideoMatch::Found(*one),
                Some(many) => {
                    return VideoMatch::Ambiguous(
                        many.iter().map(|&i| self.files[i].clone()).collect(),
                    );
                }
                None => {}
            }
        }
        VideoMatch::Missing
    }

    /// The key a file gets as a video of the project: its stem when no other file has that stem
    /// (the dataset's own id, as YouCook2 and MSR-VTT name their files), else its relative path
    /// without extension, else its relative path.
    pub fn video_key(&self, file: usize) -> String {
        let path = &self.files[file];
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        if self.by_stem.get(stem).is_some_and(|files| files.len() == 1) {
            return stem.to_string();
        }
        let path_stem = if dir.is_empty() {
            stem.to_string()
        } else {
            format!("{dir}/{stem}")
        };
        if self
            .by_path_stem
            .get(&path_stem)
            .is_some_and(|files| files.len() == 1)
        {
            path_stem
        } else {
            path.clone()
        }
    }
}

fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `path` relative to `root`, `/`-separated; `None` if it is not UTF-8.
fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
    Some(parts?.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[&str]) -> (tempfile::TempDir, VideoFolder) {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        }
        let folder = VideoFolder::scan(dir.path()).unwrap();
        (dir, folder)
    }

    #[test]
    fn lists_videos_recursively_and_skips_hidden_and_other_files() {
        let (_dir, folder) = folder(&[
            "b.mp4",
            "sub/a.MKV",
            "sub/deeper/c.webm",
            "notes.txt",
            ".hidden.mp4",
            "sub/._a.mp4",
            ".cache/d.mp4",
        ]);
        assert_eq!(folder.files(), ["b.mp4", "sub/a.MKV", "sub/deeper/c.webm"]);
    }

    #[cfg(unix)]
    #[test]
    fn linked_folders_are_followed_once_even_in_a_cycle() {
        let (dir, _) = folder(&["sub/a.mp4"]);
        std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/back")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("b.mp4"), b"").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        let folder = VideoFolder::scan(dir.path()).unwrap();
        assert_eq!(folder.files(), ["linked/b.mp4", "sub/a.mp4"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_name_that_is_not_utf8_is_set_aside() {
        use std::os::unix::ffi::OsStrExt;
        let (dir, _) = folder(&["ok.mp4"]);
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.mp4"));
        std::fs::write(&odd, b"").unwrap();
        let folder = VideoFolder::scan(dir.path()).unwrap();
        assert_eq!(folder.files(), ["ok.mp4"]);
        assert_eq!(folder.unnamed(), [odd]);
    }

    #[test]
    fn keys_name_files_by_path_name_or_stem() {
        let (_dir, folder) = folder(&["101/GLd3aX16zBg.mp4", "video0.mp4", "a/x.mp4", "b/x.mp4"]);
        let found = |key: &str| match folder.find(key) {
            VideoMatch::Found(i) => folder.files()[i].clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(found("GLd3aX16zBg"), "101/GLd3aX16zBg.mp4");
        assert_eq!(found("101/GLd3aX16zBg"), "101/GLd3aX16zBg.mp4");
        assert_eq!(found("101\\GLd3aX16zBg.mp4"), "101/GLd3aX16zBg.mp4");
        assert_eq!(found("video0.mp4"), "video0.mp4");
        assert_eq!(found("./video0"), "video0.mp4");
        assert_eq!(found("a/x"), "a/x.mp4");
        assert_eq!(folder.find("video1"), VideoMatch::Missing);
        assert_eq!(
            folder.find("x"),
            VideoMatch::Ambiguous(vec!["a/x.mp4".into(), "b/x.mp4".into()])
        );
    }

    #[test]
    fn video_keys_are_stems_unless_shared() {
        let (_dir, folder) = folder(&["101/abc.mp4", "a/x.mp4", "b/x.mp4", "c/y.mp4", "c/y.webm"]);
        let keys: Vec<String> = (0..folder.files().len())
            .map(|i| folder.video_key(i))
            .collect();
        assert_eq!(keys, ["abc", "a/x", "b/x", "c/y.mp4", "c/y.webm"]);
    }
}
