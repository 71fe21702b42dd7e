//! API 1.0: request signing (vendor-apis.md §5.1.2) and SIEM logs, `POST /api/audit/get-siem-logs` (§5.1.4): a zip of
//! `{"data":[…]}` files, the next token in the `mc-siem-token` header (committed with the files' records),
//! `isLastToken: true` on the last; "no new logs" is a JSON envelope.

use serde_json::json;
use siphon_sdk::data::{compress::unzip, hash::RecordKey, json::records_at};
use siphon_sdk::data::{crypto::base64_encode, crypto::hmac_sha1, random::uuid_v4_from, time::format_rfc1123};
use siphon_sdk::driver::{Ctx, Page, Stream};
use siphon_sdk::{Error, Record, auth::Auth, http::Request, http::Response, io::Io};

use crate::envelope;

const ZIP_CAP: usize = 256 << 20; // largest decompressed SIEM response (all files of one zip)

/// Signs every request: `Authorization: MC <accessKey>:<base64(HMAC-SHA1(base64decode(secretKey),
/// "date:reqId:path:appKey"))>`, the date and a fresh UUID also in `x-mc-date` / `x-mc-req-id`.
/// Holds the keys (`secret` decoded) for the run only, and is never printed.
pub struct Signer {
    pub app_id: String,
    pub app_key: String,
    pub access_key: String,
    pub secret: Vec<u8>,
}

impl Auth for Signer {
    fn authorize(&mut self, io: &mut dyn Io, request: Request) -> Result<Request, Error> {
        if !request.is_authenticated() {
            return Ok(request);
        }
        // `Wed, 15 Jan 2025 10:00:00 UTC`: RFC 1123 ending in the literal `UTC`.
        let date = format!("{} UTC", format_rfc1123(io.now_ms()).trim_end_matches(" GMT"));
        let req_id = uuid_v4_from(io);
        let to_sign = format!("{date}:{req_id}:{}:{}", request.path(), self.app_key);
        let signature = base64_encode(&hmac_sha1(&self.secret, to_sign.as_bytes()));
        Ok(request
            .header("authorization", format!("MC {}:{signature}", self.access_key))
            .header("x-mc-app-id", self.app_id.as_str())
            .header("x-mc-date", date)
            .header("x-mc-req-id", req_id))
    }

    /// A refused signature does not get better by signing again; a resent one is a replay.
    fn invalidate(&mut self) -> bool {
        false
    }

    fn signs_each_request(&self) -> bool {
        true
    }
}

/// The API 1.0 SIEM log stream (MTA files).
pub struct SiemLogs {
    pub base: String,
}

/// The cursor is the `mc-siem-token` of the last delivered response; none: the oldest retained file.
impl Stream for SiemLogs {
    type Cursor = Option<String>;

    fn name(&self) -> &str {
        "siem"
    }

    fn request(&self, _cx: &mut Ctx, cursor: &mut Option<String>) -> Result<Option<Request>, Error> {
        let mut filter = json!({"type": "MTA", "fileFormat": "json", "compress": true});
        if let Some(token) = cursor {
            filter["token"] = token.as_str().into();
        }
        let url = format!("{}/api/audit/get-siem-logs", self.base);
        Ok(Some(Request::post(url).header("accept", "application/json").json(&json!({"data": [filter]}))))
    }

    fn parse(&self, _cx: &mut Ctx, cursor: &Option<String>, response: Response) -> Result<Page<Option<String>>, Error> {
        let token = response.header("mc-siem-token").filter(|t| !t.is_empty()).map(str::to_string);
        let mut page = Page::empty(token.clone().or_else(|| cursor.clone()));
        if !response.body.starts_with(b"PK") {
            // Not a zip: the JSON envelope of "no new logs" (`meta.isLastToken` or not). Keep the token.
            envelope::check("SIEM logs", &response)?;
            return Ok(page);
        }
        token.as_ref().ok_or_else(|| Error::Vendor("SIEM logs: files came without an mc-siem-token header".into()))?;
        for file in unzip(&response.body, ZIP_CAP)? {
            let keyed = |r: Record| (RecordKey::of_content(&r).to_string(), r);
            match records_at(&file.data, "data") {
                Ok(records) => page.records.extend(records.into_iter().map(keyed)),
                Err(e) => page.skipped.push(format!("{}: {e}", file.name)),
            }
        }
        page.more = !response.header("isLastToken").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(page)
    }

    fn rate_limited(&self, response: &Response, now_ms: u64) -> Option<std::time::Duration> {
        envelope::rate_limited(response, now_ms)
    }

    fn error(&self, response: Response) -> Error {
        envelope::error("SIEM logs", &response)
    }
}
