//! The real network: the host resolves the request's name, refuses
//! addresses a collector has no business reaching (loopback, link-local and
//! the cloud metadata service at 169.254.169.254, private, CGNAT, ULA,
//! multicast, reserved) unless the source opts in, and connects to the very
//! address it checked — there is no second lookup, so no DNS-rebinding
//! window. Then TLS (rustls, webpki roots) and HTTP/1.1 with the request's
//! timeouts, as wasmtime-wasi-http's default client does.
//!
//! A request to an IP literal is not filtered: it passed the allow-list, so
//! the operator listed that address (the mocks in the tests run on
//! `127.0.0.1:<port>`).

use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::Response;
use http::uri::Scheme;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use super::{BufferedRequest, Upstream};

/// Whether a request's host name may resolve to non-public addresses; set
/// by the egress policy on every request it sends (absent: no).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// `allow_private_addresses` of the source.
    pub allow_private: bool,
}

/// The real network.
pub struct Network;

impl Upstream for Network {
    fn send(
        &self,
        request: BufferedRequest,
        options: RequestOptions,
    ) -> BoxFuture<'static, Result<Response<WasiBody>, HttpError>> {
        Box::pin(send(request, options))
    }
}

/// `Ok` for an address on the public internet, else what it is.
pub fn is_public(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing is judged as IPv4.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_unspecified() && !v6.is_loopback() {
                return is_public_v4(Ipv4Addr::from_bits(v6.to_bits() as u32));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return is_public_v4(Ipv4Addr::from_bits(v6.to_bits() as u32));
            }
            if s[0] == 0x2002 {
                return is_public_v4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> Result<(), &'static str> {
    let [a, b, c, _] = ip.octets();
    Err(match (a, b, c) {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_link_local() => "link-local (this includes the cloud metadata service 169.254.169.254)",
        _ if ip.is_private() => "private",
        (100, 64..=127, _) => "shared address space (CGNAT)",
        _ if ip.is_unspecified() || a == 0 => "\"this network\"",
        _ if ip.is_broadcast() || ip.is_multicast() => "broadcast or multicast",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "reserved for protocols or documentation",
        (198, 18..=19, _) => "reserved for benchmarking",
        (240..=255, _, _) => "reserved",
        _ => return Ok(()),
    })
}

fn is_public_v6(ip: Ipv6Addr) -> Result<(), &'static str> {
    let s = ip.segments();
    Err(match s[0] {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xfc00..=0xfdff => "unique local (ULA)",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "reserved for documentation",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        _ => return Ok(()),
    })
}

/// The addresses `host` may be reached at on `port`: an IP literal as is,
/// a name resolved and filtered.
async fn addresses(
    host: &str,
    port: u16,
    policy: AddressPolicy,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, HttpError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved: Vec<SocketAddr> = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| HttpError::DnsTimeout)?
        .map_err(|e| HttpError::DnsError { rcode: Some(e.to_string()), info_code: None })?
        .collect();
    if resolved.is_empty() {
        return Err(HttpError::DnsError { rcode: Some("no address".to_owned()), info_code: None });
    }
    if policy.allow_private {
        return Ok(resolved);
    }
    let (public, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
        resolved.into_iter().partition(|a| is_public(a.ip()).is_ok());
    if public.is_empty() {
        let why: Vec<String> =
            refused.iter().map(|a| format!("{} ({})", a.ip(), is_public(a.ip()).err().unwrap_or("public"))).collect();
        tracing::warn!(host, addresses = %why.join(", "),
            "Refused a request: the host name resolves only to non-public addresses \
             (list the address itself in allowed_hosts, or set allow_private_addresses = true)");
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(public)
}

/// Connect to the first of `addrs` that answers.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => HttpError::ConnectionRefused,
        Some(e) => HttpError::Connect(e),
        None => HttpError::DestinationNotFound,
    })
}

/// The TLS client settings: ring, the webpki roots, no client certificate.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| HttpError::InternalError(Some(format!("TLS set-up: {e}"))))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + Unpin + 'static {}

async fn send(mut request: BufferedRequest, options: RequestOptions) -> Result<Response<WasiBody>, HttpError> {
    let policy = request.extensions().get::<AddressPolicy>().copied().unwrap_or_default();
    let uri = request.uri().clone();
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    let long = Duration::from_secs(600);
    let connect_timeout = options.connect_timeout.unwrap_or(long);
    let first_byte_timeout = options.first_byte_timeout.unwrap_or(long);
    let between_bytes_timeout = options.between_bytes_timeout.unwrap_or(long).max(Duration::from_nanos(1));

    let addrs = addresses(host, port, policy, connect_timeout).await?;
    let tcp =
        tokio::time::timeout(connect_timeout, connect(&addrs)).await.map_err(|_| HttpError::ConnectionTimeout)??;
    let stream: Box<dyn Stream> = if use_tls {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config()?);
        let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(HttpError::Tls)?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(wasmtime_wasi_http::io::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;

    // The request line carries the path only (the authority is in Host).
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let request = request.map(Full::new);

    let mut conn = Some(conn);
    let mut response = pin!(tokio::time::timeout(first_byte_timeout, sender.send_request(request)));
    // Drive the connection while waiting for the response head.
    let response = poll_fn(|cx| match response.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            if let Some(c) = conn.as_mut()
                && let Poll::Ready(_) = Pin::new(c).poll(cx)
            {
                conn = None;
            }
            Poll::Pending
        }
    })
    .await
    .map_err(|_| HttpError::ConnectionReadTimeout)??;
    if let Some(conn) = conn {
        // The connection task drives the body; it ends with the body.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Upstream connection ended with an error");
            }
        });
    }
    let mut timer = tokio::time::interval(between_bytes_timeout);
    timer.reset();
    Ok(response.map(|incoming| TimedBody { incoming, timer }.boxed_unsync()))
}

/// A response body that fails when no byte arrives for the between-bytes
/// timeout.
struct TimedBody {
    incoming: hyper::body::Incoming,
    timer: tokio::time::Interval,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(if e.is_timeout() { HttpError::HttpResponseTimeout } else { e.into() })))
            }
            Poll::Ready(Some(Ok(frame))) => {
                self.timer.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timer.poll_tick(cx));
                Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.63.0.1", "100.128.0.1", "172.32.0.1"] {
            assert_eq!(is_public(ip.parse().unwrap()), Ok(()), "{ip}");
        }
        for (ip, what) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("169.254.169.254", "metadata"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "CGNAT"),
            ("0.0.0.0", "this network"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fd00::1", "ULA"),
            ("fc12::1", "ULA"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("64:ff9b::10.0.0.1", "private"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            let e = is_public(ip.parse().unwrap()).unwrap_err();
            assert!(e.contains(what), "{ip}: {e}");
        }
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_unless_allowed() {
        let deny = AddressPolicy { allow_private: false };
        let e = addresses("localhost", 80, deny, Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(e, HttpError::DestinationIpProhibited), "{e:?}");
        let allow = AddressPolicy { allow_private: true };
        let addrs = addresses("localhost", 80, allow, Duration::from_secs(10)).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80), "{addrs:?}");
        let literal = addresses("127.0.0.1", 8089, deny, Duration::from_secs(10)).await.unwrap();
        assert_eq!(literal, vec!["127.0.0.1:8089".parse().unwrap()], "an IP literal was named by the operator");
    }
}
