//! streamish against its peers, side by side in one run.
//!
//! ```text
//! cargo bench --bench peers                 # full run (5 repetitions)
//! cargo bench --bench peers -- --quick      # smaller sizes, 2 repetitions, < 60 s
//! cargo bench --bench peers --features tls  # adds tls-bulk-64k (TlsStream vs futures-rustls)
//! cargo bench --bench peers -- --only pingpong,bulk-64k --impls streamish,tokio --reps 3
//! cargo bench --bench peers -- --syscalls   # system calls per pingpong round trip (strace -f -c)
//! cargo bench --bench peers -- --sweep      # cost by write size and by number of connections
//! ```
//!
//! Every measurement runs in a fresh child process (this binary re-executed
//! with `--child WORKLOAD MODEL IMPL`), so peak RSS, the allocator count, file
//! descriptors and runtime threads of one implementation never leak into the
//! next. Runs are interleaved (each repetition walks every workload, model and
//! implementation, rotating the implementation order) and the medians are
//! printed as `bench WORKLOAD MODEL IMPL VALUE UNIT`, followed by a table of
//! streamish's ratio to each peer and its targets.
//!
//! Implementations, each written the way its own documentation shows:
//! * `streamish`: `TcpListener`/`TcpStream` with futures-lite's
//!   `AsyncReadExt`/`AsyncWriteExt`, defaults only (it sets `TCP_NODELAY`);
//! * `streamish-cb`: the callback face (`tcp_connect`/`tcp_server`);
//! * `streamish-tokio`: the await face run by tokio instead (full runs, or
//!   `--impls`): the same workload code on tokio `current_thread` runtimes,
//!   tasks spawned with `spawn_local`, as a tokio application runs
//!   streamish; async-io's reactor then runs on async-io's own thread;
//! * `async-io`: raw `Async<std::net::TcpStream>` with futures-lite;
//!   `async-io-buf` wraps the writer in futures-lite's `BufWriter` where a
//!   user would (bulk-1k and small-writes);
//! * `smol`: `smol::net` (async-net);
//! * `tokio`: `tokio::net`; `tokio-buf` wraps the writer in a `BufWriter`
//!   where a tokio user would (bulk-1k and small-writes);
//! * `std`: blocking `std::net` with threads;
//! * `futures-rustls`: futures-rustls over async-net (smol's `TcpStream`),
//!   the peer of streamish's `TlsStream` in the TLS workload
//!   (`tls-bulk-64k`, built with `--features tls`; skipped otherwise).
//!   Both use the same rustls configs (streamish's `tls::client_config` and
//!   `tls::server_config`, aws-lc-rs), so only the stream layer differs.
//!
//! Executors: streamish, async-io and smol run on `smol::LocalExecutor` inside
//! `smol::block_on` (async-io's `block_on`, which drives the reactor on the
//! calling thread). tokio runs on a `current_thread` runtime (`1t`), and on
//! two `current_thread` runtimes on two threads (`2t`: one per side, as
//! `#[tokio::main(flavor = "current_thread")]` in a client and in a server
//! process would). `std` has no one-thread model: it is measured in `2t` only
//! (one thread per side; one thread per connection in echo-many and idle).
//!
//! Every side sets `TCP_NODELAY` in pingpong and echo-many, as a careful user
//! would (streamish does it by itself).
//!
//! Loops are bounded in count and time: pingpong and echo-many stop at their
//! count or their time cap and are rated over what they did; every child has
//! a watchdog. Diagnostics on one child: `--child W M I [--quick] [--cap
//! SECONDS] [--echo-conns N] [--alloc-hist] [--cb-upfront] [--once] [--rounds
//! N] [--chunk BYTES] [--bytes N] [--echo-msgs N]`. `--syscalls [--impls ..]
//! [--models ..]` runs each pingpong child
//! under `strace -f -c` instead of timing it (see [`syscalls`]). The method and
//! the latest numbers are in `design/performance.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use harness::{Sizes, child, idle_count, load_average, nofile_limit, raise_nofile_limit, run_child};
use impls::{IMPLS, is_tls, takes_part};

mod harness;
mod impls;
mod sweep;
mod syscalls;
mod workloads;

const WORKLOADS: &[&str] = &[
    "bulk-64k",
    "bulk-1k",
    "small-writes",
    "pingpong",
    "echo-many",
    "idle",
    "tls-bulk-64k",
];
const MODELS: &[&str] = &["1t", "2t"];
/// Reported peak RSS of echo-many goes under this workload name.
const RSS: &str = "echo-many-rss";

