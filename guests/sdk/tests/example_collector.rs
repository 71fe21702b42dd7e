//! The complete small collector shown in README "Writing a collector": a
//! paged JSON API behind an OAuth2 client-credentials token, written on the
//! collector kit, and tested natively against a simulated tenant. If this
//! file changes, change the README too.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use siphon_sdk::auth::{ClientCredentials, Session};
use siphon_sdk::config::{Declared, Secret, Setting, parse};
use siphon_sdk::data::json::{Object, field_str, field_time};
use siphon_sdk::driver::{Budget, Checkpoint, Ctx, Page, Stream, collect_streams};
use siphon_sdk::http::{Request, Response};
use siphon_sdk::{Collector, Error, HostIo, Info, Io, Summary, export_collector};

// ---- the collector (README) ----

const BASE_URL: Setting<String> =
    Setting::new("base_url", "Tenant URL, e.g. https://acme.example", None, parse::base_url);
const LOOKBACK: Setting<u64> = Setting::new("lookback_hours", "First run: hours back", Some("24"), parse::u64);
const CLIENT_ID: Secret = Secret::required("client_id", "API client id");
const CLIENT_SECRET: Secret = Secret::required("client_secret", "API client secret");

struct AcmeAudit;

impl Collector for AcmeAudit {
    fn info() -> Info {
        let declared: [&dyn Declared; 4] = [&BASE_URL, &LOOKBACK, &CLIENT_ID, &CLIENT_SECRET];
        declared.iter().fold(Info::new("acme-audit", "0.1.0", "Acme audit API v1"), |i, d| i.setting(d.spec()))
    }

    fn collect() -> Result<Summary, Error> {
        run(&mut HostIo)
    }
}

export_collector!(AcmeAudit);

fn run(io: &mut dyn Io) -> Result<Summary, Error> {
    let base = BASE_URL.get(io)?;
    let login = ClientCredentials::new(
        format!("{base}/oauth/token"),
        CLIENT_ID.get(io)?,
        CLIENT_SECRET.get(io)?,
        Duration::from_secs(3_600), // Acme documents one hour when expires_in is missing
    );
    let stream = AuditLog { base, lookback_ms: LOOKBACK.get(io)? * 3_600_000 };
    let checkpoint = Checkpoint::parse(io.checkpoint().as_deref(), 1, |_, _| None)?;
    collect_streams(io, &mut Session::new(login), checkpoint, Budget::default(), &[stream])
}

/// `GET /v1/audit?since=<ms>&page_token=<t>`: `{"items":[…],"next_page_token":…}`, oldest first.
struct AuditLog {
    base: String,
    lookback_ms: u64,
}

/// A query (`since`) is paged to its end with `page_token`; the next query
/// starts after the newest item delivered.
#[derive(Default, Serialize, Deserialize)]
struct Position {
    since_ms: Option<u64>,
    page_token: Option<String>,
    newest_ms: Option<u64>,
}

impl Stream for AuditLog {
    type Cursor = Position;

    fn name(&self) -> &str {
        "audit"
    }

    fn request(&self, cx: &mut Ctx, at: &mut Position) -> Result<Option<Request>, Error> {
        let since = *at.since_ms.get_or_insert(cx.now_ms().saturating_sub(self.lookback_ms));
        let mut r = Request::get(format!("{}/v1/audit", self.base)).query("since", since.to_string());
        if let Some(t) = &at.page_token {
            r = r.query("page_token", t.as_str());
        }
        Ok(Some(r))
    }

    fn parse(&self, _cx: &mut Ctx, at: &Position, response: Response) -> Result<Page<Position>, Error> {
        let body = Object::parse(&response.body)?;
        let token = body.str("next_page_token")?.map(|t| t.into_owned());
        let mut page = Page::empty(Position { since_ms: at.since_ms, page_token: None, newest_ms: at.newest_ms });
        for record in body.records_or_empty("items")? {
            let id = field_str(&record, "id")?.ok_or_else(|| Error::Vendor("an audit item has no id".into()))?;
            page.next.newest_ms = page.next.newest_ms.max(field_time(&record, "time")?);
            page.records.push((id.into_owned(), record));
        }
        page.more = token.is_some();
        match token {
            Some(t) => page.next.page_token = Some(t),
            None => page.next.since_ms = page.next.newest_ms.map(|t| t + 1).or(at.since_ms),
        }
        Ok(page)
    }
}

// ---- its native test ----

mod tenant {
    use siphon_sdk::http::Request;
    use siphon_sdk::testing::{Server, json};

    pub struct Acme {
        pub items: Vec<String>,
        pub logins: usize,
    }

    impl Server for Acme {
        fn handle(&mut self, r: &Request) -> siphon_sdk::http::Response {
            if r.path() == "/oauth/token" {
                self.logins += 1;
                return json(200, r#"{"access_token":"tok","expires_in":3600}"#);
            }
            assert_eq!(r.header_value("authorization"), Some("Bearer tok"));
            let since: u64 = r.query_value("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let start: usize = r.query_value("page_token").and_then(|s| s.parse().ok()).unwrap_or(0);
            let newer: Vec<&String> = self.items.iter().filter(|i| time(i) >= since).collect();
            let page: Vec<&str> = newer.iter().skip(start).take(2).map(|s| s.as_str()).collect();
            let next = if start + 2 < newer.len() { format!("\"{}\"", start + 2) } else { "null".into() };
            json(200, &format!(r#"{{"items":[{}],"next_page_token":{next}}}"#, page.join(",")))
        }
    }

    fn time(item: &str) -> u64 {
        let v: serde_json::Value = serde_json::from_str(item).unwrap();
        v["time"].as_u64().unwrap()
    }
}

#[test]
fn the_example_collector_pages_and_resumes() {
    use siphon_sdk::testing::{FakeIo, START_MS, crash_everywhere};
    let item = |i: u64| format!(r#"{{"id":"e{i}","time":{}}}"#, START_MS - 10_000 + i);
    let make = || {
        FakeIo::new(tenant::Acme { items: (0..5).map(item).collect(), logins: 0 })
            .setting("base_url", "https://acme.example")
            .secret("client_id", "cid")
            .secret("client_secret", "cs")
    };
    let mut io = make();
    let summary = io.run(|io| run(io)).unwrap();
    assert_eq!(io.delivered, io.server.items);
    assert_eq!((summary.pages, io.server.logins), (3, 1));
    io.server.items.push(item(7));
    io.run(|io| run(io)).unwrap();
    assert_eq!(io.delivered, io.server.items, "the second run delivers only the new item");

    crash_everywhere(make, |io| run(io), |io, crash| assert_eq!(io.delivered, io.server.items, "{crash:?}"));
    assert_eq!(AcmeAudit::info().settings.len(), 4);
}
