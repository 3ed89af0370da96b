//! The sink against a receiver on 127.0.0.1: what it sends, what each
//! answer makes of the event and of the pace.

use std::io::Read;
use std::sync::{Arc, Mutex};

use super::*;
use crate::config::WebhookUrl;
use crate::webhook::answer::MAX_RETRY_AFTER;
use crate::webhook::format::slack::slack_body;

#[test]
fn the_sink_shows_no_token() {
    let sink = WebhookSink::new(&Webhook {
        url: WebhookUrl::parse("http://127.0.0.1:9/hook/SECRETTOKEN?sig=SECRETSIG").unwrap(),
        format: WebhookFormat::Envelope,
        ca_file: None,
    })
    .unwrap();
    assert!(!format!("{sink:?}").contains("SECRET"));
}

/// A webhook on 127.0.0.1 answering every request with `head` (a status
/// and its headers) and no body; its URL, and how many it answered.
fn answering(head: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let (url, answered, _) = recording(head);
    (url, answered)
}

/// Each request's `Idempotency-Key` and body, in order.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// [`answering`], and what it received.
fn recording(head: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>, Received) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let received = Received::default();
    let count = answered.clone();
    let requests = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let count = count.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                // One request after another on the kept connection.
                loop {
                    let mut length = 0;
                    let mut key = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_ascii_lowercase();
                        if line.is_empty() {
                            break;
                        }
                        if let Some(v) = line.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if let Some(v) = line.strip_prefix("idempotency-key:") {
                            key = v.trim().to_owned();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let body = String::from_utf8(body).unwrap();
                    requests.lock().unwrap().push((key, body));
                    let answer = format!("HTTP/1.1 {head}\r\nContent-Length: 0\r\n\r\n");
                    writer.write_all(answer.as_bytes()).unwrap();
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (url, answered, received)
}

fn sink_for(url: &str) -> WebhookSink {
    WebhookSink::new(&Webhook {
        url: WebhookUrl::parse(url).unwrap(),
        format: WebhookFormat::Envelope,
        ca_file: None,
    })
    .unwrap()
}

#[test]
fn a_retry_after_is_reported_to_the_publisher_not_slept() {
    let table: [(&'static str, Option<Duration>); 6] = [
        (
            "429 Too Many Requests\r\nRetry-After: 30",
            Some(Duration::from_secs(30)),
        ),
        (
            "503 Service Unavailable\r\nRetry-After: 0.5",
            Some(Duration::from_millis(500)),
        ),
        (
            "429 Too Many Requests\r\nRetry-After: 3600",
            Some(MAX_RETRY_AFTER),
        ),
        (
            "429 Too Many Requests\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT",
            None,
        ),
        // Only a 429's or a 503's is a wait asked of this client.
        ("500 Internal Server Error\r\nRetry-After: 30", None),
        ("408 Request Timeout", None),
    ];
    for (head, want) in table {
        let (url, _) = answering(head);
        let started = Instant::now();
        let e = sink_for(&url)
            .publish(&crate::event::stopped_event("a"))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{head}: slept");
        assert!(
            matches!(e, SinkError::Unavailable(_) | SinkError::UnavailableFor(..)),
            "{head}: {e}"
        );
        assert_eq!(e.retry_after(), want, "{head}: {e}");
        assert!(!e.to_string().contains("waited"), "{e}");
    }
}

#[test]
fn close_ends_the_wait_a_429_asked_for_at_once() {
    use crate::backoff::Backoff;
    use crate::publish::outbox::Outbox;
    use crate::publish::publisher::spawn;
    use crate::publish::rejects::Rejects;
    let (url, answered) = answering("429 Too Many Requests\r\nRetry-After: 60");
    let (tx, outbox) = Outbox::new(Vec::new());
    let p = spawn(
        Box::new(sink_for(&url)),
        outbox.clone(),
        Rejects::new(None, 0),
        Backoff::default(),
        Arc::new(crate::telemetry::Telemetry::for_sinks(&["webhook"])),
    )
    .unwrap();
    tx.send(crate::event::stopped_event("a")).unwrap();
    crate::fakes::wait_for(|| answered.load(std::sync::atomic::Ordering::SeqCst) == 1);
    let closing = Instant::now();
    assert_eq!(outbox.close().len(), 1, "the event goes back for the spool");
    assert!(
        p.wait_until(closing + Duration::from_millis(200)),
        "the publisher still waits out the 60 s"
    );
    eprintln!(
        "publisher ended {:?} after a close during a 60 s Retry-After",
        closing.elapsed()
    );
    p.join_if_ended();
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn sink_as(url: &str, format: WebhookFormat) -> WebhookSink {
    WebhookSink::new(&Webhook {
        url: WebhookUrl::parse(url).unwrap(),
        format,
        ca_file: None,
    })
    .unwrap()
}

#[test]
fn a_batch_of_one_is_the_single_request_and_more_are_one_digest() {
    use crate::event::stopped_event;
    let events = [
        stopped_event("g-1"),
        stopped_event("g-2"),
        stopped_event("g-3"),
    ];
    let (url, _, received) = recording("200 OK");
    let mut sink = sink_as(&url, WebhookFormat::Slack);
    assert_eq!(sink.batch_limit(), digest::DIGEST_EVENTS);
    sink.publish_batch(&events[..1]).unwrap();
    sink.publish_batch(&events).unwrap();
    let got = received.lock().unwrap().clone();
    let digest = Digest::of(&events);
    assert_eq!(
        got,
        [
            (
                events[0].event_id.clone(),
                slack_body(&events[0], &sink.host)
            ),
            (digest.key(), slack::digest_body(&digest, &sink.host)),
        ]
    );
    assert!(got[1].1.contains("3 games not running on "), "{}", got[1].1);

    // A machine takes one envelope a request, under its own key.
    let (url, _, received) = recording("200 OK");
    let mut sink = sink_as(&url, WebhookFormat::Envelope);
    assert_eq!(sink.batch_limit(), 1);
    sink.publish_batch(&events[..2]).unwrap();
    let got = received.lock().unwrap().clone();
    let want: Vec<(String, String)> = events[..2]
        .iter()
        .map(|e| (e.event_id.clone(), e.envelope().as_str().to_owned()))
        .collect();
    assert_eq!(got, want);
    for format in [
        WebhookFormat::Discord,
        WebhookFormat::Ntfy,
        WebhookFormat::Telegram,
    ] {
        let sink = sink_as("http://127.0.0.1:9/bot/x?chat_id=-1", format);
        assert_eq!(sink.batch_limit(), digest::DIGEST_EVENTS, "{format:?}");
    }
}

#[test]
fn every_answer_tells_the_pace_how_long_to_wait() {
    // (format, the answer, the wait it leaves, to the second)
    let table = [
        (
            WebhookFormat::Discord,
            "200 OK\r\nX-RateLimit-Remaining: 0\r\nX-RateLimit-Reset-After: 30.5",
            30,
        ),
        (
            WebhookFormat::Discord,
            "204 No Content\r\nX-RateLimit-Remaining: 3\r\nX-RateLimit-Reset-After: 30",
            0,
        ),
        (
            WebhookFormat::Discord,
            "429 Too Many Requests\r\nRetry-After: 20\r\nX-RateLimit-Remaining: 0\r\n\
             X-RateLimit-Reset-After: 2",
            19,
        ),
        (
            WebhookFormat::Envelope,
            "429 Too Many Requests\r\nRetry-After: 3600",
            59,
        ),
        (WebhookFormat::Envelope, "200 OK", 0),
        // Slack's own bucket: one a second.
        (WebhookFormat::Slack, "200 OK", 0),
    ];
    for (format, head, want) in table {
        let (url, _) = answering(head);
        let mut sink = sink_as(&url, format);
        assert!(sink.ready_in(Instant::now()).is_zero(), "{head}");
        let _ = sink.publish(&crate::event::stopped_event("a"));
        let wait = sink.ready_in(Instant::now());
        assert_eq!(wait.as_secs(), want, "{head}: {wait:?}");
        if format == WebhookFormat::Slack {
            assert!(wait > Duration::from_millis(500), "{wait:?}");
        }
    }
}
