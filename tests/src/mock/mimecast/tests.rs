//! The mock tenant's own tests: what a collector will meet on each endpoint, quirks included.
//! Most call the handler directly; one goes over HTTP to check the server wiring.

use std::io::Read;
use std::net::SocketAddr;

use serde_json::{Value, json};
use siphon_sdk::data::compress::unzip;
use siphon_sdk::data::time::{format_date, format_rfc1123};

use super::*;
use crate::mock::VendorMock;
use crate::mock::client;
use crate::mock::fake::to_mock;

/// A request as the mock sees it, built through the SDK's request type.
fn request(method: &str, path_and_query: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let url = format!("http://127.0.0.1:8443{path_and_query}");
    let mut r =
        if method == "GET" { siphon_sdk::http::Request::get(url) } else { siphon_sdk::http::Request::post(url) };
    r = headers.iter().fold(r, |r, (k, v)| r.header(*k, *v));
    if !body.is_empty() {
        r = r.body("application/octet-stream", body.to_vec());
    }
    to_mock(&r, SocketAddr::from(([127, 0, 0, 1], 8443)))
}

/// A tenant and its token endpoint, as the server holds them.
struct T {
    tenant: Tenant,
    oauth: OAuth,
}

impl T {
    fn new() -> T {
        let cfg = MockConfig::default();
        T { oauth: Tenant::oauth(&cfg), tenant: Tenant::new(cfg) }
    }

    fn handle(&mut self, r: &Request) -> Response {
        self.tenant.handle(&self.oauth, r)
    }

    fn config(&self) -> &MockConfig {
        self.tenant.config()
    }
}

fn token(t: &mut T) -> String {
    let c = t.config().clone();
    let form = format!("grant_type=client_credentials&client_id={}&client_secret={}", c.client_id, c.client_secret);
    let got = t.handle(&request(
        "POST",
        "/oauth/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    ));
    assert_eq!(got.status, 200, "{:?}", got.body);
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["expires_in"], 1799);
    v["access_token"].as_str().unwrap().to_owned()
}

fn batch(t: &mut T, query: &str) -> Response {
    let bearer = format!("Bearer {}", token(t));
    t.handle(&request("GET", &format!("{BATCH_PATH}?{query}"), &[("authorization", &bearer)], b""))
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

/// The body of a blob URL, fetched with `headers`.
fn download(t: &mut T, url: &str, headers: &[(&str, &str)]) -> Response {
    t.handle(&request("GET", url.trim_start_matches("http://127.0.0.1:8443"), headers, b""))
}

#[test]
fn batch_pages_need_dates_or_next_page_and_serve_presigned_gzip_files() {
    let mut t = T::new();
    t.tenant.add("receipt", 30); // 5 files of 7 (the last of 2)
    let today = format_date(now_ms());
    assert_eq!(batch(&mut t, "type=receipt").status, 400, "dates are required without nextPage");
    assert_eq!(
        batch(&mut t, "type=receipt,delivery&dateRangeStartsAt=2020-01-01&dateRangeEndsAt=2020-01-02").status,
        400
    );
    assert_eq!(
        batch(&mut t, "type=receipt&dateRangeStartsAt=2020-01-01&dateRangeEndsAt=2020-01-02").status,
        400,
        "7 days"
    );
    let first = json_of(&batch(
        &mut t,
        &format!("type=receipt&pageSize=100&dateRangeStartsAt={today}&dateRangeEndsAt={today}"),
    ));
    assert_eq!(first["value"].as_array().unwrap().len(), 3, "the server caps pageSize");
    assert_eq!(first["isCaughtUp"], false);
    let next = first["@nextPage"].as_str().unwrap().to_owned();
    let second =
        json_of(&batch(&mut t, &format!("type=receipt&nextPage={}", crate::mock::http::percent_encode(&next))));
    assert_eq!((second["value"].as_array().unwrap().len(), &second["isCaughtUp"]), (2, &json!(true)));

    let url = first["value"][0]["url"].as_str().unwrap();
    assert_eq!(
        download(&mut t, url, &[("authorization", "Bearer x")]).status,
        403,
        "no credentials on a pre-signed URL"
    );
    let file = download(&mut t, url, &[]);
    assert_eq!((file.status, file.header_value("content-encoding")), (200, None));
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&file.body[..]).read_to_string(&mut text).unwrap();
    assert_eq!(text, t.tenant.records("receipt")[..7].join("\n"), "two members, no final newline");
    let mut one = String::new();
    flate2::read::GzDecoder::new(&file.body[..]).read_to_string(&mut one).unwrap();
    assert!(one.len() < text.len(), "a reader of one member misses records");

    t.tenant.expire_urls(1);
    let expired = json_of(&batch(&mut t, &format!("type=receipt&dateRangeStartsAt={today}&dateRangeEndsAt={today}")));
    assert_eq!(download(&mut t, expired["value"][0]["url"].as_str().unwrap(), &[]).status, 403);
}

#[test]
fn records_have_mimecast_quirks_and_no_unique_field() {
    let mut t = T::new();
    let keys = t.tenant.add("receipt", 10);
    assert_eq!(keys, t.tenant.records("receipt"));
    let v: Vec<Value> = keys.iter().map(|k| serde_json::from_str(k).unwrap()).collect();
    assert!(v[1]["spamScore"].is_string() && v[1]["spamProcessingDetail"].as_str().unwrap().starts_with('{'));
    assert!(v.iter().any(|r| r["subtype"].is_null()));
    assert_eq!(v[1]["processingId"], v[2]["processingId"], "processingId repeats");
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "yet every record differs");
}

