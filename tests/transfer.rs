//! Bytes are never lost, duplicated or reordered: random chunkings both
//! ways, request/response exchanges with no flush call.

mod common;

use std::io;

use futures_lite::future::zip;
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use streamish::{
    AsyncInputStream, AsyncOutputStream, AsyncOutputStreamExt, AsyncStreamExt, TcpInputStream, TcpOutputStream,
    TcpStream,
};

use common::{Rng, pair, run, wait_input};

/// Writes `data` in random chunks through every write path the output half
/// has, then half-closes.
async fn send_random(out: &mut TcpOutputStream, data: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut pos = 0;
    while pos < data.len() {
        let n = rng.range(1, 70_000).min(data.len() - pos);
        let chunk = &data[pos..pos + n];
        match rng.range(0, 4) {
            0 => out.write_all(chunk).await?,
            1 => out.write_sequence(chunk)?,
            2 => out.write_bytes(bytes::Bytes::copy_from_slice(chunk))?,
            3 => {
                let mut padded = vec![0xAA; 3];
                padded.extend_from_slice(chunk);
                padded.extend_from_slice(&[0xBB; 5]);
                out.write_subsequence(&padded, 3, Some(3 + n))?;
            }
            _ => {
                for &b in chunk.iter().take(3) {
                    out.write_byte(b)?;
                }
                out.write_all(&chunk[chunk.len().min(3)..]).await?;
            }
        }
        pos += n;
        // The cl-async writes never wait: keep what they queue bounded.
        if out.queued() > 256 * 1024 {
            out.finish_output().await?;
            assert_eq!(out.queued(), 0, "finish_output left bytes queued");
        } else if rng.range(0, 7) == 0 {
            out.force_output()?;
        }
    }
    out.close().await
}

/// Reads until EOF in random sizes through every read path the input half
/// has.
async fn recv_random(inp: &mut TcpInputStream, rng: &mut Rng) -> io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..1_000_000 {
        match rng.range(0, 2) {
            0 => {
                let k = rng.range(1, buf.len());
                let n = inp.read(&mut buf[..k]).await?;
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            1 => {
                let avail = inp.fill_buf().await?;
                if avail.is_empty() {
                    break;
                }
                let k = rng.range(1, avail.len());
                got.extend_from_slice(&avail[..k]);
                inp.consume(k);
            }
            _ => {
                let k = rng.range(1, buf.len());
                let n = inp.read_sequence(&mut buf[..k])?;
                if n > 0 {
                    got.extend_from_slice(&buf[..n]);
                } else if inp.at_eof() || wait_input(inp).await? {
                    break;
                }
            }
        }
    }
    assert!(inp.at_eof(), "stopped reading before EOF");
    Ok(got)
}

