//! The tenant's records and how they are paged: 2.0 SIEM batch files per type, 1.0 MTA files,
//! audit events; synthetic records with Mimecast's quirks (numbers and booleans as strings, JSON
//! in a string, `null`s, non-ASCII text, repeating `processingId` / `_offset`).

use std::collections::HashMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder};
use serde_json::{Value, json};
use siphon_sdk::data::time::{format_date, format_offset, format_rfc3339_millis, parse_date, parse_rfc3339};

use super::super::blobs::BlobStore;
use super::super::http::Response;
use super::{MockConfig, Request, envelope, failure};

/// The Cloud Gateway types of the 2.0 batch endpoint.
pub const SIEM_TYPES: [&str; 10] = [
    "receipt",
    "process",
    "delivery",
    "av",
    "spam",
    "internal email protect",
    "impersonation protect",
    "url protect",
    "attachment protect",
    "journal",
];

/// Every stream the mock keeps: the ten 2.0 types, `siem` (1.0 MTA files) and `audit`.
pub const STREAMS: [&str; 12] = {
    let mut streams = ["siem"; 12];
    let mut i = 0;
    while i < SIEM_TYPES.len() {
        streams[i] = SIEM_TYPES[i];
        i += 1;
    }
    streams[11] = "audit";
    streams
};

const DAY_MS: u64 = 86_400_000;

/// One SIEM file: when it was written and its lines.
struct File {
    at_ms: u64,
    id: String,
    lines: Vec<String>,
}

/// An audit event: its time (whole seconds) and text.
struct Event {
    at_ms: u64,
    text: String,
}

#[derive(Default)]
pub(super) struct Data {
    /// Files per stream (`siem` included), oldest first.
    files: HashMap<String, Vec<File>>,
    events: Vec<Event>,
    /// Audit page tokens → (start, end, offset).
    audit_tokens: HashMap<String, (u64, u64, usize)>,
    serial: u64,
}

impl Data {
    pub(super) fn add(&mut self, stream: &str, n: usize, now: u64, cfg: &MockConfig, blobs: &BlobStore) -> Vec<String> {
        let mut made = Vec::with_capacity(n);
        for _ in 0..n {
            self.serial += 1;
            made.push(match stream {
                "audit" => audit_event(self.serial, now / 1000 * 1000),
                "siem" => mta_record(self.serial, now),
                kind => siem_record(kind, self.serial, now),
            });
        }
        if stream == "audit" {
            self.events.extend(made.iter().map(|text| Event { at_ms: now / 1000 * 1000, text: text.clone() }));
            return made;
        }
        let files = self.files.entry(stream.to_owned()).or_default();
        for chunk in made.chunks(cfg.records_per_file.max(1)) {
            let id = format!("C0A0/{}/{}/part-{:05}.json.gz", stream.replace(' ', "_"), format_date(now), files.len());
            if stream != "siem" {
                // Mimecast repeats events (§0.2): a file starts with the last line of the one before,
                // which may have been delivered on another page, in another run.
                let repeat = files.last().and_then(|f| f.lines.last()).cloned();
                let lines: Vec<String> = repeat.into_iter().chain(chunk.iter().cloned()).collect();
                blobs.put(&id, gzip_two_members(&lines), "application/octet-stream");
            }
            files.push(File { at_ms: now, id, lines: chunk.to_vec() });
        }
        made
    }

    pub(super) fn records(&self, stream: &str) -> Vec<String> {
        if stream == "audit" {
            return self.events.iter().map(|e| e.text.clone()).collect();
        }
        self.files.get(stream).map(|f| f.iter().flat_map(|f| f.lines.clone()).collect()).unwrap_or_default()
    }

