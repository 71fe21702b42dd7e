//! A collector that attacks its host, for siphon's sandbox tests
//! (`tests/e2e/hostile.rs`). It talks to the raw `siphon:collector` world
//! (no SDK), as an attacker would, and ignores the errors the host answers
//! with, so the host has to stop it. The `mode` setting picks the attack:
//!
//! | `mode` | Attack | The host should |
//! |---|---|---|
//! | `fields-bomb` | `wasi:http` header maps filled to their limit, kept until the handle table is full | fail the run at `max_resources` |
//! | `unread` | `count` requests to `url`, responses never read | fail the run at `max_requests_in_flight` / `max_response_buffer` |
//! | `records` | `count` tiny `{}` records, `batch` per `emit`, never committed | fail the run at `max_pending_size` |
//! | `log-flood` | `count` long log lines with newlines and terminal escapes, and a stderr flood | keep its log budget, escape, clip |
//! | `secret` | the `token` secret (in `form` plain, percent or base64) in a log line, a request path and userinfo, a denied request and a record | redact every log line, refuse the record, fail the run |
//! | `secret-note` | the secret in the run summary's note | redact the note |
//! | `get` | one GET of `url`, failure returned as `transport` | refuse other ports and names resolving to private addresses |
//! | `sandbox` | open a directory, a file, the environment, a TCP and a UDP socket, resolve a name | refuse every one (the note lists what happened) |

#[cfg(target_family = "wasm")]
mod guest;
