//! GCS state: one object per source, `<prefix>/<source>.json`, holding the
//! [`SourceState`] as JSON. The object's GCS generation is the state's
//! [`Generation`]: every write names the generation it replaces
//! (`ifGenerationMatch`, 0 for "no state yet"), so two daemons sharing a
//! bucket cannot silently overwrite each other's checkpoint — the loser gets
//! [`StateError::Conflict`] and its run stops without committing.
//!
//! `load` also accepts the local backend's file format
//! (`{"generation": …, "state": …}`), so a checkpoint can be moved from a
//! local directory to the bucket by copying the file (`gcloud storage cp
//! state/<source>.json gs://bucket/siphon/state/`).

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

use super::{Generation, SourceState, StateError, StateStore, Stored};
use crate::config::GcsSettings;
use crate::gcs::{ErrorKind, GcsClient};

/// Checkpoints as objects in a bucket.
#[derive(Debug, Clone)]
pub struct GcsStateStore {
    client: GcsClient,
    prefix: String,
}

/// The local store's file, accepted on load.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalFile {
    #[allow(dead_code)]
    generation: Generation,
    state: SourceState,
}

impl GcsStateStore {
    /// A store under `prefix` in `settings.bucket`. Does not touch the
    /// network: call [`GcsStateStore::health_check`].
    pub async fn connect(settings: &GcsSettings, prefix: &str) -> Result<GcsStateStore, StateError> {
        let client = GcsClient::connect(settings).await.map_err(|e| StateError::Backend(e.message))?;
        Ok(GcsStateStore { client, prefix: prefix.trim_matches('/').to_owned() })
    }

    /// Create, read back and delete a probe object under the prefix.
    pub async fn health_check(&self) -> Result<(), StateError> {
        self.client.probe(&self.prefix).await.map_err(|e| StateError::Backend(e.message))
    }

    /// The object holding `source`'s state.
    pub fn object_name(&self, source: &str) -> String {
        if self.prefix.is_empty() { format!("{source}.json") } else { format!("{}/{source}.json", self.prefix) }
    }

    /// `gs://bucket/<prefix>/<source>.json`.
    pub fn location(&self, source: &str) -> String {
        self.client.url(&self.object_name(source))
    }

    fn parse(&self, source: &str, body: &[u8]) -> Result<SourceState, StateError> {
        serde_json::from_slice::<SourceState>(body)
            .or_else(|first| serde_json::from_slice::<LocalFile>(body).map(|f| f.state).map_err(|_| first))
            .map_err(|e| StateError::Corrupt { location: self.location(source), message: e.to_string() })
    }
}

fn to_generation(g: i64, location: &str) -> Result<Generation, StateError> {
    Generation::try_from(g).map_err(|_| StateError::Backend(format!("{location}: unexpected generation {g}")))
}

#[async_trait]
impl StateStore for GcsStateStore {
    fn describe(&self) -> String {
        format!("GCS bucket {}", self.client.url(&self.prefix))
    }

    async fn load(&self, source: &str) -> Result<Option<Stored>, StateError> {
        let name = self.object_name(source);
        let Some((body, generation)) = self.client.read(&name).await.map_err(|e| StateError::Backend(e.message))?
        else {
            return Ok(None);
        };
        let state = self.parse(source, &body)?;
        Ok(Some(Stored { state, generation: to_generation(generation, &self.location(source))? }))
    }

    async fn store(
        &self,
        source: &str,
        state: &SourceState,
        expected: Option<Generation>,
    ) -> Result<Generation, StateError> {
        let name = self.object_name(source);
        let location = self.location(source);
        let body =
            serde_json::to_vec_pretty(state).map_err(|e| StateError::Backend(format!("cannot encode state: {e}")))?;
        let body = Bytes::from(body);
        let condition = match expected {
            None => 0,
            Some(g) => i64::try_from(g).ok().filter(|g| *g > 0).ok_or_else(|| StateError::Conflict {
                source_name: source.to_owned(),
                detail: format!("{location}: generation {g} cannot be a GCS generation"),
            })?,
        };
        match self.client.write(&name, body.clone(), "application/json", condition).await {
            Ok(generation) => to_generation(generation, &location),
            Err(e) if e.kind == ErrorKind::PreconditionFailed => {
                // Either another writer, or this write's own earlier attempt
                // whose answer was lost: only the second leaves our bytes.
                let current = self.client.read(&name).await.map_err(|e| StateError::Backend(e.message))?;
                match current {
                    Some((found, generation)) if found == body => to_generation(generation, &location),
                    Some((_, generation)) => Err(StateError::Conflict {
                        source_name: source.to_owned(),
                        detail: format!(
                            "{location} is at generation {generation}, this run read {}",
                            super::generation_text(expected)
                        ),
                    }),
                    None => Err(StateError::Conflict {
                        source_name: source.to_owned(),
                        detail: format!(
                            "{location} was deleted since this run read {}",
                            super::generation_text(expected)
                        ),
                    }),
                }
            }
            Err(e) => Err(StateError::Backend(e.message)),
        }
    }
}
