//! The status page on the real dockerd: a game whose id holds `<script>`
//! is shown as text (by the page's escaping and in the DOM headless
//! Chromium builds of it), `/status.json` has the rows `status --json`
//! prints, and the screenshots the README shows are taken here (kept under
//! `target/screenshots/`; copied to `docs/images/` when
//! `RTINSPECT_UPDATE_SCREENSHOTS` is set). And 60 idle connections to the
//! listener stop neither the ticks nor the page.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{
    Containers, Daemon, FakeEngine, TempDir, bin, free_addr, http_get, live_docker, live_required,
    one_labelled_reply, sample, skipped, wait_for_the_three, wait_until,
};

/// The game whose id is markup.
const SCRIPT_GAME: &str = "<script>alert(1)</script>";

/// Headless Chromium (Debian's `chromium`), or `None` with a note; missing
/// while the environment demands the live services, a failure.
fn chromium() -> Option<&'static str> {
    let found = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("chromium");
    }
    assert!(
        !live_required(),
        "RTINSPECT_TEST_REQUIRE_LIVE is set but there is no chromium (apt-get install chromium)"
    );
    skipped("no chromium: apt-get install chromium");
    None
}

/// Runs headless Chromium on `url` with `args`; its stdout.
fn headless(chromium: &str, url: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args([
            "120",
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--hide-scrollbars", "--window-size=1200,640"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where the tests keep their screenshots: `target/screenshots/`.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Keeps `file` for the README too, when asked to.
fn keep_for_the_readme(file: &Path) {
    if std::env::var_os("RTINSPECT_UPDATE_SCREENSHOTS").is_some_and(|v| !v.is_empty()) {
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::copy(file, images.join(file.file_name().unwrap())).unwrap();
    }
}

/// Splits an HTTP answer's head from its body.
fn raw_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn a_script_game_is_text_on_the_page_and_in_chromium_and_status_json_has_the_rows() {
    let Some(live) = live_docker() else { return };
    let mut c = Containers::new(live, "page");
    let state = TempDir::new("page-state");
    for game in ["g-alpha", "g-bravo", "g-charlie", SCRIPT_GAME] {
        c.run(game, &[], &["sleep", "3600"]);
    }
    c.three_in_trouble("g-down");
    let addr = free_addr();
    let (daemon, out, err) = Daemon::watched(
        bin()
            .args(["run", "--label", &c.label, "--report", "incidents"])
            .args(["--interval", "1s", "--docker-host", &live.docker_host()])
            .args(["--metrics-addr", &addr])
            .arg("--state-dir")
            .arg(state.path()),
    );
    wait_for_the_three(&out, "g-down");
    // The page shows the board of a tick that ended after the escalation.
    let ticks = |addr: &str| {
        http_get(addr, "/metrics").and_then(|(_, m)| sample(&m, "rtinspect_ticks_total"))
    };
    let now = ticks(&addr).unwrap();
    wait_until(Duration::from_secs(10), "another tick", || {
        ticks(&addr).is_some_and(|t| t >= now + 2.0)
    });

    let (head, page) = raw_get(&addr, "/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'"),
        "{head}"
    );
    assert!(!page.contains("<script"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        page.contains("7 games: 4 healthy, 1 unhealthy, 1 not running, 1 crash loop"),
        "{page}"
    );
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"1\">"));

    // /status.json: the rows `status --json` prints of the same games.
    let (status, json) = http_get(&addr, "/status.json").unwrap();
    assert_eq!(status, 200);
    let page_doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cli = bin()
        .args(["status", "--json", "--label", &c.label])
        .args(["--docker-host", &live.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    let cli_doc: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let rows = |doc: &serde_json::Value| -> Vec<(String, String)> {
        doc["games"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let kind = g["incident"]["kind"].as_str().unwrap_or("-").to_owned();
                (g["game_id"].as_str().unwrap().to_owned(), kind)
            })
            .collect()
    };
    assert_eq!(rows(&page_doc)[..3], rows(&cli_doc)[..3], "the worst three");
    let mut page_games = rows(&page_doc);
    let mut cli_games = rows(&cli_doc);
    page_games.sort();
    cli_games.sort();
    assert_eq!(page_games, cli_games);
    assert_eq!(page_doc["summary"], cli_doc["summary"]);
    assert_eq!(page_doc["games"][0]["game_id"], "g-loop");

    // The table as a terminal shows it, for the README.
    let table = bin()
        .args(["status", "--label", &c.label])
        .args(["--docker-host", &live.docker_host()])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    let text_file = screenshots().join("status.txt");
    std::fs::write(&text_file, &table.stdout).unwrap();
    keep_for_the_readme(&text_file);

    if let Some(chromium) = chromium() {
        let url = format!("http://{addr}/");
        // The DOM Chromium builds: the id is a text node, no script runs.
        let dom = headless(chromium, &url, &["--dump-dom"]);
        assert!(!dom.contains("<script"), "{dom}");
        assert!(
            dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{dom}"
        );
        let png = screenshots().join("status-page.png");
        let _ = std::fs::remove_file(&png);
        let shot = format!("--screenshot={}", png.display());
        headless(chromium, &url, &[&shot]);
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        assert!(
            bytes.len() > 10_000,
            "a page, not a blank: {} bytes",
            bytes.len()
        );
        keep_for_the_readme(&png);
    }
    assert!(daemon.terminate().success(), "{}", err.text());
}

#[test]
fn sixty_idle_connections_stop_neither_the_ticks_nor_the_page() {
    let engine = FakeEngine::start(|path| one_labelled_reply(path, "running"));
    let addr = free_addr();
    let (daemon, _, err) = Daemon::watched(bin().args([
        "run",
        "--docker-host",
        &engine.docker_host(),
        "--interval",
        "200ms",
        "--metrics-addr",
        &addr,
    ]));
    let ticks =
        || http_get(&addr, "/metrics").and_then(|(_, m)| sample(&m, "rtinspect_ticks_total"));
    wait_until(Duration::from_secs(10), "the first tick", || {
        ticks().is_some_and(|t| t >= 1.0)
    });
    let before = ticks().unwrap();
    let idle: Vec<TcpStream> = (0..60)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let mut pages = 0;
    wait_until(
        Duration::from_secs(30),
        "10 more ticks and pages under the flood",
        || {
            if http_get(&addr, "/")
                .is_some_and(|(s, b)| s == 200 && b.contains("1 game: 1 healthy"))
            {
                pages += 1;
            }
            ticks().is_some_and(|t| t >= before + 10.0) && pages >= 3
        },
    );
    drop(idle);
    let (status, _) = http_get(&addr, "/status.json").unwrap();
    assert_eq!(status, 200);
    assert!(daemon.terminate().success(), "{}", err.text());
}
