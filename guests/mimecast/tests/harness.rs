//! The Mimecast collector component under siphon's real engine, with scripted vendor responses:
//! given these responses and this cursor, it emits these records, commits this cursor and sends
//! these requests.
//!
//! Needs `target/guests/mimecast.wasm` (`make guests`).

use serde_json::Value;
use siphon_harness::{Harness, Reply, When};
use siphon_sdk::data::crypto::{base64_decode, base64_encode, hmac_sha1};
use siphon_tests::mock::mimecast::{gzip_two_members, zip};

const API: &str = "https://api.services.mimecast.com";
const S3: &str = "https://mimecast-siem-prod.s3.eu-west-2.amazonaws.com";
const SECRET: &str = "S3CRET-harness-client-secret";
const TOKEN: &str = r#"{"access_token":"harness-access-token-7","token_type":"Bearer","expires_in":1799}"#;
const R1: &str = r#"{"_offset":71492,"accountId":"C0A0B1","processingId":"MRFV_1","spamProcessingDetail":"{\"spf\":{\"allow\":true}}","spamScore":"9","subject":"Facture n°1 — ü","timestamp":1736935608291,"type":"receipt","virusFound":null}"#;
const R2: &str = r#"{"_offset":71492,"accountId":"C0A0B1","processingId":"MRFV_1","timestamp":1736935608292,"type":"receipt","z":1,"a":2}"#;
const R3: &str = r#"{"_offset":71493,"processingId":"MRFV_2","timestamp":1736935608293,"type":"receipt"}"#;

fn v2() -> Harness {
    Harness::new("mimecast")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("api.services.mimecast.com")
        .allow_host("*.amazonaws.com")
        .setting("siem_types", "receipt")
        .secret("client_id", "harness-client")
        .secret("client_secret", SECRET)
}