    /// `GET /siem/v1/batch/events/cg`.
    pub(super) fn batch_page(&mut self, r: &Request, cfg: &MockConfig, blobs: &BlobStore, expired: bool) -> Response {
        let bad =
            |message: &str| Response::json(400, json!({"error": {"code": "400", "message": message}}).to_string());
        let Some(kind) = r.param("type").filter(|t| SIEM_TYPES.contains(t)) else {
            return bad("type must be one of the Cloud Gateway types, one per call");
        };
        let files = self.files.get(kind).map(Vec::as_slice).unwrap_or_default();
        let now = super::now_ms();
        let from = match r.param("nextPage") {
            Some(next) => match decode_next(next, kind) {
                Some(i) if i <= files.len() => i,
                _ => return bad("nextPage is not valid"),
            },
            None => {
                let dates = (r.param("dateRangeStartsAt"), r.param("dateRangeEndsAt"));
                let (Some(Ok(start)), Some(Ok(end))) = (dates.0.map(parse_date), dates.1.map(parse_date)) else {
                    return bad("dateRangeStartsAt and dateRangeEndsAt (YYYY-MM-DD) are required without nextPage");
                };
                let today = now / DAY_MS * DAY_MS;
                if start + 7 * DAY_MS < today || start > end || end > today {
                    return bad("the date range must lie within the last 7 days");
                }
                files.iter().position(|f| f.at_ms >= start).unwrap_or(files.len())
            }
        };
        let size = r.param("pageSize").and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, cfg.files_per_page);
        let to = (from + size).min(files.len());
        let base = r.base_url();
        let value: Vec<Value> = files[from..to]
            .iter()
            .map(|f| {
                let url = match expired {
                    true => blobs.url_expiring_at(&base, &f.id, now / 1000 - 60),
                    false => blobs.signed_url(&base, &f.id, cfg.url_ttl),
                };
                let expiry = format_rfc3339_millis(now + cfg.url_ttl.as_millis() as u64);
                json!({"url": url, "expiry": expiry, "size": f.lines.iter().map(String::len).sum::<usize>()})
            })
            .collect();
        let body = json!({"value": value, "@nextPage": encode_next(kind, to), "isCaughtUp": to == files.len()});
        Response::json(200, body.to_string())
    }

    /// `POST /api/audit/get-siem-logs` (API 1.0).
    pub(super) fn siem_logs(&mut self, r: &Request, cfg: &MockConfig) -> Response {
        let body = r.json().unwrap_or_default();
        let filter = &body["data"][0];
        if filter["type"].as_str().is_some_and(|t| t != "MTA") || filter["fileFormat"].as_str() == Some("key_value") {
            return failure(400, "err_validation_invalid", "type must be MTA and fileFormat json here");
        }
        let files = self.files.get("siem").map(Vec::as_slice).unwrap_or_default();
        let from = match filter["token"].as_str() {
            None => 0,
            Some(token) => match decode_next(token, "siem") {
                Some(i) if i <= files.len() => i,
                _ => {
                    return failure(
                        200,
                        "err_audit_siem_invalid_token",
                        "The token provided is invalid or has expired",
                    );
                }
            },
        };
        let to = (from + cfg.files_per_page).min(files.len());
        let token = encode_next("siem", to);
        if from == files.len() {
            let drained = json!({"meta": {"status": 200, "isLastToken": true}, "data": [], "fail": []});
            return Response::json(200, drained.to_string()).header("mc-siem-token", token);
        }
        let entries: Vec<(String, Vec<u8>)> = files[from..to]
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = ["receipt", "process", "delivery", "ttp_url", "jrnl"][i % 5];
                let stamp = format_offset(f.at_ms).replace(['-', 'T', ':'], "");
                (
                    format!("{name}_{}{:03}.json", &stamp[..14], i),
                    format!("{{\"data\":[{}]}}", f.lines.join(",")).into_bytes(),
                )
            })
            .collect();
        let mut answer = Response::bytes(200, "application/octet-stream", zip(&entries))
            .header("content-disposition", format!("attachment; filename=\"siem_{to}.zip\""))
            .header("mc-siem-token", token);
        if to == files.len() {
            answer = answer.header("isLastToken", "true");
        }
        answer
    }

    /// `POST /api/audit/get-audit-events` (both APIs).
    pub(super) fn audit_page(&mut self, r: &Request, cfg: &MockConfig) -> Response {
        let Some(body) = r.json() else { return failure(400, "err_validation_null", "the body must be JSON") };
        let size = match &body["meta"]["pagination"]["pageSize"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => Some(25),
        };
        let size = (size.unwrap_or(25) as usize).clamp(1, cfg.audit_page_size);
        let (start, end, offset) = match body["meta"]["pagination"]["pageToken"].as_str() {
            Some(token) => match self.audit_tokens.get(token) {
                Some(&window) => window,
                None => return failure(200, "err_validation_invalid_token", "pageToken is not valid"),
            },
            None => {
                let bound =
                    |key: &str| body["data"][0][key].as_str().filter(|t| strict_offset_time(t)).map(parse_rfc3339);
                let (Some(Ok(start)), Some(Ok(end))) = (bound("startDateTime"), bound("endDateTime")) else {
                    return failure(
                        200,
                        "err_validation_null",
                        "startDateTime and endDateTime (yyyy-MM-ddTHH:mm:ss+0000) are required",
                    );
                };
                if start + 60 * DAY_MS < super::now_ms() {
                    return failure(200, "err_validation_out_of_range", "startDateTime is more than 60 days ago");
                }
                (start, end, 0)
            }
        };
        let mut matching: Vec<&Event> = self.events.iter().filter(|e| (start..=end).contains(&e.at_ms)).collect();
        matching.reverse();
        matching.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(size)
            .map(|e| serde_json::from_str(&e.text).unwrap_or_default())
            .collect();
        // A `next` on every page that had events, even the last; after it an empty page with
        // Elastic's placeholder.
        let next = match page.is_empty() {
            true => "String".to_owned(),
            false => {
                let token = format!("eNpVj0FPg{:x}==", self.audit_tokens.len() + 1);
                self.audit_tokens.insert(token.clone(), (start, end, offset + page.len()));
                token
            }
        };
        let pagination = json!({"pageSize": size, "totalCount": matching.len(), "next": next});
        envelope(200, Value::Array(page), Some(pagination))
    }
}