/// A correctly signed call with a request id of its own.
fn signed(t: &mut T, path: &str, body: &Value, date: &str) -> Response {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    signed_as(t, path, body, date, &format!("5b1f7c3a-2d4e-4f6a-8b9c-{n:012x}"))
}

fn signed_as(t: &mut T, path: &str, body: &Value, date: &str, id: &str) -> Response {
    let c = t.config().clone();
    let secret = base64_decode(&c.secret_key).unwrap();
    let sig = base64_encode(&hmac_sha1(&secret, format!("{date}:{id}:{path}:{}", c.app_key).as_bytes()));
    let auth = format!("MC {}:{sig}", c.access_key);
    let headers =
        [("authorization", auth.as_str()), ("x-mc-app-id", &c.app_id), ("x-mc-date", date), ("x-mc-req-id", id)];
    t.handle(&request("POST", path, &headers, body.to_string().as_bytes()))
}

fn utc_now() -> String {
    format_rfc1123(now_ms()).replace("GMT", "UTC")
}

#[test]
fn api_1_signatures_are_checked_and_siem_logs_come_as_zips_with_a_token_header() {
    let mut t = T::new();
    t.tenant.add("siem", 30);
    let body = json!({"data": [{"type": "MTA", "fileFormat": "json", "compress": true}]});
    let gmt = format_rfc1123(now_ms());
    let refused = signed(&mut t, SIEM_PATH, &body, &gmt);
    assert_eq!(refused.status, 401, "a date ending in GMT is the classic 401");
    assert_eq!(json_of(&refused)["fail"][0]["errors"][0]["code"], "err_xdk_client_unauthorized");

    let id = "0d1e2f3a-2d4e-4f6a-8b9c-5b1f7c3a4b5c";
    let first = signed_as(&mut t, SIEM_PATH, &body, &utc_now(), id);
    assert_eq!(first.status, 200);
    assert_eq!(first.header_value("isLastToken"), None);
    let replay = signed_as(&mut t, SIEM_PATH, &body, &utc_now(), id);
    assert_eq!(replay.status, 401, "a request id seen before is a replay");
    assert!(json_of(&replay)["fail"][0]["errors"][0]["message"].as_str().unwrap().contains("used before"));
    let files = unzip(&first.body, 1 << 20).unwrap();
    assert_eq!(files.len(), 3);
    assert!(files[0].name.starts_with("receipt_") && files[0].name.ends_with(".json"), "{}", files[0].name);
    let data: Value = serde_json::from_slice(&files[0].data).unwrap();
    assert_eq!(data["data"].as_array().unwrap().len(), 7);
    let token = first.header_value("mc-siem-token").unwrap().to_owned();
    let last =
        signed(&mut t, SIEM_PATH, &json!({"data": [{"type": "MTA", "compress": true, "token": token}]}), &utc_now());
    assert_eq!(last.header_value("isLastToken"), Some("true"));
    assert_eq!(unzip(&last.body, 1 << 20).unwrap().len(), 2);
    let token = last.header_value("mc-siem-token").unwrap().to_owned();
    let drained = signed(&mut t, SIEM_PATH, &json!({"data": [{"type": "MTA", "token": token}]}), &utc_now());
    assert_eq!(
        (drained.header_value("content-type"), json_of(&drained)["meta"]["isLastToken"].clone()),
        (Some("application/json"), json!(true))
    );
    let stale = signed(&mut t, SIEM_PATH, &json!({"data": [{"type": "MTA", "token": "garbage"}]}), &utc_now());
    assert_eq!(stale.status, 200, "a bad token is a failure inside HTTP 200");
    assert_eq!(json_of(&stale)["fail"][0]["errors"][0]["code"], "err_audit_siem_invalid_token");

    t.tenant.expire_binding(true);
    assert_eq!(signed(&mut t, SIEM_PATH, &body, &utc_now()).status, 418);
    t.tenant.expire_binding(false);
    t.tenant.rate_limit(&[1500]);
    let limited = signed(&mut t, SIEM_PATH, &body, &utc_now());
    assert_eq!((limited.status, limited.header_value("x-ratelimit-reset")), (429, Some("1500")));
}

