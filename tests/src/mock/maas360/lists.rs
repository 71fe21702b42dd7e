//! The five MaaS360 lists of the mock tenant: synthetic records (mixed number/string types,
//! non-ASCII text, ids above 2^53, second-precision times), their order and filters, and the
//! paging envelope with its quirks.

use siphon_sdk::data::time::{format_rfc1123, format_rfc3339};

use super::super::http::{Request, Response};
use super::MockConfig;

/// The streams, as the collector names them.
pub const STREAMS: [&str; 5] = ["devices", "action_history", "admin_changes", "admin_logins", "compliance_events"];

/// Page sizes MaaS360 serves; another asked size gets 250.
const PAGE_SIZES: [usize; 5] = [25, 50, 100, 200, 250];

/// One record: when it happened (ms) and its exact text.
struct Item {
    ms: u64,
    text: String,
}

pub(super) struct Lists {
    start_ms: u64,
    history_ms: u64,
    items: [Vec<Item>; 5],
    /// Per device: the index of its current report in `items[0]`.
    current: Vec<usize>,
}

/// Which list a data path reads.
pub(super) fn route(path: &str, billing: &str) -> Option<usize> {
    let paths = [
        format!("/device-apis/devices/2.0/search/customer/{billing}"),
        format!("/device-apis/devices/1.0/searchActionHistory/{billing}"),
        format!("/account-provisioning/administrator/1.0/getAdminChangesAudit/customer/{billing}"),
        format!("/account-provisioning/administrator/1.0/getAdminLoginReports/customer/{billing}"),
        format!("/device-apis/devices/1.0/searchComplianceEvents/{billing}"),
    ];
    paths.iter().position(|p| p == path)
}

/// The key a collector dedups `stream`'s records on (vendor-apis.md §1.5), from a record's text.
pub fn key_of(stream: &str, text: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let get = |path: &str| {
        let found = path.split('.').fold(&v, |v, k| &v[k]);
        found.as_str().map_or_else(|| found.to_string(), str::to_owned)
    };
    let fields: &[&str] = match stream {
        "devices" => &["maas360DeviceID", "lastReportedInEpochms"],
        "action_history" => &["actionID"],
        "admin_changes" => &["updateDate", "performedBy", "administrator.username", "operationType"],
        "admin_logins" => &["username", "loginAttemptTime", "ipAddress"],
        _ => &["maas360DeviceID", "actionExecutionTime", "rule"],
    };
    fields.iter().map(|f| get(f)).collect::<Vec<_>>().join("|")
}

/// A number written as a JSON number or, every `every`-th time, as a string.
fn num(n: u64, i: usize, every: usize) -> String {
    if i % every == every - 1 { format!("\"{n}\"") } else { n.to_string() }
}

impl Lists {
    pub(super) fn new(start_ms: u64, history_ms: u64) -> Lists {
        Lists { start_ms, history_ms, items: Default::default(), current: Vec::new() }
    }

    fn index(stream: &str) -> usize {
        STREAMS.iter().position(|s| *s == stream).unwrap_or_else(|| panic!("no MaaS360 stream {stream:?}"))
    }

    /// `n` records of `stream` (after the seeds) stamped `now`, or `late_ms` before it: written
    /// late, they show up behind newer records (admin audits, §1.5).
    pub(super) fn add(&mut self, stream: &str, n: usize, now: u64, late_ms: u64) -> Vec<String> {
        let s = Self::index(stream);
        let seeding = self.items[s].is_empty();
        let first = self.start_ms.saturating_sub(self.history_ms);
        let mut keys = Vec::new();
        for j in 0..n {
            let last = self.items[s].last().map_or(0, |it| it.ms);
            // Seeds spread over the history; later records happen now (never before the last), or
            // were written `late_ms` after they happened.
            let at = match (seeding, late_ms) {
                (true, _) => first + self.history_ms * j as u64 / n as u64,
                (false, 0) => now.max(last),
                (false, late) => now.saturating_sub(late),
            };
            let device = if s == 0 { self.current.len() } else { self.items[s].len() % 97 };
            let item = self.make(s, at, device);
            keys.push(key_of(stream, &item.text));
            if s == 0 {
                self.current.push(self.items[0].len());
            }
            self.items[s].push(item);
        }
        keys
    }

