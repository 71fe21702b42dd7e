//! `siphon:collector/json`: the page scan of `siphon-scan`, run natively on
//! the body in guest memory (read in place, never copied). The answer is
//! byte offsets only; the guest checks each against its own copy.
//!
//! The source's `max_response_buffer` bounds the work: a body larger than
//! it (no response the host delivered can be), or a page whose answer would
//! take more host memory than it (32 bytes per element or field entry), is
//! answered `none`, and the collector reads it with its own parser inside
//! its memory limit.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList, WasmStr};

use crate::bindings::json::{Element, ElementKind, Host, PageScan, Span};
use crate::imports::HostState;
use crate::limits::{Limits, bytes};

/// Most fields a scan looks up per record.
pub const MAX_FIELDS: usize = 64;

/// Host bytes counted per element or field entry of a scan.
const ENTRY_COST: usize = 32;

/// The scan of `body` under `limits`, as the WIT answers it.
fn scan(limits: &Limits, body: &[u8], records_key: &str, fields: &[&str]) -> Option<PageScan> {
    let buffer = bytes(limits.max_response_buffer);
    if fields.len() > MAX_FIELDS || body.len() > buffer || u32::try_from(body.len()).is_err() {
        return None;
    }
    let scan = siphon_scan::scan_page(body, records_key, fields, buffer / ENTRY_COST).ok()?;
    // Every offset is at most `body.len()`, checked above to fit a u32.
    let span = |r: std::ops::Range<usize>| Span { start: r.start as u32, end: r.end as u32 };
    Some(PageScan {
        object: scan.object.into_iter().map(|(k, v)| (span(k), span(v))).collect(),
        records: scan.records.map(|elements| {
            elements
                .into_iter()
                .map(|e| Element {
                    span: span(e.span),
                    kind: match e.kind {
                        siphon_scan::Kind::Compact => ElementKind::Compact,
                        siphon_scan::Kind::Spaced => ElementKind::Spaced,
                        siphon_scan::Kind::Other => ElementKind::Other,
                    },
                })
                .collect()
        }),
        fields: scan.fields.into_iter().map(|f| f.map(span)).collect(),
    })
}

/// `scan-page` reading the body in place in guest memory.
fn scan_in_place(
    store: &mut StoreContextMut<'_, HostState>,
    body: &WasmList<u8>,
    records_key: &WasmStr,
    fields: &WasmList<WasmStr>,
) -> wasmtime::Result<Option<PageScan>> {
    if fields.len() > MAX_FIELDS {
        return Ok(None);
    }
    let mut handles = Vec::with_capacity(fields.len());
    for i in 0..fields.len() {
        let Some(name) = fields.get(&mut *store, i) else { break };
        handles.push(name?);
    }
    // Everything below borrows guest memory in place: no copy of the body
    // or the names, whatever their size.
    let store = &*store;
    let names = handles.iter().map(|h| h.to_str(store)).collect::<wasmtime::Result<Vec<_>>>()?;
    let names: Vec<&str> = names.iter().map(|n| n.as_ref()).collect();
    let key = records_key.to_str(store)?;
    Ok(scan(&store.data().run.source.limits, body.as_le_slice(store), &key, &names))
}

/// Link the in-place `scan-page` over the generated one.
pub(super) fn add_in_place_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.instance("siphon:collector/json@0.1.0")?.func_wrap(
        "scan-page",
        |mut store: StoreContextMut<'_, HostState>,
         (body, records_key, fields): (WasmList<u8>, WasmStr, WasmList<WasmStr>)| {
            Ok((scan_in_place(&mut store, &body, &records_key, &fields)?,))
        },
    )
}

impl Host for HostState {
    async fn scan_page(
        &mut self,
        body: Vec<u8>,
        records_key: String,
        fields: Vec<String>,
    ) -> wasmtime::Result<Option<PageScan>> {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        Ok(scan(&self.run.source.limits, &body, &records_key, &fields))
    }
}

#[cfg(test)]
mod tests {
    use bytesize::ByteSize;

    use super::*;

    fn limits(buffer: u64) -> Limits {
        Limits { max_response_buffer: ByteSize::b(buffer), ..Limits::default() }
    }

    #[test]
    fn answers_offsets_into_the_body() {
        let body = br#"{"ok":1,"result":[{"_id":"a","ts":null},{ "_id" : 2 },[3]]}"#;
        let page = scan(&limits(1 << 20), body, "result", &["_id", "ts"]).unwrap();
        let text = |s: &Span| std::str::from_utf8(&body[s.start as usize..s.end as usize]).unwrap();
        assert_eq!(page.object.iter().map(|(k, v)| (text(k), text(v))).collect::<Vec<_>>(), [("ok", "1")]);
        let records = page.records.unwrap();
        let kinds: Vec<_> = records.iter().map(|e| (text(&e.span), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (r#"{"_id":"a","ts":null}"#, ElementKind::Compact),
                (r#"{ "_id" : 2 }"#, ElementKind::Spaced),
                ("[3]", ElementKind::Other)
            ]
        );
        let fields: Vec<_> = page.fields.iter().map(|f| f.as_ref().map(text)).collect();
        assert_eq!(fields, [Some(r#""a""#), None, None, None, None, None], "null is absent; spaced are not read");
    }

    #[test]
    fn unusual_or_oversized_pages_are_left_to_the_collector() {
        let body = br#"{"result":[{},{},{},{}]}"#;
        assert!(scan(&limits(1 << 20), body, "result", &["_id"]).is_some());
        assert!(scan(&limits(1 << 20), br#"{"result":[{"a":01}]}"#, "result", &["_id"]).is_none(), "invalid JSON");
        assert!(scan(&limits(body.len() as u64 - 1), body, "result", &[]).is_none(), "body above the buffer");
        // 4 elements and 4 field entries at 32 bytes each: 256 bytes.
        assert!(scan(&limits(255), body, "result", &["_id"]).is_none(), "answer above the buffer");
        assert!(scan(&limits(1 << 20), body, "result", &["f"; MAX_FIELDS + 1]).is_none(), "too many fields");
    }
}
