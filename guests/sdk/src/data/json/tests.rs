use super::*;

fn texts(records: &[Record]) -> Vec<&str> {
    records.iter().map(Record::as_str).collect()
}

#[test]
fn split_an_array_keeps_bytes_exact() {
    let body = "[ {\"id\": 18446744073709551616, \"u\": \"\\u00e9é\", \"f\": 1.50e+3},\n  {\"b\": [1, 2]} ]";
    let records = split_records(body.as_bytes()).unwrap();
    assert_eq!(texts(&records), [r#"{"id":18446744073709551616,"u":"\u00e9é","f":1.50e+3}"#, r#"{"b":[1,2]}"#]);
}

#[test]
fn split_one_object_where_an_array_was_expected() {
    let records = split_records(b" {\"id\": 1} \n").unwrap();
    assert_eq!(texts(&records), [r#"{"id":1}"#]);
}

#[test]
fn split_empty_array_and_null_give_no_records() {
    assert!(split_records(b"[]").unwrap().is_empty());
    assert!(split_records(b"null").unwrap().is_empty());
}

#[test]
fn split_names_the_bad_element() {
    assert_eq!(split_records(b"[{}, 3]").unwrap_err().message(), "element 1: expected a JSON object, found a number");
    assert_eq!(split_records(b"\"x\"").unwrap_err().message(), "expected an array of objects, found a string");
    assert!(split_records(b"[{}").unwrap_err().message().starts_with("not valid JSON"));
    assert!(split_records(b"[{}] x").unwrap_err().message().starts_with("not valid JSON"));
    assert_eq!(split_records(b"[\"\xff\"]").unwrap_err().message(), "not UTF-8 (at byte 2)");
}

#[test]
fn object_finds_records_and_paging_fields_in_one_parse() {
    let body = br#"{"meta": {"next": "c2", "count": "2"}, "data": {"events": [{"a": 1}, {"a": 2}]}, "ok": true}"#;
    let page = Object::parse(body).unwrap();
    assert_eq!(texts(&page.records("data.events").unwrap()), [r#"{"a":1}"#, r#"{"a":2}"#]);
    assert_eq!(page.str("meta.next").unwrap().as_deref(), Some("c2"));
    assert_eq!(page.u64("meta.count").unwrap(), Some(2));
    assert_eq!(page.i64("meta.count").unwrap(), Some(2));
    assert_eq!(page.get::<bool>("ok").unwrap(), Some(true));
    assert!(page.raw("meta.missing").unwrap().is_none());
    let keys: Vec<&str> = page.fields().map(|(k, _)| k).collect();
    assert_eq!(keys, ["meta", "data", "ok"]);
    assert_eq!(page.raw("ok").unwrap().map(RawValue::get), Some("true"));
}

#[test]
fn object_records_missing_null_and_wrong_type() {
    let page = Object::parse(br#"{"events": null, "data": {"items": {"id": 7}}, "n": 3}"#).unwrap();
    assert!(page.records("events").unwrap().is_empty());
    assert_eq!(texts(&page.records("data.items").unwrap()), [r#"{"id":7}"#]);
    assert_eq!(
        page.records("evnets").unwrap_err().message(),
        "field `evnets`: missing (the body has: events, data, n)"
    );
    assert!(page.records_or_empty("evnets").unwrap().is_empty());
    assert_eq!(page.records("n").unwrap_err().message(), "field `n`: expected an array of objects, found a number");
}

#[test]
fn records_at_a_path() {
    let body = br#"{"data": [{"x": "y"}], "total": 1}"#;
    assert_eq!(texts(&records_at(body, "data").unwrap()), [r#"{"x":"y"}"#]);
}

#[test]
fn object_refuses_non_objects() {
    assert_eq!(Object::parse(b" [1]").unwrap_err().message(), "expected a JSON object, found an array");
    assert!(Object::parse(b"{\"a\": 1} {").is_err());
    assert!(Object::parse(b"{\"a\": }").is_err());
}

#[test]
fn object_keys_with_escapes() {
    let page = Object::parse(br#"{"a\u0062": 1, "c": 2}"#).unwrap();
    assert_eq!(page.u64("ab").unwrap(), Some(1));
}

#[test]
fn field_str_decodes_strings_and_keeps_numbers_exact() {
    let r = Record::parse(r#"{"id": 4871139218723649281, "s": "plain", "e": "a\"b\u00e9", "f": -1.50e3, "b": true}"#)
        .unwrap();
    assert_eq!(field_str(&r, "id").unwrap().as_deref(), Some("4871139218723649281"));
    assert!(matches!(field_str(&r, "s").unwrap(), Some(Cow::Borrowed("plain"))));
    assert_eq!(field_str(&r, "e").unwrap().as_deref(), Some("a\"bé"));
    assert_eq!(field_str(&r, "f").unwrap().as_deref(), Some("-1.50e3"));
    assert_eq!(field_str(&r, "b").unwrap_err().message(), "field `b`: expected a string or number, found a boolean");
    assert_eq!(field_str(&r, "nope").unwrap(), None);
}

#[test]
fn field_raw_walks_objects_and_arrays() {
    let json = r#"{"user": {"name": "n", "roles": [{"r": "admin"}, null]}, "n": null, "s": "x"}"#;
    assert_eq!(field_raw(json, "user.roles.0.r").unwrap().map(RawValue::get), Some(r#""admin""#));
    assert!(field_raw(json, "user.roles.1").unwrap().is_none());
    assert!(field_raw(json, "user.roles.2").unwrap().is_none());
    assert!(field_raw(json, "user.roles.x").unwrap().is_none());
    assert!(field_raw(json, "n").unwrap().is_none());
    assert!(field_raw(json, "n.deeper").unwrap().is_none());
    assert!(field_raw(json, "s.deeper").unwrap().is_none());
    assert_eq!(field_raw(json, "").unwrap().map(RawValue::get), Some(json));
    // Pretty-printed values come back as sent.
    assert_eq!(field_raw("{\"a\": [1, 2]}", "a").unwrap().map(RawValue::get), Some("[1, 2]"));
}

#[test]
fn field_first_duplicate_key_wins() {
    assert_eq!(field_u64(r#"{"a": 1, "a": 2}"#, "a").unwrap(), Some(1));
}

#[test]
fn field_lookup_rejects_invalid_json() {
    assert!(field_raw("{\"a\": 1", "a").is_err());
    assert!(field_raw("{\"a\": 1} 2", "a").is_err());
}

#[test]
fn field_numbers_are_lenient() {
    let json = r#"{"a": 123, "b": "123", "c": 1.5e3, "d": "1.5", "e": -4, "f": "2.5", "g": [1]}"#;
    assert_eq!(field_u64(json, "a").unwrap(), Some(123));
    assert_eq!(field_u64(json, "b").unwrap(), Some(123));
    assert_eq!(field_u64(json, "c").unwrap(), Some(1500));
    assert_eq!(field_u64(json, "d").unwrap_err().message(), "field `d`: \"1.5\" is not a whole number");
    assert_eq!(field_u64(json, "e").unwrap_err().message(), "field `e`: \"-4\" is negative");
    assert_eq!(field_i64(json, "e").unwrap(), Some(-4));
    assert_eq!(field_f64(json, "f").unwrap(), Some(2.5));
    assert!(field_u64(json, "g").is_err());
    assert_eq!(field_u64(json, "missing").unwrap(), None);
}

#[test]
fn field_time_reads_numbers_and_strings() {
    let json = r#"{"s": 1714564800, "ms": "1714564800000", "f": 1714564800.25, "iso": "2024-05-01T12:00:00+0000",
        "http": "Wed, 01 May 2024 12:00:00 GMT", "exp": 1.7145648e9, "bad": "soon", "neg": -1}"#;
    for path in ["s", "ms", "iso", "http", "exp"] {
        assert_eq!(field_time(json, path).unwrap(), Some(1_714_564_800_000), "{path}");
    }
    assert_eq!(field_time(json, "f").unwrap(), Some(1_714_564_800_250));
    assert!(field_time(json, "bad").unwrap_err().message().starts_with("field `bad`: cannot read \"soon\""));
    assert!(field_time(json, "neg").is_err());
    let page = Object::parse_str(json).unwrap();
    assert_eq!(page.time("iso").unwrap(), Some(1_714_564_800_000));
}

#[test]
fn field_typed_value() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct User {
        name: String,
    }
    let json = r#"{"user": {"name": "n", "extra": 1}}"#;
    assert_eq!(field::<User, _>(json, "user").unwrap(), Some(User { name: "n".into() }));
    assert!(field::<u8, _>(json, "user").is_err());
}

#[test]
fn as_json_for_raw_values_and_strings() {
    let raw: Box<RawValue> = serde_json::from_str(r#"{"k": "v"}"#).unwrap();
    assert_eq!(field_str(&*raw, "k").unwrap().as_deref(), Some("v"));
    let owned = String::from(r#"{"k": 1}"#);
    assert_eq!(field_u64(&owned, "k").unwrap(), Some(1));
}

#[test]
fn errors_convert_to_vendor_errors() {
    let e = crate::Error::from(split_records(b"3").unwrap_err());
    assert_eq!(e, crate::Error::Vendor("unexpected JSON: expected an array of objects, found a number".into()));
}
