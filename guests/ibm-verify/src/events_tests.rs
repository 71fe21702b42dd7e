//! Request building, the response envelope and its quirks, and what each
//! refusal means, without a run.

use siphon_sdk::auth::NoAuth;
use siphon_sdk::driver::Attempt;
use siphon_sdk::testing::{FakeIo, json};

use super::*;

fn config(event_types: Option<&[&str]>, page_size: u64) -> Config {
    Config {
        base_url: "https://acme.verify.ibm.com".into(),
        event_types: event_types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        lookback_ms: 24 * 3_600_000,
        page_size,
        max_pages: 100,
        client_id: "id".into(),
        client_secret: "secret".into(),
    }
}

fn with_ctx<T>(f: impl FnOnce(&mut Ctx) -> T) -> T {
    let mut io = FakeIo::new(|_: &Request| json(500, "{}"));
    let mut cx = Ctx { io: &mut io, auth: &mut NoAuth, attempt: Attempt::Fresh };
    f(&mut cx)
}

fn request(events: &Events, cursor: Cursor) -> Request {
    with_ctx(|cx| events.request(cx, &mut cursor.clone())).unwrap().unwrap()
}

fn parse(events: &Events, cursor: &Cursor, status: u16, body: &str) -> Result<Page<Cursor>, Error> {
    with_ctx(|cx| events.parse(cx, cursor, json(status, body)))
}

fn at(indexed_at: u64, id: &str) -> Cursor {
    Cursor { indexed_at, id: Some(id.into()) }
}

/// A first page of the seed guide's shape: ASCII-escaped text, an integer
/// above 2^53 inside `data`, key order a re-serialisation would change.
const E1: &str = r#"{"id":"a4b5c6d7-e8f9-4a0b-8c1d-2e3f4a5b6c7d","time":1718012345678,"indexed_at":1718012346102,"event_type":"management","data":{"cause":"\"testuser03\" \u3092\u4f5c\u6210\u3057\u307e\u3057\u305f\u3002","applicationid":18446744073709551615,"json":"{\"a\":1}"},"@processing_time":35}"#;
const E2: &str = r#"{"id":"b5c6d7e8-0f1a-4b2c-9d3e-4f5a6b7c8d9e","time":1718012349001,"indexed_at":1718012349377,"event_type":"sso","geoip":{"city_name":"K\u00f8benhavn"}}"#;

fn envelope(events: &[&str], search_after: &str) -> String {
    format!(
        "{{\"response\": {{\n  \"events\": {{\n    \"search_after\": {search_after},\n    \"events\": [\n      {}\n    ]\n  }}\n}}}}",
        events.join(",\n      ")
    )
}

const SEARCH_AFTER: &str = r#"{"total_events": 2, "max_size_limit": "false", "time": "1718012349377", "id": "b5c6d7e8-0f1a-4b2c-9d3e-4f5a6b7c8d9e"}"#;

#[test]
fn the_first_request_asks_for_every_event_type_in_indexed_order_from_the_window_start() {
    let r = request(&Events::new(&config(None, 1000)), Cursor { indexed_at: 1_700_000_000_000, id: None });
    assert_eq!(
        r.url(),
        "https://acme.verify.ibm.com/v1.0/events?all_events=yes&range_type=indexed_at&sort_order=asc&size=1000\
         &from=1700000000000"
    );
    assert_eq!(r.header_value("accept"), Some("application/json"));
    assert!(r.is_authenticated());
}

