//! `--sweep`: the tables of `design/performance.md`, "How cost grows".
//! Bulk on one connection at write sizes from 16 bytes to 64 KiB, and
//! echo-many from 1 to 5,000 connections, for streamish's two faces and
//! the peers that differ most (raw async-io, tokio, tokio with
//! `BufWriter`). Three interleaved repetitions, medians; one thread
//! (`1t`) throughout, where the implementations' own costs show most.

use std::collections::BTreeMap;

use crate::harness::{Sample, Sizes, run_child};
use crate::median;

const REPS: usize = 3;

pub fn report(quick: bool, sizes: &Sizes) -> i32 {
    // `--quick` moves fewer bytes and messages per child.
    let scale = if quick { 8 } else { 1 };
    let mut failed = false;

    println!("how cost grows with the size of a write: bulk, one connection, 1t (MiB/s; ns per write)");
    let chunks = [16usize, 128, 1024, 8 * 1024, 64 * 1024];
    let imps = ["streamish", "streamish-cb", "async-io", "tokio", "tokio-buf"];
    let rows = measure("bulk-1k", &chunks, &imps, sizes, &mut failed, |chunk| {
        // Fewer bytes where every write is a system call for some.
        let bytes: u64 = if chunk < 1024 { 32 << 20 } else { 512 << 20 } / scale;
        vec!["--chunk".into(), chunk.to_string(), "--bytes".into(), bytes.to_string()]
    });
    table("write bytes", &chunks, &imps, &rows, |chunk, v| {
        let mib = median(&v.iter().map(|s| s.value).collect::<Vec<_>>());
        let ns = chunk as f64 / (mib * (1 << 20) as f64) * 1e9;
        format!("{mib:.0} MiB/s {ns:.0} ns")
    });

    println!();
    println!("how cost grows with connections: echo-many, 128-byte messages, 1t (msg/s; peak RSS growth)");
    let conns = [1usize, 10, 100, 1_000, 5_000];
    let imps = ["streamish", "streamish-cb", "async-io", "tokio"];
    let rows = measure("echo-many", &conns, &imps, sizes, &mut failed, |n| {
        // About 200,000 messages a run (at least 20 a connection),
        // capped in time like the full run's echo-many.
        let msgs = (200_000 / scale as usize / n).max(20);
        vec![
            "--echo-conns".into(),
            n.to_string(),
            "--echo-msgs".into(),
            msgs.to_string(),
        ]
    });
    table("connections", &conns, &imps, &rows, |_, v| {
        let rate = median(&v.iter().map(|s| s.value).collect::<Vec<_>>());
        let rss = median(&v.iter().map(|s| s.rss.unwrap_or(f64::NAN)).collect::<Vec<_>>());
        format!("{rate:.0} {:.1} MiB", rss / 1024.0)
    });
    i32::from(failed)
}

/// Runs workload `w` (1t) for every point and implementation, `REPS`
/// times interleaved, the implementations' order rotating.
fn measure<'a>(
    w: &str,
    points: &[usize],
    imps: &[&'a str],
    sizes: &Sizes,
    failed: &mut bool,
    args: impl Fn(usize) -> Vec<String>,
) -> BTreeMap<(usize, &'a str), Vec<Sample>> {
    let mut rows: BTreeMap<(usize, &str), Vec<Sample>> = BTreeMap::new();
    for rep in 0..REPS {
        for &p in points {
            for j in 0..imps.len() {
                let imp = imps[(j + rep) % imps.len()];
                match run_child(w, "1t", imp, false, sizes, &args(p)) {
                    Ok(sample) => rows.entry((p, imp)).or_default().push(sample),
                    Err(e) => {
                        *failed = true;
                        eprintln!("  sweep {w} {p} {imp}: FAILED: {e}");
                    }
                }
            }
        }
    }
    rows
}

fn table(
    first: &str,
    points: &[usize],
    imps: &[&str],
    rows: &BTreeMap<(usize, &str), Vec<Sample>>,
    cell: impl Fn(usize, &[Sample]) -> String,
) {
    print!("{first:>12}");
    for imp in imps {
        print!(" {imp:>22}");
    }
    println!();
    for &p in points {
        print!("{p:>12}");
        for imp in imps {
            match rows.get(&(p, *imp)) {
                Some(v) => print!(" {:>22}", cell(p, v)),
                None => print!(" {:>22}", "-"),
            }
        }
        println!();
    }
}
