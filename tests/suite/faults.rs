//! The fault harness, `scripts/faults.sh`, at a small N: `kill -9` at seeded moments of
//! `ingest`, `train` and `map`, rerun (`train --resume`) to completion, bytes compared with an
//! uninterrupted run's. The README's figures are the same script at N = 20.

use std::process::Command;

#[test]
fn two_kills_of_each_of_ingest_train_and_map_rerun_to_the_bytes_of_uninterrupted_runs() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/faults.sh");
    let output = Command::new("bash")
        .args([script, "2", "7"])
        .env("CROSSCLR_BIN", env!("CARGO_BIN_EXE_crossclr"))
        .env("FAULTS_DIR", dir.path())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for command in ["ingest", "train", "map"] {
        let row = stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(command) && line.contains("/2"))
            .unwrap_or_else(|| panic!("no summary row for {command}: {stdout}"));
        // survived, then kills that landed while it ran, completed reruns, identical results,
        // half-written files.
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[1], "2/2", "{row}");
        assert_eq!(cells[3..6], ["2", "2", "0"], "{row}");
    }
    assert!(stdout.contains("every kill survived"), "{stdout}");
}
