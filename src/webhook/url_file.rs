//! The webhook's URL file (`--webhook-url-file`), read when the sink is
//! built, once, at start: one line, in a file of the user rtinspect runs as
//! that only this user may read or write (it holds a token). A file anyone
//! else may use, or that is not one readable line, is bad configuration
//! (exit status 64), said naming the option and the path, never the
//! content; its URL is then checked as a given one is. The notify file is
//! read under the same rules ([`read_private`]).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use crate::config::{ConfigError, UrlFile, Webhook, WebhookSettings};

/// The webhook's settings whole: as given, or with the URL read from its
/// file now and checked.
pub(crate) fn settings(settings: &WebhookSettings) -> Result<Webhook, ConfigError> {
    match settings {
        WebhookSettings::Given(webhook) => Ok(webhook.clone()),
        WebhookSettings::InFile(file) => file.with_url(&read(file)?),
    }
}

/// The most a URL file may hold.
const URL_FILE_LIMIT: u64 = 8192;

/// The URL in `--webhook-url-file`: one line, in a file of the user
/// rtinspect runs as that only this user may read or write (it holds a
/// token); never shown in a message.
fn read(file: &UrlFile) -> Result<String, ConfigError> {
    let text = read_private(file.path(), URL_FILE_LIMIT, &|why| file.invalid(why))?;
    let url = text.trim();
    if url.is_empty() {
        return Err(file.invalid("empty; expected one URL"));
    }
    if url.contains(['\n', '\r']) {
        return Err(file.invalid(
            "more than one line; expected one URL (the content is not shown: it may hold a token)",
        ));
    }
    Ok(url.to_owned())
}

/// The text of `path`, a file that holds a token: opened without waiting
/// (a FIFO would wait for a writer), a regular file of the user rtinspect
/// runs as that no one else may use, at most `limit` bytes of UTF-8. What
/// is wrong goes through `invalid`, which names the option and the path;
/// the content is never shown.
pub(crate) fn read_private(
    path: &str,
    limit: u64,
    invalid: &dyn Fn(&str) -> ConfigError,
) -> Result<String, ConfigError> {
    let cannot = |e: std::io::Error| invalid(&format!("cannot read it: {e}"));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(cannot)?;
    let meta = f.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    let user = rustix::process::geteuid().as_raw();
    if meta.uid() != user {
        return Err(invalid(&format!(
            "owned by uid {}, not by the user rtinspect runs as (uid {user}); it holds a \
             token: chown it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(invalid(&format!(
            "others than its owner may use it (mode {:04o}); it holds a token: chmod 600 it",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = Vec::new();
    f.take(limit + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(invalid(&format!("over {limit} bytes")));
    }
    String::from_utf8(bytes)
        .map_err(|_| invalid("not UTF-8 (the content is not shown: it may hold a token)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Invocation, Sink};
    use std::collections::HashMap;

    /// The configuration `args` and `env` give, with the webhook's settings
    /// as the sink's build makes them (the URL file read); or the message
    /// that stops the start, from the parse or from the build.
    fn built(args: &[&str], env: &[(&str, &str)]) -> Result<(Config, Webhook), String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = match Config::parse(args.iter().copied(), &|k| env.get(k).cloned()) {
            Ok(Invocation::Command(c)) => *c,
            Ok(other) => panic!("{args:?}: expected a command, got {other:?}"),
            Err(e) => return Err(e.message),
        };
        let Sink::Webhook(webhook) = &config.sinks[0].sink else {
            panic!("{args:?}: {:?}", config.sinks);
        };
        let webhook = settings(webhook).map_err(|e| e.message)?;
        Ok((config, webhook))
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> (Config, Webhook) {
        built(args, env).unwrap_or_else(|e| panic!("{args:?} {env:?}: {e}"))
    }

    fn err(args: &[&str], env: &[(&str, &str)]) -> String {
        match built(args, env) {
            Err(message) => message,
            Ok((_, w)) => panic!("{args:?} {env:?}: expected an error, got {w:?}"),
        }
    }

    #[test]
    fn the_webhook_url_can_come_from_a_file_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rtinspect-urlfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        let path = file.to_str().unwrap();
        let write = |text: &[u8], mode: u32| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let hook = ["--sink", "webhook", "--webhook-url-file", path];
        write(b"https://h.example/hook/SECRET\n", 0o600);
        let (_, w) = config(&hook, &[]);
        assert_eq!(w.url.secret(), "https://h.example/hook/SECRET");
        let (c, _) = config(
            &["--sink", "webhook"],
            &[("RTINSPECT_WEBHOOK_URL_FILE", path)],
        );
        assert_eq!(c.sinks[0].sink.kind().as_str(), "webhook");
        for (text, mode, expected) in [
            (
                &b"https://h.example/hook/SECRET"[..],
                0o640,
                "others than its owner may use it (mode 0640); it holds a token: chmod 600 it",
            ),
            (b"https://h.example/hook/SECRET", 0o604, "(mode 0604)"),
            (b"  \n", 0o600, "empty; expected one URL"),
            (
                b"https://h.example/SECRET\nhttps://h.example/SECRET2",
                0o600,
                "more than one line",
            ),
            (b"https://h.example/\xffSECRET", 0o600, "not UTF-8"),
            (b"ftp://h.example/SECRET", 0o600, "(the value is not shown"),
        ] {
            write(text, mode);
            let message = err(&hook, &[]);
            assert!(
                message.starts_with(&format!("invalid --webhook-url-file {path:?}: ")),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("SECRET"), "{message}");
        }
        write(&vec![b'a'; 9000], 0o600);
        assert!(
            err(&hook, &[]).contains("over 8192 bytes"),
            "{}",
            err(&hook, &[])
        );
        // Another user's file, however private.
        write(b"https://h.example/hook/SECRET", 0o600);
        if rustix::process::geteuid().is_root() {
            rustix::fs::chown(&file, Some(rustix::process::Uid::from_raw(65534)), None).unwrap();
            let message = err(&hook, &[]);
            assert!(
                message.contains("owned by uid 65534, not by the user rtinspect runs as (uid 0)"),
                "{message}"
            );
            rustix::fs::chown(&file, Some(rustix::process::Uid::ROOT), None).unwrap();
        }
        let fifo = dir.join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for (args, expected) in [
            (
                vec!["--sink", "webhook", "--webhook-url-file", "relative/url"],
                "invalid --webhook-url-file \"relative/url\": expected an absolute path",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    "/nonexistent/url",
                ],
                "invalid --webhook-url-file \"/nonexistent/url\": cannot read it: No such file",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    dir.to_str().unwrap(),
                ],
                "not a regular file",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    path,
                    "--webhook-url",
                    "https://h.example/x",
                ],
                "--webhook-url and --webhook-url-file are both set; set one",
            ),
            (
                vec![
                    "--sink",
                    "webhook",
                    "--webhook-url-file",
                    fifo.to_str().unwrap(),
                ],
                "not a regular file",
            ),
            (vec!["--webhook-url-file", path], "--webhook-url-file \""),
        ] {
            let message = err(&args, &[]);
            assert!(message.contains(expected), "{args:?}: {message}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
