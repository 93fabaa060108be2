//! `crossclr graph`, `negatives` (set and replayed batch scope, the audit), `search --json`,
//! `neighbours` and `export` end to end: against a NumPy computation of DESIGN.md §4, against the
//! batches and queue the training loop really formed, and against brute-force recomputations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use crossclr::analysis::replay::RunReplay;
use crossclr::analysis::samples::{Level, Samples};
use crossclr::crossclr::{HostMatrix, Mode, batch_connectivity, influential_mask};
use crossclr::jobs::CancelToken;
use crossclr::project::{Project, RunName};
use serde_json::Value;

use crate::support::crossclr;

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn keys_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect()
}

fn strings(list: &Value) -> Vec<String> {
    serde_json::from_value(list.clone()).unwrap()
}

/// A synthetic project (text features renamed to the `hashed:40` encoder, so typed queries can be
/// encoded) with two trained runs: `paper` (2 epochs, paper mode, the paper's κ, a queue of 512)
/// and `official` (1 epoch, official mode, a queue that starts from seeded noise). Made once for
/// the module.
fn trained() -> &'static Path {
    static PROJECT: OnceLock<PathBuf> = OnceLock::new();
    PROJECT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analysis_cli");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let project = root.join("trained");
        let dir = project.to_str().unwrap();
        let (ok, _, stderr) = crossclr(&["synth", dir, "--kind", "duplicates", "--seed", "4"]);
        assert!(ok, "synth failed: {stderr}");
        let settings = project.join("crossclr.toml");
        let text = std::fs::read_to_string(&settings).unwrap();
        let at = text.find("[encoders.text]").unwrap();
        let renamed = format!(
            "{}{}",
            &text[..at],
            text[at..].replacen("name = \"precomputed\"", "name = \"hashed:40\"", 1)
        );
        assert_ne!(renamed, text);
        std::fs::write(&settings, renamed).unwrap();
        for args in [
            [
                "--epochs", "2", "--seed", "3", "--run", "paper", "--mode", "paper", "--queue",
                "512", "--kappa", "0.0035",
            ],
            [
                "--epochs", "1", "--seed", "5", "--run", "official", "--mode", "official",
                "--queue", "512", "--kappa", "0.0035",
            ],
        ] {
            let mut all = vec!["train", dir];
            all.extend(args);
            let (ok, _, stderr) = crossclr(&all);
            assert!(ok, "train {args:?} failed: {stderr}");
        }
        project
    })
}

/// A project made from the NumPy fixture's features (pooled: one frame and one token per clip).
fn fixture_project(dir: &Path, fixture: &Value) -> PathBuf {
    let rows = |name: &str| -> (Vec<u8>, Vec<usize>) {
        let rows: Vec<Vec<f64>> = serde_json::from_value(fixture[name].clone()).unwrap();
        let shape = vec![rows.len(), rows[0].len()];
        let bytes = rows
            .iter()
            .flatten()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        (bytes, shape)
    };
    let (video, video_shape) = rows("video");
    let (text, text_shape) = rows("text");
    let video_of_clip: Vec<u8> = fixture["video_of_clip"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| (v.as_i64().unwrap()).to_le_bytes())
        .collect();
    let n = video_shape[0];
    use safetensors::tensor::{Dtype, TensorView};
    let views = vec![
        (
            "train/video",
            TensorView::new(Dtype::F32, video_shape, &video).unwrap(),
        ),
        (
            "train/text",
            TensorView::new(Dtype::F32, text_shape, &text).unwrap(),
        ),
        (
            "train/video_of_clip",
            TensorView::new(Dtype::I64, vec![n], &video_of_clip).unwrap(),
        ),
    ];
    let metadata = HashMap::from([
        ("train/clip_keys".to_string(), fixture["keys"].to_string()),
        (
            "train/video_keys".to_string(),
            fixture["video_keys"].to_string(),
        ),
    ]);
    let features = dir.join("features.safetensors");
    safetensors::serialize_to_file(views, Some(metadata), &features).unwrap();
    let project = dir.join("reference");
    let (ok, _, stderr) = crossclr(&[
        Path::new("new"),
        &project,
        Path::new("--features"),
        &features,
    ]);
    assert!(ok, "new --features failed: {stderr}");
    project
}

