//! `wasi:http/outgoing-handler`, served by wasmtime-wasi-http with siphon's
//! hooks: every request a collector sends goes through the source's
//! [`Egress`] policy (allow-list, address filter, rate limit, retries, size
//! cap), charged to the run's [`RunBudget`].

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::egress::Egress;
use crate::limits::{OUTGOING_BODY_CHUNK, RunBudget};

/// The wasi:http hooks of one run.
pub struct Hooks {
    egress: Arc<Egress>,
    budget: Arc<RunBudget>,
}

impl Hooks {
    /// Hooks sending through `egress`, charging `budget`.
    pub fn new(egress: Arc<Egress>, budget: Arc<RunBudget>) -> Hooks {
        Hooks { egress, budget }
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send> {
        let egress = self.egress.clone();
        let budget = self.budget.clone();
        Box::new(async move {
            // The policy buffers the response, so there is no connection
            // left to drive once it returns.
            let response = egress.send(request, options, &budget).await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        // Each request body not yet sent holds up to one chunk.
        OUTGOING_BODY_CHUNK
    }
}
