//! Seeded mutation testing of the project's readers, on stable Rust: from a few valid files of
//! each kind, random byte edits (flips, inserts, deletions, duplicated ranges and tokens that
//! parsers trip on) are written out and read back. Every read must return — a value or an error
//! — and never panic. The executions per reader are `CROSSCLR_MUTATIONS` (default 500), the
//! seed `CROSSCLR_MUTATION_SEED` (default 0), so a longer campaign is one environment variable:
//! `CROSSCLR_MUTATIONS=100000 cargo test --lib mutation`.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::config::ProjectConfig;
use super::{Sequences, SplitFeatures, captions, manifest};

/// Fragments that sit on parsers' edges: quotes, separators, brackets, odd numbers, bad UTF-8.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b",",
    b"\n",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"NaN",
    b"-1",
    b"1e309",
    b"-0",
    b"\xff",
    b"\xc3",
    b"\0",
    b"null",
    b"\"\"",
    b"[[",
    b"\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"18446744073709551615",
    b"=",
    b"'''",
    b"\\u0000",
    b"\\",
];

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..6) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => bytes.insert(at, rng.random()),
            2 if at < bytes.len() => {
                let end = (at + rng.random_range(1..=16)).min(bytes.len());
                bytes.drain(at..end);
            }
            3 if at < bytes.len() => {
                let end = (at + rng.random_range(1..=32)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.random_range(0..=bytes.len());
                bytes.splice(to..to, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
        }
    }
    bytes
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes mutations of `seeds` as `dir/name` and reads each with `read`; returns the executions.
fn campaign(dir: &Path, name: &str, seeds: &[Vec<u8>], read: impl Fn(&Path)) -> u64 {
    let runs = setting("CROSSCLR_MUTATIONS", 500);
    let mut rng = ChaCha8Rng::seed_from_u64(setting("CROSSCLR_MUTATION_SEED", 0));
    let path = dir.join(name);
    for run in 0..runs {
        let seed = &seeds[run as usize % seeds.len()];
        let bytes = mutate(&mut rng, seed);
        std::fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&path)));
        if outcome.is_err() {
            let kept = dir.join(format!("crash-{name}"));
            std::fs::copy(&path, &kept).unwrap();
            panic!(
                "{name}: reading mutation {run} panicked; the input is {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    runs
}

#[test]
fn mutated_inputs_to_every_reader_give_a_value_or_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut executions = Vec::new();

    let csv = vec![
        b"video,caption,start,end\nv1,\"a caption, quoted\",0,2\nv2,plain,1.5,4\n".to_vec(),
        b"video_id,sentence,split\nv1,one,train\nv2,\"two\"\"s\",val\n".to_vec(),
    ];
    executions.push((
        "captions.csv",
        campaign(dir.path(), "c.csv", &csv, |p| {
            let _ = captions::read_captions(p);
        }),
    ));
    let jsonl = vec![
        b"{\"video\":\"v1\",\"caption\":\"one\",\"start\":0,\"end\":2}\n{\"video\":\"v2\",\"caption\":\"two\"}\n".to_vec(),
    ];
    executions.push((
        "captions.jsonl",
        campaign(dir.path(), "c.jsonl", &jsonl, |p| {
            let _ = captions::read_captions(p);
        }),
    ));
    let documents = vec![
        br#"{"videos":[{"video_id":"video0","split":"train","start time":0,"end time":4}],"sentences":[{"video_id":"video0","caption":"a man cooks"}]}"#.to_vec(),
        br#"{"database":{"GLd3aX16zBg":{"subset":"training","duration":241.6,"annotations":[{"segment":[90,102],"sentence":"spread margarine"}]}}}"#.to_vec(),
    ];
    executions.push((
        "MSR-VTT / YouCook2 .json",
        campaign(dir.path(), "c.json", &documents, |p| {
            let _ = captions::read_captions(p);
        }),
    ));
    let manifest_seed = vec![
        br#"{"clip":"c0","video":"v0","split":"train","start":1.5,"end":4.0,"caption":"whisk","path":"a/v0.mp4"}
{"clip":"c1","video":"v0","split":"val"}
"#
        .to_vec(),
    ];
    executions.push((
        "manifest.jsonl",
        campaign(dir.path(), "manifest.jsonl", &manifest_seed, |p| {
            let _ = manifest::read_manifest(p);
        }),
    ));
    let config_path = dir.path().join("seed.toml");
    ProjectConfig::default().save(&config_path).unwrap();
    let config = vec![std::fs::read(&config_path).unwrap()];
    executions.push((
        "crossclr.toml",
        campaign(dir.path(), "crossclr.toml", &config, |p| {
            let _ = ProjectConfig::load(p);
        }),
    ));
    let sequences = |dim: usize, lengths: &[usize]| {
        let mut s = Sequences::new(dim);
        for &rows in lengths {
            s.push(&vec![0.5; rows * dim]);
        }
        s
    };
    let features_path = dir.path().join("seed.safetensors");
    SplitFeatures {
        split: "train".into(),
        clip_keys: vec!["c0".into(), "c1".into()],
        video_keys: vec!["v0".into()],
        video_of_clip: vec![0, 0],
        video: sequences(3, &[2, 1]),
        text: sequences(2, &[1, 3]),
    }
    .save(&features_path)
    .unwrap();
    let features = vec![std::fs::read(&features_path).unwrap()];
    executions.push((
        "features .safetensors",
        campaign(dir.path(), "f.safetensors", &features, |p| {
            let _ = SplitFeatures::load(p);
        }),
    ));

    eprintln!(
        "mutation campaign: {executions:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