    pub(super) fn report_again(&mut self, device_ids: &[String], now: u64) -> Vec<String> {
        let mut keys = Vec::new();
        for id in device_ids {
            let Some(device) = (0..self.current.len()).find(|d| device_id(*d) == *id) else { continue };
            let item = self.make(0, now, device);
            keys.push(key_of("devices", &item.text));
            self.current[device] = self.items[0].len();
            self.items[0].push(item);
        }
        keys
    }

    pub(super) fn records(&self, stream: &str) -> Vec<String> {
        self.items[Self::index(stream)].iter().map(|it| it.text.clone()).collect()
    }

    /// Record `i` of list `s` at `ms` (times of second-precision fields are floored).
    fn make(&self, s: usize, ms: u64, device: usize) -> Item {
        let i = self.items[s].len();
        let (id, user) = (device_id(device), format!("user{}", device % 13));
        let text = match s {
            0 => {
                let os = ["17", "\"17.5.1\"", "17.5"][i % 3];
                let imei = if i.is_multiple_of(2) {
                    (356_789_101_112_131 + i as u64).to_string()
                } else {
                    format!("\"35{i:013}\"")
                };
                let naive = format_rfc3339(ms).trim_end_matches('Z').to_owned();
                format!(
                    r#"{{"maas360DeviceID":"{id}","deviceName":"DEV-{device}","username":"{user}","emailAddress":"{user}@example.com","platformName":"iOS","osName":"iOS","osVersion":{os},"deviceType":"Smartphone","manufacturer":"Apple","lastReported":"{naive}","lastReportedInEpochms":{},"maas360ManagedStatus":"Enrolled","imeiEsn":{imei},"phoneNumber":"","isSupervisedDevice":true,"testDevice":false,"customAssetNumber":"J\u00f6rg ✓ {i}"}}"#,
                    num(ms, i, 4)
                )
            }
            1 => {
                let ms = ms / 1000 * 1000;
                let kind = ["Locate Device", "Buzz Device", "Selective Wipe", "Send Message"][i % 4];
                let action = num(9_007_199_254_740_993 + 2 * i as u64, i, 5);
                let at = format_rfc1123(ms);
                return Item {
                    ms,
                    text: format!(
                        r#"{{"actionID":{action},"actionType":"{kind}","actionStatus":"Executed","maas360DeviceID":"{id}","deviceName":"DEV-{device}","performedBy":"it.admin@example.com","actionTime":"{at}","comments":"ticket \"INC{i}\" — überprüft"}}"#
                    ),
                };
            }
            2 => format!(
                r#"{{"updateDate":{},"performedBy":"it.admin@example.com","operationType":"{}","ipAddress":"203.0.113.{}","administrator":{{"email":"admin{i}@example.com","username":"admin{i}","firstName":"Zoë","middleName":"","lastName":"Doe","accountStatus":"Active","lastLoginTime":{},"rolesAdded":"Help Desk","rolesDeleted":"","previousState":""}}}}"#,
                num(ms, i, 3),
                ["CHANGE", "ADD", "DELETE"][i % 3],
                i % 250,
                ms.saturating_sub(86_400_000)
            ),
            3 => {
                let (logout, duration) = if i.is_multiple_of(3) {
                    ("\"\"".to_owned(), "\"\"")
                } else {
                    ((ms + 600_000).to_string(), "10.0")
                };
                format!(
                    r#"{{"username":"{user}","loginAttemptTime":{},"logoutTime":{logout},"duration":{duration},"operatingSystem":"Windows 10","browserVersion":"Chrome 130.0","ipAddress":"198.51.100.{}","authStatus":"{}"}}"#,
                    num(ms, i, 4),
                    i % 250,
                    ["Successful", "User Authentication Failed", "Device Authentication Failed"][i % 3]
                )
            }
            _ => {
                let ms = ms / 1000 * 1000;
                let id = device_id(10_000 + i);
                let rule = ["Jailbreak detected", "Passcode missing", "OS out of date"][i % 3];
                return Item {
                    ms,
                    text: format!(
                        r#"{{"maas360DeviceID":"{id}","deviceName":"DEV-{i}","username":"{user}","platformName":"iOS","ruleset":"Corporate iOS Rules","rule":"{rule}","action":"Change Policy","actionStatus":"Executed","actionExecutionTime":"{}"}}"#,
                        format_rfc3339(ms)
                    ),
                };
            }
        };
        Item { ms, text }
    }