#[test]
fn negatives_match_the_numpy_reference_on_a_project_the_test_writes() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/suite/fixtures/negatives_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let project = fixture_project(dir.path(), &fixture);
    let project = project.to_str().unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 36);
    for case in cases {
        let gamma = case["gamma"].as_f64().unwrap().to_string();
        let (ok, stdout, stderr) = crossclr(&[
            "negatives",
            project,
            "--anchor",
            case["anchor"].as_str().unwrap(),
            "--modality",
            case["modality"].as_str().unwrap(),
            "--mode",
            case["mode"].as_str().unwrap(),
            "--gamma",
            &gamma,
            "--json",
        ]);
        assert!(ok, "negatives failed: {stderr}");
        let got = json(&stdout);
        let what = format!(
            "{} γ {} {} anchor {}",
            case["mode"], gamma, case["modality"], case["anchor"]
        );
        assert_eq!(got["anchor"], case["anchor"], "{what}");
        assert_eq!(got["scope"], "set", "{what}");
        assert_eq!(
            got["positive"],
            serde_json::json!([case["anchor"]]),
            "{what}"
        );
        assert_eq!(
            strings(&got["influential"]),
            strings(&case["influential"]),
            "{what}"
        );
        for set in ["kept", "pruned_cross", "kept_intra", "pruned_intra"] {
            assert_eq!(keys_of(&got[set]), strings(&case[set]), "{what}: {set}");
            for candidate in got[set].as_array().unwrap() {
                let key = candidate["key"].as_str().unwrap();
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
                let score = candidate["score"].as_f64().unwrap();
                assert!(
                    close(score, case["score"][key].as_f64().unwrap()),
                    "{what}: score of {key}"
                );
                let similarity = candidate["similarity"].as_f64().unwrap();
                assert!(
                    close(similarity, case["similarity"][key].as_f64().unwrap()),
                    "{what}: similarity of {key}"
                );
            }
        }
        for (key, c) in case["connectivity"].as_object().unwrap() {
            let got = got["connectivity"][key].as_f64().unwrap();
            let expected = c.as_f64().unwrap();
            assert!(
                (got - expected).abs() <= 1e-12 * expected.abs(),
                "{what}: c of {key}: {got} vs {expected}"
            );
        }
    }

    let (ok, _, stderr) = crossclr(&["negatives", project, "--anchor", "clip-99"]);
    assert!(!ok);
    assert!(
        stderr.contains("clip-99") && stderr.contains("clip-00"),
        "{stderr}"
    );
    let (ok, _, stderr) = crossclr(&[
        "negatives",
        project,
        "--anchor",
        "clip-00",
        "--scope",
        "batch",
        "--epoch",
        "1",
        "--step",
        "1",
    ]);
    assert!(!ok, "a batch scope without a run succeeded");
    assert!(stderr.contains("no run"), "{stderr}");
}

