//! `--syscalls`: system calls per pingpong round trip of each
//! implementation, counted with `strace -f -c` (every thread of the child,
//! the runtimes' helper threads included). Each child runs once with
//! [`FEW`] round trips and once with [`MANY`], and the difference of the
//! two counts is divided by the difference of the round trips: what
//! setting up costs (binding, connecting, starting threads) cancels out.

use std::collections::BTreeMap;
use std::io;
use std::process::{Command, Stdio};

use crate::harness::parse_result;
use crate::impls::takes_part;

const FEW: u64 = 500;
const MANY: u64 = 3_000;

pub fn report(models: &[&str], imps: &[&str]) -> i32 {
    println!("system calls per pingpong round trip (strace -f -c: {MANY} round trips less {FEW}, per round trip)");
    let mut failed = false;
    for m in models {
        for imp in imps.iter().filter(|i| takes_part("pingpong", m, i)) {
            match per_round_trip(m, imp) {
                Ok(calls) => {
                    let total: f64 = calls.iter().map(|c| c.1).sum();
                    let list: Vec<String> = calls
                        .iter()
                        .filter(|c| c.1 >= 0.005)
                        .map(|(name, n)| format!("{name} {n:.2}"))
                        .collect();
                    println!("syscalls pingpong {m} {imp} {total:.2} calls/rt: {}", list.join(", "));
                }
                Err(e) => {
                    failed = true;
                    println!("syscalls pingpong {m} {imp}: FAILED: {e}");
                }
            }
        }
    }
    i32::from(failed)
}

/// The calls per round trip by name, most frequent first.
fn per_round_trip(m: &str, imp: &str) -> io::Result<Vec<(String, f64)>> {
    let (few, done_few) = count(m, imp, FEW)?;
    let (many, done_many) = count(m, imp, MANY)?;
    if done_many <= done_few {
        return Err(io::Error::other("the longer run did not do more round trips"));
    }
    let mut calls: Vec<(String, f64)> = many
        .iter()
        .map(|(name, n)| {
            let diff = *n as f64 - few.get(name).copied().unwrap_or(0) as f64;
            (name.clone(), diff / (done_many - done_few) as f64)
        })
        .filter(|c| c.1 > 0.0)
        .collect();
    calls.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(calls)
}

/// Runs one child under `strace -f -c`: its calls by name, and the
/// round trips it did.
fn count(m: &str, imp: &str, rounds: u64) -> io::Result<(BTreeMap<String, u64>, u64)> {
    let file = std::env::temp_dir().join(format!("peers-strace-{}-{m}-{imp}-{rounds}", std::process::id()));
    let out = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&file)
        .arg("--")
        .arg(std::env::current_exe()?)
        .args(["--child", "pingpong", m, imp, "--once", "--cap", "100", "--rounds"])
        .arg(rounds.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => io::Error::new(e.kind(), "strace not found: install it to count system calls"),
            _ => e,
        })?;
    let text = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "strace or the child exited with {}",
            out.status
        )));
    }
    let done = parse_result(&out.stdout)
        .and_then(|sample| sample.ops)
        .ok_or_else(|| io::Error::other("the child printed no result"))?;
    Ok((parse(&text?), done as u64))
}

/// Reads strace's summary: `% time, seconds, usecs/call, calls,
/// [errors,] syscall` per line, then a `total` line.
fn parse(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let (Some(name), Ok(n)) = (f.last(), f[3].parse::<u64>()) else {
            continue;
        };
        if *name != "total" {
            calls.insert((*name).to_owned(), n);
        }
    }
    calls
}
