//! The house rules a reader cannot see at a glance, checked on the source in
//! the manner of rust-analyzer's tidy test: the pure cores stay pure.
//!
//! A core (the rules, a tick, the schedule, the incident tracker, the
//! silences, the classifier of ends) decides and does nothing else: no I/O, logging, clock, thread or
//! environment, and no adapter's types; time and answers come in as
//! arguments. A change that needs one of those belongs in the shell
//! (`worker`, `inspector_loop`) or an adapter, which hands the core plain
//! values. The leaves the cores may name (`event`, `text`, and the log tail
//! an event carries) are held to the same rules, each with its own list of
//! what it may name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A module checked here and what it may name: of this crate (its first
/// path segment after `crate::`) and of outside crates.
struct Pure {
    module: &'static str,
    crate_allowed: &'static [&'static str],
    extern_allowed: &'static [&'static str],
}

/// What a core may name of the crate: the other cores and the shared leaves
/// that are plain values themselves.
const CORE_CRATE: &[&str] = &[
    "inspector",
    "tick",
    "schedule",
    "incident",
    "silence",
    "ending",
    "event",
    "text",
];

/// Outside crates a core may use: serde for the saved form's derive, uuid
/// for an incident's id (made from the time the core is given).
const CORE_EXTERN: &[&str] = &["std", "core", "serde", "uuid"];

/// The pure modules, with the files of their submodules.
const PURE: &[Pure] = &[
    Pure {
        module: "inspector",
        crate_allowed: CORE_CRATE,
        extern_allowed: CORE_EXTERN,
    },
    Pure {
        module: "tick",
        crate_allowed: CORE_CRATE,
        extern_allowed: CORE_EXTERN,
    },
    Pure {
        module: "schedule",
        crate_allowed: CORE_CRATE,
        extern_allowed: CORE_EXTERN,
    },
    Pure {
        module: "incident",
        crate_allowed: CORE_CRATE,
        extern_allowed: CORE_EXTERN,
    },
    Pure {
        module: "silence",
        crate_allowed: CORE_CRATE,
        extern_allowed: CORE_EXTERN,
    },
    // The event: the cores' facts, and its envelope rendered with serde_json.
    Pure {
        module: "event",
        crate_allowed: &[
            "event",
            "inspector",
            "incident",
            "ending",
            "log_tail",
            "text",
        ],
        extern_allowed: &["std", "core", "serde", "serde_json", "uuid"],
    },
    // Text cut on a character boundary: nothing but the standard library.
    Pure {
        module: "text",
        crate_allowed: &["text"],
        extern_allowed: &["std", "core"],
    },
    // A container's last log lines, cleaned, redacted and cut: an event
    // carries them, so they are plain text made from bytes, no more.
    Pure {
        module: "log_tail",
        crate_allowed: &["log_tail", "text"],
        extern_allowed: &["std", "core"],
    },
    // How each end of a container came about: nothing of the crate.
    Pure {
        module: "ending",
        crate_allowed: &["ending"],
        extern_allowed: &["std", "core"],
    },
];

/// What never appears in a pure module, whatever the path it is reached by
/// (matched on the text and on every path with its `use` aliases expanded).
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