fn models_of(workload: &str) -> &'static [&'static str] {
    // Idle measures memory, not speed: the measured server runs on one
    // thread, the clients are plain std sockets on a helper thread.
    if workload == "idle" { &MODELS[..1] } else { MODELS }
}

fn unit_of(workload: &str) -> &'static str {
    match workload {
        "bulk-64k" | "bulk-1k" | "small-writes" | "tls-bulk-64k" => "MiB/s",
        "pingpong" => "rt/s",
        "echo-many" => "msg/s",
        RSS => "KiB",
        "idle" => "B/conn",
        _ => "?",
    }
}

/// The workloads in report order, echo-many's peak RSS after its rate.
fn reported() -> impl Iterator<Item = &'static str> {
    WORKLOADS
        .iter()
        .flat_map(|w| if *w == "echo-many" { vec![*w, RSS] } else { vec![*w] })
}

fn lower_is_better(workload: &str) -> bool {
    matches!(workload, "idle" | RSS)
}

/// The parent runs children, interleaved and repeated, and reports medians;
/// a child (`--child`) makes one measurement.
fn main() {
    raise_nofile_limit();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut sizes = Sizes::from_args(quick, &args);
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let [w, m, imp] = [&args[i + 1], &args[i + 2], &args[i + 3]];
        std::process::exit(child(w, m, imp, &sizes));
    }
    let list = |flag: &str| -> Option<Vec<String>> {
        let i = args.iter().position(|a| a == flag)?;
        Some(args.get(i + 1)?.split(',').map(str::to_owned).collect())
    };
    if let Some(r) = list("--reps") {
        sizes.reps = r[0].parse().expect("--reps N");
    }
    let only = list("--only");
    let impls_only = list("--impls");
    let models_only = list("--models");
    let chosen = |set: &Option<Vec<String>>, x: &str| set.as_ref().is_none_or(|s| s.iter().any(|y| y == x));
    if args.iter().any(|a| a == "--sweep") {
        std::process::exit(sweep::report(quick, &sizes));
    }
    if args.iter().any(|a| a == "--syscalls") {
        let models: Vec<&str> = MODELS.iter().copied().filter(|m| chosen(&models_only, m)).collect();
        let imps: Vec<&str> = IMPLS.iter().copied().filter(|i| chosen(&impls_only, i)).collect();
        std::process::exit(syscalls::report(&models, &imps));
    }

    eprintln!(
        "peers: {} run, {} repetitions; bulk {} MiB, small-writes {}, pingpong {}, echo-many {}x{}, idle {} (fd limit {})",
        if quick { "quick" } else { "full" },
        sizes.reps,
        sizes.bulk_bytes >> 20,
        sizes.small_writes,
        sizes.pingpong_rounds,
        sizes.echo_conns,
        sizes.echo_msgs,
        idle_count(&sizes),
        nofile_limit(),
    );
    eprintln!("peers: load average at the start: {}", load_average());

    let mut cases = Vec::new();
    for w in WORKLOADS.iter().filter(|w| chosen(&only, w)) {
        if is_tls(w) && !cfg!(feature = "tls") {
            eprintln!("peers: {w} skipped: it needs --features tls");
            continue;
        }
        for m in models_of(w).iter().filter(|m| chosen(&models_only, m)) {
            let imps: Vec<&str> = IMPLS
                .iter()
                .copied()
                .filter(|i| takes_part(w, m, i) && chosen(&impls_only, i))
                // Not one of the peers: left out of the one-minute pass
                // unless asked for.
                .filter(|i| !(quick && impls_only.is_none() && *i == "streamish-tokio"))
                .collect();
            cases.push((*w, *m, imps));
        }
    }

    let started = Instant::now();
    let budget = if quick {
        Duration::from_secs(55)
    } else {
        Duration::from_secs(15 * 60)
    };
    let mut results: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    let mut cpu: BTreeMap<(String, String, String), Vec<f64>> = BTreeMap::new();
    let mut capped = BTreeSet::new();
    for rep in 0..sizes.reps {
        if rep > 0 && started.elapsed() > budget {
            eprintln!("peers: time budget spent, stopping after {rep} repetitions");
            break;
        }
        for (w, m, imps) in &cases {
            let k = imps.len().max(1);
            for j in 0..imps.len() {
                let imp = imps[(j + rep) % k];
                let t = Instant::now();
                match run_child(w, m, imp, quick, &sizes, &[]) {
                    Ok(sample) => {
                        eprintln!(
                            "  rep {} {w} {m} {imp}: {:.0} {}{}{} ({:.1} s)",
                            rep + 1,
                            sample.value,
                            unit_of(w),
                            sample
                                .rss
                                .map(|r| format!(", peak RSS +{r:.0} KiB"))
                                .unwrap_or_default(),
                            sample.cpu.map(|c| format!(", {c:.0} per cpu-s")).unwrap_or_default(),
                            t.elapsed().as_secs_f64()
                        );
                        if sample.capped {
                            eprintln!(
                                "    (time cap reached: rated over the {:.0} done)",
                                sample.ops.unwrap_or(0.0)
                            );
                            capped.insert(format!("{w} {m}"));
                        }
                        results.entry(key(w, m, imp)).or_default().push(sample.value);
                        if let Some(r) = sample.rss {
                            results.entry(key(RSS, m, imp)).or_default().push(r);
                        }
                        if let Some(c) = sample.cpu {
                            cpu.entry(key(w, m, imp)).or_default().push(c);
                        }
                    }
                    Err(e) => eprintln!("  rep {} {w} {m} {imp}: FAILED: {e}", rep + 1),
                }
            }
        }
    }

    let median = |k: &(String, String, String)| results.get(k).map(|v| median(v));
    println!();
    for w in reported() {
        for m in MODELS {
            for imp in IMPLS {
                if let Some(v) = median(&key(w, m, imp)) {
                    println!("bench {w} {m} {imp} {v:.0} {}", unit_of(w));
                }
            }
        }
    }
    print_ratios(&median);
    print_targets(&median);
    if !capped.is_empty() {
        println!();
        println!(
            "time caps ({:?} pingpong, {:?} echo-many) cut runs short in: {}; those rates are over the work done",
            sizes.pingpong_cap,
            sizes.echo_cap,
            capped.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    println!();
    println!("throughput per CPU-second (user+sys time of all the child's threads; less sensitive to other load):");
    for (k, v) in &cpu {
        let unit = unit_of(&k.0).trim_end_matches("/s");
        println!("cpu {} {} {} {:.0} {unit}/cpu-s", k.0, k.1, k.2, crate::median(v));
    }
    eprintln!("peers: load average at the end: {}", load_average());
    eprintln!("peers: done in {:.0} s", started.elapsed().as_secs_f64());
}

/// A result's key: workload, model, implementation.
type Key = (String, String, String);
/// The median of a key's runs, if it ran.
type Medians<'a> = dyn Fn(&Key) -> Option<f64> + 'a;

fn key(w: &str, m: &str, i: &str) -> Key {
    (w.to_owned(), m.to_owned(), i.to_owned())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_ratios(median: &Medians<'_>) {
    print_plain_ratios(median);
    print_tls_ratios(median);
    // The await face on tokio's runtime, against tokio's own streams and
    // against itself on async-io's `block_on`.
    let mut rows = Vec::new();
    for w in WORKLOADS.iter().chain([&RSS]) {
        for m in MODELS {
            if let Some(t) = median(&key(w, m, "streamish-tokio")) {
                let vs = |p: &str| match median(&key(w, m, p)) {
                    Some(v) if v > 0.0 => format!("{:.2}x", t / v),
                    _ => "-".to_owned(),
                };
                rows.push(format!(
                    "{w:<14} {m:<5} {:>14} {:>10} {:>10}",
                    format!("{t:.0} {}", unit_of(w)),
                    vs("tokio"),
                    vs("streamish")
                ));
            }
        }
    }
    if !rows.is_empty() {
        println!();
        println!("streamish on tokio's runtime (streamish-tokio) / tokio, and / streamish on async-io's block_on");
        println!(
            "{:<14} {:<5} {:>14} {:>10} {:>10}",
            "workload", "model", "on tokio", "tokio", "streamish"
        );
        for r in rows {
            println!("{r}");
        }
    }
}

/// streamish against each peer over plain TCP.
fn print_plain_ratios(median: &Medians<'_>) {
    let peers = ["async-io", "async-io-buf", "smol", "tokio", "tokio-buf", "std"];
    let plain = || reported().filter(|w| !is_tls(w));
    if !plain().any(|w| MODELS.iter().any(|m| median(&key(w, m, "streamish")).is_some())) {
        return;
    }
    println!();
    println!("streamish / peer (above 1 means streamish is faster; for idle and echo-many-rss, lower is better)");
    print!("{:<14} {:<5} {:>14}", "workload", "model", "streamish");
    // A name longer than the column widens its own column only.
    let width = |p: &str| p.len().max(10);
    for p in peers {
        print!(" {p:>w$}", w = width(p));
    }
    println!(" {:>14}", "cb/streamish");
    for w in plain() {
        for m in MODELS {
            let Some(s) = median(&key(w, m, "streamish")) else {
                continue;
            };
            print!("{w:<14} {m:<5} {:>14}", format!("{s:.0} {}", unit_of(w)));
            for p in peers {
                match median(&key(w, m, p)) {
                    Some(v) if v > 0.0 => print!(" {:>w$}", format!("{:.2}x", s / v), w = width(p)),
                    _ => print!(" {:>w$}", "-", w = width(p)),
                }
            }
            match median(&key(w, m, "streamish-cb")) {
                Some(c) if s > 0.0 => println!(" {:>14}", format!("{:.2}x", c / s)),
                _ => println!(" {:>14}", "-"),
            }
        }
    }
}

/// TLS: streamish's `TlsStream` against futures-rustls, same configs.
fn print_tls_ratios(median: &Medians<'_>) {
    let mut rows = Vec::new();
    for w in WORKLOADS.iter().filter(|w| is_tls(w)) {
        for m in MODELS {
            if let Some(s) = median(&key(w, m, "streamish")) {
                let vs = match median(&key(w, m, "futures-rustls")) {
                    Some(v) if v > 0.0 => format!("{:.2}x", s / v),
                    _ => "-".to_owned(),
                };
                rows.push(format!(
                    "{w:<14} {m:<5} {:>14} {vs:>14}",
                    format!("{s:.0} {}", unit_of(w))
                ));
            }
        }
    }
    if !rows.is_empty() {
        println!();
        println!("TLS: streamish's TlsStream / futures-rustls over async-net (same rustls configs, aws-lc-rs)");
        println!(
            "{:<14} {:<5} {:>14} {:>14}",
            "workload", "model", "streamish", "futures-rustls"
        );
        for r in rows {
            println!("{r}");
        }
    }
}

/// streamish's speed against a peer, in every model: workload, peer, and
/// the least ratio that passes.
const SPEED: [(&str, &str, f64); 6] = [
    ("bulk-64k", "async-io", 1.0),
    ("bulk-64k", "tokio", 0.95),
    ("small-writes", "async-io", 5.0),
    ("small-writes", "tokio", 5.0),
    ("small-writes", "tokio-buf", 1.0),
    ("small-writes", "async-io-buf", 1.0),
];

fn print_targets(median: &Medians<'_>) {
    let ratio = |w: &str, m: &str, a: &str, b: &str| Some(median(&key(w, m, a))? / median(&key(w, m, b))?);
    let mut lines = Vec::new();
    let mut check = |name: String, r: Option<f64>, want: f64| {
        if let Some(r) = r {
            let ok = if want >= 0.0 { r >= want } else { r <= -want };
            let cmp = if want >= 0.0 { ">=" } else { "<=" };
            lines.push(format!(
                "  {} {name}: {r:.2} (want {cmp} {})",
                if ok { "PASS" } else { "FAIL" },
                want.abs()
            ));
        }
    };
    for m in MODELS {
        for (w, peer, want) in SPEED {
            check(format!("{w} {m} vs {peer}"), ratio(w, m, "streamish", peer), want);
        }
    }
    check(
        "pingpong 1t vs async-io".into(),
        ratio("pingpong", "1t", "streamish", "async-io"),
        1.0,
    );
    check(
        "pingpong 1t vs tokio (reported)".into(),
        ratio("pingpong", "1t", "streamish", "tokio"),
        0.0,
    );
    for m in MODELS {
        check(
            format!("echo-many {m} vs async-io"),
            ratio("echo-many", m, "streamish", "async-io"),
            1.0,
        );
        let best = ["async-io", "smol", "tokio", "std"]
            .iter()
            .filter_map(|p| median(&key("echo-many", m, p)))
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        let s = median(&key("echo-many", m, "streamish"));
        check(
            format!("echo-many {m} vs fastest peer"),
            s.zip(best).map(|(s, b)| s / b),
            0.9,
        );
    }
    for w in WORKLOADS {
        for m in models_of(w) {
            let r = if lower_is_better(w) {
                ratio(w, m, "streamish", "streamish-cb")
            } else {
                ratio(w, m, "streamish-cb", "streamish")
            };
            check(format!("streamish-cb {w} {m} vs streamish"), r, 0.9);
        }
    }
    check(
        "idle heap per connection (B)".into(),
        median(&key("idle", "1t", "streamish")),
        -1024.0,
    );
    println!();
    println!("targets:");
    for l in lines {
        println!("{l}");
    }
}
