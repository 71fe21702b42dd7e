//! `wasi:http/outgoing-handler`, served by wasmtime-wasi-http with siphon's
//! hooks: every request a collector sends goes through the source's
//! [`Egress`] policy (allow-list, rate limit, retries, size cap).

use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::egress::Egress;

/// The wasi:http hooks of one run.
pub struct Hooks {
    egress: Arc<Egress>,
}

impl Hooks {
    /// Hooks sending through `egress`.
    pub fn new(egress: Arc<Egress>) -> Hooks {
        Hooks { egress }
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
        Box::new(async move {
            // The policy buffers the response, so there is no connection
            // left to drive once it returns.
            let response = egress.send(request, options).await?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
