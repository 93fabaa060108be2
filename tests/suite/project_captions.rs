//! Caption files and projects made from videos: every caption format with small files written
//! here (quoting, bad entries reported by line or JSON path), the real YouCook2 annotations
//! matched against a folder of placeholder files, the seeded split by video, and
//! `crossclr new --videos --captions` end to end through the binary.

use crate::support::crossclr;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crossclr::project::Project;
use crossclr::project::captions::{
    CaptionFormat, CaptionedClip, Captions, Detected, Location, detect_format, read_captions,
};
use crossclr::project::config::SourceKind;
use crossclr::project::videos::{SplitFractions, VideoImport, import_videos};

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Empty files standing in for videos: nothing here decodes them.
fn placeholders(dir: &Path, files: &[&str]) -> PathBuf {
    let folder = dir.join("videos");
    std::fs::create_dir_all(&folder).unwrap();
    for file in files {
        write(&folder, file, b"");
    }
    folder
}

fn read(path: &Path) -> Captions {
    read_captions(path).unwrap_or_else(|e| panic!("{e}"))
}

/// `(location, start of the reason)` of each problem, to compare with what is expected.
fn problems(captions: &Captions) -> Vec<(String, String)> {
    captions
        .problems
        .iter()
        .map(|p| (p.location.to_string(), p.reason.clone()))
        .collect()
}

fn assert_problems(captions: &Captions, expected: &[(&str, &str)]) {
    let got = problems(captions);
    assert_eq!(got.len(), expected.len(), "problems: {got:#?}");
    for ((location, reason), (want_location, want_reason)) in got.iter().zip(expected) {
        assert_eq!(location, want_location, "{reason}");
        assert!(
            reason.contains(want_reason),
            "{location}: {reason:?} should say {want_reason:?}"
        );
    }
}

fn clip<'a>(captions: &'a Captions, video: &str, caption_start: &str) -> &'a CaptionedClip {
    captions
        .clips
        .iter()
        .find(|c| c.video == video && c.caption.starts_with(caption_start))
        .unwrap_or_else(|| panic!("no clip of {video} starting {caption_start:?}"))
}

#[test]
fn csv_with_header_quoting_and_bad_records_reported_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    text.extend_from_slice(b"\xEF\xBB\xBFVideo,Caption,Start,End,notes\r\n"); // line 1
    text.extend_from_slice(b"v1,\"a man, then a dog\",0,2.5,x\r\n"); // 2
    text.extend_from_slice(b"v1,\"she said \"\"hi\"\"\",2.5,0:04,\r\n"); // 3
    text.extend_from_slice(b"v2,\"two\nlines\",1,2\n"); // 4-5
    text.extend_from_slice(b"\n"); // 6: blank
    text.extend_from_slice(b"v2,,3,4\n"); // 7: empty caption
    text.extend_from_slice(b"v2,backwards,5,3\n"); // 8
    text.extend_from_slice(b"v2,negative,-1,3\n"); // 9
    text.extend_from_slice(b"v3,caf\xE9 latin-1,,\n"); // 10: not UTF-8
    text.extend_from_slice(b"v3,half,4,\n"); // 11: start without end
    text.extend_from_slice(b"v3,too,1,2,x,extra\n"); // 12: too many fields
    text.extend_from_slice(b",no video,1,2\n"); // 13
    text.extend_from_slice(b"v3,whole video\n"); // 14: times optional
    let path = write(dir.path(), "captions.csv", text);
    assert_eq!(detect_format(&path).unwrap(), Detected::Csv);
    let captions = read(&path);
    assert_eq!(captions.format, CaptionFormat::Csv);
    assert_eq!(captions.ignored_columns, ["notes"]);
    assert_problems(
        &captions,
        &[
            ("line 7", "no caption"),
            ("line 8", "`start` 5 is not before `end` 3"),
            ("line 9", "`start` is -1; expected seconds ≥ 0"),
            ("line 10", "not valid UTF-8"),
            ("line 11", "`start` is given without `end`"),
            ("line 12", "6 fields, but the header has 5 columns"),
            ("line 13", "no video"),
        ],
    );
    assert_eq!(captions.clips.len(), 4);
    let first = clip(&captions, "v1", "a man");
    assert_eq!(first.caption, "a man, then a dog");
    assert_eq!((first.start, first.end), (Some(0.0), Some(2.5)));
    assert_eq!(first.origin, Location::Line(2));
    let quoted = clip(&captions, "v1", "she said");
    assert_eq!(quoted.caption, "she said \"hi\"");
    assert_eq!((quoted.start, quoted.end), (Some(2.5), Some(4.0)));
    let two_lines = clip(&captions, "v2", "two");
    assert_eq!(two_lines.caption, "two\nlines");
    assert_eq!(two_lines.origin, Location::Line(4));
    let whole = clip(&captions, "v3", "whole video");
    assert_eq!(
        (whole.start, whole.end, whole.split.as_deref()),
        (None, None, None)
    );
}

