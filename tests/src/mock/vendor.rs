//! The plumbing every vendor mock shares, written once: a [`MockVendor`] is the generic
//! [`MockServer`] serving one vendor handler over the vendor's state (one lock) and, for vendors
//! that log in with OAuth client credentials, the shared token endpoint, which answers its path
//! before the handler runs. It is a [`VendorMock`] whenever the state says what its streams hold
//! ([`Streams`]). A vendor module then holds only its state, its handler and its knobs:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::net::SocketAddr;
//! use siphon_tests::mock::http::{Request, Response};
//! use siphon_tests::mock::oauth::{OAuth, OAuthConfig};
//! use siphon_tests::mock::{MockVendor, Streams};
//!
//! #[derive(Default)]
//! struct Events(Vec<String>);
//! impl Streams for Events {
//!     fn add(&mut self, _stream: &str, n: usize) -> Vec<String> {
//!         let start = self.0.len();
//!         self.0.extend((start..start + n).map(|i| format!(r#"{{"id":"e{i}"}}"#)));
//!         (start..start + n).map(|i| format!("e{i}")).collect()
//!     }
//!     fn records(&self, _stream: &str) -> Vec<String> {
//!         self.0.clone()
//!     }
//!     fn keys(&self, _stream: &str) -> Vec<String> {
//!         (0..self.0.len()).map(|i| format!("e{i}")).collect()
//!     }
//! }
//!
//! let oauth = OAuth::new("/oauth/token", OAuthConfig::new("client", "secret"));
//! let addr = SocketAddr::from(([127, 0, 0, 1], 0));
//! let mock = MockVendor::serve("acme", addr, false, Events::default(), Some(oauth), |v, req: &Request| {
//!     match v.oauth().authorize(req) {
//!         Ok(_) => Response::json(200, format!("[{}]", v.state().0.join(","))),
//!         Err(denied) => denied.response(),
//!     }
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::VendorMock;
use super::http::{Request, Response};
use super::oauth::OAuth;
use super::server::{MockServer, ServerOptions, lock};

/// What a vendor's state holds, stream by stream: the part of [`VendorMock`] each vendor writes.
pub trait Streams: Send + 'static {
    /// Appends `n` records to `stream` and returns their keys.
    fn add(&mut self, stream: &str, n: usize) -> Vec<String>;

    /// Every record of `stream`, in order, as the exact text the vendor serves.
    fn records(&self, stream: &str) -> Vec<String>;

    /// The key of every record of `stream`, in order.
    fn keys(&self, stream: &str) -> Vec<String>;
}

/// What a vendor handler reaches besides the request: the vendor's state and its token endpoint.
pub struct Shared<S> {
    state: Mutex<S>,
    oauth: Option<OAuth>,
}

impl<S> Shared<S> {
    /// The vendor's state, locked (also after a test panicked while holding it).
    pub fn state(&self) -> MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// The token endpoint.
    ///
    /// # Panics
    /// When the vendor was started without one: a mistake in the mock.
    pub fn oauth(&self) -> &OAuth {
        self.oauth.as_ref().expect("this vendor mock has no OAuth token endpoint")
    }
}

/// A running vendor mock; stops when dropped.
pub struct MockVendor<S> {
    server: MockServer,
    shared: Arc<Shared<S>>,
}

impl<S: Send + 'static> MockVendor<S> {
    /// Serves `handler` over `state` on `addr` (port 0 picks a free one). With `oauth`, requests
    /// for its token path are answered by it before the handler runs. With `log_requests`, one
    /// line per request goes to stderr, labelled `mock-vendor <name>`.
    pub async fn serve(
        name: &str,
        addr: SocketAddr,
        log_requests: bool,
        state: S,
        oauth: Option<OAuth>,
        handler: impl Fn(&Shared<S>, &Request) -> Response + Send + Sync + 'static,
    ) -> anyhow::Result<MockVendor<S>> {
        let options = ServerOptions { addr, log_label: log_requests.then(|| format!("mock-vendor {name}")) };
        let shared = Arc::new(Shared { state: Mutex::new(state), oauth });
        let vendor = Arc::clone(&shared);
        let server = MockServer::start_with(options, move |req: &Request| {
            match vendor.oauth.as_ref().and_then(|o| o.route(req)) {
                Some(answer) => answer,
                None => handler(&vendor, req),
            }
        })
        .await?;
        Ok(MockVendor { server, shared })
    }

    /// The generic server: request log and fault queue.
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `127.0.0.1:PORT`, the authority a collector's allow-list must contain.
    pub fn authority(&self) -> String {
        self.server.authority()
    }

    /// The vendor's state, locked.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.shared.state()
    }

    /// The token endpoint: tokens issued, expiry, secret rotation.
    ///
    /// # Panics
    /// When the vendor was started without one.
    pub fn oauth(&self) -> &OAuth {
        self.shared.oauth()
    }

    /// Stops accepting, lets requests in progress finish and closes every connection.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl<S: Streams> VendorMock for MockVendor<S> {
    fn server(&self) -> &MockServer {
        &self.server
    }

    fn add_records(&self, stream: &str, n: usize) -> Vec<String> {
        self.state().add(stream, n)
    }

    fn records(&self, stream: &str) -> Vec<String> {
        self.state().records(stream)
    }

    fn keys(&self, stream: &str) -> Vec<String> {
        self.state().keys(stream)
    }
}
