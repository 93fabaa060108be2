//! The fuzz targets in `cargo test`, on stable Rust: every file of the committed cargo-fuzz corpus
//! (`fuzz/corpus/<target>/`) is replayed through the same entry points (`super::fuzzing`), and
//! then seeded mutations of it (flips, inserts, deletions, duplicated ranges and tokens that
//! parsers trip on) are. Every read must return — a value or an error — and never panic. The
//! mutations per target are `CROSSCLR_MUTATIONS` (default 500), the seed
//! `CROSSCLR_MUTATION_SEED` (default 0), so a longer campaign is one environment variable:
//! `CROSSCLR_MUTATIONS=100000 cargo test --lib mutation`.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::fuzzing::Target;

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

/// The committed corpus of `target`, in file-name order.
fn corpus(target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target.name());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

/// Runs `target` on `bytes`; the panic's message if it panicked.
fn panics(target: Target, bytes: &[u8]) -> Option<String> {
    std::panic::catch_unwind(|| target.run(bytes))
        .err()
        .map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

#[test]
fn every_file_of_the_committed_fuzz_corpus_reads_without_a_panic() {
    for target in Target::ALL {
        let files = corpus(target);
        assert!(!files.is_empty(), "{}: the corpus is empty", target.name());
        for (path, bytes) in files {
            if let Some(message) = panics(target, &bytes) {
                panic!("{}: {} panicked: {message}", target.name(), path.display());
            }
        }
    }
}

#[test]
fn mutated_inputs_to_every_reader_give_a_value_or_an_error_never_a_panic() {
    let started = std::time::Instant::now();
    let runs = setting("CROSSCLR_MUTATIONS", 500);
    let seed = setting("CROSSCLR_MUTATION_SEED", 0);
    let dir = tempfile::tempdir().unwrap();
    let mut executions = Vec::new();
    for target in Target::ALL {
        let seeds = corpus(target);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for run in 0..runs {
            let (origin, bytes) = &seeds[run as usize % seeds.len()];
            let bytes = mutate(&mut rng, bytes);
            if let Some(message) = panics(target, &bytes) {
                let kept = dir.keep().join(format!("crash-{}", target.name()));
                std::fs::write(&kept, &bytes).unwrap();
                panic!(
                    "{}: mutation {run} of {} panicked: {message}; the input is kept as {} \
                     (add it to the corpus once fixed)",
                    target.name(),
                    origin.display(),
                    kept.display()
                );
            }
        }
        executions.push((target.name(), runs));
    }
    eprintln!(
        "mutation campaign: {executions:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