/// The queue's pooled input features and cursor as `train` saved them after the last epoch.
fn saved_queue(run_dir: &Path) -> (HostMatrix, HostMatrix, u64, u64) {
    let bytes = std::fs::read(run_dir.join("state.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    let progress: Value = serde_json::from_str(metadata.values().next().unwrap()).unwrap();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    let host = |name: &str| HostMatrix::from_tensor(&tensors[name], name).unwrap();
    (
        host("queue/video_in"),
        host("queue/text_in"),
        progress["queue"]["pointer"].as_u64().unwrap(),
        progress["queue"]["filled"].as_u64().unwrap(),
    )
}

fn metrics(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_replayed_batch_is_the_batch_and_queue_the_training_loop_formed() {
    let dir = trained();
    let project = Project::open(dir).unwrap();
    for (name, epochs) in [("paper", 2usize), ("official", 1)] {
        let run = RunName::new(name).unwrap();
        let replay = RunReplay::open(&project, &run).unwrap();
        assert!(
            replay.settings.loss.uses_queue(),
            "{name} trains with a queue"
        );
        let steps = replay.steps_per_epoch();
        let recorded = metrics(project.run(&run).dir());
        assert_eq!(recorded.len(), epochs);
        // The loop's per-epoch mean pruned fraction, recomputed from the replayed steps: it
        // depends on which videos share a batch and on what the queue holds at each step.
        let mut sums = vec![0.0f64; epochs];
        let mut last = None;
        replay
            .replay(
                (1, 1),
                (epochs, steps),
                &mut |step| {
                    sums[step.epoch - 1] +=
                        0.5 * (step.local.pruned_fraction() + step.global.pruned_fraction());
                    last = Some(step);
                    Ok(())
                },
                &mut |_, _| {},
                &CancelToken::new(),
            )
            .unwrap();
        for (epoch, record) in recorded.iter().enumerate() {
            assert_eq!(record["steps"].as_u64().unwrap() as usize, steps, "{name}");
            let expected = record["pruned_fraction"].as_f64().unwrap();
            let replayed = sums[epoch] / steps as f64;
            assert!(
                (replayed - expected).abs() <= 1e-12,
                "{name} epoch {}: replayed {replayed}, trained {expected}",
                epoch + 1
            );
        }
        // The queue after the last step holds, slot for slot, what training saved.
        let last = last.unwrap();
        let (slots, state) = last.queue.unwrap();
        let (video_in, text_in, pointer, filled) = saved_queue(project.run(&run).dir());
        assert_eq!(
            (state.pointer as u64, state.filled as u64),
            (pointer, filled),
            "{name}"
        );
        assert_eq!(state.video_in, video_in, "{name}: queue video inputs");
        assert_eq!(state.text_in, text_in, "{name}: queue text inputs");
        // Each replayed slot holds the pooled features of the clip the replay says it holds.
        let samples = Samples::load(
            &project,
            std::slice::from_ref(&replay.features.split),
            Level::Clip,
            &CancelToken::new(),
        )
        .unwrap();
        let mut written = 0;
        for (slot, clip) in slots.clips.iter().enumerate() {
            if let Some(clip) = clip {
                let expected: Vec<f64> = samples
                    .video_in
                    .row(*clip)
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect();
                assert_eq!(
                    video_in.row(slot),
                    expected.as_slice(),
                    "{name}: slot {slot}"
                );
                written += 1;
            }
        }
        assert!(written > 0);
        // (The official queue starts from seeded noise, and its early steps pruned by
        // connectivity to that noise: the pruned fractions matching above check the noise too.)

        // The command explains an anchor of that last batch inside it, queue included.
        let anchor = replay.features.clip_keys[last.clips[0]].clone();
        let (ok, stdout, stderr) = crossclr(&[
            "negatives",
            dir.to_str().unwrap(),
            "--run",
            name,
            "--anchor",
            &anchor,
            "--scope",
            "batch",
            "--epoch",
            &epochs.to_string(),
            "--step",
            &steps.to_string(),
            "--json",
        ]);
        assert!(ok, "negatives --scope batch failed: {stderr}");
        let got = json(&stdout);
        assert_eq!(got["scope"], "batch");
        assert_eq!(got["batch"].as_u64().unwrap() as usize, last.clips.len());
        assert_eq!(got["queue"]["pointer"].as_u64().unwrap(), pointer);
        assert_eq!(got["queue"]["filled"].as_u64().unwrap(), filled);
        let sets = last.local.video.negatives.for_anchor(0);
        assert_eq!(
            got["pruned_cross"].as_array().unwrap().len(),
            sets.cross_pruned.len()
        );
        assert_eq!(
            got["pruned_intra"].as_array().unwrap().len(),
            sets.intra_pruned.len()
        );
        assert_eq!(
            got["kept_intra"].as_array().unwrap().len(),
            sets.intra_kept.len()
        );
        let batch_keys: Vec<String> = last
            .clips
            .iter()
            .map(|&c| replay.features.clip_keys[c].clone())
            .collect();
        assert_eq!(
            got["connectivity"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            batch_keys.iter().cloned().collect()
        );
        let other_step = if steps > 1 { 1 } else { 2 };
        if other_step <= steps && steps > 1 {
            let (ok, _, stderr) = crossclr(&[
                "negatives",
                dir.to_str().unwrap(),
                "--run",
                name,
                "--anchor",
                &anchor,
                "--scope",
                "batch",
                "--epoch",
                &epochs.to_string(),
                "--step",
                &other_step.to_string(),
            ]);
            assert!(!ok, "an anchor outside the batch was explained");
            assert!(
                stderr.contains(&format!("it is in step {steps}")),
                "{stderr}"
            );
        }
    }
}

/// Brute force: per anchor, precision and recall of the influential set against same-topic
/// clips, averaged over anchors, for one modality of the whole split.
fn brute_force_audit(
    inputs: &HostMatrix,
    topics: &[u32],
    gamma: f64,
) -> (Option<f64>, Option<f64>) {
    let pruned = influential_mask(&batch_connectivity(inputs), gamma, Mode::Paper);
    let (mut precision, mut with_pruned, mut recall, mut with_duplicates) = (0.0, 0, 0.0, 0);
    for a in 0..topics.len() {
        let others = (0..topics.len()).filter(|&j| j != a);
        let p: Vec<usize> = others.clone().filter(|&j| pruned[j]).collect();
        let d: Vec<usize> = others.filter(|&j| topics[j] == topics[a]).collect();
        let hits = p.iter().filter(|j| d.contains(j)).count();
        if !p.is_empty() {
            precision += hits as f64 / p.len() as f64;
            with_pruned += 1;
        }
        if !d.is_empty() {
            recall += hits as f64 / d.len() as f64;
            with_duplicates += 1;
        }
    }
    (
        (with_pruned > 0).then(|| precision / with_pruned as f64),
        (with_duplicates > 0).then(|| recall / with_duplicates as f64),
    )
}

#[test]
fn the_audit_scores_pruning_against_the_planted_topics() {
    let dir = trained();
    let project = Project::open(dir).unwrap();
    let (ok, stdout, stderr) = crossclr(&[
        "negatives",
        dir.to_str().unwrap(),
        "--audit",
        "--run",
        "paper",
        "--json",
    ]);
    assert!(ok, "audit failed: {stderr}");
    let report = json(&stdout);
    assert_eq!(report["truth"]["kind"], "topic");
    let samples = Samples::load(
        &project,
        &["train".to_string()],
        Level::Clip,
        &CancelToken::new(),
    )
    .unwrap();
    assert_eq!(report["anchors"].as_u64().unwrap() as usize, samples.len());
    let manifest = project.read_manifest().unwrap().entries;
    let topics: Vec<u32> = samples
        .keys
        .iter()
        .map(|k| {
            let entry = manifest.iter().find(|e| &e.clip == k).unwrap();
            crossclr::synth::topic_of_caption(entry.caption.as_deref().unwrap()).unwrap()
        })
        .collect();
    let sweep = report["sweep"].as_array().unwrap();
    assert_eq!(sweep.len(), 11);
    let mut pruned_any = false;
    for row in sweep {
        let gamma = row["gamma"].as_f64().unwrap();
        for (side, inputs) in [("video", &samples.video_in), ("text", &samples.text_in)] {
            let host = HostMatrix::new(
                inputs.rows,
                inputs.cols,
                inputs.data.iter().map(|&v| f64::from(v)).collect(),
            );
            let (precision, recall) = brute_force_audit(&host, &topics, gamma);
            let got = &row[side]["cross"];
            let same = |got: &Value, expected: Option<f64>| match expected {
                Some(e) => (got.as_f64().unwrap() - e).abs() < 1e-12,
                None => got.is_null(),
            };
            assert!(
                same(&got["precision"], precision),
                "γ {gamma} {side}: {got} vs {precision:?}"
            );
            assert!(
                same(&got["recall"], recall),
                "γ {gamma} {side}: {got} vs {recall:?}"
            );
            pruned_any |= precision.is_some();
        }
    }
    assert!(pruned_any, "no γ of the sweep pruned anything");
    // γ = 1 prunes nothing in paper mode.
    assert!(sweep[10]["video"]["cross"]["precision"].is_null());
    assert_eq!(sweep[10]["video"]["cross"]["recall"].as_f64(), Some(0.0));

    // Over the batches of a run's epoch, queue included: fewer negatives pruned as γ rises.
    let (ok, stdout, stderr) = crossclr(&[
        "negatives",
        dir.to_str().unwrap(),
        "--audit",
        "--run",
        "paper",
        "--scope",
        "batch",
        "--epoch",
        "2",
        "--json",
    ]);
    assert!(ok, "batch audit failed: {stderr}");
    let report = json(&stdout);
    let replay = RunReplay::open(&project, &RunName::new("paper").unwrap()).unwrap();
    assert_eq!(
        report["anchors"].as_u64().unwrap() as usize,
        replay.corpus().num_clips()
    );
    let pruned: Vec<f64> = report["sweep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["video"]["intra"]["pruned"].as_f64().unwrap())
        .collect();
    assert!(pruned.windows(2).all(|w| w[0] >= w[1]), "{pruned:?}");
    assert!(pruned[0] > pruned[10], "{pruned:?}");

    let (ok, stdout, _) = crossclr(&[
        "negatives",
        dir.to_str().unwrap(),
        "--audit",
        "--run",
        "paper",
    ]);
    assert!(ok);
    assert!(
        stdout.contains("same planted topic") && stdout.contains("0.90"),
        "{stdout}"
    );
}

fn tensor_f64(file: &safetensors::SafeTensors<'_>, name: &str) -> Vec<f64> {
    file.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn tensor_u32(file: &safetensors::SafeTensors<'_>, name: &str) -> Vec<u32> {
    file.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn graph_edges_connectivity_and_influence_come_from_the_loss_and_repeat_to_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("synth");
    let path = project_dir.to_str().unwrap();
    let (ok, _, stderr) = crossclr(&["synth", path, "--kind", "duplicates", "--seed", "7"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = crossclr(&["graph", path, "--k", "5", "--split", "train"]);
    assert!(ok, "graph failed: {stderr}");
    assert!(
        stdout.contains("influential") && stdout.contains("mean degree"),
        "{stdout}"
    );
    let file = project_dir.join("maps/input/graph-input-clip.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    let graph = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let project = Project::open(&project_dir).unwrap();
    let samples = Samples::load(
        &project,
        &["train".to_string()],
        Level::Clip,
        &CancelToken::new(),
    )
    .unwrap();
    let n = samples.len();
    for (side, inputs) in [("video", &samples.video_in), ("text", &samples.text_in)] {
        let host = HostMatrix::new(
            inputs.rows,
            inputs.cols,
            inputs.data.iter().map(|&v| f64::from(v)).collect(),
        );
        let connectivity = batch_connectivity(&host);
        assert_eq!(
            tensor_f64(&graph, &format!("{side}_connectivity")),
            connectivity,
            "{side}"
        );
        let gamma = project.config().loss.settings().crossclr.gamma;
        let influential: Vec<u8> = influential_mask(&connectivity, gamma, Mode::Paper)
            .into_iter()
            .map(u8::from)
            .collect();
        assert_eq!(
            graph.tensor(&format!("{side}_influential")).unwrap().data(),
            influential.as_slice()
        );
        let edges = tensor_u32(&graph, &format!("{side}_edges"));
        assert_eq!(edges.len(), 2 * 5 * n, "{side}: 5 edges per node");
        let similarity: Vec<f32> = graph
            .tensor(&format!("{side}_similarity"))
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // Node 0's edges are its 5 most similar other nodes by cosine (brute force).
        let mut by_cosine: Vec<(usize, f32)> = (1..n)
            .map(|j| (j, crate::support::cosine(inputs.row(0), inputs.row(j))))
            .collect();
        by_cosine.sort_by(|a, b| b.1.total_cmp(&a.1));
        let targets: Vec<usize> = edges
            .chunks(2)
            .take(5)
            .map(|e| {
                assert_eq!(e[0], 0);
                e[1] as usize
            })
            .collect();
        assert_eq!(
            targets,
            by_cosine[..5].iter().map(|p| p.0).collect::<Vec<_>>(),
            "{side}"
        );
        for (k, &(_, cos)) in by_cosine[..5].iter().enumerate() {
            assert!(
                (similarity[k] - cos).abs() < 1e-5,
                "{side}: {} vs {cos}",
                similarity[k]
            );
        }
    }
    let (ok, _, stderr) = crossclr(&["graph", path, "--k", "5", "--split", "train"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the same graph gave other bytes"
    );

    // The graph's own layout (the explorer's "own layout"): seeded, N×2, edges shorter than
    // the typical distance between nodes, and the same bytes again.
    let layout_of = || {
        let (ok, stdout, stderr) = crossclr(&[
            "graph",
            path,
            "--k",
            "5",
            "--split",
            "train",
            "--force-layout",
        ]);
        assert!(ok && stdout.contains("ForceAtlas2"), "{stdout}{stderr}");
        std::fs::read(project_dir.join("maps/input/graph-layout-input-clip.safetensors")).unwrap()
    };
    let layout_bytes = layout_of();
    assert_eq!(
        layout_of(),
        layout_bytes,
        "the same seed gave another layout"
    );
    let layout_file = safetensors::SafeTensors::deserialize(&layout_bytes).unwrap();
    let layout = layout_file.tensor("layout").unwrap();
    assert_eq!(layout.shape(), [n, 2]);
    let p: Vec<f32> = layout
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert!(p.iter().all(|v| v.is_finite()));
    let d = |a: usize, b: usize| (p[2 * a] - p[2 * b]).hypot(p[2 * a + 1] - p[2 * b + 1]);
    let edges = tensor_u32(&graph, "video_edges");
    let edge_mean = edges
        .chunks(2)
        .map(|e| d(e[0] as usize, e[1] as usize))
        .sum::<f32>()
        / (edges.len() / 2) as f32;
    let pair_mean = (0..n)
        .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
        .map(|(a, b)| d(a, b))
        .sum::<f32>()
        / (n * (n - 1) / 2) as f32;
    assert!(
        edge_mean < 0.5 * pair_mean,
        "mean edge {edge_mean}, mean distance {pair_mean}"
    );

    let (ok, _, stderr) = crossclr(&["graph", path, "--space", "joint"]);
    assert!(!ok, "joint space without a run");
    assert!(stderr.contains("--space input"), "{stderr}");
    let (ok, stdout, stderr) =
        crossclr(&["graph", path, "--threshold", "0.95", "--level", "video"]);
    assert!(ok, "{stderr}");
    assert!(
        project_dir
            .join("maps/input/graph-input-video.safetensors")
            .is_file(),
        "{stdout}"
    );
}

#[test]
fn search_json_ranks_clips_and_videos_as_the_head_embeds_them() {
    let dir = trained();
    let path = dir.to_str().unwrap();
    let query = "topic 3 clip";
    let (ok, stdout, stderr) = crossclr(&[
        "search", path, query, "--run", "paper", "--top", "7", "--json",
    ]);
    assert!(ok, "search failed: {stderr}");
    let got = json(&stdout);
    assert_eq!(got["query"], query);
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for hit in results {
        for field in ["key", "video", "caption", "score", "split", "thumbnail"] {
            assert!(hit.get(field).is_some(), "{field} missing: {hit}");
        }
        assert!(
            hit["thumbnail"].is_null(),
            "a synthetic project has no thumbnails"
        );
    }
    // Brute force: the run's head embeds every clip and the query; rank by cosine.
    let project = Project::open(dir).unwrap();
    let (head, _) =
        crossclr::train::load_run_head(&project, &RunName::new("paper").unwrap(), &Device::Cpu)
            .unwrap();
    let encoder = crossclr::encode::text_encoder("hashed:40", &Device::Cpu).unwrap();
    let features = encoder.encode(&[query]).unwrap();
    let tokens = features.tokens.get(0);
    let sequence = candle_core::Tensor::from_slice(
        tokens,
        (tokens.len() / features.dim(), features.dim()),
        &Device::Cpu,
    )
    .unwrap();
    let batch = crossclr::model::SequenceBatch::from_sequences(&[sequence]).unwrap();
    // The query is a paragraph of one sentence.
    let paragraph: Vec<std::ops::Range<usize>> = std::iter::once(0..1).collect();
    let embedded = head
        .encode_text(
            &batch,
            Some(&batch),
            &paragraph,
            crossclr::model::Mode::Eval,
        )
        .unwrap();
    let q: Vec<f32> = embedded.local.flatten_all().unwrap().to_vec1().unwrap();
    let mut all = Vec::new();
    for split in project.splits().unwrap() {
        let features = project.load_split(&split).unwrap();
        let e =
            crossclr::train::embed_split(&head, project.config(), &features, &Device::Cpu).unwrap();
        let rows: Vec<Vec<f32>> = e.clip.to_vec2().unwrap();
        for (key, row) in features.clip_keys.iter().zip(rows) {
            all.push((key.clone(), crate::support::cosine(&row, &q)));
        }
    }
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (hit, (key, score)) in results.iter().zip(&all) {
        assert!(
            (hit["score"].as_f64().unwrap() as f32 - score).abs() < 1e-4,
            "{hit} vs {key} {score}"
        );
    }
    assert_eq!(results[0]["key"].as_str().unwrap(), all[0].0);

    let (ok, stdout, stderr) = crossclr(&[
        "search", path, query, "--run", "paper", "--level", "video", "--top", "4", "--json",
    ]);
    assert!(ok, "{stderr}");
    let got = json(&stdout);
    let videos: Vec<String> = keys_of(&got["results"]);
    assert_eq!(videos.len(), 4);
    for (hit, key) in got["results"].as_array().unwrap().iter().zip(&videos) {
        assert_eq!(
            hit["video"].as_str().unwrap(),
            key,
            "a video hit is its own video"
        );
        assert!(key.contains("-video-") && !key.contains("-clip-"), "{key}");
    }
    let scores: Vec<f64> = got["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
}

#[test]
fn neighbours_are_the_nearest_clips_by_cosine_in_either_space() {
    let dir = trained();
    let project = Project::open(dir).unwrap();
    let samples = Samples::load(&project, &[], Level::Clip, &CancelToken::new()).unwrap();
    let key = samples.keys[3].clone();
    let (ok, stdout, stderr) = crossclr(&[
        "neighbours",
        dir.to_str().unwrap(),
        "--key",
        &key,
        "--top",
        "4",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let got = json(&stdout);
    assert_eq!(got["space"], "input");
    let mut by_cosine: Vec<(usize, f32)> = (0..samples.len())
        .filter(|&j| j != 3)
        .map(|j| {
            (
                j,
                crate::support::cosine(samples.video_in.row(3), samples.video_in.row(j)),
            )
        })
        .collect();
    by_cosine.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let expected: Vec<String> = by_cosine[..4]
        .iter()
        .map(|p| samples.keys[p.0].clone())
        .collect();
    assert_eq!(keys_of(&got["results"]), expected);
    let (ok, stdout, stderr) = crossclr(&[
        "neighbours",
        dir.to_str().unwrap(),
        "--key",
        &key,
        "--space",
        "joint",
        "--run",
        "paper",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let got = json(&stdout);
    assert_eq!(got["run"], "paper");
    assert_eq!(got["results"].as_array().unwrap().len(), 10);
    assert!(!keys_of(&got["results"]).contains(&key));
    let (ok, _, stderr) = crossclr(&["neighbours", dir.to_str().unwrap(), "--key", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("`nope`"), "{stderr}");
}

#[test]
fn parquet_and_projector_exports_read_back_with_their_schema_and_values() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let dir = trained();
    let path = dir.to_str().unwrap();
    let project = Project::open(dir).unwrap();
    let run = RunName::new("paper").unwrap();
    let samples = Samples::load(&project, &[], Level::Clip, &CancelToken::new()).unwrap();
    // A map of the run's clips, in the layout format `crossclr map` writes: every clip but the
    // last gets a position.
    let mapped = samples.len() - 1;
    let layout: Vec<u8> = (0..mapped)
        .flat_map(|i| [i as f32, -(i as f32)])
        .flat_map(f32::to_le_bytes)
        .collect();
    let map_dir = project.maps_dir().join("paper");
    std::fs::create_dir_all(&map_dir).unwrap();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![mapped, 2], &layout)
            .unwrap();
    let metadata = HashMap::from([(
        "keys".to_string(),
        serde_json::to_string(&samples.keys[..mapped]).unwrap(),
    )]);
    safetensors::serialize_to_file(
        [("layout", view)],
        Some(metadata),
        &map_dir.join("clip.safetensors"),
    )
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("clips.parquet");
    let (ok, stdout, stderr) = crossclr(&[
        "export",
        path,
        "--run",
        "paper",
        "--format",
        "parquet",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "export failed: {stderr}");
    assert!(stdout.contains("with map x/y"), "{stdout}");
    let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let columns: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
    assert_eq!(
        columns,
        [
            "key",
            "video",
            "caption",
            "split",
            "start",
            "end",
            "thumbnail",
            "x",
            "y",
            "video_embedding.list.element",
            "text_embedding.list.element",
            "connectivity_video",
            "score_video",
            "influential_video",
            "degree_video",
            "connectivity_text",
            "score_text",
            "influential_text",
            "degree_text",
        ]
    );
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        samples.len()
    );
    let (video, _) = crossclr::analysis::samples::joint_embeddings(
        &project,
        &run,
        &samples,
        &CancelToken::new(),
    )
    .unwrap();
    let train_rows = samples.splits.iter().filter(|s| *s == "train").count();
    let host = HostMatrix::new(
        samples.len(),
        samples.video_in.cols,
        samples
            .video_in
            .data
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
    );
    let connectivity = batch_connectivity(&host);
    assert!(train_rows > 0);
    for (i, row) in reader.get_row_iter(None).unwrap().enumerate() {
        let row = row.unwrap();
        let fields: HashMap<&String, &Field> = row.get_column_iter().collect();
        let field = |name: &str| fields[&name.to_string()];
        assert_eq!(field("key"), &Field::Str(samples.keys[i].clone()));
        assert_eq!(field("split"), &Field::Str(samples.splits[i].clone()));
        assert_eq!(field("video"), &Field::Str(samples.videos[i].clone()));
        assert!(matches!(field("caption"), Field::Str(c) if c.starts_with("topic ")));
        assert_eq!(field("start"), &Field::Null);
        if i < mapped {
            assert_eq!(field("x"), &Field::Float(i as f32));
            assert_eq!(field("y"), &Field::Float(-(i as f32)));
        } else {
            assert_eq!(field("x"), &Field::Null);
        }
        let Field::ListInternal(list) = field("video_embedding") else {
            panic!("video_embedding is not a list")
        };
        let values: Vec<f32> = list
            .elements()
            .iter()
            .map(|f| match f {
                Field::Float(v) => *v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(values.as_slice(), video.row(i));
        let Field::Double(c) = field("connectivity_video") else {
            panic!()
        };
        assert_eq!(*c, connectivity[i]);
        assert!(matches!(field("degree_video"), Field::Int(d) if *d >= 10));
    }

    // The projector: tensors, metadata with a header, the config; a sprite from the thumbnails
    // that exist (two are made here).
    let cache = crossclr::media::ThumbnailCache::for_project(dir);
    let manifest = project.read_manifest().unwrap().entries;
    // Clips without times share their video's thumbnail: the first clips of two videos.
    let firsts: Vec<_> = manifest
        .iter()
        .filter(|e| e.video != manifest[0].video)
        .take(1)
        .chain(std::iter::once(&manifest[0]))
        .collect();
    for (entry, colour) in firsts.iter().zip([[0u8, 0, 255], [255u8, 0, 0]]) {
        let thumbnail = cache.path_for(
            &entry.video,
            crossclr::media::clip_thumbnail_time(entry.start, entry.end),
        );
        std::fs::create_dir_all(thumbnail.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(128, 128, image::Rgb(colour))
            .save(&thumbnail)
            .unwrap();
    }
    let folder = out.path().join("projector");
    let (ok, stdout, stderr) = crossclr(&[
        "export",
        path,
        "--run",
        "paper",
        "--format",
        "projector",
        "--out",
        folder.to_str().unwrap(),
    ]);
    assert!(ok, "projector export failed: {stderr}");
    assert!(stdout.contains("sprite"), "{stdout}");
    let tensors = std::fs::read_to_string(folder.join("tensors.tsv")).unwrap();
    let lines: Vec<&str> = tensors.lines().collect();
    assert_eq!(lines.len(), samples.len());
    let first: Vec<f32> = lines[0].split('\t').map(|v| v.parse().unwrap()).collect();
    assert_eq!(first.as_slice(), video.row(0));
    let metadata = std::fs::read_to_string(folder.join("metadata.tsv")).unwrap();
    let rows: Vec<&str> = metadata.lines().collect();
    assert_eq!(rows.len(), samples.len() + 1);
    assert!(
        rows[0].starts_with("key\tvideo\tsplit\tcaption"),
        "{}",
        rows[0]
    );
    assert!(rows[1].starts_with(&format!("{}\t", samples.keys[0])));
    let config = std::fs::read_to_string(folder.join("projector_config.pbtxt")).unwrap();
    assert!(
        config.contains("tensor_path: \"tensors.tsv\"")
            && config.contains("metadata_path: \"metadata.tsv\""),
        "{config}"
    );
    let per_row = (samples.len() as f64).sqrt().ceil() as u32;
    let tile = 128.min(8192 / per_row);
    assert!(
        config.contains(&format!("single_image_dim: {tile}")),
        "{config}"
    );
    let sprite = image::open(folder.join("sprite.png")).unwrap().to_rgb8();
    assert_eq!(sprite.dimensions(), (per_row * tile, per_row * tile));
    let first_clip = samples
        .keys
        .iter()
        .position(|k| *k == manifest[0].clip)
        .unwrap() as u32;
    let (x, y) = (
        (first_clip % per_row) * tile + tile / 2,
        (first_clip / per_row) * tile + tile / 2,
    );
    // JPEG thumbnails: red within a few levels.
    let pixel = sprite.get_pixel(x, y).0;
    assert!(
        pixel[0] > 240 && pixel[1] < 16 && pixel[2] < 16,
        "{pixel:?}"
    );
}

#[test]
fn compare_puts_two_runs_side_by_side_with_eval_s_numbers_and_consistent_per_clip_figures() {
    let project = trained();
    let dir = project.to_str().unwrap();
    let (ok, stdout, stderr) = crossclr(&["compare", dir, "--runs", "paper,official", "--json"]);
    assert!(ok, "compare failed: {stderr}");
    let got = json(&stdout);
    for (side, run) in [("first", "paper"), ("second", "official")] {
        let (ok, eval, stderr) = crossclr(&["eval", dir, "--run", run, "--json"]);
        assert!(ok, "eval failed: {stderr}");
        let eval = json(&eval);
        assert_eq!(got[side]["run"], run);
        for direction in ["clip_to_sentence", "video_to_paragraph"] {
            let (a, b) = (&got[side]["report"][direction], &eval[direction]);
            for metric in ["r1", "r5", "r10", "median_rank"] {
                let (a, b) = (a[metric].as_f64().unwrap(), b[metric].as_f64().unwrap());
                assert!(
                    (a - b).abs() < 1e-9,
                    "{run} {direction} {metric}: {a} vs eval's {b}"
                );
            }
        }
    }
    let clips = got["clips"].as_u64().unwrap() as usize;
    let per_clip = got["per_clip"].as_array().unwrap();
    assert_eq!(per_clip.len(), clips);
    // The per-clip ranks are the ranks eval's R@k counts.
    for (side, rank) in [("first", "rank_first"), ("second", "rank_second")] {
        let first = per_clip.iter().filter(|c| c[rank] == 1).count();
        let r1 = got[side]["report"]["clip_to_sentence"]["r1"]
            .as_f64()
            .unwrap();
        assert!((first as f64 / clips as f64 - r1).abs() < 1e-9, "{side}");
    }
    let ranks = &got["ranks"];
    let count = |k: &str| ranks[k].as_u64().unwrap() as usize;
    assert_eq!(count("better") + count("worse") + count("same"), clips);
    let better = per_clip
        .iter()
        .filter(|c| c["rank_second"].as_u64() < c["rank_first"].as_u64())
        .count();
    assert_eq!(count("better"), better);
    let histogram: Vec<usize> =
        serde_json::from_value(got["overlap"]["histogram"].clone()).unwrap();
    assert_eq!(histogram.len(), 11);
    assert_eq!(histogram.iter().sum::<usize>(), clips);
    let mean = got["overlap"]["mean"].as_f64().unwrap();
    let shared: u64 = per_clip
        .iter()
        .map(|c| c["shared_neighbours"].as_u64().unwrap())
        .sum();
    assert!((mean - shared as f64 / (10.0 * clips as f64)).abs() < 1e-9);
    assert!(
        (0.0..1.0).contains(&mean),
        "two different runs agree on some neighbours, not all: {mean}"
    );

    // A run compared with itself, or one run named, is refused with the reason.
    let (ok, _, stderr) = crossclr(&["compare", dir, "--runs", "paper,paper"]);
    assert!(!ok && stderr.contains("both runs are `paper`"), "{stderr}");
    let (ok, _, stderr) = crossclr(&["compare", dir, "--runs", "paper"]);
    assert!(!ok && stderr.contains("two run names"), "{stderr}");
}