fn cursor(run: &siphon_harness::Run) -> Value {
    serde_json::from_str(run.cursor.as_deref().expect("a committed cursor")).expect("JSON cursor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_2_batch_files_come_from_presigned_urls_without_credentials() {
    let mut h = v2();
    h.script(When::new("POST", &format!("{API}/oauth/token")), Reply::json(200, TOKEN));
    let page = format!(
        r#"{{"value":[{{"url":"{S3}/C0A0/receipt/part-1.json.gz?X-Amz-Signature=abc%2Bdef&X-Amz-Expires=900","expiry":"2099-01-01T00:00:00.000Z","size":300}}],"@nextPage":"NDU1NA==","isCaughtUp":true}}"#
    );
    let batch = format!("{API}/siem/v1/batch/events/cg");
    h.script(
        When::get(&batch).header("authorization", "Bearer harness-access-token-7").query("type", "receipt"),
        Reply::json(200, page),
    );
    let file = gzip_two_members(&[R1.to_owned(), R2.to_owned(), R3.to_owned()]);
    h.script(
        When::get(&format!("{S3}/C0A0/receipt/part-1.json.gz")),
        Reply::new(200, file).header("content-type", "application/octet-stream"),
    );
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert!(run.unmatched.is_empty(), "{:?}", run.unmatched);
    assert_eq!(run.records, [R1, R2, R3], "byte-exact, in file order");

    let token = &run.requests[0];
    let form = String::from_utf8_lossy(&token.body);
    assert!(form.contains("grant_type=client_credentials") && form.contains("client_id=harness-client"), "{form}");
    let first = &run.requests[1];
    assert!(first.param("dateRangeStartsAt").is_some() && first.param("dateRangeEndsAt").is_some());
    assert_eq!(first.param("nextPage"), None);
    let download = &run.requests[2];
    assert!(download.url.starts_with(S3), "{}", download.url);
    assert_eq!(download.param("X-Amz-Signature"), Some("abc+def"), "the pre-signed query is sent unchanged");
    assert_eq!(download.header("authorization"), None, "no credentials to a pre-signed URL");
    assert_eq!(cursor(&run)["streams"]["receipt"]["cursor"]["next"], "NDU1NA==");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_file_host_outside_allowed_hosts_fails_the_type_and_keeps_the_cursor() {
    let mut h = Harness::new("mimecast")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("api.services.mimecast.com")
        .setting("siem_types", "receipt")
        .secret("client_id", "harness-client")
        .secret("client_secret", SECRET);
    h.script(When::new("POST", &format!("{API}/oauth/token")), Reply::json(200, TOKEN));
    let page = format!(r#"{{"value":[{{"url":"{S3}/f.json.gz?sig=1"}}],"@nextPage":"Mg==","isCaughtUp":false}}"#);
    h.script(When::get(&format!("{API}/siem/v1/batch/events/cg")), Reply::json(200, page));
    let run = h.run().await.expect("run");
    let e = run.report.outcome.as_ref().expect_err("the download is denied");
    assert!(e.to_string().contains("allow-list") && e.to_string().contains("amazonaws.com"), "{e}");
    assert_eq!(run.cursor, None);
    assert!(run.records.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_1_siem_logs_are_signed_unzipped_and_the_token_header_is_the_cursor() {
    let (app_key, access_key, secret_key) = ("harness-app-key", "harness-access", "aGFybmVzcy1obWFjLWtleQ==");
    let mut h = Harness::new("mimecast")
        .unwrap_or_else(|e| panic!("{e}"))
        .allow_host("eu-api.mimecast.com")
        .setting("api", "1.0")
        .setting("base_url", "https://eu-api.mimecast.com")
        .setting("app_id", "harness-app")
        .secret("app_key", app_key)
        .secret("access_key", access_key)
        .secret("secret_key", secret_key);
    let m1 = r#"{"datetime":"2025-01-15T10:06:40+0100","aCode":"fXkR2a3bQ1mZ-Ab12cD","Dir":"Inbound","Subject":"Zahlung – ü"}"#;
    let m2 = r#"{"datetime":"2025-01-15T10:06:41+0000","aCode":"fXkR2a3bQ1mZ-Ab12cE","Delivered":"true"}"#;
    let body = zip(&[
        ("receipt_20250115100640655.json".into(), format!(r#"{{"data":[{m1}]}}"#).into_bytes()),
        ("delivery_20250115100641000.json".into(), format!(r#"{{"data":[{m2}]}}"#).into_bytes()),
    ]);
    let url = "https://eu-api.mimecast.com/api/audit/get-siem-logs";
    h.script_times(
        When::new("POST", url),
        Reply::new(200, body).header("content-type", "application/octet-stream").header("mc-siem-token", "tok-2"),
        1,
    );
    h.script(
        When::new("POST", url),
        Reply::json(200, r#"{"meta":{"status":200,"isLastToken":true},"data":[],"fail":[]}"#),
    );
    let run = h.run().await.expect("run");
    assert!(run.report.ok(), "{:?}", run.report.outcome);
    assert_eq!(run.records, [m1, m2]);
    assert_eq!(cursor(&run)["streams"]["siem"]["cursor"], "tok-2");

    let (first, second) = (&run.requests[0], &run.requests[1]);
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body, serde_json::json!({"data": [{"type": "MTA", "fileFormat": "json", "compress": true}]}));
    let body: Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(body["data"][0]["token"], "tok-2", "the next call carries the header's token");
    for r in [first, second] {
        let date = r.header("x-mc-date").expect("x-mc-date");
        let id = r.header("x-mc-req-id").expect("x-mc-req-id");
        assert!(date.ends_with(" UTC"), "{date}");
        assert_eq!(r.header("x-mc-app-id"), Some("harness-app"));
        let to_sign = format!("{date}:{id}:/api/audit/get-siem-logs:{app_key}");
        let sig = base64_encode(&hmac_sha1(&base64_decode(secret_key).unwrap(), to_sign.as_bytes()));
        assert_eq!(r.header("authorization"), Some(format!("MC {access_key}:{sig}").as_str()));
    }
    assert_ne!(first.header("x-mc-req-id"), second.header("x-mc-req-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_failures_inside_http_200_fail_the_run_and_keep_the_cursor() {
    let mut h = v2().setting("streams", "audit");
    h.script(When::new("POST", &format!("{API}/oauth/token")), Reply::json(200, TOKEN));
    let failed = r#"{"meta":{"status":200},"data":[],"fail":[{"errors":[{"code":"err_validation_null","message":"startDateTime is required","retryable":false}]}]}"#;
    h.script(When::new("POST", &format!("{API}/api/audit/get-audit-events")), Reply::json(200, failed));
    let run = h.run().await.expect("run");
    let e = run.report.outcome.as_ref().expect_err("fail[] with HTTP 200 is a failure");
    assert!(
        e.to_string().contains("err_validation_null") && e.to_string().contains("startDateTime is required"),
        "{e}"
    );
    assert_eq!(run.cursor, None);
    let body: Value = serde_json::from_slice(&run.requests[1].body).unwrap();
    let start = body["data"][0]["startDateTime"].as_str().unwrap();
    assert!(start.ends_with("+0000") && start.len() == 24, "{start}");
}
