//! The native baseline: what a small single-threaded Rust program does to
//! collect the same alerts from the same mock, without siphon — the work
//! siphon's collector and host do, written the ordinary native way.
//!
//! Per page: GET the dataexport page (reqwest), split `result` with serde_json
//! `RawValue` (records stay byte-exact), read each record's `_id` and
//! `timestamp` (serde, per record) for dedup (a `HashSet` of ids) and the
//! resume point, write the records as NDJSON (flate2 gzip when asked), create
//! the object (fsync), then write the cursor file (fsync, rename). Paging is
//! the collector's: an epoch start, then `operation=next` while pages are full.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

/// What the baseline delivered.
pub struct Delivered {
    /// Records written.
    pub records: u64,
    /// Bytes of objects written.
    pub bytes: u64,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    ok: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow, rename = "_id")]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
}

/// Collects `types` from the mock at `base` into `out` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub async fn collect(
    base: &str,
    token: &str,
    types: &[&str],
    index: &str,
    full_page: usize,
    max_pages: usize,
    gzip: bool,
    out: &Path,
) -> anyhow::Result<Delivered> {
    let client = siphon_tests::http_client(None)?;
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() - 24 * 3_600;
    let mut delivered = Delivered { records: 0, bytes: 0 };
    let mut seq = 0u32;
    std::fs::create_dir_all(out)?;
    for alert_type in types {
        let mut seen: HashSet<String> = HashSet::new();
        let mut last_ts = 0u64;
        let mut op = start.to_string();
        for _ in 0..max_pages {
            let url = format!("{base}/api/v2/events/dataexport/alerts/{alert_type}");
            let body = client
                .get(&url)
                .query(&[("index", index), ("operation", op.as_str())])
                .header("Netskope-Api-Token", token)
                .header("Accept", "application/json")
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            op = "next".to_owned();
            let page: Envelope = serde_json::from_slice(&body)?;
            anyhow::ensure!(matches!(page.ok.map(RawValue::get), Some("1" | "true")), "page not ok");
            let items = page.result.unwrap_or_default();
            let mut ndjson = Vec::with_capacity(body.len());
            for raw in &items {
                let keys: Keys = serde_json::from_str(raw.get())?;
                let id = match keys.id {
                    Some(id) if id.get().starts_with('"') => serde_json::from_str::<String>(id.get())?,
                    Some(id) => id.get().to_owned(),
                    None => raw.get().to_owned(),
                };
                if let Some(ts) = keys.timestamp.and_then(|t| t.get().trim_matches('"').parse::<u64>().ok()) {
                    last_ts = last_ts.max(ts);
                }
                if seen.insert(id) {
                    ndjson.extend_from_slice(raw.get().as_bytes());
                    ndjson.push(b'\n');
                    delivered.records += 1;
                }
            }
            if !ndjson.is_empty() {
                let body = if gzip {
                    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    enc.write_all(&ndjson)?;
                    enc.finish()?
                } else {
                    ndjson
                };
                let ext = if gzip { "ndjson.gz" } else { "ndjson" };
                let name = out.join(format!("{seq:06}.{ext}"));
                seq += 1;
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&name)?;
                f.write_all(&body)?;
                f.sync_all()?;
                delivered.bytes += body.len() as u64;
                let state = out.join(".state.json.tmp");
                let mut s = std::fs::File::create(&state)?;
                write!(s, "{{\"type\":\"{alert_type}\",\"last_ts\":{last_ts}}}")?;
                s.sync_all()?;
                std::fs::rename(&state, out.join(".state.json"))?;
            }
            if items.len() < full_page {
                break;
            }
        }
    }
    Ok(delivered)
}
