//! Local directory sink: each object is written to a temporary file in its
//! final directory, fsynced, then hard-linked to its name (which fails if the
//! name exists, so nothing is ever overwritten), and the directory fsynced.
//!
//! Security alerts are for the feed, not for every local user: objects are
//! created `0600` and directories `0700` (also the state store's and the
//! compile cache's, through [`create_private_dir`] and [`create_private_file`]).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Create `dir` and its missing parents, each readable by the owner only
/// (`0700`). Existing directories keep their mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Create `path` for writing, readable by the owner only (`0600`); with
/// `new`, fail if it exists, otherwise truncate it.
pub fn create_private_file(path: &Path, new: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Open `path` for reading and writing in place, created readable by the
/// owner only (`0600`) when missing; never truncated.
pub fn open_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

use async_trait::async_trait;

use super::{Object, Sink, SinkError};

/// Objects as files under a directory.
#[derive(Debug, Clone)]
pub struct LocalDirSink {
    dir: PathBuf,
}

impl LocalDirSink {
    /// A sink rooted at `dir`, created if missing.
    pub fn open(dir: &Path) -> Result<LocalDirSink, SinkError> {
        create_private_dir(dir)
            .map_err(|e| SinkError::Backend(format!("cannot create sink directory {}: {e}", dir.display())))?;
        Ok(LocalDirSink { dir: dir.to_owned() })
    }

    fn path(&self, name: &str) -> Result<PathBuf, SinkError> {
        // Names come from `Layout`, but never let one escape the directory.
        if name.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(SinkError::Backend(format!("refusing unsafe object name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

fn write_new(path: &Path, body: &[u8]) -> std::io::Result<bool> {
    let parent = path.parent().unwrap_or(Path::new("."));
    create_private_dir(parent)?;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
    let tmp = parent.join(format!(".{file_name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = create_private_file(&tmp, true)?;
        f.write_all(body)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        }
        std::fs::File::open(parent)?.sync_all()?;
        Ok(true)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[async_trait]
impl Sink for LocalDirSink {
    fn describe(&self) -> String {
        format!("local directory {}", self.dir.display())
    }

    async fn create(&self, name: &str, object: &Object) -> Result<(), SinkError> {
        let path = self.path(name)?;
        let body = object.body.clone();
        let p = path.clone();
        let created = tokio::task::spawn_blocking(move || write_new(&p, &body))
            .await
            .map_err(|e| SinkError::Backend(format!("write task failed: {e}")))?
            .map_err(|e| SinkError::Backend(format!("cannot write {}: {e}", path.display())))?;
        if created { Ok(()) } else { Err(SinkError::AlreadyExists(name.to_owned())) }
    }

    async fn exists(&self, name: &str) -> Result<bool, SinkError> {
        let path = self.path(name)?;
        let small = match tokio::fs::metadata(&path).await {
            Ok(m) if m.len() > super::CLAIM_MAX_BYTES => return Ok(true),
            Ok(_) => tokio::fs::read(&path).await,
            Err(e) => Err(e),
        };
        match small {
            Ok(body) => Ok(super::holds_records(&body)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SinkError::Backend(format!("cannot check {}: {e}", path.display()))),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), SinkError> {
        let path = self.path(name)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SinkError::Backend(format!("cannot delete {}: {e}", path.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn obj(text: &str) -> Object {
        Object {
            body: Bytes::from(text.to_owned()),
            content_type: "application/x-ndjson",
            content_encoding: None,
            records: 1,
        }
    }

    #[tokio::test]
    async fn creates_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDirSink::open(dir.path()).unwrap();
        sink.create("a/b/x.ndjson", &obj("{}\n")).await.unwrap();
        assert!(sink.exists("a/b/x.ndjson").await.unwrap());
        let err = sink.create("a/b/x.ndjson", &obj("{\"other\":1}\n")).await.unwrap_err();
        assert!(matches!(err, SinkError::AlreadyExists(_)));
        assert_eq!(std::fs::read_to_string(dir.path().join("a/b/x.ndjson")).unwrap(), "{}\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| std::fs::metadata(dir.path().join(p)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode("a/b/x.ndjson"), 0o600, "objects are for the feed, not every local user");
            assert_eq!((mode("a"), mode("a/b")), (0o700, 0o700));
        }
        // No temporary files are left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(left.len(), 1);
        sink.delete("a/b/x.ndjson").await.unwrap();
        assert!(!sink.exists("a/b/x.ndjson").await.unwrap());
        // An object without records (a recovery's claim) holds no data.
        sink.create("a/b/claim.ndjson", &obj("")).await.unwrap();
        assert!(!sink.exists("a/b/claim.ndjson").await.unwrap());
        let empty_gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()).finish().unwrap();
        sink.create("a/b/claim.ndjson.gz", &Object { body: empty_gzip.into(), ..obj("") }).await.unwrap();
        assert!(!sink.exists("a/b/claim.ndjson.gz").await.unwrap());
        assert!(sink.create("../escape", &obj("{}\n")).await.is_err());
    }
}
