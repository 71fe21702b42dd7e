//! Synthetic Netskope alert records with the field set of `vendor-apis.md` §4.5.
//!
//! Each record is rendered to JSON text once, when it is generated, so that serving a
//! 10,000-record page is a concatenation of ready strings rather than a re-serialisation.
//! Values come from an RNG seeded by (seed, alert type, sequence number): the same calls
//! give the same records on every run, whatever the batching.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One generated alert: what the iterator needs to find it and the bytes it serves.
pub(crate) struct Generated {
    pub id: String,
    pub timestamp: u64,
    pub json: Arc<str>,
}

/// Where the next alert of a type continues from.
pub(crate) struct Cursor<'a> {
    pub seed: u64,
    pub alert_type: &'a str,
    /// Position of this alert within its type (0-based).
    pub seq: u64,
    /// Timestamp of the previous alert of the type, or the base epoch for the first one.
    pub prev_timestamp: u64,
    /// Counter over all types, so `_id`s never collide across types.
    pub serial: u64,
    /// Wall-clock epoch seconds; timestamps are kept from running ahead of it.
    pub now_epoch: u64,
}

#[derive(Serialize)]
struct Alert<'a> {
    #[serde(rename = "_id")]
    id: &'a str,
    timestamp: u64,
    #[serde(rename = "_insertion_epoch_timestamp")]
    insertion: u64,
    #[serde(rename = "_creation_timestamp")]
    creation: u64,
    // Milliseconds, and only on some records, as §4.6 warns.
    #[serde(rename = "_ef_received_at", skip_serializing_if = "Option::is_none")]
    ef_received_at: Option<u64>,
    alert: &'static str,
    alert_type: &'static str,
    alert_name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    acked: &'static str,
    access_method: &'static str,
    action: &'static str,
    activity: &'static str,
    app: &'static str,
    appcategory: &'static str,
    cci: u32,
    ccl: &'static str,
    policy: &'static str,
    user: &'static str,
    ur_normalized: &'static str,
    userip: String,
    srcip: String,
    dstip: String,
    src_country: &'static str,
    dst_country: &'static str,
    hostname: &'static str,
    device: &'static str,
    os: &'static str,
    browser: &'static str,
    site: &'static str,
    url: String,
    traffic_type: &'static str,
    severity: &'static str,
    #[serde(flatten)]
    dlp: Option<DlpFields>,
    #[serde(flatten)]
    file: Option<FileFields>,
    #[serde(flatten)]
    malware: Option<MalwareFields>,
}

#[derive(Serialize)]
struct DlpFields {
    dlp_profile: &'static str,
    dlp_rule: &'static str,
    // Above 2^53 and odd, so a client that goes through f64 visibly corrupts it.
    dlp_incident_id: u64,
}

#[derive(Serialize)]
struct FileFields {
    object: &'static str,
    object_type: &'static str,
    file_type: &'static str,
    file_size: u64,
    md5: String,
}

#[derive(Serialize)]
struct MalwareFields {
    malware_name: &'static str,
    malware_type: &'static str,
    sha256: String,
}

/// Which extra field groups a type carries.
#[derive(Clone, Copy, PartialEq)]
enum Detail {
    None,
    Dlp,
    Malware,
    File,
}

/// Per-type spellings and names. `labels` holds the `alert_type` spellings seen in real data
/// (§4.5: lowercase in Elastic's mock, capitalised elsewhere); records cycle through them so a
/// collector that compares case-sensitively is caught.
struct Profile {
    labels: &'static [&'static str],
    names: &'static [&'static str],
    detail: Detail,
}

fn profile(alert_type: &str) -> Profile {
    let (labels, names, detail): (&'static [&'static str], &'static [&'static str], Detail) = match alert_type {
        "dlp" => (
            &["DLP", "dlp"],
            &["PCI - Credit card upload", "GDPR - Personal data share", "Source code exfiltration"],
            Detail::Dlp,
        ),
        "malware" => {
            (&["Malware", "malware"], &["Malware detected in download", "Ransomware payload blocked"], Detail::Malware)
        }
        "policy" => (&["policy", "Policy"], &["Block personal webmail", "Alert on unsanctioned storage"], Detail::None),
        "compromisedcredential" => {
            (&["Compromised Credential", "compromisedcredential"], &["Compromised credential detected"], Detail::None)
        }
        "ctep" => (&["ctep"], &["Threat protection: suspicious domain"], Detail::None),
        "malsite" => (&["malsite", "Malsite"], &["Malicious site access blocked"], Detail::None),
        "quarantine" => (&["quarantine", "Quarantine"], &["File quarantined"], Detail::File),
        "remediation" => (&["Remediation", "remediation"], &["Public link removed"], Detail::File),
        "securityassessment" => {
            (&["Security Assessment", "securityassessment"], &["CSPM: storage bucket publicly readable"], Detail::None)
        }
        "uba" => (&["uba", "UBA"], &["Bulk download anomaly", "Login from new country"], Detail::None),
        "watchlist" => (&["watchlist", "Watchlist"], &["Watchlist user activity"], Detail::None),
        "device" => (&["Device", "device"], &["Unmanaged device classified"], Detail::None),
        "content" => (&["Content", "content"], &["Content inspection match"], Detail::File),
        _ => (&["alert"], &["Custom alert"], Detail::None),
    };
    Profile { labels, names, detail }
}

