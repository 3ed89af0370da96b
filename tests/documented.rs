//! The options as documented outside the code — `/etc/default/rtinspect`, the
//! man page, the README's table — against the one table the parser uses, so
//! that none of them can drift.

use rtinspect::config::{Mode, OPTIONS, OptionDefault};

fn read(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Variables the code reads that are not options of the table.
const OTHER_VARIABLES: [&str; 2] = ["RUST_LOG", "STATE_DIRECTORY"];

/// `#NAME=value` or `NAME=value` → (commented, name, value).
fn assignment(line: &str) -> Option<(bool, &str, &str)> {
    let (commented, rest) = match line.strip_prefix('#') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (name, value) = rest.split_once('=')?;
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    is_name.then_some((commented, name, value))
}

#[test]
fn the_default_file_lists_every_option_commented_out() {
    let text = read("packaging/rtinspect.default");
    let lines: Vec<(bool, &str, &str)> = text.lines().filter_map(assignment).collect();
    for spec in OPTIONS {
        let found: Vec<_> = lines.iter().filter(|(_, n, _)| *n == spec.env).collect();
        assert_eq!(found.len(), 1, "{} must appear once", spec.env);
        let (commented, _, value) = found[0];
        // A set line for the other mode would stop the service (exit 64).
        assert!(commented, "{} must be commented out", spec.env);
        if let OptionDefault::Value(default) = spec.default {
            assert_eq!(*value, default, "{} shows another default", spec.env);
        }
    }
    for (_, name, _) in &lines {
        assert!(
            OPTIONS.iter().any(|s| s.env == *name) || OTHER_VARIABLES.contains(name),
            "{name} in the default file is not an option"
        );
    }
}

/// The README's `| flag | environment | default |` table, each row's cells
/// with their backticks removed.
fn readme_rows() -> Vec<Vec<String>> {
    let text = read("README.md");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != "| flag | environment | default |")
        .skip(2);
    let mut rows = Vec::new();
    for line in lines.by_ref() {
        let Some(inner) = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
        else {
            break;
        };
        rows.push(
            inner
                .split('|')
                .map(|cell| cell.trim().replace('`', ""))
                .collect(),
        );
    }
    assert!(!rows.is_empty(), "no option table in the README");
    rows
}

#[test]
fn the_readme_table_agrees_with_the_options() {
    let rows = readme_rows();
    for spec in OPTIONS {
        let row = rows
            .iter()
            .find(|r| r[0] == spec.flag)
            .unwrap_or_else(|| panic!("the README's table lacks {}", spec.flag));
        assert_eq!(row[1], spec.env, "{}", spec.flag);
        // The README may say more after the default, not something else.
        let shown = spec.default.shown();
        let rest = row[2].strip_prefix(shown).unwrap_or_else(|| {
            panic!(
                "{}: README says {:?}, the table {shown:?}",
                spec.flag, row[2]
            )
        });
        assert!(
            !rest.starts_with(|c: char| c.is_alphanumeric()),
            "{}: README says {:?}, the table {shown:?}",
            spec.flag,
            row[2]
        );
        let mode_note = match spec.mode {
            Mode::Any => None,
            Mode::Postgres => Some("PostgreSQL mode only"),
            Mode::Label => Some("label mode only"),
        };
        if let Some(note) = mode_note {
            assert!(
                row[2].contains(note),
                "{}: README lacks {note:?}",
                spec.flag
            );
        }
    }
    for row in &rows {
        assert!(
            row[0] == "(level)" || OPTIONS.iter().any(|s| s.flag == row[0]),
            "the README lists {} which is not an option",
            row[0]
        );
    }
}

#[test]
fn the_man_page_shows_every_option_with_its_variable_and_default() {
    let text = read("packaging/rtinspect.1");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for spec in OPTIONS {
        let flag = spec.flag.replace('-', "\\-");
        assert!(
            flat.contains(&format!(".BI {flag} ")) || flat.contains(&format!(".BR {flag} ")),
            "the man page lacks {}",
            spec.flag
        );
        let bracket = format!("[{}; default {}]", spec.env, spec.default.shown());
        assert!(flat.contains(&bracket), "the man page lacks {bracket}");
    }
}