#[test]
fn csv_without_header_is_positional_and_hints_at_unquoted_commas() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "captions.csv",
        "v1,a person cooks,1,2,training\n\
         v1,stirs, then serves\n\
         v2,\"stirs, then serves\"\n",
    );
    let captions = read(&path);
    assert!(captions.ignored_columns.is_empty());
    assert_problems(
        &captions,
        &[("line 2", "(a caption with commas must be in double quotes)")],
    );
    assert_eq!(captions.clips.len(), 2);
    assert_eq!(captions.clips[0].split.as_deref(), Some("train"));
    assert_eq!(captions.clips[1].caption, "stirs, then serves");
}

#[test]
fn an_unclosed_csv_quote_is_reported_where_it_starts_and_the_lines_after_it_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("video,caption\nv1,fine\nv2,\"never closed\n");
    for i in 0..30 {
        text.push_str(&format!("v{i},swallowed\n"));
    }
    let path = write(dir.path(), "captions.csv", text);
    let captions = read(&path);
    assert_eq!(captions.clips.len(), 31);
    assert_eq!(captions.clips[1].origin, Location::Line(4));
    assert_problems(
        &captions,
        &[(
            "line 3",
            "the `\"` on line 3 opens a quoted field that is never closed",
        )],
    );
}

#[test]
fn json_lines_read_line_by_line_with_bad_lines_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    text.extend_from_slice(
        br#"{"video": "v1", "caption": "  chop onions ", "start": 1, "end": "0:03", "split": "validation", "extra": [1]}"#,
    );
    text.extend_from_slice(b"\n\n"); // 2: blank
    text.extend_from_slice(b"{\"video\": \"v1\", \"caption\": \"fry\"\n"); // 3: broken JSON
    text.extend_from_slice(b"[\"v1\", \"list\"]\n"); // 4
    text.extend_from_slice(b"{\"caption\": \"no video\"}\n"); // 5
    text.extend_from_slice(b"{\"video\": \"v2\", \"caption\": \"  \"}\n"); // 6
    text.extend_from_slice(b"{\"video\": \"v2\", \"caption\": \"caf\xE9\"}\n"); // 7
    text.extend_from_slice(b"{\"video\": \"v2\", \"caption\": \"x\", \"start\": 3, \"end\": 3}\n"); // 8
    text.extend_from_slice(b"{\"video\": \"v2\", \"video_id\": \"v3\", \"caption\": \"x\"}\n"); // 9
    text.extend_from_slice(b"{\"video\": \"v2\", \"caption\": \"x\", \"split\": \"a/b\"}\n"); // 10
    text.extend_from_slice(
        b"{\"video_id\": 7, \"sentence\": \"numeric id\", \"clip\": \"mine\"}\r\n",
    ); // 11
    let path = write(dir.path(), "captions.jsonl", text);
    let captions = read(&path);
    assert_eq!(captions.format, CaptionFormat::JsonLines);
    assert_problems(
        &captions,
        &[
            ("line 3", "not valid JSON"),
            ("line 4", "is an array"),
            ("line 5", "no video"),
            ("line 6", "no caption"),
            ("line 7", "not valid UTF-8"),
            ("line 8", "`start` 3 is not before `end` 3"),
            ("line 9", "both give the video"),
            ("line 10", "`split` is \"a/b\""),
        ],
    );
    assert_eq!(captions.clips.len(), 2);
    let first = &captions.clips[0];
    assert_eq!(first.caption, "chop onions");
    assert_eq!((first.start, first.end), (Some(1.0), Some(3.0)));
    assert_eq!(first.split.as_deref(), Some("val"));
    assert_eq!(first.origin, Location::Line(1));
    let numeric = &captions.clips[1];
    assert_eq!(numeric.video, "7");
    assert_eq!(numeric.clip.as_deref(), Some("mine"));
    assert_eq!(numeric.origin, Location::Line(11));
}