const USERS: &[(&str, &str)] = &[
    ("jdoe@example.com", "LAPTOP-JDOE"),
    ("josé.müller@example.com", "NB-JMUELLER"),
    ("a.smith@example.com", "MBP-ASMITH"),
    ("li.wei@example.com", "DESKTOP-LIWEI"),
    ("svc-backup@example.com", "srv-backup-01"),
];

/// (app, category, cci, ccl, url)
const APPS: &[(&str, &str, u32, &str, &str)] = &[
    ("Google Drive", "Cloud Storage", 81, "high", "drive.google.com/upload"),
    ("Box", "Cloud Storage", 92, "excellent", "app.box.com/folder/0"),
    ("Microsoft OneDrive for Business", "Cloud Storage", 90, "excellent", "example-my.sharepoint.com/personal"),
    ("Gmail", "Webmail", 74, "medium", "mail.google.com/mail/u/0"),
    ("Slack", "Collaboration", 83, "high", "example.slack.com/files"),
    ("WeTransfer", "Cloud Storage", 45, "low", "wetransfer.com/uploads"),
];

/// (object, file_type)
const OBJECTS: &[(&str, &str)] = &[
    ("Q3-payments.xlsx", "Microsoft Excel Spreadsheet"),
    ("Q3-paiements-été.xlsx", "Microsoft Excel Spreadsheet"),
    ("年度报告_2024.pdf", "PDF document"),
    ("customers-export.csv", "CSV text"),
    ("design-review.pptx", "Microsoft PowerPoint Presentation"),
];

/// (profile, rule)
const DLP: &[(&str, &str)] =
    &[("PCI-DSS", "Credit Card Number"), ("GDPR", "EU National ID"), ("Source Code", "Private Key Material")];

/// (name, type)
const MALWARE: &[(&str, &str)] =
    &[("Trojan.GenericKD.46542", "Trojan"), ("EICAR-Test-File", "Test File"), ("Ransom.WannaCry", "Ransomware")];

const DEVICES: &[(&str, &str, &str)] = &[
    ("Windows Device", "Windows 11", "Chrome"),
    ("Mac Device", "macOS 14", "Safari"),
    ("Windows Device", "Windows 10", "Edge"),
    ("Linux Device", "Ubuntu 22.04", "Firefox"),
];

const ACCESS: &[&str] = &["Client", "Reverse Proxy", "API Connector"];
const ACTIONS: &[&str] = &["block", "alert", "allow", "useralert"];
const ACTIVITIES: &[&str] = &["Upload", "Download", "Share", "Login Successful"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "JP", "BR"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];
const POLICIES: &[&str] = &["Block PCI to personal storage", "Alert on unsanctioned apps", "Default"];

