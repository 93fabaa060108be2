//! Text encoding throughput on the CPU: all-MiniLM-L6-v2 through candle at batch sizes 1, 32 and
//! 128 on 1000 real YouCook2 captions, beside sentence-transformers on the same folder
//! (benches/text_encode_st.py, when python3 can import sentence_transformers) and beside the
//! hashed encoder. Each encoder is handed the captions `batch` at a time, as an ingest would.
//! Prints a table and writes target/bench/text_encode.json.
//!
//!   cargo bench --bench text_encode

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, bail};
use candle_core::Device;
use crossclr::encode::{BertTextEncoder, HashedTextEncoder, TextEncoder, minilm_dir};
use serde_json::{Value, json};

const SENTENCES: usize = 1000;
const BATCH_SIZES: [usize; 3] = [1, 32, 128];
const ROUNDS: usize = 3;

fn shared_dir() -> PathBuf {
    std::env::var_os("CROSSCLR_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// The first `SENTENCES` captions, videos in id order, each video's in annotation order.
fn captions() -> anyhow::Result<Vec<String>> {
    let path = shared_dir().join("data/youcook2/youcookii_annotations_trainval.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (set CROSSCLR_SHARED_DIR)", path.display()))?;
    let json: Value = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    let database = json["database"]
        .as_object()
        .with_context(|| format!("{} has no `database` object", path.display()))?;
    let mut ids: Vec<&String> = database.keys().collect();
    ids.sort();
    let captions: Vec<String> = ids
        .into_iter()
        .flat_map(|id| database[id]["annotations"].as_array().into_iter().flatten())
        .filter_map(|annotation| annotation["sentence"].as_str().map(str::to_string))
        .take(SENTENCES)
        .collect();
    if captions.len() < SENTENCES {
        bail!("{} holds only {} captions", path.display(), captions.len());
    }
    Ok(captions)
}

/// Sentences per second in each round, after one warm-up batch.
fn rates(encoder: &dyn TextEncoder, sentences: &[&str], batch: usize) -> anyhow::Result<Vec<f64>> {
    encoder.encode(&sentences[..batch])?;
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for chunk in sentences.chunks(batch) {
                encoder.encode(chunk)?;
            }
            Ok(sentences.len() as f64 / start.elapsed().as_secs_f64())
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn print_row(engine: &str, batch: usize, rates: &[f64]) {
    let best = rates.iter().copied().fold(f64::MIN, f64::max);
    let worst = rates.iter().copied().fold(f64::MAX, f64::min);
    let rate = median(rates);
    println!(
        "{engine:<22} {batch:>6} {rate:>12.1} {worst:>10.1} {best:>10.1} {:>13.3}",
        1e3 / rate
    );
}

fn sentence_transformers_importable() -> bool {
    Command::new("python3")
        .args(["-c", "import sentence_transformers"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[allow(unsafe_code)]
fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main; no other thread exists yet.
    unsafe { crossclr::process::configure() };
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    let captions = captions()?;
    let sentences: Vec<&str> = captions.iter().map(String::as_str).collect();
    let folder = minilm_dir()?;
    if !folder.join("model.safetensors").is_file() {
        bail!(
            "all-MiniLM-L6-v2 is not in {}: run scripts/setup.sh",
            folder.display()
        );
    }
    let threads = candle_core::utils::get_num_threads();
    let with_sentence_transformers = sentence_transformers_importable();
    let minilm = BertTextEncoder::load(&folder, &Device::Cpu)?;
    let tokens: usize = minilm.token_ids(&sentences)?.iter().map(Vec::len).sum();
    println!(
        "{SENTENCES} YouCook2 captions ({:.1} tokens each on average), CPU, {threads} threads, \
         median of {ROUNDS} rounds",
        tokens as f64 / SENTENCES as f64
    );
    println!(
        "{:<22} {:>6} {:>12} {:>10} {:>10} {:>13}",
        "engine", "batch", "sentences/s", "slowest", "fastest", "ms/sentence"
    );
    let mut results = Vec::new();
    let mut minilm = minilm;
    for batch in BATCH_SIZES {
        minilm = minilm.with_batch_size(batch);
        let measured = rates(&minilm, &sentences, batch)?;
        print_row("candle minilm", batch, &measured);
        results.push(json!({"engine": "candle-minilm", "batch": batch, "sentences_per_s": median(&measured), "rounds": measured}));
    }

    let sentence_transformers = if with_sentence_transformers {
        let input = out_dir.join("text_encode_sentences.json");
        std::fs::write(&input, serde_json::to_string(&sentences)?)?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/text_encode_st.py");
        let batch_sizes = BATCH_SIZES.map(|b| b.to_string()).join(",");
        let output = Command::new("python3")
            .arg(&script)
            .args(["--model", &folder.display().to_string()])
            .args(["--sentences", &input.display().to_string()])
            .args(["--batch-sizes", &batch_sizes])
            .args(["--rounds", &ROUNDS.to_string()])
            .args(["--threads", &threads.to_string()])
            .output()?;
        if !output.status.success() {
            bail!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: Value = serde_json::from_slice(&output.stdout)?;
        for batch in BATCH_SIZES {
            let measured: Vec<f64> = report["rates"][batch.to_string()]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            if !measured.is_empty() {
                print_row("sentence-transformers", batch, &measured);
                results.push(json!({"engine": "sentence-transformers", "batch": batch, "sentences_per_s": median(&measured), "rounds": measured}));
            }
        }
        json!({"version": report["version"], "threads": report["threads"]})
    } else {
        json!("not importable by python3 here; not timed")
    };

    let hashed = HashedTextEncoder::default();
    for batch in BATCH_SIZES {
        let measured = rates(&hashed, &sentences, batch)?;
        print_row("hashed", batch, &measured);
        results.push(json!({"engine": "hashed", "batch": batch, "sentences_per_s": median(&measured), "rounds": measured}));
    }
    if !with_sentence_transformers {
        println!(
            "sentence-transformers: python3 cannot import sentence_transformers here; not timed"
        );
    }

    let report = json!({
        "bench": "text_encode",
        "sentences": SENTENCES,
        "mean_tokens": tokens as f64 / SENTENCES as f64,
        "threads": threads,
        "rounds": ROUNDS,
        "results": results,
        "sentence_transformers": sentence_transformers,
    });
    let path = out_dir.join("text_encode.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}
