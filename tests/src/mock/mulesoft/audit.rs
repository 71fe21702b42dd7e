//! The audit store of the MuleSoft mock: entries without ids (many sharing a millisecond, some
//! one action split into parts, some visible only late), and the query over them in offset or
//! cursor mode with inclusive bounds.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::MockConfig;
use crate::mock::http::{Request, Response};
use crate::mock::oauth::Denied;

/// One audit entry.
pub(super) struct Entry {
    /// Its `timestamp`, epoch ms.
    pub ts: u64,
    /// Order of arrival: ties of `ts` are served in this order.
    pub seq: u64,
    /// Epoch ms from which queries see it.
    pub visible_at: u64,
    /// The exact JSON text served.
    pub text: String,
}

/// The control plane's state: its settings, the audit store and the quota counter.
pub struct Tenant {
    pub(super) cfg: MockConfig,
    pub(super) entries: Vec<Entry>,
    pub(super) rng: StdRng,
    /// The wall-clock minute being counted and the queries in it.
    pub(super) minute: (u64, u32),
}

const USERS: [(&str, &str); 4] = [
    ("9b2d4f6a-1c3e-4a5b-8d7f-2e4c6a8b0d1f", "jdoe"),
    ("1f3e5d7c-9b0a-4c2e-8f6d-4b2a0c8e6f4d", "zoë.müller"),
    ("7a9c1e3f-5b7d-4f1a-9c3e-5f7b9d1f3a5c", "李小龙"),
    ("3c5e7a9b-1d3f-4b5d-8e0a-2c4e6a8c0e2a", "o'brien"),
];
const ACTIONS: [(&str, &str, &str); 5] = [
    ("Update", "Application", "Restart"),
    ("Create", "API", "Deploy"),
    ("Delete", "Environment", "Remove"),
    ("Update", "Role", "Grant"),
    ("Login", "Organization", ""),
];

impl Tenant {
    /// Appends `n` entries timestamped up to `cfg.age` before `now`, never before the newest entry:
    /// groups of up to `cfg.max_group` share a millisecond, some groups are one action split into
    /// parts with one transaction id, and every `late_every`th entry becomes visible `late_by`
    /// after its timestamp. Returns their texts.
    pub fn add_at(&mut self, n: usize, now: u64) -> Vec<String> {
        // Never before the newest entry (the store only grows at the end), never in the future.
        let newest = self.entries.last().map_or(0, |e| e.ts);
        let latest = now.saturating_sub(self.cfg.age.as_millis() as u64).max(newest);
        let mut ts = latest.saturating_sub(2 * n as u64).max(newest);
        let mut added = Vec::with_capacity(n);
        while added.len() < n {
            let group = self.rng.random_range(1..=self.cfg.max_group.max(1)).min(n - added.len());
            let split = group > 1 && self.rng.random_bool(0.5);
            let tx = self.uuid();
            for part in 0..group {
                let seq = self.entries.len() as u64;
                let text = self.entry(ts, seq, split.then_some((part, group)), &tx);
                let late = self.cfg.late_every > 0 && seq % self.cfg.late_every == self.cfg.late_every - 1;
                let visible_at = if late { ts + self.cfg.late_by.as_millis() as u64 } else { ts };
                self.entries.push(Entry { ts, seq, visible_at, text: text.clone() });
                added.push(text);
            }
            ts = (ts + self.rng.random_range(0..3)).min(latest);
        }
        added
    }

