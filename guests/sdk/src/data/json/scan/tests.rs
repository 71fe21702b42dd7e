use super::*;
use crate::data::json::field_raw;

/// Records as text with their fields as text, or why an element is not one.
type Read<const N: usize> = Option<Vec<Result<(String, [Option<String>; N]), String>>>;

/// What the serde path reads from `body`: records of `key` and each record's
/// `fields` (raw text), or `None` when serde refuses the body.
fn serde_way<const N: usize>(body: &[u8], key: &str, fields: [&str; N]) -> Option<Read<N>> {
    let _: serde::de::IgnoredAny = serde_json::from_slice(body).ok()?;
    let object = Object::parse(body).ok()?;
    let raw = match object.raw(key).ok()? {
        None => return Some(None),
        Some(raw) => raw,
    };
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).ok()?;
    Some(Some(
        items
            .into_iter()
            .map(|item| match Record::from_raw(item) {
                Ok(record) => {
                    let found = fields.map(|f| field_raw(&record, f).unwrap().map(|r| r.get().to_owned()));
                    Ok((record.into_string(), found))
                }
                Err(e) => Err(e.0),
            })
            .collect(),
    ))
}

fn scan_way<const N: usize>(body: &[u8], key: &str, fields: [&str; N]) -> Result<Read<N>, Unusual> {
    let page = scan_page(body, key, fields)?;
    Ok(page.records.map(|records| {
        records
            .into_iter()
            .map(|r| match r {
                Ok(s) => Ok((s.record.into_string(), s.fields.map(|f| f.map(|t| t.into_owned())))),
                Err(e) => Err(e.0),
            })
            .collect()
    }))
}

fn read_way<const N: usize>(body: &[u8], key: &str, fields: [&str; N]) -> Result<Read<N>, JsonError> {
    let page = read_page(body, key, fields)?;
    Ok(page.records.map(|records| {
        records
            .into_iter()
            .map(|r| match r {
                Ok(s) => Ok((s.record.into_string(), s.fields.map(|f| f.map(|t| t.into_owned())))),
                Err(e) => Err(e.0),
            })
            .collect()
    }))
}

/// The scanner agrees with serde wherever it answers, and answers for
/// every valid page (duplicate top-level keys aside); `read_page` agrees
/// with serde on every page and refuses what serde refuses.
fn agree(body: &str) {
    let fields = ["_id", "timestamp"];
    let scanned = scan_way(body.as_bytes(), "result", fields);
    let serde = serde_way(body.as_bytes(), "result", fields);
    match (&serde, read_way(body.as_bytes(), "result", fields)) {
        (Some(b), Ok(a)) => assert_eq!(&a, b, "read_page, body {body:?}"),
        (Some(_), Err(e)) => panic!("read_page refused a page serde reads: {body:?}: {e}"),
        (None, Ok(_)) => assert!(serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok(), "{body:?}"),
        (None, Err(_)) => {}
    }
    match (scanned, serde) {
        (Ok(a), Some(b)) => assert_eq!(a, b, "body {body:?}"),
        (Ok(a), None) => panic!("scanner accepted what serde refuses: {body:?} -> {a:?}"),
        (Err(Unusual), _) => {}
    }
}