#[test]
fn msr_vtt_sentences_are_whole_video_captions_with_the_video_split() {
    let dir = tempfile::tempdir().unwrap();
    let document = serde_json::json!({
        "info": {"year": 2016},
        "sentences": [
            {"caption": "a car drives", "video_id": "video0", "sen_id": 10},
            {"caption": "a red car", "video_id": "video0", "sen_id": 11},
            {"caption": "", "video_id": "video1", "sen_id": 12},
            {"caption": "people dance", "video_id": "video1", "sen_id": 13},
            {"caption": "no such video entry", "video_id": "video9"},
            {"caption": "bad id", "video_id": "video2", "sen_id": -4},
            "not an object",
        ],
        "videos": [
            {"category": 9, "url": "https://youtu.be/x", "video_id": "video0",
             "start time": 137.72, "end time": 149.44, "split": "train", "id": 0},
            {"video_id": "video1", "split": "validate", "id": 1},
            {"video_id": "video2", "split": "test", "id": 2},
            {"split": "train", "id": 3},
        ],
    });
    let path = write(
        dir.path(),
        "train_val_videodatainfo.json",
        serde_json::to_vec_pretty(&document).unwrap(),
    );
    let captions = read(&path);
    assert_eq!(captions.format, CaptionFormat::MsrVtt);
    assert_problems(
        &captions,
        &[
            ("sentences[2]", "no caption"),
            ("sentences[5]", "`sen_id` is -4"),
            ("sentences[6]", "is a string"),
            ("videos[3]", "has no `video_id`"),
        ],
    );
    let got: Vec<_> = captions
        .clips
        .iter()
        .map(|c| (c.video.as_str(), c.id, c.split.as_deref(), c.start))
        .collect();
    assert_eq!(
        got,
        [
            ("video0", Some(10), Some("train"), None),
            ("video0", Some(11), Some("train"), None),
            ("video1", Some(13), Some("val"), None),
            ("video9", None, None, None),
        ]
    );
}

