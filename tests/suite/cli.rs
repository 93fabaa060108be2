//! The `crossclr` binary end to end: `loss` against the reference fixtures, its errors, and `eval`.

use crate::support::{crossclr, matrix};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn fixture(name: &str) -> Value {
    let path = crate::support::shared_dir()
        .join("fixtures/crossclr")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Writes every step of a fixture as a batch file; returns their paths.
fn write_batches(dir: &Path, fixture: &Value, dtype: DType) -> Vec<PathBuf> {
    let keys = ["video_emb", "text_emb", "video_in", "text_in"];
    fixture["steps"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let path = dir.join(format!("step{i}.safetensors"));
            save(
                &path,
                keys.iter()
                    .map(|k| (*k, matrix(&step[*k], dtype)))
                    .collect(),
            );
            path
        })
        .collect()
}

fn params_args(fixture: &Value) -> Vec<String> {
    let p = &fixture["params"];
    let mut args = vec![
        "--mode".to_string(),
        fixture["mode"].as_str().unwrap().to_string(),
    ];
    for (flag, key) in [
        ("--tau", "tau"),
        ("--kappa", "kappa"),
        ("--lambda", "lambda"),
        ("--gamma", "gamma"),
    ] {
        args.push(flag.into());
        args.push(p[key].to_string());
    }
    if p["multi_pos"].as_bool().unwrap() {
        args.extend([
            "--multi-pos".into(),
            p["num_pos"].to_string(),
            "--beta".into(),
            p["beta"].to_string(),
        ]);
    }
    if let Some(k) = p["queue"].as_u64() {
        args.extend(["--queue".into(), k.to_string()]);
    }
    args
}

fn assert_close(got: &Value, expected: &Value, what: &str) {
    let got: Vec<f64> = serde_json::from_value(got.clone()).unwrap();
    let expected: Vec<f64> = serde_json::from_value(expected.clone()).unwrap();
    assert_eq!(got.len(), expected.len(), "{what}");
    for (g, e) in got.iter().zip(&expected) {
        assert!(
            crate::support::relative_error(*g, *e, 1e-30) < 1e-4,
            "{what}: {g} vs {e}"
        );
    }
}

fn check_json_against_fixture(stdout: &str, fixture: &Value) {
    let out: Value = serde_json::from_str(stdout.trim()).expect("exactly one JSON object");
    let steps = out["steps"].as_array().unwrap();
    let expected_steps = fixture["steps"].as_array().unwrap();
    assert_eq!(steps.len(), expected_steps.len());
    for (got, want) in steps.iter().zip(expected_steps) {
        let want = &want["expected"];
        let (g, e) = (
            got["loss"].as_f64().unwrap(),
            want["loss"].as_f64().unwrap(),
        );
        assert!(
            crate::support::relative_error(g, e, 1e-30) < 1e-4,
            "loss {g} vs {e}"
        );
        for side in ["video", "text"] {
            assert_close(
                &got[side]["per_sample"],
                &want[side]["per_sample"],
                "per_sample",
            );
            assert_close(&got[side]["weights"], &want[side]["weights"], "weights");
            assert_eq!(got[side]["influential"], want[side]["influential"]);
        }
    }
}

#[test]
fn loss_json_reproduces_fixtures_for_both_modes_queues_and_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("paper_noq_14.json", DType::F32),
        ("paper_noq_25.json", DType::F64),
        ("official_noq_07.json", DType::F32),
        ("paper_queue.json", DType::F32),
    ];
    for (name, dtype) in cases {
        let fixture = fixture(name);
        let case_dir = dir.path().join(name);
        std::fs::create_dir_all(&case_dir).unwrap();
        let batches = write_batches(&case_dir, &fixture, dtype);
        let mut args: Vec<String> = vec!["loss".into()];
        for b in &batches {
            args.extend(["--batch".into(), b.display().to_string()]);
        }
        args.extend(params_args(&fixture));
        args.push("--json".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, stdout, stderr) = crossclr(&args);
        assert!(ok, "{name}: {stderr}");
        check_json_against_fixture(&stdout, &fixture);
    }
}

