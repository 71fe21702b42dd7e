//! The mock's state and its request logic, free of HTTP: the alert streams, the per-(path,
//! index) bookmarks of the dataexport iterator, the per-token rate-limit window and `wait_time`
//! violations. The handler turns a request into a [`Reply`] here under one lock.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::alerts::{self, Cursor};
use super::{MockConfig, epoch_now, message_json};
use crate::mock::server::Request;
use crate::mock::vendor::Streams;

/// Path prefix of the alert iterator endpoints (§4.2); the alert type follows it.
pub const ALERTS_PREFIX: &str = "/api/v2/events/dataexport/alerts/";

/// The answer, with a page kept as shared record texts so it is joined outside the lock.
pub(super) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

pub(super) enum Body {
    Text(String),
    Page { wait_time: u64, records: Vec<Arc<str>> },
}

impl Reply {
    fn message(status: u16, message: &str) -> Reply {
        Reply { status, headers: Vec::new(), body: Body::Text(message_json(message)) }
    }

    fn header(&mut self, name: &str, value: impl ToString) {
        self.headers.push((name.to_owned(), value.to_string()));
    }
}

/// One alert type's records, in timestamp order.
#[derive(Default)]
struct Stream {
    ids: Vec<String>,
    timestamps: Vec<u64>,
    json: Vec<Arc<str>>,
}

/// Server-side iterator state for one (path, index).
struct Bookmark {
    /// Index of the next record `next` serves.
    pos: usize,
    /// Records of the last page served, replayed by `resend`.
    last: Range<usize>,
    /// When the last 200 on this index was answered, and the `wait_time` it carried.
    last_sent: Instant,
    last_wait: u64,
}

enum Operation {
    Epoch(u64),
    Head,
    Tail,
    Next,
    Resend,
}

impl Operation {
    fn parse(op: &str) -> Option<Operation> {
        match op {
            "head" => Some(Operation::Head),
            "tail" => Some(Operation::Tail),
            "next" => Some(Operation::Next),
            "resend" => Some(Operation::Resend),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().ok().map(Operation::Epoch)
            }
            _ => None,
        }
    }
}

struct RateWindow {
    started: Instant,
    count: u32,
}

/// The tenant's state: alert streams, bookmarks, rate-limit windows and `wait_time` violations.
pub struct Tenant {
    cfg: MockConfig,
    base_epoch: u64,
    streams: HashMap<String, Stream>,
    bookmarks: HashMap<(String, String), Bookmark>,
    windows: HashMap<String, RateWindow>,
    pub(super) violations: Vec<String>,
    serial: u64,
}

/// An alert type is a stream; an alert's key is its `_id`.
impl Streams for Tenant {
    fn add(&mut self, alert_type: &str, n: usize) -> Vec<String> {
        let now_epoch = epoch_now();
        let stream = self.streams.entry(alert_type.to_string()).or_default();
        let mut added = Vec::with_capacity(n);
        for _ in 0..n {
            let cur = Cursor {
                seed: self.cfg.seed,
                alert_type,
                seq: stream.ids.len() as u64,
                prev_timestamp: stream.timestamps.last().copied().unwrap_or(self.base_epoch),
                serial: self.serial,
                now_epoch,
            };
            self.serial += 1;
            let g = alerts::generate(&cur);
            added.push(g.id.clone());
            stream.ids.push(g.id);
            stream.timestamps.push(g.timestamp);
            stream.json.push(g.json);
        }
        added
    }

    fn keys(&self, alert_type: &str) -> Vec<String> {
        self.streams.get(alert_type).map(|s| s.ids.clone()).unwrap_or_default()
    }

    fn records(&self, alert_type: &str) -> Vec<String> {
        self.streams.get(alert_type).map(|s| s.json.iter().map(|j| j.to_string()).collect()).unwrap_or_default()
    }
}

impl Tenant {
    pub(super) fn new(cfg: MockConfig) -> Tenant {
        let base_epoch = cfg.base_epoch.unwrap_or_else(|| epoch_now().saturating_sub(2 * 3600));
        Tenant {
            cfg,
            base_epoch,
            streams: HashMap::new(),
            bookmarks: HashMap::new(),
            windows: HashMap::new(),
            violations: Vec::new(),
            serial: 0,
        }
    }

    pub(super) fn bookmark(&self, alert_type: &str, index: &str) -> Option<usize> {
        self.bookmarks.get(&(format!("{ALERTS_PREFIX}{alert_type}"), index.to_string())).map(|b| b.pos)
    }

    pub(super) fn set_wait_time(&mut self, secs: u64) {
        self.cfg.wait_time = secs;
    }