#[test]
fn youcook2_segments_with_json_paths_for_bad_entries() {
    let dir = tempfile::tempdir().unwrap();
    let document = serde_json::json!({"database": {
        "aaaaaaaaaaa": {"duration": 100.0, "subset": "training", "recipe_type": "101",
            "video_url": "https://www.youtube.com/watch?v=aaaaaaaaaaa", "annotations": [
                {"segment": [10, 20], "id": 0, "sentence": "crack the eggs"},
                {"segment": [30, 25], "id": 1, "sentence": "backwards"},
                {"segment": [40], "id": 2, "sentence": "one bound"},
                {"segment": [50, 60], "id": 3},
                {"segment": [-5, 2], "id": 4, "sentence": "negative"},
                {"segment": [5, 8], "id": 5, "sentence": "before the first"},
        ]},
        "bbbbbbbbbbb": {"subset": "testing", "annotations": [
                {"segment": [0, 1.5], "id": 0, "sentence": "serve"}]},
        "ccccccccccc": {"subset": "training"},
        "ddddddddddd": [1, 2],
    }});
    let path = write(
        dir.path(),
        "annotations.json",
        serde_json::to_vec(&document).unwrap(),
    );
    let captions = read(&path);
    assert_eq!(captions.format, CaptionFormat::YouCook2);
    assert_problems(
        &captions,
        &[
            (
                "database.aaaaaaaaaaa.annotations[1]",
                "`start` 30 is not before `end` 25",
            ),
            ("database.aaaaaaaaaaa.annotations[2]", "`segment` is [40]"),
            ("database.aaaaaaaaaaa.annotations[3]", "no caption"),
            ("database.aaaaaaaaaaa.annotations[4]", "`start` is -5"),
            ("database.ccccccccccc", "has no `annotations`"),
            ("database.ddddddddddd", "is an array"),
        ],
    );
    let got: Vec<_> = captions
        .clips
        .iter()
        .map(|c| (c.video.as_str(), c.id, c.split.as_deref(), c.start, c.end))
        .collect();
    assert_eq!(
        got,
        [
            (
                "aaaaaaaaaaa",
                Some(0),
                Some("train"),
                Some(10.0),
                Some(20.0)
            ),
            ("aaaaaaaaaaa", Some(5), Some("train"), Some(5.0), Some(8.0)),
            ("bbbbbbbbbbb", Some(0), Some("test"), Some(0.0), Some(1.5)),
        ]
    );
}

