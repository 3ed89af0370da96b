//! The documentation against the code, so that none of it can drift: the
//! options as documented outside the code — `/etc/default/rtinspect`, the man
//! page, the table in `docs/configuration.md` — against the one table the
//! parser uses; the commands of the man page and the README against
//! `--help`; the man page's description against what rtinspect does; every
//! relative link of the Markdown files; the README's size.

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

/// Where the option table lives.
const OPTION_TABLE: &str = "docs/configuration.md";

/// The option table's `| flag | environment | default |` rows, each row's
/// cells with their backticks removed.
fn option_table_rows() -> Vec<Vec<String>> {
    let text = read(OPTION_TABLE);
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
    assert!(!rows.is_empty(), "no option table in {OPTION_TABLE}");
    rows
}

#[test]
fn the_option_table_agrees_with_the_options() {
    let rows = option_table_rows();
    for spec in OPTIONS {
        let row = rows
            .iter()
            .find(|r| r[0] == spec.flag)
            .unwrap_or_else(|| panic!("{OPTION_TABLE} lacks {}", spec.flag));
        assert_eq!(row[1], spec.env, "{}", spec.flag);
        // The table may say more after the default, not something else.
        let shown = spec.default.shown();
        let rest = row[2].strip_prefix(shown).unwrap_or_else(|| {
            panic!(
                "{}: {OPTION_TABLE} says {:?}, the code {shown:?}",
                spec.flag, row[2]
            )
        });
        assert!(
            !rest.starts_with(|c: char| c.is_alphanumeric()),
            "{}: {OPTION_TABLE} says {:?}, the code {shown:?}",
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
                "{}: {OPTION_TABLE} lacks {note:?}",
                spec.flag
            );
        }
    }
    for row in &rows {
        assert!(
            row[0] == "(level)" || OPTIONS.iter().any(|s| s.flag == row[0]),
            "{OPTION_TABLE} lists {} which is not an option",
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

#[test]
fn the_operations_guide_shows_the_shipped_alert_rules() {
    let page = read("docs/operations.md");
    let rules = read("packaging/rtinspect.rules.yml");
    assert!(
        page.contains(&format!("```yaml\n{rules}```\n")),
        "docs/operations.md must show packaging/rtinspect.rules.yml verbatim"
    );
}

/// The commands `--help` lists, from its `Commands:` section: each line
/// indented by two spaces starts with one.
fn help_commands() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rtinspect"))
        .arg("--help")
        .output()
        .expect("rtinspect --help runs");
    assert!(out.status.success(), "rtinspect --help failed");
    let help = String::from_utf8(out.stdout).expect("--help is UTF-8");
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(
        commands.len() >= 5,
        "--help lists too few commands: {commands:?}"
    );
    commands
}

/// The man page's section `name` (from its `.SH` line to the next), with
/// roff's `\-` made a plain hyphen.
fn man_section(name: &str) -> String {
    let text = read("packaging/rtinspect.1").replace("\\-", "-");
    let start = text
        .find(&format!(".SH {name}\n"))
        .unwrap_or_else(|| panic!("the man page has no {name} section"));
    let rest = &text[start + 4 + name.len()..];
    rest[..rest.find("\n.SH ").unwrap_or(rest.len())].to_owned()
}

#[test]
fn the_man_page_lists_the_commands_of_help() {
    let section = man_section("COMMANDS");
    let man: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix(".B "))
        .map(str::trim)
        .collect();
    assert_eq!(
        man,
        help_commands(),
        "the man page's COMMANDS against --help"
    );
    let synopsis = man_section("SYNOPSIS");
    for command in help_commands() {
        assert!(
            synopsis.contains(&command),
            "the man page's SYNOPSIS lacks {command}"
        );
    }
}