#[test]
fn audit_pages_newest_first_with_placeholder_next_and_strict_times() {
    let mut t = T::new();
    t.tenant.add("audit", 30);
    let now = now_ms();
    fn bounds(s: &str, e: &str) -> Value {
        json!({"meta": {"pagination": {"pageSize": "100"}}, "data": [{"startDateTime": s, "endDateTime": e}]})
    }
    let start = siphon_sdk::data::time::format_offset(now - 3_600_000);
    let end = siphon_sdk::data::time::format_offset(now + 1000);
    let colon = signed(&mut t, AUDIT_PATH, &bounds(&start.replace("+0000", "+00:00"), &end), &utc_now());
    assert_eq!(
        (colon.status, json_of(&colon)["fail"][0]["errors"][0]["code"].clone()),
        (200, json!("err_validation_null"))
    );
    let first = json_of(&signed(&mut t, AUDIT_PATH, &bounds(&start, &end), &utc_now()));
    let page = first["data"].as_array().unwrap();
    assert_eq!(page.len(), 25, "the server caps pageSize");
    let next = first["meta"]["pagination"]["next"].as_str().unwrap();
    let more = json!({"meta": {"pagination": {"pageSize": 100, "pageToken": next}}});
    let second = json_of(&signed(&mut t, AUDIT_PATH, &more, &utc_now()));
    assert_eq!(second["data"].as_array().unwrap().len(), 5);
    let next = second["meta"]["pagination"]["next"].as_str().unwrap();
    let end_page =
        json_of(&signed(&mut t, AUDIT_PATH, &json!({"meta": {"pagination": {"pageToken": next}}}), &utc_now()));
    assert_eq!(
        (end_page["data"].as_array().unwrap().len(), &end_page["meta"]["pagination"]["next"]),
        (0, &json!("String"))
    );
    let records = t.tenant.records("audit");
    assert_eq!(page[0], serde_json::from_str::<Value>(&records[29]).unwrap(), "newest first");
}

#[tokio::test]
async fn the_server_routes_tokens_data_and_downloads() {
    let mock = MockMimecast::start(MockConfig::default()).await.unwrap();
    mock.add_records("url protect", 3);
    let c = mock.state().config().clone();
    let form = format!("grant_type=client_credentials&client_id={}&client_secret=wrong", c.client_id);
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let refused = client::post(mock.server().addr(), "/oauth/token", &headers, form.as_bytes()).await;
    assert_eq!(refused.status, 401, "a wrong client secret");
    let form = format!("grant_type=client_credentials&client_id={}&client_secret={}", c.client_id, c.client_secret);
    let token = client::post(mock.server().addr(), "/oauth/token", &headers, form.as_bytes()).await.json();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let today = format_date(now_ms());
    let query = format!("{BATCH_PATH}?type=url%20protect&dateRangeStartsAt={today}&dateRangeEndsAt={today}");
    let page = client::get(mock.server().addr(), &query, &[("authorization", &bearer)]).await.json();
    let url = page["value"][0]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&mock.base_url()), "{url}");
    let file = client::get(mock.server().addr(), url.trim_start_matches(&mock.base_url()), &[]).await;
    assert_eq!(file.status, 200);
    let denied = client::get(mock.server().addr(), &query, &[]).await;
    assert_eq!((denied.status, denied.json()["fail"][0]["errors"][0]["code"].clone()), (401, json!("unauthorized")));
}
