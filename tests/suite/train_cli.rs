//! `crossclr synth`, `train` and `eval` end to end through the binary: a run's files, refusing to
//! overwrite a run, Ctrl-C saving the state and `--resume` finishing the run, the evaluation JSON
//! and the embeddings it writes.

use crate::support::crossclr;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safetensors::SafeTensors;

fn synth_project(dir: &Path) -> String {
    let project = dir.join("synth").to_str().unwrap().to_string();
    let (ok, stdout, stderr) =
        crossclr(&["synth", &project, "--kind", "duplicates", "--seed", "4"]);
    assert!(ok, "synth failed: {stderr}");
    assert!(
        stdout.contains("train") && stdout.contains("clips"),
        "{stdout}"
    );
    project
}

fn metrics(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn train_writes_a_run_refuses_to_overwrite_it_and_eval_reports_both_levels() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let (ok, stdout, stderr) = crossclr(&[
        "train", &project, "--epochs", "2", "--seed", "3", "--run", "first",
    ]);
    assert!(ok, "train failed: {stderr}");
    assert!(stdout.contains("epoch   2"), "{stdout}");
    let run_dir = Path::new(&project).join("runs").join("first");
    for file in [
        "checkpoint.safetensors",
        "config.json",
        "state.safetensors",
        "metrics.jsonl",
    ] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    let records = metrics(&run_dir);
    assert_eq!(records.len(), 2);
    for (epoch, record) in records.iter().enumerate() {
        // Epochs count from 1, as the progress lines count them.
        assert_eq!(record["epoch"], epoch + 1);
        assert!(record["loss"].as_f64().unwrap().is_finite());
        let pruned = record["pruned_fraction"].as_f64().unwrap();
        assert!((0.0..1.0).contains(&pruned), "{record}");
        for direction in [
            "clip_to_sentence",
            "sentence_to_clip",
            "video_to_paragraph",
            "paragraph_to_video",
        ] {
            for k in ["r1", "r5", "r10"] {
                let r = record["validation"][direction][k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&r), "{direction} {k} = {r}");
            }
        }
    }

    let (ok, _, stderr) = crossclr(&["train", &project, "--epochs", "2", "--run", "first"]);
    assert!(!ok, "an existing run was overwritten");
    assert!(stderr.contains("--resume"), "{stderr}");

    let (ok, stdout, stderr) = crossclr(&["eval", &project, "--json"]);
    assert!(ok, "eval failed: {stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let object = report.as_object().unwrap();
    assert_eq!(object.len(), 4);
    for direction in [
        "clip_to_sentence",
        "sentence_to_clip",
        "video_to_paragraph",
        "paragraph_to_video",
    ] {
        let metrics = report[direction].as_object().unwrap();
        let mut keys: Vec<_> = metrics.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["mean_rank", "median_rank", "r1", "r10", "r5", "r50"],
            "{direction}"
        );
        assert!(metrics["median_rank"].as_f64().unwrap() >= 1.0);
    }

    let bytes = std::fs::read(run_dir.join("embeddings.safetensors")).unwrap();
    let embeddings = SafeTensors::deserialize(&bytes).unwrap();
    let clips = embeddings.tensor("clip").unwrap().shape().to_vec();
    let sentences = embeddings.tensor("sentence").unwrap().shape().to_vec();
    let videos = embeddings.tensor("video").unwrap().shape().to_vec();
    let paragraphs = embeddings.tensor("paragraph").unwrap().shape().to_vec();
    assert_eq!(clips, sentences);
    assert_eq!(videos, paragraphs);
    assert!(clips[0] > videos[0]);
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone().unwrap();
    let clip_keys: Vec<String> = serde_json::from_str(&metadata["clip_keys"]).unwrap();
    let video_keys: Vec<String> = serde_json::from_str(&metadata["video_keys"]).unwrap();
    assert_eq!(clip_keys.len(), clips[0]);
    assert_eq!(video_keys.len(), videos[0]);

    // The human table names each direction.
    let (ok, stdout, _) = crossclr(&["eval", &project, "--run", "first"]);
    assert!(ok);
    assert!(
        stdout.contains("video → paragraph") && stdout.contains("R@10"),
        "{stdout}"
    );

    // Nothing needs writing to show the metrics: where the embeddings cannot be kept (here a
    // folder in their place, which even root cannot replace with a file), eval still prints
    // the metrics and warns.
    let embeddings = run_dir.join("embeddings.safetensors");
    std::fs::remove_file(&embeddings).unwrap();
    std::fs::create_dir_all(embeddings.join("in-the-way")).unwrap();
    let (ok, stdout, stderr) = crossclr(&["eval", &project, "--run", "first"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("embeddings not kept") && stdout.contains("video → paragraph"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning: the embeddings were not written"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&embeddings).unwrap();

    // A missing split is named with the splits there are; the hint names a real setting or flag.
    let (ok, _, stderr) = crossclr(&["eval", &project, "--run", "first", "--split", "nope"]);
    assert!(!ok);
    assert!(
        stderr.contains("`nope`") && stderr.contains("train, val, test"),
        "{stderr}"
    );
    assert!(!stderr.contains("evaluation_split"), "{stderr}");

    let (ok, _, stderr) = crossclr(&["eval", &project, "--run", "missing"]);
    assert!(!ok);
    assert!(stderr.contains("missing"), "{stderr}");

    // Features re-encoded by another encoder are not what the run was trained on.
    let settings = Path::new(&project).join("crossclr.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    let text_section = text
        .find("[encoders.text]")
        .expect("the text encoder is recorded");
    let renamed = format!(
        "{}{}",
        &text[..text_section],
        text[text_section..].replacen("name = \"precomputed\"", "name = \"other\"", 1)
    );
    assert_ne!(renamed, text);
    std::fs::write(&settings, renamed).unwrap();
    let (ok, _, stderr) = crossclr(&["eval", &project, "--run", "first"]);
    assert!(!ok, "eval read features from another encoder");
    assert!(
        stderr.contains("run `first`")
            && stderr.contains("text side: the project has `other`")
            && stderr.contains("`precomputed`")
            && !stderr.contains("video side"),
        "{stderr}"
    );
    // Search embeds the project's clips with the run's head, so it refuses the same way.
    let (ok, _, stderr) = crossclr(&["search", &project, "a query", "--run", "first"]);
    assert!(!ok, "search read features from another encoder");
    assert!(
        stderr.contains("run `first`") && stderr.contains("text side: the project has `other`"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_saves_the_state_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let run_dir = Path::new(&project).join("runs").join("interrupted");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossclr"))
        .args(["train", &project, "--epochs", "40", "--run", "interrupted"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch line, then interrupt as a terminal's Ctrl-C would.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("epoch   1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no epoch line: {seen:?}"
        );
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "after Ctrl-C: {exit:?} {rest:?}");
    let last = rest.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("stopped at epoch") && last.contains("--resume"),
        "{rest:?}"
    );
    let done = metrics(&run_dir).len();
    assert!((1..40).contains(&done), "{done} epochs written");
    assert!(run_dir.join("state.safetensors").is_file());

    // Resume with fewer epochs than the first invocation asked for: it finishes at epoch 3
    // (or at once, if the interruption landed after epoch 3).
    let target = done.max(3);
    let (ok, stdout, stderr) = crossclr(&[
        "train",
        &project,
        "--epochs",
        &target.to_string(),
        "--run",
        "interrupted",
        "--resume",
    ]);
    assert!(ok, "resume failed: {stderr}");
    assert!(stdout.contains("done: best checkpoint"), "{stdout}");
    let records = metrics(&run_dir);
    assert_eq!(records.len(), target);
    let epochs: Vec<u64> = records
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, (1..=target as u64).collect::<Vec<_>>());
}

#[test]
fn train_and_eval_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let (ok, _, stderr) = crossclr(&["train", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("nothing-here"), "{stderr}");

    let project = synth_project(dir.path());
    let (ok, _, stderr) = crossclr(&["eval", &project]);
    assert!(!ok, "eval without a run succeeded");
    assert!(stderr.contains("runs"), "{stderr}");

    let (ok, _, stderr) = crossclr(&["train", &project, "--device", "tpu"]);
    assert!(!ok);
    assert!(stderr.contains("tpu"), "{stderr}");
    assert!(
        !Path::new(&project)
            .join("runs")
            .join("crossclr-paper-s0")
            .exists(),
        "a refused run left a directory"
    );

    let (ok, _, stderr) = crossclr(&["synth", &project]);
    assert!(!ok, "synth overwrote a project");
    assert!(stderr.contains("not empty"), "{stderr}");
}

/// Starts `crossclr train PROJECT --run RUN --epochs 40` and returns it with its stdout lines.
fn start_training(
    project: &str,
    run: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossclr"))
        .args(["train", project, "--epochs", "40", "--run", run])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads lines until one starts with `prefix`.
fn wait_for(lines: &mut impl Iterator<Item = std::io::Result<String>>, prefix: &str) {
    let mut seen = Vec::new();
    for line in lines {
        let line = line.unwrap();
        if line.starts_with(prefix) {
            return;
        }
        seen.push(line);
    }
    panic!("no line starting with {prefix:?}: {seen:?}");
}

fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_in_the_first_epoch_leaves_a_run_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let (mut child, mut lines) = start_training(&project, "early");
    // The run's first line comes before its first step.
    wait_for(&mut lines, "run `early`");
    interrupt(&child);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success(), "{rest:?}");
    assert!(
        rest.last()
            .is_some_and(|l| l.starts_with("stopped at epoch 1,")),
        "{rest:?}"
    );
    let run_dir = Path::new(&project).join("runs").join("early");
    assert!(!run_dir.join("metrics.jsonl").exists(), "an epoch finished");

    let (ok, _, stderr) = crossclr(&["train", &project, "--epochs", "2", "--run", "early"]);
    assert!(!ok, "a plain rerun overwrote the saved state");
    assert!(stderr.contains("--resume"), "{stderr}");
    let (ok, stdout, stderr) = crossclr(&[
        "train", &project, "--epochs", "2", "--run", "early", "--resume",
    ]);
    assert!(ok, "resume after a first-epoch Ctrl-C failed: {stderr}");
    assert!(stdout.contains("done: best checkpoint"), "{stdout}");
    assert_eq!(metrics(&run_dir).len(), 2);
}

#[test]
fn a_second_writer_of_a_run_is_refused_with_the_holders_process() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let (mut child, mut lines) = start_training(&project, "shared");
    // After the first epoch the run has a state, so `--resume` gets past its own checks.
    wait_for(&mut lines, "epoch   1");
    let (ok, _, stderr) = crossclr(&[
        "train", &project, "--epochs", "2", "--run", "shared", "--resume",
    ]);
    assert!(!ok, "two processes wrote one run");
    assert!(
        stderr.contains("run `shared` is being written by another crossclr")
            && stderr.contains(&format!("process {}", child.id())),
        "{stderr}"
    );
    interrupt(&child);
    let _: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    // The holder is gone: its lock went with it.
    let (ok, _, stderr) = crossclr(&[
        "train", &project, "--epochs", "1", "--run", "shared", "--resume",
    ]);
    assert!(ok, "the lock outlived its process: {stderr}");
}

#[test]
fn run_names_that_would_leave_runs_or_nest_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    for name in ["../../escape", "", "a/b", ".hidden"] {
        let (ok, _, stderr) = crossclr(&["train", &project, "--epochs", "1", "--run", name]);
        assert!(!ok, "--run {name:?} was accepted");
        assert!(
            stderr.contains("cannot be a run name"),
            "{name:?}: {stderr}"
        );
    }
    let runs = Path::new(&project).join("runs");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);
    assert!(!dir.path().join("escape").exists());

    let (ok, _, stderr) = crossclr(&["train", &project, "--run", "never", "--resume"]);
    assert!(!ok, "--resume of a run that does not exist started one");
    assert!(stderr.contains("nothing to resume"), "{stderr}");
    assert!(!runs.join("never").exists());
}