/// Generates the alert at `cur.seq` of `cur.alert_type`.
pub(crate) fn generate(cur: &Cursor<'_>) -> Generated {
    let mut rng = StdRng::seed_from_u64(mix(cur.seed ^ type_tag(cur.alert_type) ^ mix(cur.seq)));
    let prof = profile(cur.alert_type);

    // Several alerts per second happen in real tenants, hence steps of 0; never run ahead of
    // the wall clock, so a long-running mock keeps producing "recent" data.
    let stepped = cur.prev_timestamp + rng.random_range(0..=5);
    let timestamp = if stepped > cur.now_epoch { cur.prev_timestamp.max(cur.now_epoch) } else { stepped };
    let creation = timestamp + rng.random_range(0..=10);
    let insertion = creation + rng.random_range(5..=90);

    let id = format!(
        "{:08x}{:010x}{:06x}",
        timestamp & 0xffff_ffff,
        type_tag(cur.alert_type) & 0xff_ffff_ffff,
        cur.serial & 0xff_ffff
    );
    let (user, hostname) = pick(&mut rng, USERS);
    let (app, appcategory, cci, ccl, url) = pick(&mut rng, APPS);
    let (device, os, browser) = pick(&mut rng, DEVICES);
    let file = (prof.detail != Detail::None).then(|| {
        let (object, file_type) = pick(&mut rng, OBJECTS);
        FileFields {
            object,
            object_type: "File",
            file_type,
            file_size: rng.random_range(512..=50_000_000),
            md5: hex(&mut rng, 32),
        }
    });
    let dlp = (prof.detail == Detail::Dlp).then(|| {
        let (dlp_profile, dlp_rule) = pick(&mut rng, DLP);
        DlpFields { dlp_profile, dlp_rule, dlp_incident_id: rng.random_range(1u64 << 60..1u64 << 63) | 1 }
    });
    let malware = (prof.detail == Detail::Malware).then(|| {
        let (malware_name, malware_type) = pick(&mut rng, MALWARE);
        MalwareFields { malware_name, malware_type, sha256: hex(&mut rng, 64) }
    });
    let alert = Alert {
        id: &id,
        timestamp,
        insertion,
        creation,
        ef_received_at: cur.seq.is_multiple_of(3).then(|| insertion * 1000 + rng.random_range(0..1000)),
        alert: "yes",
        alert_type: prof.labels[(cur.seq as usize) % prof.labels.len()],
        alert_name: pick(&mut rng, prof.names),
        kind: "nspolicy",
        acked: "false",
        access_method: pick(&mut rng, ACCESS),
        action: pick(&mut rng, ACTIONS),
        activity: pick(&mut rng, ACTIVITIES),
        app,
        appcategory,
        cci,
        ccl,
        policy: pick(&mut rng, POLICIES),
        user,
        ur_normalized: user,
        userip: format!("10.{}.{}.{}", rng.random_range(0..=255), rng.random_range(0..=255), rng.random_range(1..=254)),
        srcip: format!("198.51.100.{}", rng.random_range(1..=254)),
        dstip: format!("203.0.113.{}", rng.random_range(1..=254)),
        src_country: pick(&mut rng, COUNTRIES),
        dst_country: pick(&mut rng, COUNTRIES),
        hostname,
        device,
        os,
        browser,
        site: app,
        url: url.to_string(),
        traffic_type: "CloudApp",
        severity: pick(&mut rng, SEVERITIES),
        file,
        dlp,
        malware,
    };
    let json = match serde_json::to_string(&alert) {
        Ok(text) => text,
        // Serialising plain strings and integers into a String cannot fail; keep the record
        // well-formed anyway rather than panicking inside the server.
        Err(e) => serde_json::json!({ "_id": id, "timestamp": timestamp, "error": e.to_string() }).to_string(),
    };
    Generated { id, timestamp, json: json.into() }
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..len).map(|_| DIGITS[rng.random_range(0..16)] as char).collect()
}

/// FNV-1a of the type name: a stable per-type tag for seeds and `_id`s.
fn type_tag(alert_type: &str) -> u64 {
    alert_type.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// splitmix64 finaliser: spreads nearby inputs (consecutive sequence numbers) over the seed space.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(alert_type: &str, seq: u64) -> Cursor<'_> {
        Cursor { seed: 7, alert_type, seq, prev_timestamp: 1_722_280_000, serial: seq, now_epoch: 1_800_000_000 }
    }

    #[test]
    fn same_cursor_gives_same_bytes() {
        let a = generate(&cursor("dlp", 3));
        let b = generate(&cursor("dlp", 3));
        assert_eq!(a.json, b.json);
        assert_ne!(a.json, generate(&cursor("dlp", 4)).json);
    }

    #[test]
    fn dlp_record_has_the_documented_fields() {
        let g = generate(&cursor("dlp", 0));
        let v: serde_json::Value = serde_json::from_str(&g.json).unwrap();
        assert_eq!(v["_id"].as_str().unwrap().len(), 24);
        assert_eq!(v["_id"], g.id.as_str());
        for k in [
            "timestamp",
            "_insertion_epoch_timestamp",
            "_creation_timestamp",
            "dlp_profile",
            "dlp_rule",
            "object",
            "md5",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        let incident = v["dlp_incident_id"].as_u64().unwrap();
        assert!(incident > 1 << 53);
        assert!(g.json.contains(&incident.to_string()));
        assert!(v.get("malware_name").is_none());
    }

    #[test]
    fn timestamps_do_not_pass_the_wall_clock() {
        let mut cur = cursor("policy", 0);
        cur.prev_timestamp = 1_000;
        cur.now_epoch = 1_000;
        assert_eq!(generate(&cur).timestamp, 1_000);
    }
}