#[test]
fn reads_records_and_fields_like_the_serde_path() {
    let body = r#"{"ok":1,"wait_time":"3","result":[{"_id":"a\"b","timestamp":1700000000,"x":{"_id":9}},{"timestamp":"17","_id":18446744073709551616},[1],"s",null,{},{"_id":null,"_id":"later"}]}"#;
    agree(body);
    let page = scan_page(body.as_bytes(), "result", ["_id", "timestamp"]).unwrap();
    assert_eq!(page.object.str("wait_time").unwrap().as_deref(), Some("3"));
    assert!(page.object.raw("result").unwrap().is_none(), "the records field is not among the others");
    let records = page.records.unwrap();
    let first = records[0].as_ref().unwrap();
    assert_eq!(first.fields[0].as_deref(), Some(r#""a\"b""#));
    assert_eq!(first.fields[1].as_deref(), Some("1700000000"));
    assert_eq!(records[2].as_ref().unwrap_err().0, "expected a JSON object, found an array");
    assert_eq!(records[4].as_ref().unwrap_err().0, "expected a JSON object, found null");
    assert_eq!(records[6].as_ref().unwrap().fields[0], None, "the first of duplicate keys wins, null is none");
}

#[test]
fn compacts_only_records_with_whitespace_and_reads_their_fields_compacted() {
    let body = "{ \"result\" : [ { \"_id\" : { \"a\" : 1 } , \"s\" : \"x  y\" } ,\n {\"_id\":\"c d\"} ] }";
    agree(body);
    let page = scan_page(body.as_bytes(), "result", ["_id"]).unwrap();
    let records = page.records.unwrap();
    let first = records[0].as_ref().unwrap();
    assert_eq!(first.record.as_str(), r#"{"_id":{"a":1},"s":"x  y"}"#);
    assert_eq!(first.fields[0].as_deref(), Some(r#"{"a":1}"#));
    assert_eq!(records[1].as_ref().unwrap().record.as_str(), r#"{"_id":"c d"}"#);
}

#[test]
fn read_page_takes_the_serde_path_for_unusual_pages() {
    // Duplicate keys: the first wins, as `Object` reads them.
    let page = read_page(br#"{"ok":1,"ok":2,"result":[{"_id":"a"}],"result":[]}"#, "result", ["_id"]).unwrap();
    assert_eq!(page.object.u64("ok").unwrap(), Some(1));
    assert!(page.object.raw("result").unwrap().is_none());
    let records = page.records.unwrap();
    assert_eq!(records[0].as_ref().unwrap().fields[0].as_deref(), Some(r#""a""#));
    // One object where an array was documented: one record.
    let page = read_page(br#"{"result":{ "_id" : 1 }}"#, "result", ["_id"]).unwrap();
    assert_eq!(page.records.unwrap()[0].as_ref().unwrap().record.as_str(), r#"{"_id":1}"#);
    // Deeper than the scan goes, and still valid.
    let deep = format!("{{\"result\":[{{\"a\":{}1{}}}]}}", "[".repeat(110), "]".repeat(110));
    assert_eq!(read_page(deep.as_bytes(), "result", ["_id"]).unwrap().records.unwrap().len(), 1);
    for (body, says) in [
        ("<html>", "expected a JSON object, found invalid JSON"),
        ("[1]", "expected a JSON object, found an array"),
        (r#"{"result":"x"}"#, "field `result`: expected an array of objects, found a string"),
        (r#"{"result":[{"a":01}]}"#, "not valid JSON"),
    ] {
        let e = read_page(body.as_bytes(), "result", ["_id"]).unwrap_err();
        assert!(e.message().contains(says), "{body}: {e}");
    }
}

#[test]
fn missing_or_null_records_field_is_none() {
    assert!(scan_page(br#"{"ok":1}"#, "result", ["_id"]).unwrap().records.is_none());
    assert!(scan_page(br#"{"ok":1,"result":null}"#, "result", ["_id"]).unwrap().records.is_none());
    assert_eq!(scan_page(br#"{"result":[]}"#, "result", ["_id"]).unwrap().records.unwrap().len(), 0);
}

#[test]
fn refuses_what_is_not_a_plain_page() {
    for body in [
        "",
        "[]",
        "{",
        r#"{"result":[{}]} x"#,
        r#"{"result":{"_id":1}}"#,
        r#"{"result":[],"result":[]}"#,
        r#"{"ok":1,"ok":2,"result":[]}"#,
        r#"{"result":[{"a":01}]}"#,
        r#"{"result":[{"a":1.}]}"#,
        r#"{"result":[{"a":-}]}"#,
        r#"{"result":[{"a":1e}]}"#,
        r#"{"result":[{"a":"\x"}]}"#,
        r#"{"result":[{"a":"\u12G4"}]}"#,
        "{\"result\":[{\"a\":\"tab\there\"}]}",
        r#"{"result":[{"a":tru}]}"#,
        r#"{"result":[{"a":1,}]}"#,
        r#"{"result":[{"a" 1}]}"#,
        r#"{"result":[{1:1}]}"#,
        r#"{"result":[,]}"#,
        "{\"result\":[{\"a\":\"\u{e9}\"}]}\u{0}",
    ] {
        assert_eq!(scan_page(body.as_bytes(), "result", ["_id"]).err(), Some(Unusual), "{body:?}");
    }
    assert_eq!(scan_page(b"{\"result\":[\"\xff\"]}", "result", ["_id"]).err(), Some(Unusual));
    let deep = format!("{{\"result\":[{{\"a\":{}1{}}}]}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(scan_page(deep.as_bytes(), "result", ["_id"]).err(), Some(Unusual));
}

#[test]
fn string_skipping_finds_every_special_byte_at_every_offset() {
    for pos in 0..20 {
        for special in ["\"", "\\n", "\\u00e9", "é", "\u{1}"] {
            let s = format!("{}{special}{}", "a".repeat(pos), "b".repeat(20 - pos));
            let body = format!(r#"{{"result":[{{"_id":"{s}","v":"{s}"}}]}}"#);
            agree(&body);
        }
    }
}

/// A small deterministic generator of JSON pages, then byte mutations of
/// them: wherever the scanner answers, it answers as serde does.
#[test]
fn agrees_with_serde_on_generated_and_mutated_pages() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3_000 {
        let mut body = String::from("{\"ok\":1,\"result\":[");
        for i in 0..rng.below(5) {
            if i > 0 {
                body.push(',');
            }
            value(&mut rng, &mut body, 0, true);
        }
        body.push_str("]}");
        agree(&body);
        if round % 2 == 0 {
            let mut bytes = body.into_bytes();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                bytes[at] = b"{}[]\",:\\ \n0e-.tnu\x01a"[rng.below(19)];
            }
            if let Ok(text) = String::from_utf8(bytes) {
                agree(&text);
            }
        }
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn ws(rng: &mut Rng, out: &mut String) {
    if rng.below(4) == 0 {
        out.push_str([" ", "\n", "\t ", "\r\n  "][rng.below(4)]);
    }
}

fn value(rng: &mut Rng, out: &mut String, depth: usize, record: bool) {
    ws(rng, out);
    let kind = if record { 0 } else { rng.below(if depth > 3 { 4 } else { 6 }) };
    match kind {
        0 => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                ws(rng, out);
                let key = ["\"_id\"", "\"timestamp\"", "\"a\"", "\"\\u005fid\"", "\"x y\""][rng.below(5)];
                out.push_str(key);
                ws(rng, out);
                out.push(':');
                value(rng, out, depth + 1, false);
            }
            ws(rng, out);
            out.push('}');
        }
        1 => out.push_str(["0", "-12", "3.25", "1e9", "18446744073709551616", "-0.5E-3"][rng.below(6)]),
        2 => out.push_str(
            ["\"\"", "\"abc def\"", "\"q\\\"q\"", "\"\\u00e9\\n\"", "\"é☃ long string of text\""][rng.below(5)],
        ),
        3 => out.push_str(["true", "false", "null"][rng.below(3)]),
        _ => {
            out.push('[');
            for i in 0..rng.below(3) {
                if i > 0 {
                    out.push(',');
                }
                value(rng, out, depth + 1, false);
            }
            ws(rng, out);
            out.push(']');
        }
    }
    ws(rng, out);
}
