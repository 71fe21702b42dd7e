//! A blob store serving pre-signed, expiring download URLs, as S3 does for Mimecast's SIEM batch
//! files: `/blob/<id>?exp=<epoch seconds>&sig=<signature>`. Like S3 it refuses (403, XML error)
//! a request that also carries an `Authorization` header — forwarding vendor credentials to a
//! download URL is the bug it catches —, an expired URL and a bad signature. Files are stored as
//! given: a gzip NDJSON batch is served as `application/octet-stream` without `Content-Encoding`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use siphon_tests::mock::blobs::BlobStore;
//! use siphon_tests::mock::server::{MockServer, Request, Response};
//! let blobs = Arc::new(BlobStore::new());
//! let store = Arc::clone(&blobs);
//! let server = MockServer::start(move |req: &Request| {
//!     store.route(req).unwrap_or_else(|| Response::new(404))
//! })
//! .await?;
//! blobs.put_gzip_lines("batch-1", &[r#"{"a":1}"#.to_owned()]);
//! let url = blobs.signed_url(&server.base_url(), "batch-1", Duration::from_secs(600));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::http::{Request, Response, percent_decode, percent_encode};
use super::server::lock;

/// Path prefix of every blob URL.
pub const BLOB_PREFIX: &str = "/blob/";
/// Bytes the store holds at most.
pub const MAX_STORED: usize = 512 << 20;

/// Stored files, each with how often it was downloaded.
pub struct BlobStore {
    key: RandomState,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<String, Blob>,
    bytes: usize,
}

struct Blob {
    data: Bytes,
    content_type: String,
    downloads: usize,
}

impl Default for BlobStore {
    fn default() -> Self {
        BlobStore::new()
    }
}

impl BlobStore {
    /// An empty store with a fresh signing key.
    pub fn new() -> BlobStore {
        BlobStore { key: RandomState::new(), state: Mutex::default() }
    }

    /// Stores `data` as `id`, replacing an older file of that id.
    ///
    /// # Panics
    /// When the store would hold more than [`MAX_STORED`] bytes: a mistake in the test.
    pub fn put(&self, id: &str, data: impl Into<Bytes>, content_type: &str) {
        let data = data.into();
        let mut state = lock(&self.state);
        let old = state.blobs.get(id).map_or(0, |b| b.data.len());
        let bytes = state.bytes - old + data.len();
        assert!(bytes <= MAX_STORED, "the mock blob store would hold {bytes} bytes, over {MAX_STORED}");
        state.bytes = bytes;
        state.blobs.insert(id.to_owned(), Blob { data, content_type: content_type.to_owned(), downloads: 0 });
    }

    /// Stores `lines` as a gzip file of NDJSON (each line ends with `\n`) and returns its bytes.
    pub fn put_gzip_lines(&self, id: &str, lines: &[String]) -> Bytes {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        for line in lines {
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(line.as_bytes());
            let _ = gz.write_all(b"\n");
        }
        let data = Bytes::from(gz.finish().unwrap_or_default());
        self.put(id, data.clone(), "application/octet-stream");
        data
    }

    /// Removes `id`; its URLs then get 404.
    pub fn remove(&self, id: &str) {
        let mut state = lock(&self.state);
        if let Some(b) = state.blobs.remove(id) {
            state.bytes -= b.data.len();
        }
    }

    /// A URL for `id` on `base_url` (the server this store is mounted on) valid for `ttl`.
    pub fn signed_url(&self, base_url: &str, id: &str, ttl: Duration) -> String {
        let exp = epoch_now() + ttl.as_secs();
        self.url_expiring_at(base_url, id, exp)
    }

    /// A URL for `id` that expires at `exp` (epoch seconds; a past one makes an expired URL).
    pub fn url_expiring_at(&self, base_url: &str, id: &str, exp: u64) -> String {
        format!("{base_url}{BLOB_PREFIX}{}?exp={exp}&sig={}", percent_encode(id), self.sign(id, exp))
    }

    /// How often `id` was served in full.
    pub fn downloads(&self, id: &str) -> usize {
        lock(&self.state).blobs.get(id).map_or(0, |b| b.downloads)
    }

