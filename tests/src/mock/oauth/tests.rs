//! The token endpoint and the bearer check over a real loopback connection.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::mock::client::{get, post};
use crate::mock::server::MockServer;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn start(cfg: OAuthConfig) -> (Arc<OAuth>, MockServer) {
    let oauth = Arc::new(OAuth::new("/oauth/token", cfg));
    let auth = Arc::clone(&oauth);
    let server = MockServer::start(move |req: &Request| {
        auth.route(req).unwrap_or_else(|| match auth.authorize_scope(req, "audit") {
            Ok(grant) => Response::json(200, format!(r#"{{"token":"{}"}}"#, grant.token)),
            Err(denied) => denied.response(),
        })
    })
    .await
    .expect("server");
    (oauth, server)
}

fn cfg() -> OAuthConfig {
    OAuthConfig { scopes: vec!["audit".into(), "admin".into()], ..OAuthConfig::new("client-1", "s3cret+/=") }
}

#[tokio::test]
async fn form_basic_and_json_clients_get_a_token_that_opens_the_data_endpoint() {
    let (oauth, server) = start(cfg()).await;
    let form = post(
        server.addr(),
        "/oauth/token",
        &[FORM],
        b"grant_type=client_credentials&client_id=client-1&client_secret=s3cret%2B%2F%3D",
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text());
    let v = form.json();
    assert_eq!((v["token_type"].as_str(), v["expires_in"].as_u64()), (Some("Bearer"), Some(3600)));
    assert_eq!(v["scope"], "audit admin");
    assert_eq!(form.header("cache-control"), Some("no-store"));

    let basic = basic_header("client-1", "s3cret+/=");
    let by_basic =
        post(server.addr(), "/oauth/token", &[FORM, ("authorization", &basic)], b"grant_type=client_credentials").await;
    assert_eq!(by_basic.status, 200, "{}", by_basic.text());
    let json_body = br#"{"grant_type":"client_credentials","client_id":"client-1","client_secret":"s3cret+/="}"#;
    let by_json = post(server.addr(), "/oauth/token", &[JSON], json_body).await;
    assert_eq!(by_json.status, 200, "{}", by_json.text());
    assert_eq!(oauth.issued(), 3);
    assert_eq!(oauth.tokens().len(), 3);

    let token = by_json.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(oauth.tokens()[2], token);
    let data = get(server.addr(), "/data", &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!((data.status, data.json()["token"].as_str()), (200, Some(token.as_str())));
    // The log keeps the form body, so tests can check what the collector sent.
    assert!(String::from_utf8_lossy(&server.requests()[0].body).contains("grant_type=client_credentials"));
}

#[tokio::test]
async fn wrong_secrets_methods_grants_and_scopes_are_refused() {
    let (oauth, server) = start(OAuthConfig { accepted: vec![ClientAuth::Form], ..cfg() }).await;
    let token = |body: &'static [u8]| post(server.addr(), "/oauth/token", &[FORM], body);
    let wrong = token(b"grant_type=client_credentials&client_id=client-1&client_secret=nope").await;
    assert_eq!((wrong.status, wrong.json()["error"].as_str()), (401, Some("invalid_client")));
    let grant = token(b"grant_type=password&client_id=client-1&client_secret=s3cret%2B%2F%3D").await;
    assert_eq!((grant.status, grant.json()["error"].as_str()), (400, Some("unsupported_grant_type")));
    let scope =
        token(b"grant_type=client_credentials&client_id=client-1&client_secret=s3cret%2B%2F%3D&scope=root").await;
    assert_eq!((scope.status, scope.json()["error"].as_str()), (400, Some("invalid_scope")));
    let basic = basic_header("client-1", "s3cret+/=");
    let not_accepted =
        post(server.addr(), "/oauth/token", &[FORM, ("authorization", &basic)], b"grant_type=client_credentials").await;
    assert_eq!(not_accepted.status, 401, "Basic is off for this vendor");
    assert_eq!(not_accepted.header("www-authenticate"), Some(r#"Basic realm="token""#));
    let both = post(
        server.addr(),
        "/oauth/token",
        &[FORM, ("authorization", &basic)],
        b"grant_type=client_credentials&client_id=client-1&client_secret=x",
    )
    .await;
    assert_eq!((both.status, both.json()["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(get(server.addr(), "/oauth/token", &[]).await.status, 405);
    assert_eq!(oauth.issued(), 0);

    // A narrower scope opens only what it names.
    let narrow = token(b"grant_type=client_credentials&client_id=client-1&client_secret=s3cret%2B%2F%3D&scope=admin")
        .await
        .json();
    let bearer = format!("Bearer {}", narrow["access_token"].as_str().unwrap());
    let data = get(server.addr(), "/data", &[("authorization", &bearer)]).await;
    assert_eq!((data.status, data.json()["error"].as_str()), (403, Some("insufficient_scope")));
    assert_eq!(get(server.addr(), "/data", &[]).await.status, 401);
    assert_eq!(get(server.addr(), "/data", &[("authorization", "Bearer forged")]).await.status, 401);

    // A rotated secret: the old one stops working.
    oauth.set_client_secret("rotated");
    assert_eq!(
        token(b"grant_type=client_credentials&client_id=client-1&client_secret=s3cret%2B%2F%3D").await.status,
        401
    );
    assert_eq!(token(b"grant_type=client_credentials&client_id=client-1&client_secret=rotated").await.status, 200);
}

#[tokio::test]
async fn tokens_expire_by_lifetime_or_on_demand_and_expires_in_may_be_absent() {
    let short = OAuthConfig { expires_in: None, lifetime: Some(Duration::from_millis(200)), ..cfg() };
    let (oauth, server) = start(OAuthConfig { invalid_client_status: 400, ..short }).await;
    let body = b"grant_type=client_credentials&client_id=client-1&client_secret=s3cret%2B%2F%3D";
    let got = post(server.addr(), "/oauth/token", &[FORM], body).await.json();
    assert!(got.get("expires_in").is_none(), "{got}");
    let bearer = format!("Bearer {}", got["access_token"].as_str().unwrap());
    assert_eq!(get(server.addr(), "/data", &[("authorization", &bearer)]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let expired = get(server.addr(), "/data", &[("authorization", &bearer)]).await;
    assert_eq!(expired.status, 401);
    assert!(expired.header("www-authenticate").unwrap().contains("invalid_token"));
    assert!(expired.json()["error_description"].as_str().unwrap().contains("expired"));

    let (oauth2, server2) = start(cfg()).await;
    let got = post(server2.addr(), "/oauth/token", &[FORM], body).await.json();
    let bearer = format!("Bearer {}", got["access_token"].as_str().unwrap());
    assert_eq!(get(server2.addr(), "/data", &[("authorization", &bearer)]).await.status, 200);
    oauth2.expire_tokens();
    assert_eq!(get(server2.addr(), "/data", &[("authorization", &bearer)]).await.status, 401);
    let wrong = post(server.addr(), "/oauth/token", &[FORM], b"grant_type=client_credentials&client_id=x").await;
    assert_eq!(wrong.status, 400, "this vendor answers a bad client with 400");
    assert_eq!(oauth.issued(), 1);
}