#[test]
fn formats_are_told_by_content_when_the_name_does_not_say() {
    let dir = tempfile::tempdir().unwrap();
    let array = write(
        dir.path(),
        "captions.txt",
        r#"[{"video": "v1", "caption": "one"}, {"video": "v1"}]"#,
    );
    assert_eq!(detect_format(&array).unwrap(), Detected::JsonDocument);
    let captions = read(&array);
    assert_eq!(captions.format, CaptionFormat::JsonArray);
    assert_eq!(captions.clips.len(), 1);
    assert_problems(&captions, &[("[1]", "no caption")]);

    let lines = write(
        dir.path(),
        "lines.json",
        "{\"video\": \"v1\", \"caption\": \"one\"}\n{\"video\": \"v2\", \"caption\": \"two\"}\n",
    );
    assert_eq!(detect_format(&lines).unwrap(), Detected::JsonLines);
    assert_eq!(read(&lines).clips.len(), 2);

    let csv = write(dir.path(), "captions", "v1,one\nv2,two\n");
    assert_eq!(detect_format(&csv).unwrap(), Detected::Csv);

    let unknown = write(dir.path(), "notes.txt", "just some words\n");
    let error = read_captions(&unknown).unwrap_err().to_string();
    assert!(
        error.contains("notes.txt") && error.contains("unknown caption format"),
        "{error}"
    );

    let other_json = write(dir.path(), "meta.json", r#"{"abc": {"split": "train"}}"#);
    let error = read_captions(&other_json).unwrap_err().to_string();
    assert!(
        error.contains("meta.json") && error.contains("\"abc\"") && error.contains("database"),
        "{error}"
    );

    let broken = write(dir.path(), "broken.json", "{\"database\": {\"a\": \n");
    let error = read_captions(&broken).unwrap_err().to_string();
    assert!(
        error.contains("broken.json") && error.contains("line 2"),
        "{error}"
    );
}

/// The real YouCook2 train/val annotations, counted independently of the reader.
#[test]
fn real_youcook2_annotations_matched_against_placeholder_files() {
    let path =
        crate::support::shared_dir().join("data/youcook2/youcookii_annotations_trainval.json");
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let database = document["database"].as_object().unwrap();
    let mut expected: HashMap<&str, (usize, usize)> = HashMap::new();
    for video in database.values() {
        let subset = match video["subset"].as_str().unwrap() {
            "training" => "train",
            "validation" => "val",
            other => panic!("subset {other}"),
        };
        let counts = expected.entry(subset).or_default();
        counts.0 += 1;
        counts.1 += video["annotations"].as_array().unwrap().len();
    }
    // The figures the dataset's README gives.
    assert_eq!(expected["train"], (1333, 10337));
    assert_eq!(expected["val"], (457, 3492));

    let captions = read(&path);
    assert_eq!(captions.format, CaptionFormat::YouCook2);
    assert!(
        captions.problems.is_empty(),
        "{:?}",
        &captions.problems[..3]
    );
    let mut got: HashMap<&str, (HashSet<&str>, usize)> = HashMap::new();
    for clip in &captions.clips {
        let counts = got.entry(clip.split.as_deref().unwrap()).or_default();
        counts.0.insert(&clip.video);
        counts.1 += 1;
        assert!(clip.start.unwrap() < clip.end.unwrap());
    }
    for split in ["train", "val"] {
        assert_eq!(
            (got[split].0.len(), got[split].1),
            expected[split],
            "{split}"
        );
    }

    // Placeholders for 6 training and 4 validation videos, some under their recipe type as
    // the download scripts store them, plus a file no caption names.
    let mut ids: Vec<(&str, &serde_json::Value)> = database
        .iter()
        .map(|(id, video)| (id.as_str(), video))
        .collect();
    ids.sort_by_key(|(id, _)| *id);
    let subset = |name: &str, n: usize| -> Vec<(&str, &serde_json::Value)> {
        ids.iter()
            .filter(|(_, v)| v["subset"] == name)
            .take(n)
            .copied()
            .collect()
    };
    let chosen: Vec<(&str, &serde_json::Value)> = subset("training", 6)
        .into_iter()
        .chain(subset("validation", 4))
        .collect();
    let files: Vec<String> = chosen
        .iter()
        .enumerate()
        .map(|(i, (id, video))| {
            if i % 2 == 0 {
                format!("{}/{id}.mp4", video["recipe_type"].as_str().unwrap())
            } else {
                format!("{id}.webm")
            }
        })
        .chain(["unrelated.mkv".to_string()])
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let folder = placeholders(
        dir.path(),
        &files.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let import = import_videos(&folder, &path, SplitFractions::default()).unwrap();
    let segments: usize = chosen
        .iter()
        .map(|(_, v)| v["annotations"].as_array().unwrap().len())
        .sum();
    assert_eq!(import.num_clips(), segments);
    assert_eq!(import.missing.len(), 1790 - 10);
    assert_eq!(
        import.missing.iter().map(|m| m.captions).sum::<usize>(),
        13829 - segments
    );
    assert_eq!(import.uncaptioned, ["unrelated.mkv"]);
    assert_eq!(import.seeded, None, "YouCook2 gives every split");
    let counts = import.split_counts();
    assert_eq!(counts.len(), 2);
    assert_eq!((counts[0].0.as_str(), counts[0].2), ("train", 6));
    assert_eq!((counts[1].0.as_str(), counts[1].2), ("val", 4));
    for (id, video) in &chosen {
        let entries: Vec<_> = import.manifest.iter().filter(|e| e.video == *id).collect();
        let annotations = video["annotations"].as_array().unwrap();
        assert_eq!(entries.len(), annotations.len(), "{id}");
        for entry in &entries {
            let segment_id: u64 = entry
                .clip
                .strip_prefix(&format!("{id}#"))
                .unwrap()
                .parse()
                .unwrap();
            let annotation = annotations.iter().find(|a| a["id"] == segment_id).unwrap();
            assert_eq!(entry.caption.as_deref(), annotation["sentence"].as_str());
            assert_eq!(entry.start, annotation["segment"][0].as_f64());
            assert!(files.contains(entry.path.as_ref().unwrap()));
        }
        let starts: Vec<f64> = entries.iter().map(|e| e.start.unwrap()).collect();
        assert!(starts.is_sorted(), "{id}: clips in time order");
    }
}

/// Captions of `videos` videos with 3 clips each, in a JSON Lines file without splits.
fn unsplit_captions(dir: &Path, name: &str, videos: usize, reversed: bool) -> PathBuf {
    let mut lines: Vec<String> = (0..videos)
        .flat_map(|v| {
            (0..3).map(move |c| {
                serde_json::json!({
                    "video": format!("clip_{v:03}"),
                    "caption": format!("caption {c} of video {v}"),
                    "start": c * 2,
                    "end": c * 2 + 2,
                })
                .to_string()
            })
        })
        .collect();
    if reversed {
        lines.reverse();
    }
    write(dir, name, lines.join("\n"))
}

fn split_of_videos(import: &VideoImport) -> HashMap<String, String> {
    let mut split_of = HashMap::new();
    for entry in &import.manifest {
        let first = split_of
            .entry(entry.video.clone())
            .or_insert_with(|| entry.split.clone());
        assert_eq!(
            *first, entry.split,
            "video {} is in two splits",
            entry.video
        );
    }
    split_of
}

#[test]
fn seeded_split_is_by_video_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..40).map(|v| format!("clip_{v:03}.mp4")).collect();
    let folder = placeholders(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let forward = unsplit_captions(dir.path(), "forward.jsonl", 40, false);
    let backward = unsplit_captions(dir.path(), "backward.jsonl", 40, true);
    let fractions = SplitFractions {
        seed: 11,
        val: 0.2,
        test: 0.1,
    };
    let first = import_videos(&folder, &forward, fractions).unwrap();
    assert_eq!(first.seeded, Some(fractions));
    let splits = split_of_videos(&first);
    let count = |name: &str| splits.values().filter(|s| *s == name).count();
    assert_eq!((count("train"), count("val"), count("test")), (28, 8, 4));
    let again = import_videos(&folder, &forward, fractions).unwrap();
    assert_eq!(again.manifest, first.manifest, "same input, same manifest");
    let reordered = import_videos(&folder, &backward, fractions).unwrap();
    assert_eq!(
        split_of_videos(&reordered),
        splits,
        "the split does not depend on the order of the captions"
    );
    let reseeded = import_videos(
        &folder,
        &forward,
        SplitFractions {
            seed: 12,
            ..fractions
        },
    )
    .unwrap();
    assert_ne!(split_of_videos(&reseeded), splits);
    // Clip keys are the video and the clip's place among its captions.
    assert!(first.manifest.iter().any(|e| e.clip == "clip_000#2"));
}

#[test]
fn given_splits_are_kept_and_unsplit_videos_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let folder = placeholders(dir.path(), &["a.mp4", "b.mp4", "c.mp4", "d.mp4"]);
    let captions = write(
        dir.path(),
        "captions.csv",
        "video,caption,split,clip\n\
         a,one,test,\n\
         a,two,,\n\
         a,three,train,\n\
         b,four,,\n\
         c,five,,shared\n\
         d,six,,shared\n",
    );
    let import = import_videos(&folder, &captions, SplitFractions::default()).unwrap();
    let problems: Vec<String> = import.clip_problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("line 4: split `train`, but video \"a\" is in `test` (line 2)"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("line 7: clip key \"shared\" is already used by line 6"),
        "{problems:?}"
    );
    let splits = split_of_videos(&import);
    assert_eq!(splits["a"], "test");
    assert_eq!(import.videos_with_given_split, 1);
    assert!(import.seeded.is_some());
    let a: Vec<&str> = import
        .manifest
        .iter()
        .filter(|e| e.video == "a")
        .map(|e| e.clip.as_str())
        .collect();
    assert_eq!(a, ["a#0", "a#1"], "the unsplit caption follows its video");
}