#[test]
fn official_queue_starts_from_the_given_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("official_queue.json");
    let batches = write_batches(dir.path(), &fixture, DType::F32);
    let init = dir.path().join("queue.safetensors");
    let q = &fixture["queue_init"];
    save(
        &init,
        [
            "queue_video_emb",
            "queue_text_emb",
            "queue_video_in",
            "queue_text_in",
        ]
        .iter()
        .map(|k| (*k, matrix(&q[*k], DType::F32)))
        .collect(),
    );
    let mut args: Vec<String> = vec!["loss".into()];
    for b in &batches {
        args.extend(["--batch".into(), b.display().to_string()]);
    }
    args.extend(params_args(&fixture));
    args.extend([
        "--queue-init".into(),
        init.display().to_string(),
        "--json".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = crossclr(&args);
    assert!(ok, "{stderr}");
    check_json_against_fixture(&stdout, &fixture);
}

#[test]
fn loss_table_lists_every_sample_and_the_anchor_sets() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = fixture("paper_noq_12.json");
    let batch = write_batches(dir.path(), &fixture, DType::F32).remove(0);
    let (ok, stdout, stderr) = crossclr(&[
        "loss",
        "--batch",
        batch.to_str().unwrap(),
        "--gamma",
        "0.7",
        "--anchor",
        "3",
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("loss 0.2131"), "{stdout}");
    assert!(stdout.contains("video → text: 9 influential"), "{stdout}");
    assert!(stdout.contains("anchor 3: positive 3"), "{stdout}");
    assert!(stdout.contains("cross-modal pruned"), "{stdout}");
    // 16 rows per direction, plus headers.
    let rows = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .count();
    assert_eq!(rows, 32, "{stdout}");
}

#[test]
fn loss_errors_name_the_file_tensor_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let cpu = &Device::Cpu;
    let z = |r: usize, c: usize| Tensor::zeros((r, c), DType::F32, cpu).unwrap();

    save(
        &path,
        vec![
            ("video_emb", z(4, 3)),
            ("text_emb", z(4, 3)),
            ("video_in", z(4, 2)),
        ],
    );
    let (ok, _, stderr) = crossclr(&["loss", "--batch", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.safetensors") && stderr.contains("missing tensor `text_in`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("video_emb [4, 3]"),
        "lists what the file holds: {stderr}"
    );

    let cube = Tensor::zeros((4, 3, 2), DType::F32, cpu).unwrap();
    save(
        &path,
        vec![
            ("video_emb", z(4, 3)),
            ("text_emb", z(4, 3)),
            ("video_in", cube),
            ("text_in", z(4, 2)),
        ],
    );
    let (ok, _, stderr) = crossclr(&["loss", "--batch", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("`video_in` has shape [4, 3, 2]") && stderr.contains("rank 2"),
        "{stderr}"
    );

    save(
        &path,
        vec![
            ("video_emb", z(4, 3)),
            ("text_emb", z(5, 3)),
            ("video_in", z(4, 2)),
            ("text_in", z(4, 2)),
        ],
    );
    let (ok, _, stderr) = crossclr(&["loss", "--batch", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("text_emb") && stderr.contains("[5, 3]") && stderr.contains("[4, 3]"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.safetensors"), "{stderr}");

    let ints = Tensor::zeros((4, 3), DType::U32, cpu).unwrap();
    save(
        &path,
        vec![
            ("video_emb", ints),
            ("text_emb", z(4, 3)),
            ("video_in", z(4, 2)),
            ("text_in", z(4, 2)),
        ],
    );
    let (ok, _, stderr) = crossclr(&["loss", "--batch", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("`video_emb` has dtype U32"), "{stderr}");

    std::fs::write(&path, b"not a safetensors file").unwrap();
    let (ok, _, stderr) = crossclr(&["loss", "--batch", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.safetensors is not a readable safetensors file"),
        "{stderr}"
    );

    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn eval_similarity_prints_the_metrics_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    let s = Tensor::from_vec(
        vec![
            0.9f32, 0.1, 0.9, 0.2, //
            0.6, 0.5, 0.7, 0.1, //
            0.3, 0.3, 0.3, 0.3, //
            0.0, 0.0, 0.0, 1.0,
        ],
        (4, 4),
        &Device::Cpu,
    )
    .unwrap();
    save(&path, vec![("similarity", s)]);
    let (ok, stdout, stderr) =
        crossclr(&["eval", "--similarity", path.to_str().unwrap(), "--json"]);
    assert!(ok, "{stderr}");
    let m: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(m["r1"], 0.25);
    assert_eq!(m["r5"], 1.0);
    assert_eq!(m["r10"], 1.0);
    assert_eq!(m["r50"], 1.0);
    assert_eq!(m["median_rank"], 2.0);
    assert_eq!(m["mean_rank"], 2.5);
    let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6);

    // Columns as queries: column ranks 1 (0.9≥... tie), 0, 2... computed by hand:
    // col 0: truth 0.9 vs 0.6 0.3 0.0 -> 0; col 1: truth 0.5 vs 0.1 0.3 0.0 -> 0;
    // col 2: truth 0.3 vs 0.9 0.7 0.0 -> 2; col 3: truth 1.0 -> 0.
    let (ok, stdout, _) = crossclr(&[
        "eval",
        "--similarity",
        path.to_str().unwrap(),
        "--json",
        "--transpose",
    ]);
    assert!(ok);
    let m: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(m["r1"], 0.75);
    assert_eq!(m["mean_rank"], 1.5);

    let (ok, stdout, _) = crossclr(&["eval", "--similarity", path.to_str().unwrap()]);
    assert!(ok);
    assert!(
        stdout.contains("R@1") && stdout.contains("25.00"),
        "{stdout}"
    );

    save(
        &path,
        vec![(
            "scores",
            Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap(),
        )],
    );
    let (ok, _, stderr) = crossclr(&["eval", "--similarity", path.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("missing tensor `similarity`"),
        "{stderr}"
    );
}

/// Writes `values` (rows × cols) as tensor `embeddings` with `keys` in the metadata.
fn write_embeddings(path: &Path, values: &[f32], cols: usize, keys: &[String]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![values.len() / cols, cols],
        &bytes,
    )
    .unwrap();
    let metadata = HashMap::from([("keys".to_string(), serde_json::to_string(keys).unwrap())]);
    safetensors::serialize_to_file([("embeddings", view)], Some(metadata), path).unwrap();
}

/// Three clusters of 40 points in 5 dimensions, keyed `clip0`…
fn clustered_embeddings() -> (Vec<f32>, Vec<String>) {
    let values = (0..120)
        .flat_map(|i: usize| {
            (0..5).map(move |d| ((i % 3) * 10) as f32 + ((i * 7 + d * 13) % 11) as f32 * 0.1)
        })
        .collect();
    (values, (0..120).map(|i| format!("clip{i}")).collect())
}

fn read_layout(path: &Path) -> (Vec<u8>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let layout = tensors.tensor("layout").unwrap();
    assert_eq!(layout.dtype(), safetensors::Dtype::F32);
    assert_eq!(layout.shape(), [120, 2]);
    (layout.data().to_vec(), metadata)
}

#[test]
fn map_writes_the_same_layout_twice_and_warm_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let (values, keys) = clustered_embeddings();
    let embeddings = dir.path().join("e.safetensors");
    write_embeddings(&embeddings, &values, 5, &keys);
    let map = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "map".to_string(),
            "--embeddings".into(),
            embeddings.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--perplexity".into(),
            "10".into(),
            "--iters".into(),
            "150".into(),
            "--seed".into(),
            "3".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (ok, stdout, stderr) = crossclr(&args);
        assert!(ok, "{stderr}");
        (stdout, stderr)
    };
    let (first, second) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    let (stdout, _) = map(&first, &[]);
    assert!(
        stdout.contains("laid out 120 points (5 dimensions, fft)"),
        "{stdout}"
    );
    map(&second, &[]);
    let (a, metadata) = read_layout(&first);
    assert_eq!(
        a,
        read_layout(&second).0,
        "the same seed gave different layouts"
    );
    assert_eq!(metadata["method"], "fft");
    assert_eq!(metadata["seed"], "3");
    assert_eq!(metadata["perplexity"], "10");
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&metadata["keys"]).unwrap(),
        keys
    );
    assert!(
        metadata["kl_divergence"]
            .parse::<f64>()
            .unwrap()
            .is_finite()
    );

    // Warm start from the first layout, with one clip's key unknown to it.
    let mut renamed = keys.clone();
    renamed[5] = "new clip".into();
    write_embeddings(&embeddings, &values, 5, &renamed);
    let warm = dir.path().join("warm.safetensors");
    let (_, stderr) = map(&warm, &["--init", &first.display().to_string()]);
    assert!(
        stderr.contains("119 points matched, 1 placed at their nearest neighbour"),
        "{stderr}"
    );
    let (_, metadata) = read_layout(&warm);
    assert_eq!(metadata["early_iterations"], "0");
}

#[test]
fn map_refuses_a_non_finite_row_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut values, keys) = clustered_embeddings();
    values[17 * 5 + 3] = f32::NAN;
    let embeddings = dir.path().join("e.safetensors");
    write_embeddings(&embeddings, &values, 5, &keys);
    let out = dir.path().join("l.safetensors");
    let (ok, _, stderr) = crossclr(&[
        "map",
        "--embeddings",
        &embeddings.display().to_string(),
        "--out",
        &out.display().to_string(),
        "--perplexity",
        "10",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("\"clip17\"") && stderr.contains("row 17"),
        "{stderr}"
    );
    assert!(!out.exists());
}
