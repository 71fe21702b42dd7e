//! Synthetic IBM Security Verify events in the shapes of the seed guide and `vendor-apis.md` §3.4:
//! a UUID `id`, `time` and `indexed_at` in epoch ms, `data` depending on `event_type`, non-ASCII
//! text (Japanese, umlauts, an emoji outside the BMP), an integer above 2^53 inside `data` and a
//! JSON document inside a string. Each event is rendered once, ASCII-escaped (`\u00f6`, surrogate
//! pairs) as Verify's Java serialiser sends it, so a page is a join of ready strings.

use std::fmt::Write as _;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, RngCore};

/// One stored event: what the query needs to find it and the bytes it serves.
pub(crate) struct Event {
    pub id: String,
    pub event_type: String,
    pub time: u64,
    pub indexed_at: u64,
    pub text: Arc<str>,
}

const USERS: [&str; 5] = ["jörg.müller", "山田太郎", "zoë.o'brien", "åse-admin", "rocket🚀ops"];
const CITIES: [(&str, &str, &str); 3] =
    [("Asia", "JP", "Tōkyō"), ("Europe", "DE", "Köln"), ("North America", "US", "San José")];

/// A UUID v4 from `rng`.
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// An event of `event_type` that happened at `time` and was indexed at `indexed_at`; `serial`
/// counts every event of the tenant and goes into `data` above 2^53.
pub(crate) fn event(
    rng: &mut StdRng,
    tenant: &str,
    event_type: &str,
    time: u64,
    indexed_at: u64,
    serial: u64,
) -> Event {
    let id = uuid(rng);
    let user = USERS[rng.random_range(0..USERS.len())];
    let ip = format!("198.51.100.{}", rng.random_range(1..255));
    let (servicename, data) = data(rng, event_type, user, &ip, serial);
    let (continent, country, city) = CITIES[rng.random_range(0..CITIES.len())];
    let (year, month, day) = siphon_sdk::data::time::civil_from_days((time / 86_400_000) as i64);
    let correlation = uuid(rng);
    // Key order as the seed guide shows it: `id` and `time` near the end.
    let json = format!(
        r#"{{"geoip":{{"continent_name":"{continent}","city_name":"{city}","country_iso_code":"{country}","ip":"{ip}","location":{{"lon":"139.69","lat":"35.68"}}}},"data":{data},"year":{year},"event_type":"{event_type}","month":{month},"indexed_at":{indexed_at},"@processing_time":{},"tenantid":"0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b","tenantname":"{tenant}","correlationid":"CORR_ID-{correlation}","servicename":"{servicename}","id":"{id}","time":{time},"day":{day}}}"#,
        rng.random_range(1..200),
    );
    Event { id, event_type: event_type.to_owned(), time, indexed_at, text: ascii_escape(&json).into() }
}

/// `(servicename, data)` for a type, after the seed guide's samples.
fn data(rng: &mut StdRng, event_type: &str, user: &str, ip: &str, serial: u64) -> (&'static str, String) {
    // Above 2^53: a reader that goes through f64 changes it.
    let big = 9_007_199_254_740_993u64 + serial * 2;
    let result = if rng.random_bool(0.8) { "success" } else { "failure" };
    match event_type {
        "authentication" => (
            "authsvc",
            format!(
                r#"{{"result":"{result}","subtype":"user_password","origin":"{ip}","cause":"Authentication Successful","action":"login","sourcetype":"clouddirectory","realm":"cloudIdentityRealm","devicetype":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/88.0","username":"{user}","sessionseq":{big}}}"#
            ),
        ),
        "sso" => (
            "saml_runtime",
            format!(
                r#"{{"result":"{result}","subtype":"saml","providerid":"verify-app","origin":"{ip}","realm":"cloudIdentityRealm","applicationid":"5061592843571829041","applicationtype":"Custom Application","applicationname":"Salesforce – 営業","username":"{user}","assertionseq":{big}}}"#
            ),
        ),
        "management" => (
            "profilemgmt",
            format!(
                r#"{{"targetid_username":"{user}","resource":"user","origin":"{ip}","cause":"\"{user}\" を作成しました。","json":"{{\"emails\":[{{\"type\":\"work\",\"value\":\"x@example.com\"}}],\"password\":\"********\",\"active\":true}}","result":"{result}","action":"created","location":"https://acme.verify.ibm.com/v2.0/Users","realm":"cloudIdentityRealm","changeseq":{big}}}"#
            ),
        ),
        _ => (
            "oauth",
            format!(
                r#"{{"result":"{result}","subtype":"client_credentials","origin":"{ip}","clientid":"c-{serial}","scope":"openid","username":"{user}","seq":{big}}}"#
            ),
        ),
    }
}

/// `json` with every non-ASCII character as `\uXXXX` (UTF-16 surrogate pairs above the BMP).
pub(crate) fn ascii_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn events_are_ascii_escaped_json_with_big_integers() {
        let mut rng = StdRng::seed_from_u64(7);
        for t in ["authentication", "sso", "management", "token"] {
            let e = event(&mut rng, "acme.verify.ibm.com", t, 1_718_012_345_678, 1_718_012_346_102, 3);
            assert!(e.text.is_ascii(), "{}", e.text);
            let v: serde_json::Value = serde_json::from_str(&e.text).expect("valid JSON");
            assert_eq!((v["id"].as_str(), v["event_type"].as_str()), (Some(e.id.as_str()), Some(t)));
            assert_eq!(
                (v["time"].as_u64(), v["indexed_at"].as_u64()),
                (Some(1_718_012_345_678), Some(1_718_012_346_102))
            );
            assert_eq!((v["year"].as_u64(), v["month"].as_u64(), v["day"].as_u64()), (Some(2024), Some(6), Some(10)));
            assert!(e.text.contains("9007199254740999"), "{}", e.text);
            assert_eq!(e.id.len(), 36);
        }
        assert_eq!(ascii_escape("jö🚀"), r"j\u00f6\ud83d\ude80");
    }
}
