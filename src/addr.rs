//! Addresses: what `connect` accepts, name resolution off the executor,
//! and trying every resolved address in turn.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

use async_io::Async;

use crate::Event;
use crate::transport::Sock;

/// What a connect target resolves from. Public only inside the sealed
/// [`ToAddrs`] trait; not nameable outside the crate.
#[derive(Debug)]
pub enum Target {
    /// Addresses known without resolution.
    Addrs(Vec<SocketAddr>),
    /// A name and a port, to resolve.
    Host(String, u16),
}

mod sealed {
    pub trait Sealed {}
}

/// Something to connect to: a socket address, `"host:port"`,
/// `"[v6]:port"`, `(host, port)` or a list of socket addresses.
///
/// IP literals need no resolution; names are resolved with the system
/// resolver on a `blocking` thread, so the executor never waits on DNS.
pub trait ToAddrs: sealed::Sealed {
    /// Splits the target into addresses or a name to resolve.
    #[doc(hidden)]
    fn to_target(self) -> io::Result<Target>;
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn host_port(host: &str, port: u16) -> io::Result<Target> {
    let host = host.trim();
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.is_empty() {
        return Err(invalid("empty host name".into()));
    }
    match bare.parse::<IpAddr>() {
        Ok(ip) => Ok(Target::Addrs(vec![SocketAddr::new(ip, port)])),
        Err(_) => Ok(Target::Host(bare.to_string(), port)),
    }
}

fn parse_str(s: &str) -> io::Result<Target> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Target::Addrs(vec![addr]));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(invalid(format!("{s:?} is not HOST:PORT")));
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid(format!("{s:?}: {port:?} is not a port number")))?;
    host_port(host, port)
}

macro_rules! addrs_from {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl ToAddrs for $ty {
            fn to_target(self) -> io::Result<Target> {
                Ok(Target::Addrs(vec![SocketAddr::from(self)]))
            }
        }
    )*};
}

