//! GCS sink: each object is written once with `ifGenerationMatch=0`, so a
//! retry or a second writer can never overwrite an object or leave a second
//! copy — which matters because a SecOps "Cloud Storage V2" feed copies each
//! object once (Storage Transfer Service) and never re-reads a changed one.
//!
//! Content headers keep the stored bytes exactly what readers get:
//! `.ndjson` objects are `Content-Type: application/x-ndjson`; `.ndjson.gz`
//! objects are `Content-Type: application/gzip` with **no**
//! `Content-Encoding`, because `Content-Encoding: gzip` would make GCS
//! decompress them on the fly for clients that do not ask for gzip
//! (decompressive transcoding) and report checksums of bytes they never get.
//!
//! A create whose request reached GCS but whose answer was lost is retried
//! and then fails with 412; the object is then read back and, if it holds
//! exactly the bytes being written, the create counts as done (it was this
//! very write). Any other 412 is [`SinkError::AlreadyExists`].

use async_trait::async_trait;

use super::{Object, Sink, SinkError};
use crate::config::GcsSettings;
use crate::gcs::{ErrorKind, GcsClient, GcsError};

/// Content type of `.ndjson.gz` objects (see the module docs).
pub const GZIP_CONTENT_TYPE: &str = "application/gzip";

/// Objects in a GCS bucket.
#[derive(Debug, Clone)]
pub struct GcsSink {
    client: GcsClient,
    prefix: String,
}

impl GcsSink {
    /// A sink writing to `settings.bucket`; `prefix` is the sink's root
    /// prefix, where the start-up probe goes. Does not touch the network:
    /// call [`GcsSink::health_check`].
    pub async fn connect(settings: &GcsSettings, prefix: &str) -> Result<GcsSink, SinkError> {
        let client = GcsClient::connect(settings).await.map_err(backend)?;
        Ok(GcsSink { client, prefix: prefix.to_owned() })
    }

    /// Create, read back and delete a probe object under the prefix: the
    /// bucket exists and the credentials may create, get and delete objects.
    pub async fn health_check(&self) -> Result<(), SinkError> {
        self.client.probe(&self.prefix).await.map_err(backend)
    }

    /// The client, for tools and tests.
    pub fn client(&self) -> &GcsClient {
        &self.client
    }
}

/// How an object is stored: its content type, given its encoding.
pub fn content_type(object: &Object) -> &'static str {
    match object.content_encoding {
        Some("gzip") => GZIP_CONTENT_TYPE,
        _ => object.content_type,
    }
}

fn backend(e: GcsError) -> SinkError {
    SinkError::Backend(e.message)
}

#[async_trait]
impl Sink for GcsSink {
    fn describe(&self) -> String {
        format!("GCS bucket {}", self.client.url(&self.prefix))
    }

    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        let written = self.client.write(name, object.body.clone(), content_type(object), 0).await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::PreconditionFailed => {
                match self.client.read(name).await.map_err(backend)? {
                    Some((body, _)) if body == object.body => {
                        tracing::debug!(object = %self.client.url(name),
                            "Object already holds these bytes: an earlier attempt of this write succeeded");
                        Ok(())
                    }
                    Some(_) => Err(SinkError::AlreadyExists(self.client.url(name))),
                    None => Err(SinkError::Backend(format!("{e}, yet the object does not exist; not written"))),
                }
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        self.client.holds_data(name).await.map_err(backend)
    }

    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        self.client.delete(name).await.map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn gzip_objects_are_stored_without_content_encoding() {
        let plain =
            Object { body: Bytes::new(), content_type: "application/x-ndjson", content_encoding: None, records: 0 };
        assert_eq!(content_type(&plain), "application/x-ndjson");
        let gz = Object { content_encoding: Some("gzip"), ..plain };
        assert_eq!(content_type(&gz), GZIP_CONTENT_TYPE);
    }
}
