//! A vendor mock's handler as the vendor side of `siphon_sdk::testing::FakeIo`, so a collector's
//! native tests (crash at every step included) run against the same tenant the e2e tests serve
//! over HTTP, without a socket: [`Fake`] turns each SDK request into a mock [`Request`] and the
//! mock's [`Response`] back, after serving any queued fault answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use siphon_sdk::http as sdk;
use siphon_sdk::testing::Server;

use super::http::{Request, Response, parse_query};

/// A handler behind `FakeIo`; requests appear to arrive at `local` (what the handler uses for
/// absolute URLs it hands out).
pub struct Fake<H> {
    /// The vendor's handler, e.g. a tenant's `handle`.
    pub handler: H,
    /// The address requests arrive at.
    pub local: SocketAddr,
    /// Answers served instead of the handler's: each to the next request whose path starts with
    /// the prefix.
    pub faults: VecDeque<(String, Response)>,
}

impl<H: Fn(&Request) -> Response> Fake<H> {
    /// `handler` at `127.0.0.1:443`, no faults.
    pub fn new(handler: H) -> Fake<H> {
        Fake { handler, local: SocketAddr::from(([127, 0, 0, 1], 443)), faults: VecDeque::new() }
    }

    /// Answers the next request under `path_prefix` with `answer` instead of the handler.
    pub fn fail_next(&mut self, path_prefix: &str, answer: Response) {
        self.faults.push_back((path_prefix.to_owned(), answer));
    }
}

/// The mock's view of an SDK request.
pub fn to_mock(r: &sdk::Request, local: SocketAddr) -> Request {
    let url = r.url();
    Request {
        method: r.method().as_str().to_owned(),
        path: r.path(),
        query: parse_query(url.split_once('?').map_or("", |(_, q)| q)),
        headers: r.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect(),
        body: r.body_bytes().unwrap_or_default().to_vec().into(),
        at: Instant::now(),
        local,
    }
}

/// The SDK's view of a mock response.
pub fn to_sdk(r: Response) -> sdk::Response {
    sdk::Response { status: r.status, headers: r.headers.into_iter().collect(), body: r.body.to_vec() }
}

impl<H: Fn(&Request) -> Response> Server for Fake<H> {
    fn handle(&mut self, request: &sdk::Request) -> sdk::Response {
        let request = to_mock(request, self.local);
        if let Some(i) = self.faults.iter().position(|(prefix, _)| request.path.starts_with(prefix.as_str())) {
            return self.faults.remove(i).map(|(_, answer)| to_sdk(answer)).unwrap_or_default();
        }
        to_sdk((self.handler)(&request))
    }
}
