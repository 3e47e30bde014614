//! Secrets that must never reach stderr, a log file or an error message: AWS credentials, the SSM
//! `TokenValue`, the data channel's `StreamUrl` and the EICE presigned URL.
//!
//! - [`Redacted`] holds one such value. Its `Debug` and `Display` print a short preview
//!   (`wss://host/…<redacted>`, or the first 4 characters and `…<redacted>`); [`Redacted::expose`]
//!   is for the one place that needs the value (the websocket dial, the open frame).
//! - [`register`] records the process's own secrets when they are loaded (credentials as the SDK
//!   gets them, SSM tokens as StartSession hands them out), and [`scrub`] removes them, raw or
//!   percent-encoded, from any text, together with the values of credential-shaped fields
//!   (`SecretAccessKey`, `SessionToken`, `X-Amz-Security-Token=`, …) whose secrets the process
//!   never registered, such as the fresh credentials in an STS answer that failed to parse.
//!   `error::report` scrubs every error before printing it; [`Scrubbed`] scrubs every log line
//!   (see `logging` for why both this and the dependency caps exist).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::{Mutex, PoisonError};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tracing_subscriber::fmt::MakeWriter;

/// What replaces a secret in scrubbed text.
pub(crate) const MARK: &str = "<redacted>";
/// Secrets shorter than this are not registered: scrubbing them would mangle ordinary text, and
/// no AWS secret is this short (access key ids are 16+, secret keys 40, tokens hundreds).
const MIN_SECRET_LEN: usize = 12;
/// Values shorter than this get no preview: four characters of a short value is too much of it.
const MIN_PREVIEW_LEN: usize = 16;
/// How the SigV4 query string and our presigned URLs encode values (RFC 3986 unreserved kept).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Field names whose values are secrets, lower case, as they appear in XML (`<SessionToken>`),
/// JSON (`"SessionToken":`), query strings (`X-Amz-Security-Token=`), headers and the SDK's
/// `Debug` output (`session_token:`).
const SECRET_FIELDS: [&str; 14] = [
    "secretaccesskey",
    "secret_access_key",
    "sessiontoken",
    "session_token",
    "x-amz-security-token",
    "x-amz-signature",
    "tokenvalue",
    "token_value",
    "accesstoken",
    "access_token",
    "refreshtoken",
    "refresh_token",
    "clientsecret",
    "client_secret",
];

/// The process's registered secrets, each with its percent-encoded form when that differs.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A secret value whose `Debug` and `Display` show only a short preview.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps `value`.
    pub(crate) fn new(value: T) -> Self {
        Redacted(value)
    }

    /// The value itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: AsRef<str>> Redacted<T> {
    /// Whether the value is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_empty()
    }
}

impl<T: AsRef<str>> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&preview(self.0.as_ref()))
    }
}

impl<T: AsRef<str>> fmt::Display for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&preview(self.0.as_ref()))
    }
}

/// Serialises the exposed value: for `#[serde(serialize_with)]` on the one field of a wire
/// message that must carry the secret (the SSM open frame's `TokenValue`).
pub(crate) fn serialize_exposed<T: AsRef<str>, S: serde::Serializer>(v: &Redacted<T>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.0.as_ref())
}

/// `scheme://host/…<redacted>` for a URL, the first 4 characters and `…<redacted>` for anything
/// else of 16 characters or more, and just `<redacted>` for shorter values.
pub(crate) fn preview(value: &str) -> String {
    if let Some((scheme, rest)) = value.split_once("://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // No user:password@ in a preview.
        let host = host.rsplit('@').next().unwrap_or_default();
        return format!("{scheme}://{host}/…{MARK}");
    }
    match value.char_indices().nth(4) {
        Some((at, _)) if value.chars().count() >= MIN_PREVIEW_LEN => format!("{}…{MARK}", &value[..at]),
        _ => MARK.to_string(),
    }
}

