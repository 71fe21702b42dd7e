//! Test support for siphon: in-process mock vendor servers that follow
//! `shared/vendor-apis.md`, used by the end-to-end tests and by the `mock-*` binaries for
//! trying collectors by hand.

pub mod mock_netskope;