    fn uuid(&mut self) -> String {
        let b: [u8; 16] = self.rng.random();
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!("{}-{}-4{}-a{}-{}", &h[..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    /// One entry as §2.6 shows them, fields in that order: `clientName` for a connected app,
    /// integers above 2^53 and 2^64 in `payload`, part `i/k` when split.
    fn entry(&mut self, ts: u64, seq: u64, part: Option<(usize, usize)>, tx: &str) -> String {
        let (user_id, user) = USERS[self.rng.random_range(0..USERS.len())];
        let (action, object_type, subaction) = ACTIONS[self.rng.random_range(0..ACTIONS.len())];
        let who = if seq % 7 == 3 {
            r#""clientId":"8f1e0c2a","clientName":"siem-connected-app""#.to_owned()
        } else {
            format!(r#""userId":"{user_id}","userName":{}"#, json!(user))
        };
        let part = part.map(|(i, k)| format!(r#","part":"{}/{k}""#, i + 1)).unwrap_or_default();
        let id = self.uuid();
        format!(
            r#"{{"organizationId":"{org}","timestamp":{ts},"action":"{action}",{who},"objects":[{{"objectId":"{id}","objectName":"object-{seq}","objectType":"{object_type}","environmentId":"7c9e1b3d-5f7a-4c9e-b1d3-f5a7c9e1b3d5"}}],"anypointTransactionId":"{tx}","payload":{{"subaction":"{subaction}"{part},"properties":{{"region":"eu-central-1","requestBytes":{big},"traceId":18446744073709551617{seq}}}}}}}"#,
            org = self.cfg.org_id,
            big = 9_007_199_254_740_993 + seq,
        )
    }

    /// Answers an audit request at `now`; `authorized` is the bearer token's check.
    pub(super) fn handle(&mut self, req: &Request, authorized: Result<(), Denied>, now: u64) -> Response {
        let minute = now / 60_000;
        self.minute = if self.minute.0 == minute { (minute, self.minute.1 + 1) } else { (minute, 1) };
        if self.minute.1 > self.cfg.quota_per_minute {
            return Response::html(503, super::QUOTA_PAGE);
        }
        let Some(org) = req.path.strip_prefix(super::AUDIT_PREFIX).and_then(|p| p.strip_suffix("/query")) else {
            return Response::json(404, r#"{"message":"Not Found"}"#);
        };
        if req.method != "POST" {
            return Response::json(405, r#"{"message":"Method Not Allowed"}"#).header("allow", "POST");
        }
        if let Err(denied) = authorized {
            return Response::json(401, json!({ "message": format!("Unauthorized: {denied:?}") }).to_string());
        }
        if org != self.cfg.org_id {
            return Response::json(404, json!({ "message": format!("Organization {org} not found") }).to_string());
        }
        if !self.cfg.permitted {
            return Response::json(403, r#"{"message":"You do not have permission to view the audit log"}"#);
        }
        let Some(body) = req.json() else { return bad("the body must be a JSON logQuery") };
        let cursor_mode = req.param("cursorPagination") == Some("true");
        self.query(&body, cursor_mode, now).map_or_else(|refused| refused, |page| Response::json(200, page))
    }

    /// Answers a query body (already parsed) at `now`: `cursor_mode` is `?cursorPagination=true`.
    fn query(&self, body: &Value, cursor_mode: bool, now: u64) -> Result<String, Response> {
        let date = |key: &str| -> Result<Option<u64>, Response> {
            match &body[key] {
                Value::Null => Ok(None),
                Value::Number(n) => n.as_u64().map(Some).ok_or_else(|| bad(&format!("{key} must be epoch ms"))),
                Value::String(s) => siphon_sdk::data::time::parse(s)
                    .map(Some)
                    .map_err(|_| bad(&format!("{key} {s:?} is not an ISO-8601 date"))),
                _ => Err(bad(&format!("{key} must be a date or epoch ms"))),
            }
        };
        let start = date("startDate")?.ok_or_else(|| bad("startDate is required"))?;
        let end = date("endDate")?.unwrap_or(now);
        let limit = body.get("limit").map_or(Some(200), Value::as_u64).ok_or_else(|| bad("limit must be a number"))?;
        if !(1..=super::MAX_LIMIT).contains(&limit) {
            return Err(bad("limit must be between 1 and 200"));
        }
        let ascending = body.get("ascending").map_or(Some(true), Value::as_bool).ok_or_else(|| bad("ascending"))?;
        let mut matching: Vec<&Entry> =
            self.entries.iter().filter(|e| e.ts >= start && e.ts <= end && e.visible_at <= now).collect();
        matching.sort_by_key(|e| (e.ts, e.seq));
        if !ascending {
            matching.reverse();
        }
        let limit = limit as usize;
        if !cursor_mode {
            let offset = body.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
            let page: Vec<&str> = matching.iter().skip(offset).take(limit).map(|e| e.text.as_str()).collect();
            return Ok(format!("{{\"data\": [\n  {}\n], \"total\": {}}}", page.join(",\n  "), matching.len()));
        }
        // The cursor names the last entry returned; the page goes on strictly after it.
        let after = match body.get("cursor") {
            None | Some(Value::Null) => None,
            Some(c) => Some(c.as_str().and_then(decode).ok_or_else(|| bad("the cursor is not valid"))?),
        };
        let past = |e: &&&Entry| after.is_none_or(|a| if ascending { (e.ts, e.seq) > a } else { (e.ts, e.seq) < a });
        let page: Vec<&&Entry> = matching.iter().filter(past).take(limit).collect();
        let Some(last) = page.last() else { return Ok(r#"{"data": []}"#.to_owned()) };
        let texts: Vec<&str> = page.iter().map(|e| e.text.as_str()).collect();
        Ok(format!("{{\"data\": [\n  {}\n], \"cursor\": \"{}_{:x}\"}}", texts.join(",\n  "), last.ts, last.seq))
    }
}

fn decode(cursor: &str) -> Option<(u64, u64)> {
    let (ts, seq) = cursor.split_once('_')?;
    Some((ts.parse().ok()?, u64::from_str_radix(seq, 16).ok()?))
}

/// 400 with MuleSoft's `{"message"}` body.
fn bad(message: &str) -> Response {
    Response::json(400, json!({ "message": message }).to_string())
}