/// Records `secret` (and its percent-encoded form) so that [`scrub`] removes it from any text.
/// Values shorter than 12 characters are ignored.
pub(crate) fn register(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    let encoded = utf8_percent_encode(secret, QUERY_VALUE).to_string();
    for form in [secret.to_string(), encoded] {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` without the registered secrets and without the values of credential-shaped fields.
pub(crate) fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MARK));
            }
        }
    }
    match scrub_fields(&out) {
        Some(cleaned) => Cow::Owned(cleaned),
        None => out,
    }
}

/// Replaces the value after every secret field name; `None` when there is none.
fn scrub_fields(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    // (start, end) of every value to replace, in order.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for field in SECRET_FIELDS {
        let mut from = 0;
        while let Some(found) = lower[from..].find(field) {
            let after = from + found + field.len();
            from = after;
            if let Some(span) = value_after(text, after) {
                spans.push(span);
            }
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(MARK);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// The value that follows a field name ending at `at`: after at least one separator (`"`, `'`,
/// `>`, `:`, `=`, space, `\`), up to the next delimiter. `None` when the name goes on (it was a
/// longer word) or no value follows.
fn value_after(text: &str, at: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let separator = |b: u8| matches!(b, b'"' | b'\'' | b'>' | b':' | b'=' | b' ' | b'\\');
    let delimiter =
        |b: u8| matches!(b, b'<' | b'"' | b'\'' | b'&' | b',' | b'}' | b')' | b';' | b'\\') || b.is_ascii_whitespace();
    let mut start = at;
    while start < bytes.len() && start - at < 6 && separator(bytes[start]) {
        start += 1;
    }
    if start == at {
        return None;
    }
    // `Some("…")` in `Debug` output.
    if text[start..].starts_with("Some(") {
        start += "Some(".len();
        while start < bytes.len() && separator(bytes[start]) {
            start += 1;
        }
    }
    let mut end = start;
    while end < bytes.len() && !delimiter(bytes[end]) {
        end += 1;
    }
    // Nothing at all, a value already replaced, or the SDK's own `** redacted **`.
    let value = &text[start..end];
    (!value.is_empty() && !value.starts_with(MARK) && !value.starts_with('*')).then_some((start, end))
}

/// A [`MakeWriter`] whose writers [`scrub`] every log line before passing it on (the formatter
/// writes one whole event per `write`).
#[derive(Debug)]
pub(crate) struct Scrubbed<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Scrubbed<M> {
    type Writer = ScrubbedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedWriter(self.0.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubbedWriter(self.0.make_writer_for(meta))
    }
}

/// The writer of [`Scrubbed`].
#[derive(Debug)]
pub(crate) struct ScrubbedWriter<W>(W);

impl<W: io::Write> io::Write for ScrubbedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn previews() {
        assert_eq!(
            preview("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/s-1?role=publish_subscribe"),
            "wss://ssmmessages.eu-west-1.amazonaws.com/…<redacted>"
        );
        assert_eq!(preview("wss://u:p@host:443?X-Amz-Security-Token=abc"), "wss://host:443/…<redacted>");
        assert_eq!(preview("AAEAAb4wGdz2YvrcL4zG6vY+example-token"), "AAEA…<redacted>");
        assert_eq!(preview("short"), "<redacted>");
        let token = Redacted::new("AAEAAb4wGdz2YvrcL4zG6vY+example-token".to_string());
        assert_eq!(format!("{token:?} {token}"), "AAEA…<redacted> AAEA…<redacted>");
        assert_eq!(token.expose(), "AAEAAb4wGdz2YvrcL4zG6vY+example-token");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Grant {
            token: Redacted<String>,
        }
        assert!(!format!("{:?}", Grant { token }).contains("example-token"));
    }

    #[test]
    fn registered_secrets_are_scrubbed_raw_and_encoded() {
        let secret = "unitTestSecret/Key+With=Specials0123";
        register(secret);
        register("short");
        let encoded = utf8_percent_encode(secret, QUERY_VALUE).to_string();
        let text = format!("a {secret} b {encoded} c short");
        assert_eq!(scrub(&text), "a <redacted> b <redacted> c short");
        assert!(matches!(scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn credential_fields_are_scrubbed_whatever_the_format() {
        let cases = [
            (
                "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>wJalr/K7+x</SecretAccessKey><SessionToken>IQoJ==</SessionToken></Credentials>",
                "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey><redacted></SecretAccessKey><SessionToken><redacted></SessionToken></Credentials>",
            ),
            (
                r#"{"SecretAccessKey":"abc/def","sessionToken": "xyz"}"#,
                r#"{"SecretAccessKey":"<redacted>","sessionToken": "<redacted>"}"#,
            ),
            (
                "wss://h/openTunnel?X-Amz-Date=1&X-Amz-Security-Token=IQo%2Fab&X-Amz-Signature=0fe1",
                "wss://h/openTunnel?X-Amz-Date=1&X-Amz-Security-Token=<redacted>&X-Amz-Signature=<redacted>",
            ),
            ("headers: {\"x-amz-security-token\": \"IQoJb3\"}", "headers: {\"x-amz-security-token\": \"<redacted>\"}"),
            ("session_token: Some(\\\"tok\\\")", "session_token: Some(\\\"<redacted>\\\")"),
            (
                "Credentials { secret_access_key: \"** redacted **\" }",
                "Credentials { secret_access_key: \"** redacted **\" }",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(input), want, "{input}");
        }
        // Words that only start like a field keep their text.
        assert_eq!(
            scrub("SessionTokenExpiry soon; the session token is fine"),
            "SessionTokenExpiry soon; the session token is fine"
        );
    }

    #[test]
    fn the_writer_scrubs_each_line() {
        register("writerTestSecretValue123");
        let mut out = Vec::new();
        let mut w = ScrubbedWriter(&mut out);
        w.write_all(b"INFO key=writerTestSecretValue123 done\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "INFO key=<redacted> done\n");
    }
}
