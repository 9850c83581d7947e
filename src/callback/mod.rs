//! cl-async's face: `tcp_connect`, `tcp_server`, callbacks, the event loop.

/// Callback-face state kept on each connection.
#[derive(Debug, Default)]
pub(crate) struct Ctl {}
