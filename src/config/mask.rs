//! What a message may show of a URL that may hold a token or a password:
//! a leaf every refusal that names a value uses, so that none prints one
//! whole, and none borrows the rule from the notification URLs' reader.

/// What may be shown of `text`, a URL that may hold a token: its scheme,
/// and for the forms whose host is a server (not a webhook's id), its host
/// and port; `…` for the rest. Nothing when it does not look like a URL.
pub(crate) fn masked(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "…".into();
    };
    let scheme = scheme.to_ascii_lowercase();
    if !SCHEMES.contains(&scheme.as_str()) {
        return "…".into();
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end].rsplit('@').next().unwrap_or_default();
    // An `@` in the path means a password with a `/` in it (`user:pa/ss@host`):
    // where the host starts is then a guess, and a guess may show a secret.
    let at_in_path = rest[end..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .contains('@');
    let server = !matches!(scheme.as_str(), "discord" | "slack" | "telegram");
    let host_shown = server && !at_in_path && is_host_and_port(host);
    match host_shown {
        true if rest.len() > end || rest[..end].contains('@') => format!("{scheme}://{host}/…"),
        true => format!("{scheme}://{host}"),
        false => format!("{scheme}://…"),
    }
}

/// `text` as a message may show it: [`masked`] when it
/// [`may_hold_a_secret`], else whole (a word given where another was
/// expected, a command's name).
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    match may_hold_a_secret(text) {
        true => masked(text).into(),
        false => text.into(),
    }
}

/// Whether a value names a URL of a scheme a notification URL takes, or
/// any URL with a user in it: one to show [`masked`] in a message.
pub(crate) fn may_hold_a_secret(text: &str) -> bool {
    text.split_once("://").is_some_and(|(scheme, rest)| {
        SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) || rest.contains('@')
    })
}

/// The schemes of the URLs [`masked`] shows a part of.
const SCHEMES: [&str; 8] = [
    "discord",
    "slack",
    "telegram",
    "ntfy",
    "generic+https",
    "generic+http",
    "https",
    "http",
];

/// A host name or address, and a port of digits after it when there is
/// one: `example.com`, `10.0.0.1:8080`, `[::1]:80`; not `user:password`.
fn is_host_and_port(text: &str) -> bool {
    let host = match text.rsplit_once(':') {
        Some((host, port))
            if !host.ends_with(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        Some((_, _)) if text.starts_with('[') && text.ends_with(']') => text,
        Some(_) => return false,
        None => text,
    };
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_masked_to_its_scheme_and_a_servers_host() {
        // (URL, shown)
        let table = [
            ("discord://SECRET@693853386302554172", "discord://…"),
            ("slack://hook:SECRET@webhook", "slack://…"),
            ("slack://SECRET/B/C", "slack://…"),
            ("telegram://1:SECRET@telegram?chats=1", "telegram://…"),
            ("ntfy://:SECRET@ntfy.sh/alerts", "ntfy://ntfy.sh/…"),
            ("ntfy://ntfy.sh", "ntfy://ntfy.sh"),
            ("https://user:SECRET@h.example/x", "https://h.example/…"),
            ("https://user:SECRET@h.example", "https://h.example/…"),
            ("HTTPS://h.example:8443?SECRET", "https://h.example:8443/…"),
            ("generic+https://h/SECRET", "generic+https://h/…"),
            ("SECRET", "…"),
            ("SECRET://x", "…"),
            ("https://SE%20CRET@h/x", "https://h/…"),
            ("https://h\u{1}SECRET/x", "https://…"),
            // A password with a `/` in it: no part of it is taken for a host.
            ("https://user:pa/SECRET@example.com/x", "https://…"),
            ("https://user:SECRET/x", "https://…"),
            ("http://[::1]:8080/x", "http://[::1]:8080/…"),
        ];
        for (text, shown) in table {
            assert_eq!(masked(text), shown, "{text:?}");
        }
    }

    #[test]
    fn values_that_may_hold_a_secret_are_told_apart() {
        assert!(may_hold_a_secret(
            "https://discord.com/api/webhooks/1/TOKEN"
        ));
        assert!(may_hold_a_secret("ntfy://ntfy.sh/topic"));
        assert!(may_hold_a_secret("postgres://user:pw@db/x"));
        assert!(!may_hold_a_secret("unix:///var/run/docker.sock"));
        assert!(!may_hold_a_secret("/etc/rtinspect/notify"));
    }
}
