//! TLS streams: rustls on both sides, and peers nobody here wrote.
#![cfg(feature = "tls")]

mod common;

use futures_lite::future::zip;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use streamish::tls::rustls::RootCertStore;
use streamish::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use streamish::tls::{self, TlsListener, TlsStream};
use streamish::{AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, Event};

use common::run;

fn self_signed(name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, RootCertStore) {
    let cert = rcgen::generate_simple_self_signed(vec![name.into()]).unwrap();
    let der = cert.cert.der().clone();
    let mut roots = RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()).into();
    (vec![der], key, roots)
}

async fn tls_pair() -> (TlsStream, TlsStream) {
    let (chain, key, roots) = self_signed("localhost");
    let server = TlsListener::bind("127.0.0.1:0", tls::server_config(chain, key).unwrap()).unwrap();
    let (a, c) = zip(
        server.accept(),
        TlsStream::connect_to(server.local_addr(), "localhost", tls::client_config(roots)),
    )
    .await;
    (c.unwrap(), a.unwrap().0)
}

#[test]
fn a_round_trip_with_no_flush() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_sequence(b"pong").unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(client.read_sequence(&mut buf).unwrap(), 0);
        assert!(!client.at_eof());
    });
}

#[test]
fn a_megabyte_each_way_and_close_notify() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        let data: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let sent = data.clone();
        let (_, got) = zip(
            async {
                client.write_all(&sent).await.unwrap();
                client.close_stream().await.unwrap();
            },
            async {
                let mut got = Vec::new();
                server.read_to_end(&mut got).await.unwrap();
                got
            },
        )
        .await;
        assert_eq!(got.len(), data.len());
        assert!(got == data);
    });
}

#[test]
fn a_wrong_name_is_a_certificate_event() {
    run(async {
        let (chain, key, roots) = self_signed("localhost");
        let server = TlsListener::bind("127.0.0.1:0", tls::server_config(chain, key).unwrap()).unwrap();
        let (a, c) = zip(
            server.accept(),
            TlsStream::connect_to(server.local_addr(), "example.com", tls::client_config(roots)),
        )
        .await;
        let ev = Event::from(c.unwrap_err());
        assert!(matches!(ev, Event::Certificate { .. }), "{ev}");
        let ev = Event::from(a.unwrap_err());
        assert!(matches!(ev, Event::Certificate { .. }), "{ev}");
    });
}

#[test]
fn finish_output_waits_for_the_records() {
    run(async {
        let (mut client, mut server) = tls_pair().await;
        client.write_sequence(&vec![7u8; 300_000]).unwrap();
        let reader = async {
            let mut got = vec![0u8; 300_000];
            server.read_exact(&mut got).await.unwrap();
            got
        };
        let (done, got) = zip(client.finish_output(), reader).await;
        done.unwrap();
        assert!(got.iter().all(|&b| b == 7));
        assert_eq!(client.queued(), 0);
    });
}