/// Lower-case path roots that are types, not crates.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// Every file of a pure module: `src/<module>.rs` and, walked to any depth,
/// the files under `src/<module>/`, unit tests left out (they may use what
/// they like).
fn module_files(module: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join(format!("{module}.rs"))];
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "tests" || name == "tests.rs" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file under `src/`: `src/schedule/nudges.rs` is
/// `["schedule", "nudges"]`.
fn module_path(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix("src").unwrap_or(path).with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// The production part of a file: its text with every `#[cfg(test)]` item
/// blanked out (an inline `mod tests { … }`, a test-only function), lines
/// kept so that line numbers stay true. A `mod tests;` is only that line.
fn production(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let item = &rest[i..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (j, c) in item.char_indices().skip("#[cfg(test)]".len()) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        out.extend(item[..end].chars().filter(|&c| c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The code of a line, its comment cut off.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The `use` declarations of a text, each as the lines it spans and its
/// tree (`std::{fs, thread}`).
fn uses(text: &str) -> Vec<(std::ops::RangeInclusive<usize>, String)> {
    let mut found = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let code = code(line);
        let piece = match open.take() {
            Some((at, so_far)) => Some((at, so_far + " " + code)),
            None => {
                let trimmed = code.trim_start();
                let trimmed = trimmed
                    .strip_prefix("pub(crate) ")
                    .or_else(|| trimmed.strip_prefix("pub(super) "))
                    .or_else(|| trimmed.strip_prefix("pub "))
                    .unwrap_or(trimmed);
                trimmed.strip_prefix("use ").map(|u| (n, u.to_string()))
            }
        };
        if let Some((at, tree)) = piece {
            match tree.find(';') {
                Some(end) => found.push((at..=n, tree[..end].to_string())),
                None => open = Some((at, tree)),
            }
        }
    }
    found
}

/// A use tree expanded into its paths, each with the name it binds (`None`
/// for a glob): `a::{b, c as d, self}` is `a::b` as `b`, `a::c` as `d`, `a`
/// as `a`.
fn expand(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    fn walk(prefix: &[String], tree: &str, out: &mut Vec<(Vec<String>, Option<String>)>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let (mut depth, mut start) = (0usize, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        walk(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            walk(&base, &inner[start..], out);
            return;
        }
        let (path, alias) = match tree.split_once(" as ") {
            Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
            None => (tree, None),
        };
        let mut full = prefix.to_vec();
        full.extend(path.split("::").map(|s| s.trim().to_string()));
        if full.last().is_some_and(|l| l == "self") {
            full.pop();
        }
        let bound = if full.last().is_some_and(|l| l == "*") {
            None
        } else {
            alias.or_else(|| full.last().cloned())
        };
        out.push((full, bound));
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// The paths named in a line of code: `a::b::c` for every `a::` that is not
/// itself the tail of a longer path.
fn paths(code: &str) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let mut segments = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < bytes.len() && ident(bytes[j]) {
                    j += 1;
                }
                segments.push(code[start..j].to_string());
                if code[j..].starts_with("::")
                    && code[j + 2..].starts_with(|c: char| ident(c as u8))
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                found.push(segments);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// Every way a pure module's file breaks the rules, as `file:line: why`.
fn violations(pure: &Pure, path: &Path, text: &str) -> Vec<String> {
    let text = production(text);
    let here = module_path(path);
    // The file's own submodules are part of it.
    let children: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let l = code(l).trim();
            let (_, after) = l
                .split_once("mod ")
                .filter(|(v, _)| !v.contains(' ') || v.starts_with("pub"))?;
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            Some(name).filter(|n| !n.is_empty())
        })
        .collect();
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let uses = uses(&text);
    for (_, tree) in &uses {
        for (full, bound) in expand(tree) {
            if let Some(bound) = bound {
                aliases.insert(bound, full);
            }
        }
    }
    let mut found = Vec::new();
    // Where a path leads: `None` when it stays inside the module or is a
    // type's; the reason it may not be named otherwise.
    let judge = |full: &[String]| -> Vec<String> {
        let mut why = Vec::new();
        let joined = full.join("::");
        for bad in FORBIDDEN {
            let bad_path = bad.trim_end_matches("::");
            if joined == bad_path
                || joined.starts_with(&format!("{bad_path}::"))
                || (bad.contains("::now") && joined.contains(bad))
            {
                why.push(format!("uses {bad}"));
            }
        }
        // Resolve `crate`, `self` and `super` to a path from the crate root.
        let mut at: Option<Vec<String>> = None;
        match full[0].as_str() {
            "crate" => at = Some(full[1..].to_vec()),
            "self" | "super" => {
                let mut base = here.clone();
                let mut k = 0;
                if full[0] == "self" {
                    k = 1;
                }
                while full.get(k).is_some_and(|s| s == "super") {
                    base.pop();
                    k += 1;
                }
                base.extend(full[k..].iter().cloned());
                at = Some(base);
            }
            root => {
                let is_type = root.starts_with(|c: char| c.is_ascii_uppercase());
                if !is_type
                    && !PRIMITIVES.contains(&root)
                    && !children.iter().any(|c| c == root)
                    && !pure.extern_allowed.contains(&root)
                {
                    why.push(format!("uses the crate {root}"));
                }
            }
        }
        if let Some(at) = at {
            let name = at.first().map_or("", String::as_str);
            if !pure.crate_allowed.contains(&name) {
                why.push(format!(
                    "names crate::{name}, which is not a core or a leaf"
                ));
            }
        }
        why
    };
    for (lines, tree) in &uses {
        let at = format!("{}:{}", path.display(), lines.start() + 1);
        for (full, _) in expand(tree) {
            for why in judge(&full) {
                found.push(format!("{at}: {why}"));
            }
        }
    }
    for (n, line) in text.lines().enumerate() {
        let code = code(line);
        let at = format!("{}:{}", path.display(), n + 1);
        let mut why: Vec<String> = FORBIDDEN
            .iter()
            .filter(|bad| bad.ends_with('!') && code.contains(*bad))
            .map(|bad| format!("uses {bad}"))
            .collect();
        // A use is judged whole above; an attribute names lints and derives.
        let in_use = uses.iter().any(|(lines, _)| lines.contains(&n));
        if !in_use && !code.trim_start().starts_with('#') {
            for path in paths(code) {
                let full = match aliases.get(&path[0]) {
                    Some(target) => target.iter().chain(&path[1..]).cloned().collect(),
                    None => path,
                };
                why.extend(judge(&full));
            }
        }
        why.dedup();
        for why in why {
            let line = format!("{at}: {why}");
            if !found.contains(&line) {
                found.push(line);
            }
        }
    }
    found
}

#[test]
fn the_pure_cores_import_no_adapter_and_do_no_io() {
    let mut found = Vec::new();
    for pure in PURE {
        let files = module_files(pure.module);
        assert!(
            files[0].exists(),
            "{} is where this test looks",
            files[0].display()
        );
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let shown = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(path);
            found.extend(violations(pure, shown, &text));
        }
    }
    assert!(
        found.is_empty(),
        "a pure module reaches outside:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_walk_reaches_a_cores_grandchildren_and_leaves_out_its_tests() {
    let files = module_files("schedule");
    assert!(files.iter().any(|f| f.ends_with("schedule/nudges.rs")));
    assert!(
        !files
            .iter()
            .any(|f| f.components().any(|c| c.as_os_str() == "tests"))
    );
    assert!(!files.iter().any(|f| f.ends_with("tests.rs")));
}

#[test]
fn the_check_sees_an_adapter_a_clock_and_a_log_line() {
    let core = &PURE[1];
    // Each way to reach outside, in the file it is written in, and what the
    // check must say of it.
    let cases: &[(&str, &str, &str)] = &[
        (
            "src/tick.rs",
            "use crate::docker::DockerClient;\n",
            "crate::docker",
        ),
        ("src/tick.rs", "use log::info;\n", "the crate log"),
        ("src/tick.rs", "fn f() { log::info!(\"x\"); }\n", "log::"),
        (
            "src/tick.rs",
            "fn f() { let _ = std::time::Instant::now(); }\n",
            "Instant::now",
        ),
        (
            "src/tick.rs",
            "use std::{fs, thread};\nfn f() { fs::read(\"x\"); }\n",
            "std::fs",
        ),
        ("src/tick.rs", "use std::{fs, thread};\n", "std::thread"),
        (
            "src/tick.rs",
            "use std::{\n    fmt,\n    thread,\n};\n",
            "std::thread",
        ),
        (
            "src/tick.rs",
            "use std::time::Instant as Clock;\nfn f() { Clock::now(); }\n",
            "Instant::now",
        ),
        (
            "src/tick.rs",
            "use crate::{docker::DockerError, tick};\n",
            "crate::docker",
        ),
        (
            "src/tick/failure.rs",
            "use super::super::docker::DockerError;\n",
            "crate::docker",
        ),
        (
            "src/tick.rs",
            "fn f() { serde_json::to_string(&1); }\n",
            "the crate serde_json",
        ),
        (
            "src/tick.rs",
            "fn f() -> rustix::io::Errno { todo!() }\n",
            "the crate rustix",
        ),
        (
            "src/tick.rs",
            "#[cfg(test)]\nmod tests;\nuse crate::docker::X;\n",
            "crate::docker",
        ),
    ];
    for (file, text, says) in cases {
        let found = violations(core, Path::new(file), text);
        assert!(
            found.iter().any(|f| f.contains(says)),
            "{file}: {text:?} should break the rule with {says:?}: {found:#?}"
        );
    }
    // A test module and the core's own submodules and types stay allowed.
    let fine = "use std::time::{Duration, Instant};\nmod failure;\n\
                use failure::Failure;\nfn f(now: Instant) -> u64 { Duration::ZERO; u64::MAX }\n\
                use super::tick::Step;\n\
                #[cfg(test)]\nmod tests { use crate::docker::X; fn g() { std::fs::read(\"x\"); } }\n";
    assert_eq!(
        violations(core, Path::new("src/tick.rs"), fine),
        Vec::<String>::new()
    );
    // A leaf is held to its own list: the event may render JSON, text may not.
    let json = "use serde_json::value::RawValue;\n";
    assert!(violations(&PURE[5], Path::new("src/event/envelope.rs"), json).is_empty());
    assert!(!violations(&PURE[6], Path::new("src/text.rs"), json).is_empty());
}