#[test]
fn later_requests_continue_after_the_last_event_and_quote_event_types() {
    let events = Events::new(&config(Some(&["authentication", "sso"]), 50));
    let r = request(&events, at(1718012349377, "b5c6d7e8-0f1a"));
    assert_eq!(r.query_value("event_type").as_deref(), Some(r#""authentication","sso""#));
    assert!(r.url().contains("event_type=%22authentication%22%2C%22sso%22&"), "{}", r.url());
    assert_eq!(r.query_value("all_events"), None);
    assert_eq!(r.query_value("from").as_deref(), Some("1718012349377"));
    assert_eq!(r.query_value("after_time").as_deref(), Some("1718012349377"));
    assert_eq!(r.query_value("after_id").as_deref(), Some("b5c6d7e8-0f1a"));
    assert_eq!(r.query_value("size").as_deref(), Some("50"));
}

#[test]
fn a_page_becomes_byte_exact_records_keyed_by_id_and_the_cursor_moves_to_the_last_event() {
    let events = Events::new(&config(None, 2));
    let page = parse(&events, &Cursor::default(), 200, &envelope(&[E1, E2], SEARCH_AFTER)).unwrap();
    let texts: Vec<&str> = page.records.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(texts, [E1, E2], "escapes, big integers and key order are kept");
    assert_eq!(page.records[0].0, "a4b5c6d7-e8f9-4a0b-8c1d-2e3f4a5b6c7d");
    assert_eq!(page.next, at(1718012349377, "b5c6d7e8-0f1a-4b2c-9d3e-4f5a6b7c8d9e"));
    assert!(page.more, "a full page: more may be waiting");

    let events = Events::new(&config(None, 3));
    assert!(!parse(&events, &Cursor::default(), 200, &envelope(&[E1, E2], SEARCH_AFTER)).unwrap().more);
}

#[test]
fn the_cursor_comes_from_the_last_event_even_when_search_after_holds_event_time() {
    // `search_after.time` = the event's `time`, not its `indexed_at`: the
    // event itself is what was delivered.
    let sa = r#"{"time": "1718012349001", "id": "b5c6d7e8-0f1a-4b2c-9d3e-4f5a6b7c8d9e"}"#;
    let page = parse(&Events::new(&config(None, 10)), &Cursor::default(), 200, &envelope(&[E1, E2], sa)).unwrap();
    assert_eq!(page.next.indexed_at, 1718012349377);
}

#[test]
fn search_after_is_the_fallback_for_an_event_without_indexed_at() {
    let bare = r#"{"id":"c1","time":1718012350000}"#;
    let sa = r#"{"time": "1718012350500", "id": "c1", "max_size_limit": "false"}"#;
    let page = parse(&Events::new(&config(None, 10)), &Cursor::default(), 200, &envelope(&[E1, bare], sa)).unwrap();
    assert_eq!(page.next, at(1718012350500, "c1"));

    let e = parse(&Events::new(&config(None, 10)), &Cursor::default(), 200, &envelope(&[bare], "{}")).unwrap_err();
    assert!(e.message().contains("cannot continue"), "{e}");
}

#[test]
fn empty_pages_in_any_shape_keep_the_cursor() {
    let events = Events::new(&config(None, 10));
    let cursor = at(5, "x");
    for body in [
        r#"{"response":{"events":{"search_after":{"total_events":0},"events":[]}}}"#,
        r#"{"response":{"events":{"events":null}}}"#,
        r#"{"response":{"events":{}}}"#,
        r#"{"response":{}}"#,
        "",
        " \n",
    ] {
        let page = parse(&events, &cursor, 200, body).unwrap();
        assert!(page.records.is_empty() && !page.more, "{body}");
        assert_eq!(page.next, cursor, "{body}");
    }
}

#[test]
fn events_without_an_id_are_keyed_by_their_content() {
    let anon = r#"{"time":1,"indexed_at":2,"event_type":"sso"}"#;
    let page =
        parse(&Events::new(&config(None, 10)), &Cursor::default(), 200, &envelope(&[anon, E2], SEARCH_AFTER)).unwrap();
    assert_eq!(page.records[0].0, anon);
}

#[test]
fn a_body_that_is_not_the_envelope_is_a_vendor_error() {
    let events = Events::new(&config(None, 10));
    let e = parse(&events, &Cursor::default(), 200, r#"{"messageId":"CSIAQ0001E","messageDescription":"Busy."}"#)
        .unwrap_err();
    assert_eq!(e.kind(), "vendor");
    assert!(e.message().contains("without `response`") && e.message().contains("Busy."), "{e}");
    let e = parse(&events, &Cursor::default(), 200, "<html>maintenance</html>").unwrap_err();
    assert_eq!(e.kind(), "vendor");
    let e = parse(&events, &Cursor::default(), 200, r#"{"response":{"events":{"events":[1]}}}"#).unwrap_err();
    assert_eq!(e.kind(), "vendor");
}

fn error(status: u16, body: &str) -> Error {
    Events::new(&config(None, 10)).error(json(status, body))
}

#[test]
fn a_400_is_a_config_error_naming_the_parameter_and_its_setting() {
    let e = error(
        400,
        r#"{"messageId":"CSIAQ0159E","messageDescription":"The value [20000] of the [size] parameter is not valid."}"#,
    );
    assert_eq!(e.kind(), "config");
    assert!(e.message().contains("parameter `size` (from setting `page_size`)"), "{e}");
    assert!(e.message().contains("The value [20000]"), "{e}");

    let e = error(400, r#"{"messageDescription":"Unknown event_type value \"bogus\" requested from the API."}"#);
    assert!(e.message().contains("parameter `event_type` (from setting `event_types`)"), "{e}");
    let e = error(400, r#"{"messageDescription":"The from parameter is not a number."}"#);
    assert!(e.message().contains("parameter `from`"), "{e}");
    let e = error(400, "bad request");
    assert_eq!(e.kind(), "config");
    assert!(e.message().contains("check settings `event_types` and `page_size`"), "{e}");
}

#[test]
fn a_403_is_an_auth_error_that_names_the_missing_permission() {
    let e = error(403, r#"{"messageId":"CSIAH0618E","messageDescription":"Forbidden."}"#);
    assert_eq!(e.kind(), "auth");
    assert!(e.message().contains("Read reports") && e.message().contains("Security > API access"), "{e}");
    assert!(e.message().contains("Forbidden."), "{e}");
}

#[test]
fn other_statuses_keep_their_usual_meaning() {
    assert_eq!(error(401, r#"{"messageDescription":"Token expired."}"#).kind(), "auth");
    assert_eq!(error(404, "{}").kind(), "not-found");
    let e = error(502, "<html>Bad Gateway</html>");
    assert_eq!(e.kind(), "vendor");
    assert!(e.message().contains("HTTP 502"), "{e}");
}
