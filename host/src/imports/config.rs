//! `siphon:collector/config`: the source's name, settings and secrets. A
//! collector sees only its own source's values.

use crate::bindings::config::Host;
use crate::imports::HostState;

impl Host for HostState {
    async fn source_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.run.source.name.clone())
    }

    async fn setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.run.source.settings.get(&name).cloned())
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.run.source.secrets.get(&name).map(str::to_owned))
    }
}
