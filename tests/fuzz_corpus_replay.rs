//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the same invariant
//! checks the cargo-fuzz targets run (`fuzz/src/checks.rs`, included below, one copy), so a
//! regression the fuzzers once covered is caught by a plain `cargo test` without the fuzzer.
//!
//! - `parse_head` and `chunked`: every file.
//! - `connection`: a deterministic sample of at most 200 files against a real engine on
//!   127.0.0.1 (the fuzz target's server: one worker, small limits, async / file / HEAD
//!   responses).
//!
//! A missing or empty corpus directory is a failure, not a silent pass.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../fuzz/src/checks.rs"]
mod checks;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("fuzz corpus {} missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

/// Runs `check` on every input, collecting every failing file before failing.
fn replay(target: &str, inputs: Vec<(PathBuf, Vec<u8>)>, check: impl Fn(&[u8])) {
    let started = Instant::now();
    let n = inputs.len();
    let mut failed = Vec::new();
    for (path, data) in inputs {
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    eprintln!("{target}: replayed {n} inputs in {:?}", started.elapsed());
    assert!(failed.is_empty(), "{target}: {} of {n} corpus inputs fail their checks:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn parse_head_corpus() {
    replay("parse_head", corpus("parse_head"), checks::check_parse_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", corpus("chunked"), checks::check_chunked);
}

#[test]
fn connection_corpus_sample() {
    const MAX: usize = 200;
    let all = corpus("connection");
    let stride = all.len().div_ceil(MAX);
    let sample: Vec<_> = all.into_iter().step_by(stride).collect();
    replay("connection", sample, |data| checks::run_connection_input(data, Duration::from_secs(5)));
    checks::check_server_idle(checks::server());
}