#[test]
fn a_closed_stdout_ends_training_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let (child, mut lines) = start_training(&project, "piped");
    // `crossclr train … | head -1`: one line read, then the reader goes away.
    lines.next().unwrap().unwrap();
    drop(lines);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // It stopped, with a state to resume from, instead of training 40 epochs for nobody.
    let run_dir = Path::new(&project).join("runs").join("piped");
    assert!(run_dir.join("state.safetensors").is_file());
    assert!(metrics(&run_dir).len() < 40);
}

#[test]
fn a_run_killed_before_its_first_saved_state_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let project = synth_project(dir.path());
    let train = |run: &str, epochs: &str, extra: &[&str]| {
        let mut args = vec!["train", &project, "--epochs", epochs, "--run", run];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = crossclr(&args);
        assert!(ok, "train --run {run} {extra:?} failed: {stderr}");
        stdout
    };
    train("whole", "2", &[]);
    let runs = Path::new(&project).join("runs");

    // `kill -9` between epoch 1's checkpoint and its state: weights, sidecar and metrics are
    // there, the state is not. A plain rerun is refused (the run has a checkpoint), so resuming
    // must work, from the first epoch.
    train("cut", "1", &[]);
    std::fs::remove_file(runs.join("cut").join("state.safetensors")).unwrap();
    let stdout = train("cut", "2", &["--resume"]);
    assert!(stdout.contains("no state saved yet"), "{stdout}");

    // `kill -9` during epoch 1: only the run's settings and lock are there.
    let (mut child, mut lines) = start_training(&project, "early");
    wait_for(&mut lines, "run `early`");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !runs.join("early").join("state.safetensors").exists(),
        "the kill landed after epoch 1; this test needs it before"
    );
    train("early", "2", &["--resume"]);

    for run in ["cut", "early"] {
        for file in [
            "checkpoint.safetensors",
            "config.json",
            "state.safetensors",
            "run.json",
        ] {
            assert!(
                std::fs::read(runs.join(run).join(file)).unwrap()
                    == std::fs::read(runs.join("whole").join(file)).unwrap(),
                "{run}/{file} differs from the uninterrupted run's"
            );
        }
        let epochs: Vec<u64> = metrics(&runs.join(run))
            .iter()
            .map(|r| r["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(epochs, [1, 2], "{run}");
    }
}