#[test]
fn random_chunks_arrive_intact_both_ways() {
    run(async {
        for seed in 1..=4u64 {
            let (client, peer) = pair().await;
            let (mut ci, mut co) = client.split();
            let (mut pi, mut po) = peer.split();
            let mut rng = Rng::new(seed);
            let (n_up, n_down) = (rng.range(100_000, 600_000), rng.range(100_000, 600_000));
            let up = rng.bytes(n_up);
            let down = rng.bytes(n_down);
            let (mut r1, mut r2, mut r3, mut r4) = (
                Rng::new(seed * 10),
                Rng::new(seed * 11),
                Rng::new(seed * 12),
                Rng::new(seed * 13),
            );
            let ((s1, got_up), (s2, got_down)) = zip(
                zip(send_random(&mut co, &up, &mut r1), recv_random(&mut pi, &mut r2)),
                zip(send_random(&mut po, &down, &mut r3), recv_random(&mut ci, &mut r4)),
            )
            .await;
            s1.unwrap();
            s2.unwrap();
            let (got_up, got_down) = (got_up.unwrap(), got_down.unwrap());
            assert_eq!(got_up.len(), up.len(), "seed {seed}: client to peer length");
            assert!(got_up == up, "seed {seed}: client to peer bytes differ");
            assert_eq!(got_down.len(), down.len(), "seed {seed}: peer to client length");
            assert!(got_down == down, "seed {seed}: peer to client bytes differ");
            // The counters saw every byte, once.
            assert_eq!(co.socket().bytes_written(), up.len() as u64);
            assert_eq!(pi.socket().bytes_read(), up.len() as u64);
            assert_eq!(po.socket().bytes_written(), down.len() as u64);
            assert_eq!(ci.socket().bytes_read(), down.len() as u64);
        }
    });
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, failure_persistence: None, ..Default::default() })]

    /// Any chunking of writes, read back with any sizes, through a joined
    /// stream with no flush call: the bytes come out as they went in.
    #[test]
    fn any_chunking_round_trips(
        chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000), 0..24),
        reads in proptest::collection::vec(1usize..30_000, 1..16),
    ) {
        let sent: Vec<u8> = chunks.concat();
        let got = run(async {
            let (mut client, mut peer) = pair().await;
            let write = async {
                for c in &chunks {
                    client.write_all(c).await?;
                }
                client.close_stream().await
            };
            let read = async {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 30_000];
                for i in 0.. {
                    let k = reads[i % reads.len()];
                    match peer.read(&mut buf[..k]).await? {
                        0 => break,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                io::Result::Ok(got)
            };
            let (w, r) = zip(write, read).await;
            w.unwrap();
            r.unwrap()
        });
        proptest::prop_assert_eq!(got, sent);
    }
}

#[test]
fn request_response_without_flush() {
    run(async {
        let (mut client, mut peer) = pair().await;
        const ROUNDS: u32 = 20;
        let serve = async {
            let mut req = [0u8; 8];
            let mut served = 0;
            loop {
                match peer.read_exact(&mut req).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
                let n = u32::from_be_bytes(req[4..].try_into().unwrap());
                // The answer is only queued; the next read sends it.
                peer.write_all(&[b"resp".as_slice(), &(n * 2).to_be_bytes()].concat())
                    .await?;
                served += 1;
            }
            io::Result::Ok(served)
        };
        let ask = async {
            let mut resp = [0u8; 8];
            for n in 0..ROUNDS {
                // Queued; the read below sends it.
                client
                    .write_all(&[b"reqq".as_slice(), &n.to_be_bytes()].concat())
                    .await?;
                client.read_exact(&mut resp).await?;
                assert_eq!(&resp[..4], b"resp");
                assert_eq!(u32::from_be_bytes(resp[4..].try_into().unwrap()), n * 2);
            }
            client.close_stream().await
        };
        let (served, asked) = zip(serve, ask).await;
        asked.unwrap();
        assert_eq!(served.unwrap(), ROUNDS);
    });
}

#[test]
fn request_response_with_write_sequence_without_flush() {
    run(async {
        let (mut client, mut peer) = pair().await;
        const ROUNDS: usize = 10;
        /// Reads `want.len()` bytes with the non-waiting calls; waiting for
        /// input is what pushes this side's queued output.
        async fn expect(s: &mut TcpStream, want: &[u8]) -> io::Result<()> {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while got.len() < want.len() {
                if wait_input(s).await? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let n = s.read_sequence(&mut buf[..want.len() - got.len()])?;
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, want);
            Ok(())
        }
        let serve = async {
            for round in 0..ROUNDS {
                expect(&mut peer, format!("can i have your coat? #{round}").as_bytes()).await?;
                peer.write_sequence(format!("don't say that #{round}").as_bytes())?;
            }
            // Waiting for the client's EOF sends the last answer.
            assert!(wait_input(&mut peer).await?);
            io::Result::Ok(())
        };
        let ask = async {
            for round in 0..ROUNDS {
                client.write_sequence(format!("can i have your coat? #{round}").as_bytes())?;
                expect(&mut client, format!("don't say that #{round}").as_bytes()).await?;
            }
            client.close_stream().await
        };
        let (s, a) = zip(serve, ask).await;
        s.unwrap();
        a.unwrap();
    });
}
