//! The house rules a reader cannot see at a glance, checked on the source in
//! the manner of rust-analyzer's tidy test: the pure cores stay pure.
//!
//! A core (the rules, a tick, the schedule, the incident tracker) decides and
//! does nothing else: no I/O, logging, clock, thread or environment, and no
//! adapter's types; time and answers come in as arguments. A change that
//! needs one of those belongs in the shell (`worker`, `inspector_loop`) or an
//! adapter, which hands the core plain values.

use std::path::{Path, PathBuf};

/// The files of the pure cores, with the files of their submodules.
const CORES: &[&str] = &["inspector", "tick", "schedule", "incident", "silence"];

/// What a core may name of the crate: the other cores and the shared leaves
/// that are plain values themselves.
const CRATE_ALLOWED: &[&str] = &[
    "inspector",
    "tick",
    "schedule",
    "incident",
    "silence",
    "event",
    "text",
];

/// Outside crates a core may use: serde for the saved form's derive, uuid
/// for an incident's id (made from the time the core is given).
const EXTERN_ALLOWED: &[&str] = &["std", "core", "serde", "uuid"];

/// What never appears in a core, whatever the path it is reached by.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::io",
    "std::net",
    "std::os",
    "std::thread",
    "std::env",
    "std::process",
    "std::sync",
    "SystemTime::now",
    "Instant::now",
    "log::",
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
    "dbg!",
    "rand::",
];

fn core_files() -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for core in CORES {
        files.push(src.join(format!("{core}.rs")));
        let dir = src.join(core);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                // Unit tests may use what they like.
                if path.extension().is_some_and(|e| e == "rs")
                    && path.file_name().is_some_and(|n| n != "tests.rs")
                {
                    files.push(path);
                }
            }
        }
    }
    files
}

/// The production part of a file: everything before its `#[cfg(test)]` module.
fn production(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i])
}

/// Every way the text breaks the rules, as `file:line: why`.
fn violations(path: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // The file's own submodules are part of the core.
    let children: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    for (n, line) in production(text).lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let at = format!("{}:{}", path.display(), n + 1);
        for bad in FORBIDDEN {
            if code.contains(bad) {
                found.push(format!("{at}: uses {bad}"));
            }
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let name: String = rest[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !CRATE_ALLOWED.contains(&name.as_str()) {
                found.push(format!(
                    "{at}: names crate::{name}, which is not a core or a leaf"
                ));
            }
            rest = &rest[i + 7..];
        }
        if let Some(used) = code.trim_start().strip_prefix("use ") {
            let root: String = used
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let allowed = EXTERN_ALLOWED.contains(&root.as_str())
                || ["crate", "super", "self"].contains(&root.as_str())
                || children.contains(&root.as_str());
            if !allowed {
                found.push(format!("{at}: uses the crate {root}"));
            }
        }
    }
    found
}

#[test]
fn the_pure_cores_import_no_adapter_and_do_no_io() {
    let files = core_files();
    assert!(
        files.len() >= CORES.len(),
        "the core files are where this test looks"
    );
    let mut found = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let shown = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        found.extend(violations(shown, &text));
    }
    assert!(
        found.is_empty(),
        "a pure core reaches outside:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_an_adapter_a_clock_and_a_log_line() {
    let text = "use crate::docker::DockerClient;\nuse log::info;\n\
                fn f() { let _ = std::time::Instant::now(); }\n\
                #[cfg(test)]\nmod tests { use crate::docker::X; }\n";
    let found = violations(Path::new("src/tick.rs"), text);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(found[0].contains("crate::docker"));
    assert!(found.iter().any(|f| f.contains("the crate log")));
    assert!(found.iter().any(|f| f.contains("log::")));
    assert!(found.iter().any(|f| f.contains("Instant::now")));
}