#[test]
fn a_key_two_files_answer_to_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let folder = placeholders(dir.path(), &["x/clip.mp4", "y/clip.mp4", "other.mp4"]);
    let captions = write(dir.path(), "captions.csv", "other,fine\nclip,which one?\n");
    let error = import_videos(&folder, &captions, SplitFractions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("line 2") && error.contains("x/clip.mp4") && error.contains("y/clip.mp4"),
        "{error}"
    );
    // Named by relative path, the same files are fine.
    let captions = write(dir.path(), "paths.csv", "x/clip,one\ny/clip.mp4,two\n");
    let import = import_videos(&folder, &captions, SplitFractions::default()).unwrap();
    let videos: HashSet<&str> = import.manifest.iter().map(|e| e.video.as_str()).collect();
    assert_eq!(videos, HashSet::from(["x/clip", "y/clip"]));
}

#[test]
fn nothing_matched_is_an_error_showing_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let folder = placeholders(dir.path(), &["video_a.mp4"]);
    let captions = write(dir.path(), "captions.csv", "vid1,one\nvid2,two\n");
    let error = import_videos(&folder, &captions, SplitFractions::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vid1") && error.contains("video_a.mp4"),
        "{error}"
    );
}

// ---- `crossclr new --videos` through the binary ----

#[test]
fn new_from_videos_writes_settings_and_manifest_and_train_asks_for_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..10)
        .map(|v| format!("cooking/clip_{v:03}.mp4"))
        .chain(["cooking/spare.mov".to_string()])
        .collect();
    let folder = placeholders(
        dir.path(),
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let captions = unsplit_captions(dir.path(), "captions.jsonl", 12, false);
    let mut text = std::fs::read_to_string(&captions).unwrap();
    text.push_str("\n{\"video\": \"clip_000\", \"caption\": \"bad\", \"start\": 9, \"end\": 1}\n");
    std::fs::write(&captions, text).unwrap();
    let project_dir = dir.path().join("project");
    let project = project_dir.to_str().unwrap();
    let (ok, stdout, stderr) = crossclr(&[
        "new",
        project,
        "--videos",
        folder.to_str().unwrap(),
        "--captions",
        captions.to_str().unwrap(),
        "--split-seed",
        "5",
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0.2",
    ]);
    assert!(ok, "new failed: {stderr}");
    for expected in [
        "source videos",
        "JSON Lines",
        "36 read, 1 entries skipped",
        "11 files, 10 with captions",
        "10 videos split by seed 5 (val 0.2, test 0.2)",
        "made 30 clips",
        "captions.jsonl:37: `start` 9 is not before `end` 1",
        "6 captions of 2 videos not in the folder: clip_010, clip_011",
        "1 video files without captions: cooking/spare.mov",
        "crossclr ingest",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }

    let project = Project::open(&project_dir).unwrap();
    let source = &project.config().source;
    assert_eq!(source.kind, SourceKind::Videos);
    assert_eq!(
        Path::new(source.videos.as_deref().unwrap()),
        std::path::absolute(&folder).unwrap()
    );
    assert_eq!(
        Path::new(source.captions.as_deref().unwrap()),
        std::path::absolute(&captions).unwrap()
    );
    assert_eq!(
        (source.split_seed, source.val_fraction, source.test_fraction),
        (Some(5), Some(0.2), Some(0.2))
    );
    assert!(project.config().encoders.video.is_none());
    let manifest = project.read_manifest().unwrap();
    assert!(manifest.problems.is_empty(), "{:?}", manifest.problems);
    assert_eq!(manifest.entries.len(), 30);
    let splits: Vec<&str> = manifest.entries.iter().map(|e| e.split.as_str()).collect();
    let mut order = splits.clone();
    order.dedup();
    assert_eq!(order, ["train", "val", "test"], "split by split");
    for entry in &manifest.entries {
        let file = project.video_path(entry).unwrap();
        assert!(file.is_file(), "{}", file.display());
        assert!(entry.path.as_ref().unwrap().starts_with("cooking/"));
    }
    let with_ids = manifest
        .entries
        .iter()
        .filter(|e| e.video == "clip_003")
        .map(|e| (e.clip.as_str(), e.start, e.caption.as_deref()))
        .collect::<Vec<_>>();
    assert_eq!(
        with_ids,
        [
            ("clip_003#0", Some(0.0), Some("caption 0 of video 3")),
            ("clip_003#1", Some(2.0), Some("caption 1 of video 3")),
            ("clip_003#2", Some(4.0), Some("caption 2 of video 3")),
        ]
    );

    // The same command again must not touch the project.
    let before = std::fs::read(project_dir.join("manifest.jsonl")).unwrap();
    let (ok, _, stderr) = crossclr(&[
        "new",
        project_dir.to_str().unwrap(),
        "--videos",
        folder.to_str().unwrap(),
        "--captions",
        captions.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(
        std::fs::read(project_dir.join("manifest.jsonl")).unwrap(),
        before
    );

    let (ok, _, stderr) = crossclr(&["train", project_dir.to_str().unwrap(), "--epochs", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("has no features yet")
            && stderr.contains(&format!(
                "run `crossclr ingest {}` first",
                project_dir.display()
            )),
        "{stderr}"
    );
    assert!(
        !project_dir.join("runs").read_dir().unwrap().any(|_| true),
        "a refused run leaves no run directory"
    );
}

#[test]
fn new_from_videos_refuses_bad_arguments_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let folder = placeholders(dir.path(), &["a.mp4"]);
    let captions = write(dir.path(), "captions.csv", "a,one\n");
    let project = dir.path().join("project");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "new",
            project.to_str().unwrap(),
            "--videos",
            folder.to_str().unwrap(),
            "--captions",
            captions.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        crossclr(&args)
    };
    let (ok, _, stderr) = run(&["--val-fraction", "0.6", "--test-fraction", "0.5"]);
    assert!(!ok && stderr.contains("add up to"), "{stderr}");
    let (ok, _, stderr) = run(&["--val-fraction", "1.5"]);
    assert!(!ok && stderr.contains("0 ≤ fraction < 1"), "{stderr}");
    let (ok, _, stderr) = crossclr(&[
        "new",
        project.to_str().unwrap(),
        "--captions",
        captions.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("--videos"), "{stderr}");
    let empty_captions = write(dir.path(), "empty.csv", "video,caption\nb,\n");
    let (ok, _, stderr) = crossclr(&[
        "new",
        project.to_str().unwrap(),
        "--videos",
        folder.to_str().unwrap(),
        "--captions",
        empty_captions.to_str().unwrap(),
    ]);
    assert!(
        !ok && stderr.contains("no usable caption") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(!project.exists(), "a refused command creates no project");
    // A single video: the seeded split keeps it for training.
    let (ok, stdout, stderr) = run(&[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("train") && stdout.contains("nothing skipped"),
        "{stdout}"
    );
}

#[test]
fn split_settings_in_crossclr_toml_are_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "crossclr.toml",
        "[source]\nkind = \"videos\"\nsplit_seed = 3\nval_fraction = 1.5\n",
    );
    let error = Project::open(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("crossclr.toml") && error.contains("`source.val_fraction` is 1.5"),
        "{error}"
    );
    write(
        dir.path(),
        "crossclr.toml",
        "[source]\nkind = \"videos\"\nsplit_seed = 3\nval_fraction = 0.25\n",
    );
    let source = Project::open(dir.path()).unwrap().config().source.clone();
    assert_eq!(
        (source.split_seed, source.val_fraction, source.test_fraction),
        (Some(3), Some(0.25), None)
    );
}
