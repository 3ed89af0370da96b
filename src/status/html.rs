//! The status page: the board as one small HTML document — no script, no
//! outside asset, a style of its own, and a refresh every interval — with
//! the open incidents first, then every game, worst first.
//!
//! Every outside string (the host, a game id, a container reference,
//! Docker's words) is HTML-escaped, and what could still mislead a reader
//! (a control character, a direction override, a zero-width character) is
//! shown as `?`, as in the terminal. The page is bounded: at most
//! [`PAGE_ROWS`] games (the worst), the rest counted; a game id is cut at
//! 64 characters.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::table::inert;
use super::{Board, Incident, Row, age, minute, short_id};

/// The most games a page lists; the healthiest beyond are counted.
pub(crate) const PAGE_ROWS: usize = 500;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em;margin:0}h2{font-size:1.1em;margin:1.2em 0 .4em}\
p{margin:.3em 0}.when{color:#666}table{border-collapse:collapse}\
th,td{text-align:left;padding:.2em .8em .2em 0;border-bottom:1px solid #ddd;white-space:nowrap}\
td.s{font-weight:600}.crash_loop .s{color:#b00}.not_running .s{color:#d33}\
.unhealthy .s{color:#b70}.restarted .s{color:#07a}.unknown .s{color:#839}\
.healthy .s{color:#080}code{font-size:.95em}";

/// The page of `board` (or of no look yet) at `now`, refreshing itself
/// every `refresh`.
pub(crate) fn render(board: Option<&Board>, now: SystemTime, refresh: Duration) -> String {
    let mut out = String::with_capacity(4096);
    let host = board.map_or("", |b| b.host.as_str());
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{}\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>rtinspect: {}</title><style>{STYLE}</style></head><body>\
         <h1>rtinspect on {}</h1>",
        refresh.as_secs().max(1),
        text(host, 64),
        text(host, 64)
    );
    let Some(board) = board else {
        out.push_str("<p>No look yet: the first tick has not ended.</p></body></html>\n");
        return out;
    };
    let _ = write!(
        out,
        "<p><strong>{}</strong></p><p class=\"when\">As of {}, {} ago; this page refreshes \
         every {}.</p>",
        text(&board.summary_line(), 200),
        minute(board.at),
        age(now.duration_since(board.at).unwrap_or_default()),
        age(refresh.max(Duration::from_secs(1)))
    );
    let open: Vec<(&Row, &Incident)> = board
        .rows
        .iter()
        .filter_map(|r| Some((r, r.incident.as_ref()?)))
        .take(PAGE_ROWS)
        .collect();
    out.push_str("<h2>Open incidents</h2>");
    if open.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str(
            "<table><tr><th>kind</th><th>game</th><th>since</th><th>reason</th>\
             <th>incident</th></tr>",
        );
        for (r, i) in open {
            let _ = write!(
                out,
                "<tr class=\"{}\"><td class=\"s\">{}</td><td>{}</td><td>{} ({} ago)</td>\
                 <td>{}</td><td><code>{}</code></td></tr>",
                r.standing.as_str(),
                i.kind.as_str().replace('_', " "),
                text(&r.game_id, 64),
                minute(i.since),
                age(now.duration_since(i.since).unwrap_or_default()),
                i.reason
                    .as_deref()
                    .map_or_else(|| "-".into(), |r| text(r, 32)),
                text(&i.id, 40)
            );
        }
        out.push_str("</table>");
    }
    // The column of silences only when a game is silenced, as in `status`.
    let silences = board.rows.iter().any(|r| r.silenced_until.is_some());
    let _ = write!(
        out,
        "<h2>Games</h2><table><tr><th>status</th><th>game</th><th>container</th>\
         <th>state</th><th>health</th><th>restarts</th>{}<th>note</th></tr>",
        if silences {
            "<th>silenced until</th>"
        } else {
            ""
        }
    );
    for r in board.rows.iter().take(PAGE_ROWS) {
        let silenced = match (silences, r.silenced_until) {
            (false, _) => String::new(),
            (true, None) => "<td>-</td>".to_owned(),
            (true, Some(until)) => format!("<td>{}</td>", minute(until)),
        };
        let _ = write!(
            out,
            "<tr class=\"{}\"><td class=\"s\">{}</td><td>{}</td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td><td>{}</td>{silenced}<td>{}</td></tr>",
            r.standing.as_str(),
            r.standing.words(),
            text(&r.game_id, 64),
            text(short_id(&r.container_id), 64),
            text(&r.state, 32),
            if r.health.is_empty() {
                "-".to_owned()
            } else {
                text(&r.health, 32)
            },
            r.restarts.map_or_else(|| "-".into(), |n| n.to_string()),
            r.note
                .as_deref()
                .map_or_else(|| "".into(), |n| text(n, 120))
        );
    }
    out.push_str("</table>");
    if board.rows.len() > PAGE_ROWS {
        let _ = write!(
            out,
            "<p>{} more games, the healthiest, are not listed: see /status.json.</p>",
            board.rows.len() - PAGE_ROWS
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"when\">rtinspect {} &middot; <a href=\"/status.json\">status.json</a> \
         &middot; <a href=\"/metrics\">metrics</a> &middot; <a href=\"/healthz\">healthz</a>\
         </p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    out
}

/// Outside text for HTML: made inert as for a terminal, cut to `width`
/// characters, then escaped.
fn text(s: &str, width: usize) -> String {
    let mut out = String::with_capacity(s.len());
    for c in inert(s, width).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::super::tests::memory;
    use super::super::{Look, Seen};
    use super::*;
    use crate::incident::Kind;

    fn look(game: &str, state: &str) -> Look {
        Look {
            game_id: game.into(),
            container_ref: "c".into(),
            seen: Seen::Container {
                container_id: "c".into(),
                state: state.into(),
                health: String::new(),
            },
        }
    }

    fn board(looks: Vec<Look>) -> Board {
        let memory = memory(&[("<b>loop</b>", 4, Some((Kind::CrashLoop, 0)))]);
        Board::new(
            "host\"7<".into(),
            UNIX_EPOCH + Duration::from_secs(1_800_000_100),
            looks,
            Some(&memory),
            &|_| None,
        )
    }

    #[test]
    fn every_outside_string_is_escaped_and_nothing_runs() {
        let hostile = "<script>alert(\"x\")</script>&'\u{202e}";
        let b = board(vec![
            look(hostile, "running"),
            look("<b>loop</b>", "running"),
        ]);
        let page = render(
            Some(&b),
            UNIX_EPOCH + Duration::from_secs(1_800_000_160),
            Duration::from_secs(15),
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;?"),
            "{page}"
        );
        assert!(
            page.contains("<title>rtinspect: host&quot;7&lt;</title>"),
            "{page}"
        );
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
        assert!(page.contains("2 games: 1 healthy, 1 crash loop"));
        assert!(
            page.contains("<td class=\"s\">crash loop</td><td>&lt;b&gt;loop&lt;/b&gt;</td>"),
            "{page}"
        );
        // No outside asset: nothing is fetched from anywhere.
        for asset in ["src=", "http://", "https://", "<link", "@import", "url("] {
            assert!(!page.contains(asset), "{asset}: {page}");
        }
    }

    #[test]
    fn a_silenced_game_shows_until_when_and_no_column_without_one() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_100);
        let until = at + Duration::from_secs(3600);
        let looks = vec![look("g-quiet", "exited"), look("g-1", "running")];
        let b = Board::new("h".into(), at, looks, None, &|g| {
            (g == "g-quiet").then_some(until)
        });
        let page = render(Some(&b), at, Duration::from_secs(15));
        assert!(page.contains("<th>silenced until</th>"), "{page}");
        assert!(
            page.contains(&format!("<td>{}</td>", minute(until))),
            "{page}"
        );
        // g-1: health, restarts and silence each `-`.
        assert!(
            page.contains("<td>running</td><td>-</td><td>-</td><td>-</td><td></td></tr>"),
            "{page}"
        );
        let b = Board::new("h".into(), at, vec![look("g-1", "running")], None, &|_| {
            None
        });
        let page = render(Some(&b), at, Duration::from_secs(15));
        assert!(!page.contains("silenced until"), "{page}");
    }

    #[test]
    fn the_page_is_bounded_and_says_what_it_leaves_out() {
        let looks = (0..PAGE_ROWS + 20)
            .map(|i| look(&format!("{}{i}", "g".repeat(300)), "running"))
            .collect();
        let page = render(Some(&board(looks)), UNIX_EPOCH, Duration::from_millis(250));
        assert_eq!(page.matches("<tr class=").count(), PAGE_ROWS);
        assert!(page.contains("20 more games, the healthiest, are not listed"));
        assert!(!page.contains(&"g".repeat(65)), "ids cut");
        assert!(
            page.contains("content=\"1\""),
            "a refresh of at least a second"
        );
        assert!(page.len() < 200 * 1024, "{}", page.len());
        let empty = render(None, UNIX_EPOCH, Duration::from_secs(15));
        assert!(empty.contains("No look yet"));
    }
}