    /// The answer when `request` is for a blob URL, else `None`.
    pub fn route(&self, request: &Request) -> Option<Response> {
        let id = percent_decode(request.path.strip_prefix(BLOB_PREFIX)?, false);
        if request.method != "GET" && request.method != "HEAD" {
            return Some(s3_error(405, "MethodNotAllowed", "The specified method is not allowed"));
        }
        if request.header("authorization").is_some() {
            return Some(s3_error(
                403,
                "AccessDenied",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query \
                 string parameter or the Authorization header should be specified",
            ));
        }
        let exp = request.param("exp").and_then(|e| e.parse::<u64>().ok());
        let (Some(exp), Some(sig)) = (exp, request.param("sig")) else {
            return Some(s3_error(403, "AccessDenied", "Query-string authentication requires exp and sig"));
        };
        if sig != self.sign(&id, exp) {
            return Some(s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match"));
        }
        if epoch_now() >= exp {
            return Some(s3_error(403, "AccessDenied", "Request has expired"));
        }
        let mut state = lock(&self.state);
        let Some(blob) = state.blobs.get_mut(&id) else {
            return Some(s3_error(404, "NoSuchKey", "The specified key does not exist."));
        };
        blob.downloads += 1;
        Some(Response::bytes(200, &blob.content_type, blob.data.clone()))
    }

    fn sign(&self, id: &str, exp: u64) -> String {
        let mut h = self.key.build_hasher();
        h.write(id.as_bytes());
        h.write_u64(exp);
        format!("{:016x}", h.finish())
    }
}

fn s3_error(status: u16, code: &str, message: &str) -> Response {
    Response::bytes(
        status,
        "application/xml",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ),
    )
}

fn epoch_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use super::*;
    use crate::mock::client::get;
    use crate::mock::server::MockServer;

    async fn start() -> (Arc<BlobStore>, MockServer) {
        let blobs = Arc::new(BlobStore::new());
        let store = Arc::clone(&blobs);
        let server = MockServer::start(move |req: &Request| store.route(req).unwrap_or_else(|| Response::new(404)))
            .await
            .expect("server");
        (blobs, server)
    }

    fn path(url: &str) -> &str {
        &url[url.find(BLOB_PREFIX).expect("a blob URL")..]
    }

    #[tokio::test]
    async fn a_signed_url_serves_the_gzip_file_as_stored() {
        let (blobs, server) = start().await;
        let lines = vec![r#"{"type":"receipt","spamScore":"9"}"#.to_owned(), r#"{"n":"é"}"#.to_owned()];
        let stored = blobs.put_gzip_lines("C0A0/receipt/part 1.json.gz", &lines);
        let url = blobs.signed_url(&server.base_url(), "C0A0/receipt/part 1.json.gz", Duration::from_secs(600));
        assert!(url.starts_with(&format!("{}/blob/C0A0%2Freceipt%2Fpart%201.json.gz?exp=", server.base_url())));
        let got = get(server.addr(), path(&url), &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, stored);
        assert_eq!(got.header("content-encoding"), None, "gzip is the file, not a transfer encoding");
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&got.body[..]).read_to_string(&mut text).expect("gzip");
        assert_eq!(text, format!("{}\n{}\n", lines[0], lines[1]));
        assert_eq!(blobs.downloads("C0A0/receipt/part 1.json.gz"), 1);
    }

    #[tokio::test]
    async fn credentials_expired_urls_bad_signatures_and_unknown_blobs_are_refused() {
        let (blobs, server) = start().await;
        blobs.put("b1", "data", "text/plain");
        let url = blobs.signed_url(&server.base_url(), "b1", Duration::from_secs(600));
        let with_auth = get(server.addr(), path(&url), &[("authorization", "Bearer vendor-token")]).await;
        assert_eq!(with_auth.status, 403);
        assert!(with_auth.text().contains("<Code>AccessDenied</Code>"));
        let expired = blobs.url_expiring_at(&server.base_url(), "b1", epoch_now() - 1);
        let got = get(server.addr(), path(&expired), &[]).await;
        assert_eq!(got.status, 403);
        assert!(got.text().contains("Request has expired"));
        let forged = path(&url).replace("exp=", "exp=9").to_owned();
        assert!(get(server.addr(), &forged, &[]).await.text().contains("SignatureDoesNotMatch"));
        assert_eq!(get(server.addr(), "/blob/b1", &[]).await.status, 403);
        blobs.remove("b1");
        assert_eq!(get(server.addr(), path(&url), &[]).await.status, 404);
        assert_eq!(blobs.downloads("b1"), 0);
    }
}