#[test]
fn the_readme_and_the_configuration_list_every_command() {
    for path in ["README.md", OPTION_TABLE] {
        let text = read(path);
        for command in help_commands() {
            assert!(
                text.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with(&format!("rtinspect {command} "))
                        || l == format!("rtinspect {command}")
                        || l.starts_with(&format!("rtinspect [{command}]"))
                }),
                "{path}'s command list lacks {command}"
            );
        }
    }
}

#[test]
fn the_man_page_describes_what_rtinspect_does() {
    let description = man_section("DESCRIPTION");
    let flat = description.split_whitespace().collect::<Vec<_>>().join(" ");
    for what in [
        "inspect_unhealthy",
        "incident_opened",
        "incident_escalated",
        "incident_reminder",
        "incident_resolved",
        "crash loop",
        "digest",
        "notify-test",
    ] {
        assert!(
            flat.contains(what),
            "the man page's DESCRIPTION lacks {what:?}"
        );
    }
    // The five formats of --webhook-format, as the option table has them.
    let formats = OPTIONS
        .iter()
        .find(|s| s.flag == "--webhook-format")
        .expect("--webhook-format is an option")
        .value_name;
    let formats: Vec<&str> = formats.split('|').collect();
    assert_eq!(formats.len(), 5, "{formats:?}");
    for format in formats {
        assert!(
            flat.contains(format),
            "the man page's DESCRIPTION lacks the {format} format"
        );
    }
}

/// The package's extended description (what `apt show` says) is the
/// README's first paragraph, so that neither tells an older story.
#[test]
fn the_package_description_is_the_readmes_first_paragraph() {
    let cargo = read("Cargo.toml");
    let start = cargo
        .find("extended-description = \"\"\"\\\n")
        .expect("Cargo.toml has an extended description");
    let body = &cargo[start..].split_once('\n').unwrap().1;
    let body = &body[..body.find("\"\"\"").expect("the description ends")];
    // TOML's line-ending backslash drops the newline and the blanks after it.
    let description = body
        .lines()
        .map(|l| l.trim_end_matches('\\'))
        .collect::<String>();
    let flat = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let readme = read("README.md");
    let first = readme
        .split("\n\n")
        .nth(1)
        .expect("the README has a first paragraph");
    assert_eq!(flat(&description), flat(&first.replace("**", "")));
}

/// The README is a guide: short, with the two commands near the top.
const README_MAX_BYTES: usize = 12 * 1024;

#[test]
fn the_readme_is_a_short_guide_with_the_two_commands_first() {
    let text = read("README.md");
    assert!(
        text.len() <= README_MAX_BYTES,
        "README.md is {} bytes, over {README_MAX_BYTES}: move the detail into docs/",
        text.len()
    );
    let install = text
        .find("\n## Install")
        .expect("the README has ## Install");
    for command in ["\ncargo run --release\n", "\ntests/run.sh\n"] {
        let at = text
            .find(command)
            .unwrap_or_else(|| panic!("the README lacks {command:?}"));
        assert!(at < install, "{command:?} comes after ## Install");
    }
}

/// The Markdown files whose links must resolve: the README, the top-level
/// guides and every page of `docs/`.
fn markdown_files() -> Vec<String> {
    let mut files: Vec<String> = [
        "README.md",
        "ARCHITECTURE.md",
        "CONTRIBUTING.md",
        "CHANGELOG.md",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut docs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            e.expect("a docs/ entry")
                .file_name()
                .into_string()
                .expect("a UTF-8 name")
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no page");
    files.extend(docs);
    files
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// The anchors GitHub makes of a page's headings: lower case, punctuation
/// other than `-` and `_` dropped, spaces made hyphens, a repeated one
/// numbered.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for line in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen
            .iter()
            .filter(|s| {
                **s == slug
                    || s.strip_prefix(&slug)
                        .is_some_and(|r| r.starts_with('-') && r[1..].parse::<u32>().is_ok())
            })
            .count();
        seen.push(if count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
    }
    seen
}

/// Every `](target)` of a text's prose.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    targets
}