/// `yyyy-MM-ddTHH:mm:ss±HHMM`, no colon in the offset.
fn strict_offset_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24 && b[10] == b'T' && matches!(b[19], b'+' | b'-') && b[20..].iter().all(u8::is_ascii_digit)
}

fn encode_next(kind: &str, index: usize) -> String {
    siphon_sdk::data::crypto::base64_encode(format!("{kind}:{index}").as_bytes())
}

fn decode_next(token: &str, kind: &str) -> Option<usize> {
    let text = String::from_utf8(siphon_sdk::data::crypto::base64_decode(token).ok()?).ok()?;
    let (k, i) = text.rsplit_once(':')?;
    (k == kind).then(|| i.parse().ok()).flatten()
}

/// A 2.0 SIEM record of `kind`.
fn siem_record(kind: &str, n: u64, now: u64) -> String {
    let mut r = json!({
        "_offset": 71_000 + n / 3, "_partition": 60, "accountId": "C0A0B1",
        "aggregateId": format!("DxdW7AQ0MlWbr7_{n:06}_{}", now / 1000),
        "processingId": format!("MRFVwlim0CdyNJzmrIZFSH_{}", n / 2),
        "timestamp": now - n % 1000, "type": kind,
        "subtype": if n.is_multiple_of(4) { Value::Null } else { json!("Acc") },
    });
    let fields = match kind {
        "receipt" => {
            json!({"action": "Acc", "direction": "Inbound", "senderIp": "203.0.113.25",
            "spamScore": (n % 10).to_string(),
            "spamProcessingDetail": r#"{"spf":{"allow":true,"info":"ALLOW"},"dkim":{"allow":true,"info":"UNKNOWN"}}"#,
            "subject": format!("Facture n°{n} — ü"), "recipients": "jdoe@example.com", "rejectionCode": null})
        }
        "delivery" => {
            json!({"delivered": "true", "deliveryAttempts": "1", "emailSize": (31_000 + n).to_string(),
            "tlsUsed": "Yes", "route": "Inbound"})
        }
        "attachment protect" => {
            json!({"fileName": format!("invoice-{n}.pdf"), "fileExtension": "pdf", "sha256": format!("{n:064x}")})
        }
        "spam" => json!({"senderDomain": "vendor.example.net", "taggedExternal": "true", "taggedMalicious": "false"}),
        _ => json!({"direction": "Internal", "senderEnvelope": "billing@vendor.example.net", "urlCategory": null}),
    };
    if let (Some(r), Value::Object(f)) = (r.as_object_mut(), fields) {
        r.extend(f);
    }
    r.to_string()
}