    /// One page of list `s`, as MaaS360 renders it.
    pub(super) fn page(&self, s: usize, request: &Request, json: bool, (cfg, now): (&MockConfig, u64)) -> Response {
        let param = |k: &str| request.param(k).and_then(|v| v.trim().parse::<u64>().ok());
        let asked = param("pageSize").map_or(250, |n| n as usize);
        let size = if PAGE_SIZES.contains(&asked) { asked } else { 250 };
        let mut number = param("pageNumber").unwrap_or(1).max(1) as usize;
        let mut list: Vec<&Item> = match s {
            0 => {
                let after = param("lastReportedAfterInEpochms").unwrap_or(0);
                let keep = |ms: u64| if cfg.inclusive_device_filter { ms >= after } else { ms > after };
                let mut reports: Vec<usize> =
                    self.current.iter().copied().filter(|&i| keep(self.items[0][i].ms)).collect();
                // By the second-precision `lastReported`, so not by the millisecond within a second
                // (there, in the order the reports came).
                reports.sort_by_key(|&i| (self.items[0][i].ms / 1000, i));
                let mut devices: Vec<&Item> = reports.into_iter().map(|i| &self.items[0][i]).collect();
                if request.param("sortOrder") == Some("dsc") {
                    devices.reverse();
                }
                devices
            }
            2 | 3 => {
                let (Some(from), Some(to)) = (param("fromDate"), param("toDate")) else {
                    return Response::json(400, r#"{"errorDesc":"fromDate and toDate (epoch ms) are required"}"#);
                };
                let mut list: Vec<&Item> =
                    self.items[s].iter().rev().filter(|it| (from..=to).contains(&it.ms)).collect();
                list.sort_by_key(|it| std::cmp::Reverse(it.ms)); // late writes among the older ones
                list
            }
            _ => self.items[s].iter().rev().filter(|it| it.ms <= now).collect(),
        };
        let total = list.len();
        if s == 4 && number > 1 && (number - 1) * size >= total {
            number = 1; // past the end: MaaS360 answers page 1 again
        }
        list = list.into_iter().skip((number - 1) * size).take(size).collect();
        let (plural, singular) = [
            ("devices", "device"),
            ("actionHistory", "action"),
            ("adminChanges", "adminChange"),
            ("loginEvents", "loginEvent"),
            ("complianceEvents", "complianceEvent"),
        ][s];
        let count = if cfg.count_is_total { total } else { list.len() };
        let page_size = if list.is_empty() { 0 } else { size };
        if !json {
            return Response::bytes(
                200,
                "application/xml",
                format!(
                    "<{plural}><count>{count}</count><pageNumber>{number}</pageNumber><pageSize>{page_size}</pageSize></{plural}>"
                ),
            );
        }
        // Every other page carries its numbers as strings.
        let n = |v: usize| if number.is_multiple_of(2) { format!("\"{v}\"") } else { v.to_string() };
        let items: Vec<&str> = list.iter().map(|it| it.text.as_str()).collect();
        let body = match items.as_slice() {
            [] => String::new(),
            [one] => format!(", \"{singular}\": {one}"),
            many => format!(", \"{singular}\": [\n  {}\n]", many.join(",\n  ")),
        };
        Response::json(
            200,
            format!(
                r#"{{"{plural}": {{"count": {}, "pageNumber": {}, "pageSize": {}{body}}}}}"#,
                n(count),
                n(number),
                n(page_size)
            ),
        )
    }
}

fn device_id(device: usize) -> String {
    format!("ApplC39XK{device:06}")
}