#[test]
fn every_relative_link_of_the_markdown_files_resolves() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for file in markdown_files() {
        let text = read(&file);
        let dir = std::path::Path::new(&file)
            .parent()
            .unwrap_or(std::path::Path::new(""));
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                std::path::PathBuf::from(&file)
            } else {
                dir.join(path)
            };
            let full = root.join(&linked);
            assert!(full.exists(), "{file}: the link {target:?} names no file");
            if let Some(anchor) = anchor {
                let page = std::fs::read_to_string(&full)
                    .unwrap_or_else(|e| panic!("{file}: {target:?}: {e}"));
                assert!(
                    anchors(&page).iter().any(|a| a == anchor),
                    "{file}: the link {target:?} names no heading of {}",
                    linked.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser right?"
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    let page = "# Title\n## The event's details\n## Who runs `migrate`\n## /healthz\n```\n## not a heading\n```\n## Title\n";
    assert_eq!(
        anchors(page),
        [
            "title",
            "the-events-details",
            "who-runs-migrate",
            "healthz",
            "title-1"
        ]
    );
}

/// The tests `docs/guarantees.md` names in the last column of its tables.
fn pinning_tests() -> Vec<String> {
    let text = read("docs/guarantees.md");
    let mut names = Vec::new();
    for line in prose_lines(&text) {
        let Some(inner) = line
            .trim()
            .strip_prefix('|')
            .and_then(|l| l.strip_suffix('|'))
        else {
            continue;
        };
        let last = inner.rsplit('|').next().unwrap_or_default();
        names.extend(
            last.split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| n.contains("::"))
                .map(str::to_owned),
        );
    }
    names
}

#[test]
fn every_test_the_guarantees_name_exists_where_its_path_says() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let names = pinning_tests();
    assert!(
        names.len() > 50,
        "only {} tests named: is the parser right?",
        names.len()
    );
    for name in names {
        let segments: Vec<&str> = name.split("::").collect();
        let (function, modules) = segments.split_last().expect("a path");
        // `module::tests::name` is a unit test under src/ (and
        // `module::tests::part::name` one in `src/module/tests/part.rs`);
        // any other lives in tests/, its first segment the file.
        let (dir, modules, part) = match modules.iter().position(|s| *s == "tests") {
            Some(at) => ("src", &modules[..at], &modules[at + 1..]),
            None => ("tests", modules, &[][..]),
        };
        let path = modules.join("/");
        let candidates = if part.is_empty() {
            vec![
                format!("{dir}/{path}.rs"),
                format!("{dir}/{path}/tests.rs"),
                format!("{dir}/{path}/mod.rs"),
            ]
        } else {
            vec![format!("{dir}/{path}/tests/{}.rs", part.join("/"))]
        };
        let found = candidates.iter().any(|file| {
            std::fs::read_to_string(root.join(file))
                .is_ok_and(|text| text.contains(&format!("fn {function}(")))
        });
        assert!(
            found,
            "docs/guarantees.md names {name}, which is in none of {candidates:?}"
        );
    }
}

#[test]
fn every_row_of_the_guarantees_has_the_five_columns() {
    const HEADER: &str =
        "| fault | what rtinspect does | what it guarantees | figure | the test that pins it |";
    let text = read("docs/guarantees.md");
    let mut rows = 0;
    let mut in_table = false;
    for line in prose_lines(&text) {
        let line = line.trim();
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table {
            assert_eq!(
                line, HEADER,
                "docs/guarantees.md: a table with another header"
            );
            in_table = true;
            continue;
        }
        if line.starts_with("|---") {
            continue;
        }
        // Cells are split on " | ": a pipe inside a cell is written `\|`.
        let cells = line.trim_matches('|').split(" | ").count();
        assert_eq!(
            cells, 5,
            "docs/guarantees.md: a row of {cells} cells: {line}"
        );
        rows += 1;
    }
    assert!(rows > 70, "only {rows} rows: is the parser right?");
}