/// A 1.0 MTA record (abbreviated names, `datetime` with a non-UTC offset sometimes).
fn mta_record(n: u64, now: u64) -> String {
    let offset = if n.is_multiple_of(3) { format_offset(now).replace("+0000", "+0100") } else { format_offset(now) };
    json!({"datetime": offset, "aCode": format!("fXkR2a3bQ1mZ-{n:06}"), "acc": "C0A0", "Dir": "Inbound",
        "IP": "203.0.113.25", "Sender": "billing@vendor.example.net", "Rcpt": "jdoe@example.com",
        "MsgId": format!("<{n}.1234@vendor.example.net>"),
        "Subject": format!("Invoice {n} – Zahlung"), "Act": "Acc", "SpamScore": "0", "SpamInfo": "[]"})
    .to_string()
}

/// An audit event at `at_ms`.
fn audit_event(n: u64, at_ms: u64) -> String {
    json!({"id": format!("eNqrVipOTS4tSs1MUbJSyi1Mjgw1N6tIq6p0Kko0LCj2CS1NdAtL89c2DXZ{n}"),
        "auditType": if n.is_multiple_of(2) { "Review Set Action" } else { "Threat Intel Feed Download" },
        "user": "jdoe@example.com", "eventTime": format_offset(at_ms),
        "eventInfo": format!("Viewed Review Set Details - Case: HR-{n}, IP: 198.51.100.7, Application: case-review"),
        "category": if n.is_multiple_of(2) { "case_review_logs" } else { "reporting_logs" }})
    .to_string()
}

/// NDJSON in two gzip members, the last line without `\n`.
pub fn gzip_two_members(lines: &[String]) -> Vec<u8> {
    let text = lines.join("\n");
    let cut = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut out = Vec::new();
    for part in [&text[..cut], &text[cut..]] {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        let _ = gz.write_all(part.as_bytes());
        out.extend(gz.finish().unwrap_or_default());
    }
    out
}

/// A zip of `entries`, each deflated, with the CRC-32 the reader checks.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let mut deflate = DeflateEncoder::new(Vec::new(), Compression::fast());
        let _ = deflate.write_all(data);
        let packed = deflate.finish().unwrap_or_default();
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let fields = |sig: u32, out: &mut Vec<u8>, central_dir: bool| {
            out.extend(sig.to_le_bytes());
            if central_dir {
                out.extend(20u16.to_le_bytes());
            }
            for v in [20u16, 0, 8, 0, 0] {
                out.extend(v.to_le_bytes());
            }
            for v in [crc.sum(), packed.len() as u32, data.len() as u32] {
                out.extend(v.to_le_bytes());
            }
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            if central_dir {
                out.extend([0u8; 10]);
                out.extend(offset.to_le_bytes());
            }
            out.extend(name.as_bytes());
        };
        fields(0x0403_4b50, &mut out, false);
        out.extend(&packed);
        fields(0x0201_4b50, &mut central, true);
    }
    let (at, len, count) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend(central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    for v in [count, count] {
        out.extend(v.to_le_bytes());
    }
    for v in [len, at] {
        out.extend(v.to_le_bytes());
    }
    out.extend(0u16.to_le_bytes());
    out
}
