//! The mock tenant's own contract (vendor-apis.md §1.9), request by request, without a server.

use std::time::Instant;

use super::*;
use crate::mock::http::parse_query;

const T0: u64 = 1_730_000_000_000;
const B: &str = "30012345";

fn tenant() -> Tenant {
    Tenant::new(MockConfig::default(), Clock::manual(T0))
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: parse_query(query),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: body.to_owned().into(),
        at: Instant::now(),
        local: ([127, 0, 0, 1], 0).into(),
    }
}

fn login_body(password: &str) -> String {
    serde_json::json!({"authRequest": {"maaS360AdminAuth": {
        "billingID": B, "platformID": "3", "appID": "com.30012345.api", "appVersion": "1.0",
        "appAccessKey": "Xk29fQ7pLm", "userName": "svc_siem", "password": password}}})
    .to_string()
}

fn json_of(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

/// Logs in with JSON; returns (token, refresh token).
fn login(t: &mut Tenant) -> (String, String) {
    let path = format!("/auth-apis/auth/2.0/authenticate/customer/{B}");
    let r = t.handle(&request("POST", &path, &[("accept", "application/json")], &login_body("s3cret-pass")));
    let v = json_of(&r)["authResponse"].clone();
    assert_eq!(v["errorCode"], 0, "{v}");
    (v["authToken"].as_str().unwrap().into(), v["refreshToken"].as_str().unwrap().into())
}

fn get(t: &mut Tenant, token: &str, target: &str) -> Response {
    let auth = format!("MaaS token=\"{token}\"");
    t.handle(&request("GET", target, &[("accept", "application/json"), ("authorization", &auth)], ""))
}

#[test]
fn login_answers_xml_unless_json_is_asked_and_refuses_with_http_200() {
    let mut t = tenant();
    let v2 = format!("/auth-apis/auth/2.0/authenticate/customer/{B}");
    let xml = t.handle(&request("POST", &v2, &[], &login_body("s3cret-pass")));
    let text = String::from_utf8_lossy(&xml.body).to_string();
    assert!(text.starts_with("<authResponse><authToken>mtok-") && text.contains("<refreshToken>"), "{text}");
    let bad = t.handle(&request("POST", &v2, &[("accept", "application/json")], &login_body("nope")));
    assert_eq!(bad.status, 200);
    assert_eq!(json_of(&bad)["authResponse"]["errorCode"], 1002);
    let v1 = format!("/auth-apis/auth/1.0/authenticate/{B}");
    let body = "<authRequest><maaS360AdminAuth><billingID>30012345</billingID><platformID>3</platformID>\
                <appID>com.30012345.api</appID><appVersion>1.0</appVersion><appAccessKey>Xk29fQ7pLm</appAccessKey>\
                <userName>svc_siem</userName><password>s3cret-pass</password></maaS360AdminAuth></authRequest>";
    let v1 = t.handle(&request("POST", &v1, &[("accept", "application/json")], body));
    let v1 = json_of(&v1)["authResponse"].clone();
    assert!(v1["authToken"].is_string() && v1.get("refreshToken").is_none(), "{v1}");
    assert_eq!(t.auth_stats(), AuthStats { logins: 2, refused: 1, ..AuthStats::default() });
}

#[test]
fn refresh_tokens_rotate_and_are_good_once() {
    let mut t = tenant();
    let (_, refresh) = login(&mut t);
    let path = format!("/auth-apis/auth/2.0/refreshToken/customer/{B}");
    let body = |r: &str| {
        serde_json::json!({"authRequest": {"maaS360AdminAuth": {"billingID": B, "userName": "svc_siem",
            "appID": "com.30012345.api", "appVersion": "1.0", "platformID": "3", "refreshToken": r}}})
        .to_string()
    };
    let json = [("accept", "application/json")];
    let first = json_of(&t.handle(&request("POST", &path, &json, &body(&refresh))))["authResponse"].clone();
    let rotated = first["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh);
    let again = json_of(&t.handle(&request("POST", &path, &json, &body(&refresh))))["authResponse"].clone();
    assert_eq!(again["errorCode"], 1008, "an old refresh token is refused: {again}");
    let token = first["authToken"].as_str().unwrap();
    assert_eq!(get(&mut t, token, &format!("/device-apis/devices/1.0/searchComplianceEvents/{B}")).status, 200);
}

#[test]
fn data_calls_need_the_quoted_token_and_tokens_expire() {
    let mut t = tenant();
    let (token, _) = login(&mut t);
    let path = format!("/device-apis/devices/1.0/searchActionHistory/{B}");
    let unquoted = format!("MaaS token={token}");
    let r = t.handle(&request("GET", &path, &[("authorization", &unquoted)], ""));
    assert_eq!(r.status, 401);
    assert_eq!(get(&mut t, &token, &path).status, 200);
    t.clock().set(T0 + 3_600_000);
    assert_eq!(get(&mut t, &token, &path).body, "Token expired");
    let (token, _) = login(&mut t);
    t.expire_tokens_after(1, false);
    assert_eq!(get(&mut t, &token, &path).status, 200);
    assert_eq!(get(&mut t, &token, &path).status, 401, "expired after one more call");
    let mut t = Tenant::new(MockConfig { token_calls: Some(2), ..MockConfig::default() }, Clock::manual(T0));
    let (token, _) = login(&mut t);
    let calls: Vec<u16> = (0..3).map(|_| get(&mut t, &token, &path).status).collect();
    assert_eq!(calls, [200, 200, 401], "a token good for two calls");
    let auth = format!("MaaS token=\"{}\"", login(&mut t).0);
    let no_json = t.handle(&request("GET", &path, &[("authorization", &auth)], ""));
    assert!(String::from_utf8_lossy(&no_json.body).starts_with("<actionHistory>"), "XML without Accept JSON");
}

#[test]
fn pages_carry_the_single_object_missing_list_and_string_quirks() {
    let mut t = tenant();
    t.add("admin_logins", 26);
    let (token, _) = login(&mut t);
    let path = format!("/account-provisioning/administrator/1.0/getAdminLoginReports/customer/{B}");
    let page = |t: &mut Tenant, n: u32| {
        let r = get(t, &token, &format!("{path}?fromDate=0&toDate={T0}&pageSize=25&pageNumber={n}"));
        json_of(&r)["loginEvents"].clone()
    };
    let first = page(&mut t, 1);
    assert_eq!((first["count"].clone(), first["pageNumber"].clone()), (25.into(), 1.into()));
    assert_eq!(first["loginEvent"].as_array().unwrap().len(), 25);
    let second = page(&mut t, 2);
    assert_eq!(second["pageNumber"], "2", "numbers as strings");
    assert!(second["loginEvent"].is_object(), "one item: an object");
    let third = page(&mut t, 3);
    assert!(third.get("loginEvent").is_none() && third["pageSize"] == 0, "{third}");
    let times: Vec<u64> = first["loginEvent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loginAttemptTime"].as_u64().or_else(|| e["loginAttemptTime"].as_str()?.parse().ok()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let bounds = get(&mut t, &token, &format!("{path}?fromDate={}&toDate={}&pageSize=250", times[24], times[0]));
    assert_eq!(json_of(&bounds)["loginEvents"]["count"], 25, "fromDate and toDate are inclusive");
    assert_eq!(get(&mut t, &token, &path).status, 400, "the window is required");
}

#[test]
fn compliance_events_past_the_end_answer_page_one_again() {
    let mut t = tenant();
    t.add("compliance_events", 30);
    let (token, _) = login(&mut t);
    let path = format!("/device-apis/devices/1.0/searchComplianceEvents/{B}?pageSize=25&pageNumber=3");
    let v = json_of(&get(&mut t, &token, &path))["complianceEvents"].clone();
    assert_eq!(v["pageNumber"], 1);
    assert_eq!(v["complianceEvent"].as_array().unwrap().len(), 25);
}

#[test]
fn devices_sort_by_the_second_and_the_filter_includes_its_value() {
    let mut t = tenant();
    t.add("devices", 3);
    t.clock().set(T0 + 10_500);
    t.add("devices", 2); // two devices at the same millisecond
    let (token, _) = login(&mut t);
    let path = format!("/device-apis/devices/2.0/search/customer/{B}?sortAttribute=lastReported&sortOrder=asc");
    let list = |t: &mut Tenant, after: u64| {
        let v = json_of(&get(t, &token, &format!("{path}&lastReportedAfterInEpochms={after}")))["devices"].clone();
        v["device"].as_array().cloned().unwrap_or_else(|| vec![v["device"].clone()])
    };
    assert_eq!(list(&mut t, 0).len(), 5);
    assert_eq!(list(&mut t, T0 + 10_500).len(), 2, "inclusive");
    t.clock().set(T0 + 20_000);
    let moved = t.report_again(&["ApplC39XK000000".into()]);
    assert_eq!(moved.len(), 1);
    let last = list(&mut t, 0).last().cloned().unwrap();
    assert_eq!(last["maas360DeviceID"], "ApplC39XK000000", "a device that reports again moves to the end");
    assert_eq!(t.records("devices").len(), 6, "both reports are records");
    assert_eq!(key_of("devices", &t.records("devices")[5]), moved[0]);
}