addrs_from!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl sealed::Sealed for (&str, u16) {}
impl ToAddrs for (&str, u16) {
    fn to_target(self) -> io::Result<Target> {
        host_port(self.0, self.1)
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToAddrs for (String, u16) {
    fn to_target(self) -> io::Result<Target> {
        host_port(&self.0, self.1)
    }
}

impl sealed::Sealed for &str {}
impl ToAddrs for &str {
    fn to_target(self) -> io::Result<Target> {
        parse_str(self)
    }
}

impl sealed::Sealed for String {}
impl ToAddrs for String {
    fn to_target(self) -> io::Result<Target> {
        parse_str(&self)
    }
}

impl sealed::Sealed for &String {}
impl ToAddrs for &String {
    fn to_target(self) -> io::Result<Target> {
        parse_str(self)
    }
}

impl sealed::Sealed for &SocketAddr {}
impl ToAddrs for &SocketAddr {
    fn to_target(self) -> io::Result<Target> {
        Ok(Target::Addrs(vec![*self]))
    }
}

impl sealed::Sealed for Vec<SocketAddr> {}
impl ToAddrs for Vec<SocketAddr> {
    fn to_target(self) -> io::Result<Target> {
        Ok(Target::Addrs(self))
    }
}

impl sealed::Sealed for &[SocketAddr] {}
impl ToAddrs for &[SocketAddr] {
    fn to_target(self) -> io::Result<Target> {
        Ok(Target::Addrs(self.to_vec()))
    }
}

/// Resolves `target`, off the executor when it is a name. A name that does
/// not resolve is [`Event::Dns`].
pub(crate) async fn resolve(target: Target) -> io::Result<(String, Vec<SocketAddr>)> {
    match target {
        Target::Addrs(addrs) => {
            let label = match addrs.as_slice() {
                [one] => one.to_string(),
                _ => format!("{addrs:?}"),
            };
            Ok((label, addrs))
        }
        Target::Host(host, port) => {
            let name = host.clone();
            let res = blocking::unblock(move || (name.as_str(), port).to_socket_addrs().map(Vec::from_iter)).await;
            let label = format!("{host}:{port}");
            match res {
                Ok(addrs) if !addrs.is_empty() => Ok((label, addrs)),
                Ok(_) => Err(Event::Dns {
                    socket: None,
                    host,
                    error: io::Error::new(io::ErrorKind::NotFound, "no addresses found"),
                }
                .into()),
                Err(error) => Err(Event::Dns {
                    socket: None,
                    host,
                    error,
                }
                .into()),
            }
        }
    }
}

/// Connects to each address in turn and returns the first connection made;
/// with `local`, from a socket bound to it, trying only the addresses of its
/// family. If none can be made, the error has the kind of the first failure
/// and names every address with its error.
pub(crate) async fn connect_any(
    label: &str,
    addrs: &[SocketAddr],
    local: Option<SocketAddr>,
) -> io::Result<Async<Sock>> {
    let mut failures = Vec::new();
    let mut first_kind = None;
    for &addr in addrs {
        if addr.port() == 0 {
            return Err(invalid(format!("cannot connect to {addr}: port 0")));
        }
        if local.is_some_and(|l| l.is_ipv4() != addr.is_ipv4()) {
            continue;
        }
        // A failed bind fails for every address alike: say so at once.
        match connect_one(local, addr).await? {
            Ok(io) => return Ok(io),
            Err(e) => {
                first_kind.get_or_insert(e.kind());
                failures.push(format!("{addr}: {e}"));
            }
        }
    }
    let Some(kind) = first_kind else {
        let from = local.map(|l| format!(" from {l}")).unwrap_or_default();
        return Err(invalid(format!("no address to connect to for {label}{from}")));
    };
    let msg = format!("could not connect to {label} ({})", failures.join("; "));
    Err(Event::from(io::Error::new(kind, msg)).into())
}

/// Resolves and connects, from `local` if given.
pub(crate) async fn connect(addr: impl ToAddrs, local: Option<SocketAddr>) -> io::Result<Async<Sock>> {
    let (label, addrs) = resolve(addr.to_target()?).await?;
    connect_any(&label, &addrs, local).await
}

/// Connects a new socket to `remote`, bound to `local` first if given,
/// without waiting on the executor. The outer error is the bind's (the same
/// for every remote address); the inner one the connect's. The socket is
/// registered with the reactor once, as the transport it stays.
#[cfg(unix)]
async fn connect_one(local: Option<SocketAddr>, remote: SocketAddr) -> io::Result<io::Result<Async<Sock>>> {
    let fd = crate::sys::stream_socket(remote)?;
    if let Some(local) = local {
        if let Err(e) = rustix::net::bind(&fd, &local) {
            let e = io::Error::from(e);
            return Err(Event::from(io::Error::new(e.kind(), format!("cannot bind to {local}: {e}"))).into());
        }
    }
    let stream = std::net::TcpStream::from(fd);
    stream.set_nonblocking(true)?;
    Ok(async {
        match rustix::net::connect(&stream, &remote) {
            // Under way: the socket turns writable once it is done.
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let io = Async::new_nonblocking(Sock::Tcp(stream))?;
        io.writable().await?;
        match io.get_ref().tcp()?.take_error()? {
            None => Ok(io),
            Some(e) => Err(e),
        }
    }
    .await)
}

/// Elsewhere std connects; a client cannot be bound first.
#[cfg(not(unix))]
async fn connect_one(local: Option<SocketAddr>, remote: SocketAddr) -> io::Result<io::Result<Async<Sock>>> {
    if let Some(local) = local {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot bind a client to {local} on this system"),
        ));
    }
    Ok(async {
        let io = Async::<std::net::TcpStream>::connect(remote).await?;
        Async::new(Sock::Tcp(io.into_inner()?))
    }
    .await)
}