    /// Answers one request.
    pub(super) fn handle(&mut self, req: &Request) -> Reply {
        let Some(alert_type) = req.path.strip_prefix(ALERTS_PREFIX) else {
            return Reply::message(404, "Not found");
        };
        if req.method != "GET" {
            return Reply::message(405, "Method not allowed");
        }
        // Auth comes before the type check: an unauthenticated caller learns nothing.
        let Some(token) = req.header("netskope-api-token") else {
            return Reply::message(401, "Unauthorized: missing Netskope-Api-Token header");
        };
        if token != self.cfg.token {
            return Reply::message(403, "Invalid token or missing scope for this endpoint");
        }
        let token = token.to_string();
        let (limit, remaining, reset) = self.count_request(&token, req.at);
        let mut reply = match remaining {
            // The 429 tells the client to stay away until the window resets, and the
            // rate-limit headers agree with it, as a real exhausted window would.
            None => {
                let mut r = Reply::message(429, "Too many requests");
                r.header("retry-after", reset);
                r
            }
            Some(_) => self.route_authenticated(req, alert_type),
        };
        reply.header("ratelimit-limit", limit);
        reply.header("ratelimit-remaining", remaining.unwrap_or(0));
        reply.header("ratelimit-reset", reset);
        reply
    }

    /// Counts a request against the token's fixed window. Returns (limit, remaining or None
    /// when the limit is exceeded, whole seconds until the window resets).
    fn count_request(&mut self, token: &str, at: Instant) -> (u32, Option<u32>, u64) {
        let window = Duration::from_secs(self.cfg.rate_window_secs.max(1));
        let w = self.windows.entry(token.to_string()).or_insert(RateWindow { started: at, count: 0 });
        if at.saturating_duration_since(w.started) >= window {
            *w = RateWindow { started: at, count: 0 };
        }
        w.count = w.count.saturating_add(1);
        let left = window.saturating_sub(at.saturating_duration_since(w.started));
        let reset = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        let limit = self.cfg.rate_limit;
        let remaining = (w.count <= limit).then(|| limit - w.count);
        (limit, remaining, reset)
    }

    fn route_authenticated(&mut self, req: &Request, alert_type: &str) -> Reply {
        if !self.cfg.alert_types.iter().any(|t| t == alert_type) {
            return Reply::message(404, "This dataexporter does not exist");
        }
        if let Some(scopes) = &self.cfg.scopes
            && !scopes.iter().any(|s| s == alert_type)
        {
            let message = format!("Invalid token or missing scope: token has no read scope for {}", req.path);
            return Reply::message(403, &message);
        }
        let Some(index) = req.param("index").filter(|i| !i.is_empty()) else {
            return Reply::message(400, "Missing required query parameter: index");
        };
        let Some(op_text) = req.param("operation") else {
            return Reply::message(400, "Missing required query parameter: operation");
        };
        let Some(op) = Operation::parse(op_text) else {
            return Reply::message(
                400,
                &format!("Invalid operation '{op_text}': use <epoch seconds>, head, tail, next or resend"),
            );
        };
        let key = (req.path.clone(), index.to_string());
        if matches!(op, Operation::Next | Operation::Resend) {
            self.check_wait(&key, op_text, req.at);
        }
        if matches!(op, Operation::Next) && !self.bookmarks.contains_key(&key) {
            return Reply::message(
                400,
                &format!(
                    "Index '{index}' has not been started for this endpoint: \
                     start it with operation=<epoch seconds>, head or tail"
                ),
            );
        }
        self.serve(alert_type, key, op)
    }

    /// Records a violation when `next`/`resend` comes sooner than the previous page's
    /// `wait_time`. The call is still answered normally, so a test sees both the data flow
    /// and the violation.
    fn check_wait(&mut self, key: &(String, String), op: &str, at: Instant) {
        let Some(bm) = self.bookmarks.get(key) else {
            return;
        };
        let elapsed = at.saturating_duration_since(bm.last_sent);
        if bm.last_wait > 0 && elapsed < Duration::from_secs(bm.last_wait) {
            self.violations.push(format!(
                "operation={op} on {} index={} came {:.3}s after the previous response, which said wait_time={}s",
                key.0,
                key.1,
                elapsed.as_secs_f64(),
                bm.last_wait
            ));
        }
    }

    fn serve(&mut self, alert_type: &str, key: (String, String), op: Operation) -> Reply {
        let page_size = self.cfg.page_size;
        let wait_time = self.cfg.wait_time;
        let stream = self.streams.entry(alert_type.to_string()).or_default();
        let len = stream.json.len();
        let page = |start: usize| start..(start.saturating_add(page_size)).min(len);
        let range = match op {
            Operation::Resend => match self.bookmarks.get_mut(&key) {
                Some(bm) => {
                    bm.last_sent = Instant::now();
                    bm.last_wait = wait_time;
                    bm.last.clone()
                }
                // Nothing was ever served on this index, so there is nothing to replay.
                None => 0..0,
            },
            op => {
                let range = match op {
                    Operation::Epoch(epoch) => page(stream.timestamps.partition_point(|t| *t < epoch)),
                    Operation::Head => page(0),
                    Operation::Tail => len..len,
                    _ => page(self.bookmarks.get(&key).map_or(0, |b| b.pos).min(len)),
                };
                self.bookmarks.insert(
                    key,
                    Bookmark { pos: range.end, last: range.clone(), last_sent: Instant::now(), last_wait: wait_time },
                );
                range
            }
        };
        let records = stream.json.get(range).map(<[Arc<str>]>::to_vec).unwrap_or_default();
        Reply { status: 200, headers: Vec::new(), body: Body::Page { wait_time, records } }
    }
}
