//! Header freshness: `include/zerohttp.h` must be exactly what cbindgen (pinned by Cargo.lock)
//! generates from this crate with `cbindgen.toml`.
//!
//! `ZH_UPDATE_HEADER=1 cargo test --release --test header_fresh` (what `make header` runs)
//! rewrites the file instead of comparing.

use std::fs;
use std::path::{Path, PathBuf};

const HEADER: &str = "include/zerohttp.h";

fn generate(crate_dir: &Path) -> String {
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cannot read cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen could not generate the header: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen produced non-UTF-8 output")
}

#[test]
fn header_is_fresh() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = crate_dir.join(HEADER);
    let generated = generate(&crate_dir);

    if std::env::var("ZH_UPDATE_HEADER").as_deref() == Ok("1") {
        if fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
            fs::create_dir_all(path.parent().unwrap()).expect("create include/");
            fs::write(&path, &generated)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            eprintln!("header_fresh: wrote {}", path.display());
        } else {
            eprintln!("header_fresh: {} already up to date", path.display());
        }
        return;
    }

    let current = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{HEADER} cannot be read ({e}): run `make header` and commit the result")
    });
    if current != generated {
        let first_diff = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| current.lines().count().min(generated.lines().count()));
        let line = |s: &str| s.lines().nth(first_diff).unwrap_or("<end of file>").to_owned();
        panic!(
            "{HEADER} is stale (differs from cbindgen output from line {}):\n  \
             checked in: {}\n  generated:  {}\n\
             run `make header` and commit include/zerohttp.h",
            first_diff + 1,
            line(&current),
            line(&generated),
        );
    }
}

/// Every name the header defines is ours: a plain `pub const` anywhere in the crate becomes a
/// `#define` (a `NAME_MAX` once shadowed `<limits.h>`'s in every program that included both).
#[test]
fn header_defines_only_zh_names() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = fs::read_to_string(crate_dir.join(HEADER)).expect("read the header");
    let foreign: Vec<&str> = header
        .lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| !name.starts_with("ZH_") && *name != "ZEROHTTP_H")
        .collect();
    assert!(foreign.is_empty(), "{HEADER} defines names outside ZH_*: {foreign:?} (make the Rust constants private or pub(crate))");
}
