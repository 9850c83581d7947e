//! Socket options, descriptors and readiness, as tokio and std users
//! reach for them.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_lite::AsyncWriteExt;
use streamish::{AsyncInputStream, TcpListener, TcpStream};

#[test]
fn connect_and_bind_take_every_address_form() {
    common::run(async {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = server.local_addr();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        #[allow(clippy::needless_borrows_for_generic_args)] // the form under test
        TcpStream::connect(&addr).await.unwrap();
        TcpStream::connect((ip, addr.port())).await.unwrap();
        TcpStream::connect(addr.to_string().as_str()).await.unwrap();
        TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        TcpListener::bind((ip, 0)).unwrap();
    });
}

#[test]
fn options_descriptor_and_readiness() {
    common::run(async {
        let (mut client, peer) = common::pair().await;
        let sock = peer.socket();
        // The library has the options on Unix only.
        #[cfg(unix)]
        {
            use std::time::Duration;
            sock.set_keepalive(Some(Duration::from_secs(30))).unwrap();
            assert!(sock.keepalive().unwrap());
            sock.set_send_buffer_size(64 * 1024).unwrap();
            assert!(sock.send_buffer_size().unwrap() >= 64 * 1024);
            sock.set_recv_buffer_size(64 * 1024).unwrap();
            assert!(sock.recv_buffer_size().unwrap() > 0);
            sock.set_linger(Some(Duration::from_secs(1))).unwrap();
            assert_eq!(sock.linger().unwrap(), Some(Duration::from_secs(1)));
            assert!(std::os::fd::AsRawFd::as_raw_fd(&peer) >= 0);
        }
        #[cfg(windows)]
        assert_ne!(std::os::windows::io::AsRawSocket::as_raw_socket(&peer), !0); // INVALID_SOCKET
        let std_peer = sock.try_clone_std().unwrap();
        assert_eq!(std_peer.peer_addr().unwrap(), client.local_addr().unwrap());

        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        sock.readable().await.unwrap(); // waits, consumes nothing
        sock.writable().await.unwrap();
        let mut peer = peer;
        let mut buf = [0u8; 8];
        assert_eq!(peer.read_sequence(&mut buf).unwrap(), 4);
    });
}

#[test]
#[cfg_attr(not(unix), ignore = "SO_REUSEPORT is a Unix option: elsewhere the second bind fails")]
fn listeners_share_a_port_with_reuse_port() {
    let a = TcpListener::bind_reuse_port("127.0.0.1:0").unwrap();
    let b = TcpListener::bind_reuse_port(a.local_addr()).unwrap();
    assert_eq!(a.local_addr(), b.local_addr());
    assert!(
        TcpListener::bind(a.local_addr()).is_err(),
        "without it the port is taken"
    );
}
