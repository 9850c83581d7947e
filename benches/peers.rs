//! streamish against its peers, side by side in one run.
//!
//! ```text
//! cargo bench --bench peers                 # full run (5 repetitions)
//! cargo bench --bench peers -- --quick      # smaller sizes, 2 repetitions, < 60 s
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
//! streamish's ratio to each peer and the targets of issue 4.
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
//! * `std`: blocking `std::net` with threads.
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

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// A counting allocator, switched on only in the `idle` children.

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live allocations by size, in 16-byte classes (the last one holds
/// everything from 4 KiB up): `--alloc-hist` prints where idle bytes go.
static HIST: [AtomicIsize; 257] = [const { AtomicIsize::new(0) }; 257];

fn hist_class(size: usize) -> usize {
    (size / 16).min(256)
}

fn count(size: usize, sign: isize) {
    LIVE.fetch_add(sign * size as isize, Relaxed);
    HIST[hist_class(size)].fetch_add(sign, Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// kept on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            count(layout.size(), 1);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            count(layout.size(), 1);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Relaxed) {
            count(layout.size(), -1);
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Relaxed) {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap_live() -> isize {
    if std::env::args().any(|a| a == "--alloc-hist") {
        for (i, h) in HIST.iter().enumerate() {
            let base = HIST_BASE[i].swap(h.load(Relaxed), Relaxed);
            let live = h.load(Relaxed) - base;
            if live.unsigned_abs() >= 100 {
                eprintln!("alloc-hist {:>5}..{:<5} B: {live:+}", i * 16, (i + 1) * 16);
            }
        }
    }
    LIVE.load(Relaxed)
}

/// The histogram when [`heap_live`] last looked (`--alloc-hist`).
static HIST_BASE: [AtomicIsize; 257] = [const { AtomicIsize::new(0) }; 257];

// ---------------------------------------------------------------------------
// Configuration.

const WORKLOADS: &[&str] = &["bulk-64k", "bulk-1k", "small-writes", "pingpong", "echo-many", "idle"];
const MODELS: &[&str] = &["1t", "2t"];
const IMPLS: &[&str] = &[
    "streamish",
    "streamish-cb",
    "streamish-tokio",
    "async-io",
    "async-io-buf",
    "smol",
    "tokio",
    "tokio-buf",
    "std",
];
/// The most runs one child makes of a short measurement (see `child`).
const INNER_RUNS: usize = 9;
/// Reported peak RSS of echo-many goes under this workload name.
const RSS: &str = "echo-many-rss";

#[derive(Clone, Copy, Debug)]
struct Sizes {
    bulk_bytes: u64,
    small_writes: u64,
    pingpong_rounds: u64,
    echo_conns: usize,
    echo_msgs: usize,
    idle_conns: usize,
    /// Time caps of pingpong and echo-many (see [`DONE`]).
    pingpong_cap: Duration,
    echo_cap: Duration,
    /// A child repeats a measurement that took less than this (see `child`).
    inner: Duration,
    reps: usize,
    child_timeout: Duration,
    /// `--cb-upfront` (diagnostics): the callback writers make every write
    /// at once in `connect_cb`, leaving all buffering to streamish, as a
    /// cl-async program may, instead of pacing themselves with `write_cb`.
    cb_upfront: bool,
    /// `--cb-batch N` (diagnostics): the callback writers make at most `N`
    /// writes per `write_cb` (and in `connect_cb`) instead of topping the
    /// queue up to the high-water mark; 1 is one write per drain.
    cb_batch: u64,
    /// `--once` (diagnostics): a child runs its workload once, never
    /// repeating a short one, so that counts of system calls scale with the
    /// work (see [`syscalls`]).
    once: bool,
    /// `--chunk BYTES` (diagnostics): the bulk workloads' write size
    /// instead of their own (see [`bulk_chunk`]).
    chunk: Option<usize>,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                bulk_bytes: 64 << 20,
                small_writes: 100_000,
                pingpong_rounds: 10_000,
                echo_conns: 1_000,
                echo_msgs: 20,
                idle_conns: 2_000,
                pingpong_cap: Duration::from_millis(500),
                echo_cap: Duration::from_millis(800),
                inner: Duration::from_millis(150),
                reps: 2,
                child_timeout: Duration::from_secs(30),
                cb_upfront: false,
                cb_batch: u64::MAX,
                once: false,
                chunk: None,
            }
        } else {
            Sizes {
                bulk_bytes: 1 << 30,
                small_writes: 1_000_000,
                pingpong_rounds: 100_000,
                echo_conns: 1_000,
                echo_msgs: 200,
                idle_conns: 10_000,
                pingpong_cap: Duration::from_secs(3),
                echo_cap: Duration::from_secs(4),
                inner: Duration::from_secs(1),
                reps: 5,
                child_timeout: Duration::from_secs(120),
                cb_upfront: false,
                cb_batch: u64::MAX,
                once: false,
                chunk: None,
            }
        }
    }
}

/// Which implementations take part in a workload and model.
fn takes_part(workload: &str, model: &str, imp: &str) -> bool {
    match imp {
        "streamish-cb" => cb::AVAILABLE,
        "streamish-tokio" => workload != "idle",
        "async-io-buf" | "tokio-buf" => matches!(workload, "bulk-1k" | "small-writes"),
        // std has no one-thread model (blocking sockets need a thread per
        // side); idle is measured once, under `1t`, with a thread per
        // connection.
        "std" => model == "2t" || workload == "idle",
        _ => true,
    }
}

fn models_of(workload: &str) -> &'static [&'static str] {
    // Idle measures memory, not speed: the measured server runs on one
    // thread, the clients are plain std sockets on a helper thread.
    if workload == "idle" { &MODELS[..1] } else { MODELS }
}

fn unit_of(workload: &str) -> &'static str {
    match workload {
        "bulk-64k" | "bulk-1k" | "small-writes" => "MiB/s",
        "pingpong" => "rt/s",
        "echo-many" => "msg/s",
        RSS => "KiB",
        "idle" => "B/conn",
        _ => "?",
    }
}

fn lower_is_better(workload: &str) -> bool {
    matches!(workload, "idle" | RSS)
}

// ---------------------------------------------------------------------------
// The parent: run children, interleaved and repeated, report medians.

fn main() {
    raise_nofile_limit();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut sizes = Sizes::new(quick);
    if let Some(i) = args.iter().position(|a| a == "--cap") {
        // Diagnostics (strace, perf): override the time caps, in seconds.
        let cap = Duration::from_secs_f64(args[i + 1].parse().expect("--cap SECONDS"));
        (sizes.pingpong_cap, sizes.echo_cap) = (cap, cap);
    }
    sizes.cb_upfront = args.iter().any(|a| a == "--cb-upfront");
    if let Some(i) = args.iter().position(|a| a == "--cb-batch") {
        sizes.cb_batch = args[i + 1].parse().expect("--cb-batch N");
    }
    sizes.once = args.iter().any(|a| a == "--once");
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        // Diagnostics: pingpong's round trips.
        sizes.pingpong_rounds = args[i + 1].parse().expect("--rounds N");
    }
    if let Some(i) = args.iter().position(|a| a == "--echo-conns") {
        // Diagnostics: how cost grows with the number of connections.
        sizes.echo_conns = args[i + 1].parse().expect("--echo-conns N");
    }
    if let Some(i) = args.iter().position(|a| a == "--echo-msgs") {
        sizes.echo_msgs = args[i + 1].parse().expect("--echo-msgs N");
    }
    if let Some(i) = args.iter().position(|a| a == "--chunk") {
        // Diagnostics: how cost grows with the size of a write (bulk).
        let chunk: usize = args[i + 1].parse().expect("--chunk BYTES");
        sizes.chunk = Some(chunk.max(1));
    }
    if let Some(i) = args.iter().position(|a| a == "--bytes") {
        sizes.bulk_bytes = args[i + 1].parse().expect("--bytes N");
    }
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
    if !cb::AVAILABLE {
        eprintln!("peers: streamish-cb left out: the callback face (streamish::tcp_connect) is not available yet");
    }

    let mut cases = Vec::new();
    for w in WORKLOADS.iter().filter(|w| chosen(&only, w)) {
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
    let mut capped = std::collections::BTreeSet::new();
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
    for w in WORKLOADS
        .iter()
        .flat_map(|w| if *w == "echo-many" { vec![*w, RSS] } else { vec![*w] })
    {
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
    let peers = ["async-io", "async-io-buf", "smol", "tokio", "tokio-buf", "std"];
    println!();
    println!("streamish / peer (above 1 means streamish is faster; for idle and echo-many-rss, lower is better)");
    print!("{:<14} {:<5} {:>14}", "workload", "model", "streamish");
    // A name longer than the column widens its own column only.
    let width = |p: &str| p.len().max(10);
    for p in peers {
        print!(" {p:>w$}", w = width(p));
    }
    println!(" {:>14}", "cb/streamish");
    for w in WORKLOADS
        .iter()
        .flat_map(|w| if *w == "echo-many" { vec![*w, RSS] } else { vec![*w] })
    {
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
        check(
            format!("bulk-64k {m} vs async-io"),
            ratio("bulk-64k", m, "streamish", "async-io"),
            1.0,
        );
        check(
            format!("bulk-64k {m} vs tokio"),
            ratio("bulk-64k", m, "streamish", "tokio"),
            0.95,
        );
        check(
            format!("small-writes {m} vs async-io"),
            ratio("small-writes", m, "streamish", "async-io"),
            5.0,
        );
        check(
            format!("small-writes {m} vs tokio"),
            ratio("small-writes", m, "streamish", "tokio"),
            5.0,
        );
        check(
            format!("small-writes {m} vs tokio-buf"),
            ratio("small-writes", m, "streamish", "tokio-buf"),
            1.0,
        );
        check(
            format!("small-writes {m} vs async-io-buf"),
            ratio("small-writes", m, "streamish", "async-io-buf"),
            1.0,
        );
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
    println!("targets (issue 4):");
    for l in lines {
        println!("{l}");
    }
}

/// What a child measured.
struct Sample {
    value: f64,
    /// echo-many: peak RSS growth, KiB.
    rss: Option<f64>,
    /// The same throughput per CPU-second of the child.
    cpu: Option<f64>,
    /// Operations done, and whether the time cap stopped a run early.
    ops: Option<f64>,
    capped: bool,
}

/// Runs one child (with `extra` arguments, the diagnostics' sizes) and
/// reads its `result` line.
fn run_child(w: &str, m: &str, imp: &str, quick: bool, sizes: &Sizes, extra: &[String]) -> io::Result<Sample> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--child", w, m, imp]).args(extra);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output()?;
    match (out.status.success(), parse_result(&out.stdout)) {
        (true, Some(sample)) => Ok(sample),
        _ => Err(io::Error::other(format!(
            "child exited with {} (timeout {:?})",
            out.status, sizes.child_timeout
        ))),
    }
}

/// Reads a child's `result` line (`result value=.. [rss=..] cpu=.. ops=..
/// capped=..`) from its standard output.
fn parse_result(stdout: &[u8]) -> Option<Sample> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with("result "))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('=')?.parse::<f64>().ok())
    };
    Some(Sample {
        value: field("value")?,
        rss: field("rss"),
        cpu: field("cpu"),
        ops: field("ops"),
        capped: field("capped") == Some(1.0),
    })
}

// ---------------------------------------------------------------------------
// `--sweep`: how cost grows with the size of a write and with connections.

/// `--sweep`: the tables of `design/performance.md`, "How cost grows".
/// Bulk on one connection at write sizes from 16 bytes to 64 KiB, and
/// echo-many from 1 to 5,000 connections, for streamish's two faces and
/// the peers that differ most (raw async-io, tokio, tokio with
/// `BufWriter`). Three interleaved repetitions, medians; one thread
/// (`1t`) throughout, where the implementations' own costs show most.
mod sweep {
    use super::*;

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
}

// ---------------------------------------------------------------------------
// `--syscalls`: system calls per pingpong round trip.

/// System calls per pingpong round trip of each implementation, counted
/// with `strace -f -c` as issue 4 asks (every thread of the child, the
/// runtimes' helper threads included). Each child runs once with [`FEW`]
/// round trips and once with [`MANY`], and the difference of the two
/// counts is divided by the difference of the round trips: what setting
/// up costs (binding, connecting, starting threads) cancels out.
mod syscalls {
    use super::*;

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
                io::ErrorKind::NotFound => {
                    io::Error::new(e.kind(), "strace not found: install it to count system calls")
                }
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
}

// ---------------------------------------------------------------------------
// A child: one measurement, printed as
// `result value=VALUE [rss=PEAK_RSS_KIB] [cpu=VALUE_PER_CPU_SECOND]`.

fn child(w: &str, m: &str, imp: &str, sizes: &Sizes) -> i32 {
    let limit = sizes.child_timeout;
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!("peers child: timed out after {limit:?}");
        std::process::exit(3);
    });
    let rss0 = proc_status_kib("VmRSS").unwrap_or(0);
    if w == "idle" {
        COUNTING.store(true, Relaxed);
        return match idle(imp, idle_count(sizes)) {
            Ok(per_conn) => {
                println!("result value={per_conn:.1}");
                let _ = io::stdout().flush();
                // Skip tearing down thousands of connections and threads.
                std::process::exit(0)
            }
            Err(e) => {
                eprintln!("peers child {w} {m} {imp}: {e}");
                1
            }
        };
    }
    if w.starts_with("bulk") && sizes.bulk_bytes % bulk_chunk(w, sizes) as u64 != 0 {
        // The reader waits for every byte: a total the writes cannot reach
        // would hang the child until its watchdog.
        eprintln!(
            "peers child {w}: --bytes {} is not a multiple of the write size {}",
            sizes.bulk_bytes,
            bulk_chunk(w, sizes)
        );
        return 2;
    }
    let two = m == "2t";
    let once = || match imp {
        "streamish" => fut::run::<fut::Streamish>(w, two, false, sizes),
        "streamish-tokio" => {
            fut::on_tokio(true);
            fut::run::<fut::Streamish>(w, two, false, sizes)
        }
        "async-io" => fut::run::<fut::AsyncIo>(w, two, false, sizes),
        "async-io-buf" => fut::run::<fut::AsyncIo>(w, two, true, sizes),
        "smol" => fut::run::<fut::Smol>(w, two, false, sizes),
        "tokio" => tok::run(w, two, false, sizes),
        "tokio-buf" => tok::run(w, two, true, sizes),
        "std" => stdi::run(w, sizes),
        "streamish-cb" => cb::run(w, two, sizes),
        _ => Err(io::Error::other("unknown implementation")),
    };
    // A run shorter than `sizes.inner` is repeated (on a new connection, up to
    // `INNER_RUNS` times in all) and the median taken: a 30 ms run is at the
    // mercy of one scheduler hiccup, and a 0.4 s one of a burst of other
    // load. echo-many runs once, so its peak RSS is its own.
    let cap = match w {
        "pingpong" => sizes.pingpong_cap,
        "echo-many" => sizes.echo_cap,
        _ => Duration::MAX,
    };
    CAP_NS.store(cap.as_nanos().min(u64::MAX as u128) as u64, Relaxed);
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let split0 = cpu_split();
    let (mut rates, mut total, mut capped) = (Vec::new(), 0.0, false);
    let res = loop {
        DONE.store(0, Relaxed);
        STOP_AT_NS.store(u64::MAX, Relaxed);
        let t = match once() {
            Ok(t) => t,
            Err(e) => break Err(e),
        };
        let ops = match w {
            "bulk-64k" | "bulk-1k" => sizes.bulk_bytes as f64 / (1 << 20) as f64,
            "small-writes" => (sizes.small_writes * 16) as f64 / (1 << 20) as f64,
            "pingpong" => {
                capped |= DONE.load(Relaxed) < sizes.pingpong_rounds;
                DONE.load(Relaxed) as f64
            }
            "echo-many" => {
                capped |= DONE.load(Relaxed) < (sizes.echo_conns * sizes.echo_msgs) as u64;
                DONE.load(Relaxed) as f64
            }
            _ => f64::NAN,
        };
        rates.push(ops / t.as_secs_f64());
        total += ops;
        if sizes.once || w == "echo-many" || rates.len() >= INNER_RUNS || started.elapsed() >= sizes.inner {
            break Ok(());
        }
    };
    match res {
        Ok(()) => {
            let value = median(&rates);
            let cpu = total / (cpu_seconds() - cpu0);
            let rss = if w == "echo-many" {
                let peak = proc_status_kib("VmHWM").unwrap_or(0).saturating_sub(rss0);
                format!(" rss={peak}")
            } else {
                String::new()
            };
            // CPU microseconds per operation (MiB, round trip, message), user and system apart.
            let split = cpu_split();
            let (usr, sys) = ((split.0 - split0.0) * 1e6 / total, (split.1 - split0.1) * 1e6 / total);
            println!(
                "result value={value:.1}{rss} cpu={cpu:.1} ops={total:.0} capped={} usr_us={usr:.2} sys_us={sys:.2}",
                capped as u8
            );
            let _ = io::stdout().flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("peers child {w} {m} {imp}: {e}");
            1
        }
    }
}

fn idle(imp: &str, n: usize) -> io::Result<f64> {
    match imp {
        "streamish" => fut::idle::<fut::Streamish>(n),
        "async-io" => fut::idle::<fut::AsyncIo>(n),
        "smol" => fut::idle::<fut::Smol>(n),
        "tokio" => tok::idle(n),
        "std" => stdi::idle(n),
        "streamish-cb" => cb::idle(n),
        _ => Err(io::Error::other("no idle variant")),
    }
}

/// The size of one write of a bulk workload.
fn bulk_chunk(w: &str, sizes: &Sizes) -> usize {
    match sizes.chunk {
        Some(chunk) => chunk,
        None if w == "bulk-64k" => 64 * 1024,
        None => 1024,
    }
}

/// Fills an echo-many message: every byte depends on connection, message
/// and position, so a lost, repeated or reordered byte is caught.
fn fill_msg(msg: &mut [u8; 128], conn: usize, i: usize) {
    let seed = (conn as u32).wrapping_mul(2_654_435_761) ^ (i as u32).wrapping_mul(40_503);
    for (k, b) in msg.iter_mut().enumerate() {
        *b = (seed >> (k % 4 * 8)) as u8 ^ k as u8;
    }
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "echoed bytes differ from the bytes sent")
}

fn early_eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed early")
}

// ---------------------------------------------------------------------------
// Resources.

fn nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to write into.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}

fn raise_nofile_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Idle connections to open: both ends live in the child, so each costs two
/// descriptors; scaled down when the limit cannot take the full count.
fn idle_count(sizes: &Sizes) -> usize {
    let fit = (nofile_limit().saturating_sub(128) / 2) as usize;
    sizes.idle_conns.min(fit)
}

/// Operations (round trips, messages) the current run completed: pingpong
/// and echo-many stop at their count or at their time cap, whichever
/// comes first, and are rated by what they did.
static DONE: AtomicU64 = AtomicU64::new(0);
/// The current run's time cap, and when it ends (nanoseconds since
/// [`epoch`]); `u64::MAX` until the timed part starts.
static CAP_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static STOP_AT_NS: AtomicU64 = AtomicU64::new(u64::MAX);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Marks the start of the timed part: arms the time cap.
fn start_timed() -> Instant {
    let now = Instant::now();
    let at = (now - epoch()).as_nanos() as u64;
    STOP_AT_NS.store(at.saturating_add(CAP_NS.load(Relaxed)), Relaxed);
    now
}

/// Whether the time cap has passed.
fn expired() -> bool {
    (epoch().elapsed().as_nanos() as u64) >= STOP_AT_NS.load(Relaxed)
}

/// Connections the idle server accepted so far (paces [`idle_clients`]).
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

/// User and system time of the whole process (every thread) so far.
fn cpu_seconds() -> f64 {
    let (user, sys) = cpu_split();
    user + sys
}

/// User and system time of the whole process so far, apart.
fn cpu_split() -> (f64, f64) {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Connects `n` blocking std clients to `addr` from a helper thread and keeps
/// them open until the process exits. The vector is allocated up front so
/// the helper adds nothing to the heap count while it connects.
///
/// The helper keeps at most 64 connections waiting in the accept queue (the
/// server counts what it accepted in [`ACCEPTED`]): a full listen backlog
/// drops SYNs, and the retransmission a second later would dominate the
/// setup time.
fn idle_clients(addr: SocketAddr, n: usize) -> mpsc::Receiver<io::Result<()>> {
    let (tx, rx) = mpsc::channel();
    let mut held = Vec::with_capacity(n);
    thread::spawn(move || {
        for i in 0..n {
            while i >= ACCEPTED.load(Relaxed) + 64 {
                thread::sleep(Duration::from_micros(100));
            }
            match std::net::TcpStream::connect(addr) {
                Ok(s) => held.push(s),
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        let _ = tx.send(Ok(()));
        thread::sleep(Duration::from_secs(3600));
        drop(held);
    });
    rx
}

// ---------------------------------------------------------------------------
// streamish, async-io and smol: the futures-io family, on async-executor.

mod fut {
    use super::*;
    use async_io::Async;
    use futures_lite::future;
    use futures_lite::io::BufWriter;
    use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use smol::LocalExecutor;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// `streamish-tokio`: the await face on tokio's `current_thread`
    /// runtime, its tasks spawned with `spawn_local`, as a tokio
    /// application runs it. The thread then parks in tokio's driver, and
    /// async-io's reactor runs on async-io's own thread.
    static ON_TOKIO: AtomicBool = AtomicBool::new(false);

    pub fn on_tokio(on: bool) {
        ON_TOKIO.store(on, Relaxed);
    }

    /// Runs `f` to completion on this thread: in `async_io::block_on`, or
    /// in a tokio `current_thread` runtime with a `LocalSet`.
    fn block_on<T>(f: impl Future<Output = T>) -> T {
        if !ON_TOKIO.load(Relaxed) {
            return async_io::block_on(f);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    /// Runs `f` with the tasks of `ex` (which tokio leaves empty: its
    /// tasks go to the runtime).
    fn run_with<T>(ex: &LocalExecutor<'_>, f: impl Future<Output = T>) -> T {
        if ON_TOKIO.load(Relaxed) {
            block_on(f)
        } else {
            block_on(ex.run(f))
        }
    }

    /// A spawned task, on smol's executor or on tokio's.
    enum Task<T> {
        Smol(smol::Task<T>),
        Tokio(tokio::task::JoinHandle<T>),
    }

    impl<T> Future for Task<T> {
        type Output = T;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
            match self.get_mut() {
                Task::Smol(t) => Pin::new(t).poll(cx),
                Task::Tokio(t) => Pin::new(t).poll(cx).map(|r| r.expect("a tokio task panicked")),
            }
        }
    }

    fn spawn<T: 'static>(ex: &LocalExecutor<'_>, f: impl Future<Output = T> + 'static) -> Task<T> {
        if ON_TOKIO.load(Relaxed) {
            Task::Tokio(tokio::task::spawn_local(f))
        } else {
            Task::Smol(ex.spawn(f))
        }
    }

    /// What differs between the three: how to listen, accept and connect.
    pub trait Net: 'static {
        type Listener;
        type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
        async fn bind() -> io::Result<(Self::Listener, SocketAddr)>;
        async fn accept(l: &Self::Listener) -> io::Result<Self::Stream>;
        async fn connect(addr: SocketAddr) -> io::Result<Self::Stream>;
        /// Called in pingpong and echo-many.
        fn nodelay(s: &Self::Stream) -> io::Result<()>;
    }

    pub struct Streamish;
    impl Net for Streamish {
        type Listener = streamish::TcpListener;
        type Stream = streamish::TcpStream;
        async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
            let server = streamish::TcpListener::bind("127.0.0.1:0")?;
            let addr = server.local_addr();
            Ok((server, addr))
        }
        async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
            Ok(l.accept().await?.0)
        }
        async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
            streamish::TcpStream::connect(addr).await
        }
        fn nodelay(_: &Self::Stream) -> io::Result<()> {
            Ok(()) // on by default
        }
    }

    pub struct AsyncIo;
    impl Net for AsyncIo {
        type Listener = Async<std::net::TcpListener>;
        type Stream = Async<std::net::TcpStream>;
        async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
            let l = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0))?;
            let addr = l.get_ref().local_addr()?;
            Ok((l, addr))
        }
        async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
            Ok(l.accept().await?.0)
        }
        async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
            Async::<std::net::TcpStream>::connect(addr).await
        }
        fn nodelay(s: &Self::Stream) -> io::Result<()> {
            s.get_ref().set_nodelay(true)
        }
    }

    pub struct Smol;
    impl Net for Smol {
        type Listener = smol::net::TcpListener;
        type Stream = smol::net::TcpStream;
        async fn bind() -> io::Result<(Self::Listener, SocketAddr)> {
            let l = smol::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            Ok((l, addr))
        }
        async fn accept(l: &Self::Listener) -> io::Result<Self::Stream> {
            Ok(l.accept().await?.0)
        }
        async fn connect(addr: SocketAddr) -> io::Result<Self::Stream> {
            smol::net::TcpStream::connect(addr).await
        }
        fn nodelay(s: &Self::Stream) -> io::Result<()> {
            s.set_nodelay(true)
        }
    }

    // ----- workload bodies, the same for all three -----

    async fn sink<S: AsyncRead + Unpin>(mut s: S, total: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < total {
            match s.read(&mut buf).await? {
                0 => return Err(early_eof()),
                n => got += n as u64,
            }
        }
        Ok(())
    }

    async fn source<S: AsyncWrite + Unpin>(mut s: S, chunk: usize, count: u64) -> io::Result<()> {
        let data = vec![0xa5u8; chunk];
        for _ in 0..count {
            s.write_all(&data).await?;
        }
        s.flush().await
    }

    async fn ping<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, rounds: u64) -> io::Result<()> {
        let msg = [0x42u8; 64];
        let mut back = [0u8; 64];
        let mut done = 0;
        while done < rounds && !expired() {
            s.write_all(&msg).await?;
            s.flush().await?;
            s.read_exact(&mut back).await?;
            done += 1;
        }
        DONE.fetch_add(done, Relaxed);
        if back != msg { Err(corrupt()) } else { Ok(()) }
    }

    /// Answers until the client closes.
    async fn pong<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf).await {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                res => res?,
            }
            s.write_all(&buf).await?;
            s.flush().await?;
        }
    }

    async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await? {
                0 => return Ok(()),
                n => {
                    s.write_all(&buf[..n]).await?;
                    s.flush().await?;
                }
            }
        }
    }

    async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, conn: usize, msgs: usize) -> io::Result<()> {
        let mut msg = [0u8; 128];
        let mut back = [0u8; 128];
        let mut done = 0;
        while done < msgs && !expired() {
            fill_msg(&mut msg, conn, done);
            s.write_all(&msg).await?;
            s.flush().await?;
            s.read_exact(&mut back).await?;
            if back != msg {
                return Err(corrupt());
            }
            done += 1;
        }
        DONE.fetch_add(done as u64, Relaxed);
        Ok(())
    }

    // ----- models -----

    /// `buffered`: the writer of bulk-1k and small-writes in futures-lite's
    /// `BufWriter`, as `async-io-buf` has it.
    pub fn run<N: Net>(w: &str, two: bool, buffered: bool, sz: &Sizes) -> io::Result<Duration> {
        match w {
            "bulk-64k" | "bulk-1k" | "small-writes" => {
                let (chunk, count, total) = if w == "small-writes" {
                    (16, sz.small_writes, 16 * sz.small_writes)
                } else {
                    let chunk = bulk_chunk(w, sz);
                    (chunk, sz.bulk_bytes / chunk as u64, sz.bulk_bytes)
                };
                if buffered {
                    pair::<N, _, _>(
                        two,
                        false,
                        move |s| source(BufWriter::new(s), chunk, count),
                        move |s| sink(s, total),
                    )
                } else {
                    pair::<N, _, _>(two, false, move |s| source(s, chunk, count), move |s| sink(s, total))
                }
            }
            "pingpong" => {
                let n = sz.pingpong_rounds;
                pair::<N, _, _>(two, true, move |s| ping(s, n), pong)
            }
            "echo-many" => echo_many::<N>(two, sz.echo_conns, sz.echo_msgs),
            _ => Err(io::Error::other("unknown workload")),
        }
    }

    /// One connection: `client` and `server` run on one executor (`1t`) or
    /// on two threads (`2t`); the time is from connected to the server done.
    fn pair<N: Net, C, S>(
        two: bool,
        nodelay: bool,
        client: impl FnOnce(N::Stream) -> C + Send + 'static,
        server: impl FnOnce(N::Stream) -> S + Send + 'static,
    ) -> io::Result<Duration>
    where
        C: Future<Output = io::Result<()>>,
        S: Future<Output = io::Result<()>> + 'static,
    {
        if !two {
            let ex = LocalExecutor::new();
            return run_with(&ex, async {
                let (l, addr) = N::bind().await?;
                let (c, s) = future::try_zip(N::connect(addr), N::accept(&l)).await?;
                if nodelay {
                    N::nodelay(&c)?;
                    N::nodelay(&s)?;
                }
                let t0 = start_timed();
                let srv = spawn(&ex, server(s));
                client(c).await?;
                srv.await?;
                Ok(t0.elapsed())
            });
        }
        let (tx, rx) = mpsc::channel();
        let go = Arc::new(Barrier::new(2));
        let go2 = go.clone();
        let srv = thread::spawn(move || {
            block_on(async {
                let (l, addr) = N::bind().await?;
                tx.send(addr).map_err(io::Error::other)?;
                let s = N::accept(&l).await?;
                if nodelay {
                    N::nodelay(&s)?;
                }
                go2.wait();
                let t0 = start_timed();
                server(s).await?;
                Ok(t0.elapsed())
            })
        });
        let cli = thread::spawn(move || {
            block_on(async {
                let addr = rx.recv().map_err(io::Error::other)?;
                let c = N::connect(addr).await?;
                if nodelay {
                    N::nodelay(&c)?;
                }
                go.wait();
                client(c).await
            })
        });
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        c?;
        s
    }

    async fn accept_all<'a, N: Net>(
        ex: &LocalExecutor<'a>,
        l: &N::Listener,
        n: usize,
    ) -> io::Result<Vec<Task<io::Result<()>>>> {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let s = N::accept(l).await?;
            N::nodelay(&s)?;
            tasks.push(spawn(ex, echo(s)));
        }
        Ok(tasks)
    }

    async fn connect_all<N: Net>(addr: SocketAddr, n: usize) -> io::Result<Vec<N::Stream>> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let c = N::connect(addr).await?;
            N::nodelay(&c)?;
            v.push(c);
        }
        Ok(v)
    }

    async fn clients<'a, N: Net>(ex: &LocalExecutor<'a>, conns: Vec<N::Stream>, msgs: usize) -> io::Result<Duration> {
        let t0 = start_timed();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| spawn(ex, echo_client(c, i, msgs)))
            .collect();
        for t in tasks {
            t.await?;
        }
        Ok(t0.elapsed())
    }

    fn echo_many<N: Net>(two: bool, n: usize, msgs: usize) -> io::Result<Duration> {
        if !two {
            let ex = LocalExecutor::new();
            return run_with(&ex, async {
                let (l, addr) = N::bind().await?;
                let (_servers, conns) = future::try_zip(accept_all::<N>(&ex, &l, n), connect_all::<N>(addr, n)).await?;
                clients::<N>(&ex, conns, msgs).await
            });
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let srv = thread::spawn(move || {
            let ex = LocalExecutor::new();
            run_with(&ex, async {
                let (l, addr) = N::bind().await?;
                tx.send(addr).map_err(io::Error::other)?;
                let tasks = accept_all::<N>(&ex, &l, n).await?;
                ready_tx.send(()).map_err(io::Error::other)?;
                for t in tasks {
                    t.await?;
                }
                io::Result::Ok(())
            })
        });
        let cli = thread::spawn(move || {
            let ex = LocalExecutor::new();
            run_with(&ex, async {
                let addr = rx.recv().map_err(io::Error::other)?;
                let conns = connect_all::<N>(addr, n).await?;
                ready_rx.recv().map_err(io::Error::other)?;
                clients::<N>(&ex, conns, msgs).await
            })
        });
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        s?;
        c
    }

    /// `n` accepted connections, each with a task waiting to read: heap
    /// bytes per connection once they all wait.
    pub fn idle<N: Net>(n: usize) -> io::Result<f64> {
        let ex = LocalExecutor::new();
        let res = block_on(ex.run(async {
            let (l, addr) = N::bind().await?;
            let base = heap_live();
            let done = idle_clients(addr, n);
            for _ in 0..n {
                let mut s = N::accept(&l).await?;
                ACCEPTED.fetch_add(1, Relaxed);
                ex.spawn(async move {
                    let mut b = [0u8; 64];
                    let _ = s.read(&mut b).await;
                    drop(s);
                })
                .detach();
            }
            done.recv().map_err(io::Error::other)??;
            async_io::Timer::after(Duration::from_millis(200)).await;
            Ok((heap_live() - base) as f64 / n as f64)
        }));
        // The process exits next: skip closing thousands of connections.
        std::mem::forget(ex);
        res
    }
}

// ---------------------------------------------------------------------------
// tokio.

mod tok {
    use super::*;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::runtime::{Builder, Runtime};

    fn runtime() -> io::Result<Runtime> {
        Builder::new_current_thread().enable_all().build()
    }

    async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        Ok((l, addr))
    }

    async fn sink(mut s: TcpStream, total: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < total {
            match s.read(&mut buf).await? {
                0 => return Err(early_eof()),
                n => got += n as u64,
            }
        }
        Ok(())
    }

    async fn source<W: AsyncWrite + Unpin>(mut s: W, chunk: usize, count: u64) -> io::Result<()> {
        let data = vec![0xa5u8; chunk];
        for _ in 0..count {
            s.write_all(&data).await?;
        }
        s.flush().await
    }

    async fn ping(mut s: TcpStream, rounds: u64) -> io::Result<()> {
        let msg = [0x42u8; 64];
        let mut back = [0u8; 64];
        let mut done = 0;
        while done < rounds && !expired() {
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await?;
            done += 1;
        }
        DONE.fetch_add(done, Relaxed);
        if back != msg { Err(corrupt()) } else { Ok(()) }
    }

    /// Answers until the client closes.
    async fn pong(mut s: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf).await {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                res => res?,
            };
            s.write_all(&buf).await?;
        }
    }

    async fn echo(mut s: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await? {
                0 => return Ok(()),
                n => s.write_all(&buf[..n]).await?,
            }
        }
    }

    async fn echo_client<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, conn: usize, msgs: usize) -> io::Result<()> {
        let mut msg = [0u8; 128];
        let mut back = [0u8; 128];
        let mut done = 0;
        while done < msgs && !expired() {
            fill_msg(&mut msg, conn, done);
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await?;
            if back != msg {
                return Err(corrupt());
            }
            done += 1;
        }
        DONE.fetch_add(done as u64, Relaxed);
        Ok(())
    }

    pub fn run(w: &str, two: bool, buffered: bool, sz: &Sizes) -> io::Result<Duration> {
        match w {
            "bulk-64k" | "bulk-1k" | "small-writes" => {
                let (chunk, count, total) = if w == "small-writes" {
                    (16, sz.small_writes, 16 * sz.small_writes)
                } else {
                    let chunk = bulk_chunk(w, sz);
                    (chunk, sz.bulk_bytes / chunk as u64, sz.bulk_bytes)
                };
                if buffered {
                    pair(
                        two,
                        false,
                        move |s| source(BufWriter::new(s), chunk, count),
                        move |s| sink(s, total),
                    )
                } else {
                    pair(two, false, move |s| source(s, chunk, count), move |s| sink(s, total))
                }
            }
            "pingpong" => {
                let n = sz.pingpong_rounds;
                pair(two, true, move |s| ping(s, n), pong)
            }
            "echo-many" => echo_many(two, sz.echo_conns, sz.echo_msgs),
            _ => Err(io::Error::other("unknown workload")),
        }
    }

    fn pair<C, S>(
        two: bool,
        nodelay: bool,
        client: impl FnOnce(TcpStream) -> C + Send + 'static,
        server: impl FnOnce(TcpStream) -> S + Send + 'static,
    ) -> io::Result<Duration>
    where
        C: Future<Output = io::Result<()>> + Send + 'static,
        S: Future<Output = io::Result<()>> + Send + 'static,
    {
        if !two {
            return runtime()?.block_on(async {
                let (l, addr) = bind().await?;
                let (c, (s, _)) = tokio::try_join!(TcpStream::connect(addr), l.accept())?;
                if nodelay {
                    c.set_nodelay(true)?;
                    s.set_nodelay(true)?;
                }
                let t0 = start_timed();
                let srv = tokio::spawn(server(s));
                client(c).await?;
                srv.await??;
                Ok(t0.elapsed())
            });
        }
        let (tx, rx) = mpsc::channel();
        let go = Arc::new(Barrier::new(2));
        let go2 = go.clone();
        let srv = thread::spawn(move || {
            runtime()?.block_on(async {
                let (l, addr) = bind().await?;
                tx.send(addr).map_err(io::Error::other)?;
                let (s, _) = l.accept().await?;
                if nodelay {
                    s.set_nodelay(true)?;
                }
                go2.wait();
                let t0 = start_timed();
                server(s).await?;
                Ok(t0.elapsed())
            })
        });
        let cli = thread::spawn(move || {
            runtime()?.block_on(async {
                let addr = rx.recv().map_err(io::Error::other)?;
                let c = TcpStream::connect(addr).await?;
                if nodelay {
                    c.set_nodelay(true)?;
                }
                go.wait();
                client(c).await
            })
        });
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        c?;
        s
    }

    async fn accept_all(l: TcpListener, n: usize) -> io::Result<Vec<tokio::task::JoinHandle<io::Result<()>>>> {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            tasks.push(tokio::spawn(echo(s)));
        }
        Ok(tasks)
    }

    async fn connect_all(addr: SocketAddr, n: usize) -> io::Result<Vec<TcpStream>> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            v.push(c);
        }
        Ok(v)
    }

    async fn clients(conns: Vec<TcpStream>, msgs: usize) -> io::Result<Duration> {
        let t0 = start_timed();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, c)| tokio::spawn(echo_client(c, i, msgs)))
            .collect();
        for t in tasks {
            t.await??;
        }
        Ok(t0.elapsed())
    }

    fn echo_many(two: bool, n: usize, msgs: usize) -> io::Result<Duration> {
        if !two {
            return runtime()?.block_on(async {
                let (l, addr) = bind().await?;
                let (_servers, conns) = tokio::try_join!(accept_all(l, n), connect_all(addr, n))?;
                clients(conns, msgs).await
            });
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let srv = thread::spawn(move || {
            runtime()?.block_on(async {
                let (l, addr) = bind().await?;
                tx.send(addr).map_err(io::Error::other)?;
                let tasks = accept_all(l, n).await?;
                ready_tx.send(()).map_err(io::Error::other)?;
                for t in tasks {
                    t.await??;
                }
                io::Result::Ok(())
            })
        });
        let cli = thread::spawn(move || {
            runtime()?.block_on(async {
                let addr = rx.recv().map_err(io::Error::other)?;
                let conns = connect_all(addr, n).await?;
                ready_rx.recv().map_err(io::Error::other)?;
                clients(conns, msgs).await
            })
        });
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        s?;
        c
    }

    pub fn idle(n: usize) -> io::Result<f64> {
        let rt = runtime()?;
        let res = rt.block_on(async {
            let (l, addr) = bind().await?;
            let base = heap_live();
            let done = idle_clients(addr, n);
            for _ in 0..n {
                let (mut s, _) = l.accept().await?;
                ACCEPTED.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut b = [0u8; 64];
                    let _ = s.read(&mut b).await;
                    drop(s);
                });
            }
            done.recv().map_err(io::Error::other)??;
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok((heap_live() - base) as f64 / n as f64)
        });
        // The process exits next: skip closing thousands of connections.
        std::mem::forget(rt);
        res
    }
}

// ---------------------------------------------------------------------------
// std: blocking sockets and threads (2t only).

mod stdi {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn listen() -> io::Result<(TcpListener, SocketAddr)> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        Ok((l, addr))
    }

    fn sink(mut s: TcpStream, total: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while got < total {
            match s.read(&mut buf)? {
                0 => return Err(early_eof()),
                n => got += n as u64,
            }
        }
        Ok(())
    }

    fn source(mut s: TcpStream, chunk: usize, count: u64) -> io::Result<()> {
        let data = vec![0xa5u8; chunk];
        for _ in 0..count {
            s.write_all(&data)?;
        }
        s.flush()
    }

    fn ping(mut s: TcpStream, rounds: u64) -> io::Result<()> {
        let msg = [0x42u8; 64];
        let mut back = [0u8; 64];
        let mut done = 0;
        while done < rounds && !expired() {
            s.write_all(&msg)?;
            s.read_exact(&mut back)?;
            done += 1;
        }
        DONE.fetch_add(done, Relaxed);
        if back != msg { Err(corrupt()) } else { Ok(()) }
    }

    /// Answers until the client closes.
    fn pong(mut s: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            match s.read_exact(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                res => res?,
            }
            s.write_all(&buf)?;
        }
    }

    fn echo(mut s: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(()),
                n => s.write_all(&buf[..n])?,
            }
        }
    }

    fn echo_client(mut s: TcpStream, conn: usize, msgs: usize) -> io::Result<()> {
        let mut msg = [0u8; 128];
        let mut back = [0u8; 128];
        let mut done = 0;
        while done < msgs && !expired() {
            fill_msg(&mut msg, conn, done);
            s.write_all(&msg)?;
            s.read_exact(&mut back)?;
            if back != msg {
                return Err(corrupt());
            }
            done += 1;
        }
        DONE.fetch_add(done as u64, Relaxed);
        Ok(())
    }

    pub fn run(w: &str, sz: &Sizes) -> io::Result<Duration> {
        match w {
            "bulk-64k" | "bulk-1k" => {
                let (chunk, total) = (bulk_chunk(w, sz), sz.bulk_bytes);
                pair(
                    false,
                    move |s| source(s, chunk, total / chunk as u64),
                    move |s| sink(s, total),
                )
            }
            "small-writes" => {
                let n = sz.small_writes;
                pair(false, move |s| source(s, 16, n), move |s| sink(s, 16 * n))
            }
            "pingpong" => {
                let n = sz.pingpong_rounds;
                pair(true, move |s| ping(s, n), pong)
            }
            "echo-many" => echo_many(sz.echo_conns, sz.echo_msgs),
            _ => Err(io::Error::other("unknown workload")),
        }
    }

    fn pair(
        nodelay: bool,
        client: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
        server: impl FnOnce(TcpStream) -> io::Result<()> + Send + 'static,
    ) -> io::Result<Duration> {
        let (l, addr) = listen()?;
        let go = Arc::new(Barrier::new(2));
        let go2 = go.clone();
        let srv = thread::spawn(move || {
            let (s, _) = l.accept()?;
            s.set_nodelay(nodelay)?;
            go2.wait();
            let t0 = start_timed();
            server(s)?;
            Ok(t0.elapsed())
        });
        let cli = thread::spawn(move || {
            let c = TcpStream::connect(addr)?;
            c.set_nodelay(nodelay)?;
            go.wait();
            client(c)
        });
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s: io::Result<Duration> = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        c?;
        s
    }

    fn echo_many(n: usize, msgs: usize) -> io::Result<Duration> {
        let (l, addr) = listen()?;
        let srv = thread::spawn(move || -> io::Result<()> {
            let mut threads = Vec::with_capacity(n);
            for _ in 0..n {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                threads.push(thread::Builder::new().stack_size(256 * 1024).spawn(move || echo(s))?);
            }
            for t in threads {
                t.join().map_err(|_| io::Error::other("echo panicked"))??;
            }
            Ok(())
        });
        let go = Arc::new(Barrier::new(n + 1));
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let c = TcpStream::connect(addr)?;
            c.set_nodelay(true)?;
            let go = go.clone();
            threads.push(thread::Builder::new().stack_size(256 * 1024).spawn(move || {
                go.wait();
                echo_client(c, i, msgs)
            })?);
        }
        go.wait();
        let t0 = start_timed();
        for t in threads {
            t.join().map_err(|_| io::Error::other("client panicked"))??;
        }
        let elapsed = t0.elapsed();
        srv.join().map_err(|_| io::Error::other("server panicked"))??;
        Ok(elapsed)
    }

    /// A thread per idle connection, blocked in `read` (stacks are
    /// `mmap`ed, not heap; they are not counted).
    pub fn idle(n: usize) -> io::Result<f64> {
        let (l, addr) = listen()?;
        let waiting = Arc::new(AtomicUsize::new(0));
        let base = heap_live();
        let done = idle_clients(addr, n);
        for _ in 0..n {
            let (mut s, _) = l.accept()?;
            ACCEPTED.fetch_add(1, Relaxed);
            let waiting = waiting.clone();
            thread::Builder::new().stack_size(64 * 1024).spawn(move || {
                waiting.fetch_add(1, Relaxed);
                let mut b = [0u8; 64];
                let _ = s.read(&mut b);
            })?;
        }
        done.recv().map_err(io::Error::other)??;
        let deadline = Instant::now() + Duration::from_secs(20);
        while waiting.load(Relaxed) < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(200));
        Ok((heap_live() - base) as f64 / n as f64)
    }
}

// ---------------------------------------------------------------------------
// streamish-cb: the callback face, as a cl-async program would use it:
// `tcp_server`/`tcp_connect` with callbacks, on `with_event_loop` (one loop
// for both ends in `1t`, one loop per thread in `2t`). Writers pace
// themselves with `write_cb` (top the queue up to the high-water mark on
// every drain); readers take drained `Bytes` (the default mode).

mod cb {
    use super::*;
    use async_io::Timer;
    use bytes::Bytes;
    use std::sync::{Mutex, OnceLock};
    use streamish::{
        DEFAULT_HIGH_WATER, Event, ReadData, TcpConnect, TcpServerBuilder, TcpServerHandle, TcpSocket, tcp_connect,
        tcp_server, with_event_loop,
    };

    pub const AVAILABLE: bool = true;

    /// When the timed part started and ended, or why it failed.
    #[derive(Default)]
    struct Clock {
        t0: Mutex<Option<Instant>>,
        end: Mutex<Option<Instant>>,
        error: Mutex<Option<String>>,
    }

    impl Clock {
        fn start(&self) {
            self.t0.lock().unwrap().get_or_insert_with(start_timed);
        }
        fn stop(&self) {
            self.end.lock().unwrap().get_or_insert_with(Instant::now);
        }
        fn fail(&self, why: String) {
            self.error.lock().unwrap().get_or_insert(why);
        }
        fn result(&self, ran: io::Result<()>) -> io::Result<Duration> {
            ran?;
            if let Some(e) = self.error.lock().unwrap().take() {
                return Err(io::Error::other(e));
            }
            match (*self.t0.lock().unwrap(), *self.end.lock().unwrap()) {
                (Some(a), Some(b)) => Ok(b - a),
                _ => Err(io::Error::other("the callback program ended before the workload did")),
            }
        }
    }

    /// `event_cb`: end of file is the normal end; anything else fails the run.
    fn events(clock: &Arc<Clock>) -> impl Fn(Event) + Send + Sync + 'static {
        let clock = clock.clone();
        move |ev| {
            if !matches!(ev, Event::Eof { .. }) {
                clock.fail(ev.to_string());
            }
        }
    }

    /// Runs `server` and `client` on one event loop (`1t`) or on one loop
    /// each, on two threads (`2t`). `client` gets the server's port.
    fn run_pair(
        two: bool,
        server: impl FnOnce() -> io::Result<TcpServerHandle> + Send + 'static,
        client: impl FnOnce(u16) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        if !two {
            return with_event_loop(|| client(server()?.local_addr().port()));
        }
        let (tx, rx) = mpsc::channel();
        let srv = thread::spawn(move || {
            with_event_loop(|| {
                let h = server()?;
                tx.send(h.local_addr().port()).map_err(io::Error::other)
            })
        });
        let cli = thread::spawn(move || with_event_loop(|| client(rx.recv().map_err(io::Error::other)?)));
        let c = cli.join().map_err(|_| io::Error::other("client panicked"))?;
        let s = srv.join().map_err(|_| io::Error::other("server panicked"))?;
        s.and(c)
    }

    /// A server for one connection: stops accepting once it has it.
    fn one_conn_server(builder: TcpServerBuilder) -> io::Result<TcpServerHandle> {
        let handle: Arc<OnceLock<TcpServerHandle>> = Arc::default();
        let h2 = handle.clone();
        let server = builder
            .connect_cb(move |_| {
                if let Some(h) = h2.get() {
                    h.close();
                }
            })
            .spawn()?;
        let _ = handle.set(server.clone());
        Ok(server)
    }

    fn client(port: u16) -> TcpConnect {
        tcp_connect("127.0.0.1", port)
    }

    pub fn run(w: &str, two: bool, sz: &Sizes) -> io::Result<Duration> {
        let clock = Arc::new(Clock::default());
        let ran = match w {
            "bulk-64k" | "bulk-1k" => {
                let chunk = bulk_chunk(w, sz);
                stream(two, &clock, chunk, sz.bulk_bytes / chunk as u64, sz)
            }
            "small-writes" => stream(two, &clock, 16, sz.small_writes, sz),
            "pingpong" => pingpong(two, &clock, sz.pingpong_rounds),
            "echo-many" => echo_many(two, &clock, sz.echo_conns, sz.echo_msgs),
            _ => Err(io::Error::other("unknown workload")),
        };
        clock.result(ran)
    }

    /// bulk and small-writes: `count` writes of `chunk` bytes, one
    /// `write` call each (`write_bytes`, which does not copy, for chunks
    /// of 4 KiB and more), topped up to the high-water mark on every drain;
    /// with `upfront`, all made at once in `connect_cb`.
    fn stream(two: bool, clock: &Arc<Clock>, chunk: usize, count: u64, sz: &Sizes) -> io::Result<()> {
        let (upfront, batch) = (sz.cb_upfront, sz.cb_batch);
        let total = chunk as u64 * count;
        let (c1, c2, c3) = (clock.clone(), clock.clone(), clock.clone());
        let server = move || {
            let got = AtomicU64::new(0);
            one_conn_server(
                tcp_server("127.0.0.1", 0)
                    .read_cb(move |sock, data| {
                        if let ReadData::Bytes(b) = data {
                            if got.fetch_add(b.len() as u64, Relaxed) + b.len() as u64 >= total {
                                c1.stop();
                                sock.close();
                            }
                        }
                    })
                    .event_cb(events(&c2)),
            )
        };
        let client = move |port| {
            let left = Arc::new(AtomicU64::new(count));
            let data = Bytes::from(vec![0xa5u8; chunk]);
            let write = move |sock: &TcpSocket| {
                if chunk >= 4096 {
                    sock.write_bytes(data.clone())
                } else {
                    sock.write(&data)
                }
            };
            let left2 = left.clone();
            let write2 = write.clone();
            let pump = move |sock: &TcpSocket| {
                // Only this connection's callbacks run it, one at a time:
                // the count is read once and stored once per call.
                let mut n = left.load(Relaxed);
                let stop = n.saturating_sub(batch);
                while n > stop && sock.queued() < DEFAULT_HIGH_WATER {
                    if write2(sock).is_err() {
                        break;
                    }
                    n -= 1;
                }
                left.store(n, Relaxed);
            };
            let pump2 = pump.clone();
            let c4 = c3.clone();
            client(port)
                .connect_cb(move |sock| {
                    c4.start();
                    if upfront {
                        // Every write at once; write_cb then finds none left.
                        left2.store(0, Relaxed);
                        for _ in 0..count {
                            if write(sock).is_err() {
                                break;
                            }
                        }
                        return;
                    }
                    pump(sock)
                })
                .write_cb(pump2)
                .event_cb(events(&c3))
                .spawn()
                .map(drop)
        };
        run_pair(two, server, client)
    }

    fn pingpong(two: bool, clock: &Arc<Clock>, rounds: u64) -> io::Result<()> {
        let (c1, c2) = (clock.clone(), clock.clone());
        let server = move || {
            one_conn_server(
                tcp_server("127.0.0.1", 0)
                    .read_cb(|sock, data| {
                        if let ReadData::Bytes(b) = data {
                            let _ = sock.write(&b);
                        }
                    })
                    .event_cb(events(&c1)),
            )
        };
        let client = move |port| {
            let msg = [0x42u8; 64];
            let got = AtomicU64::new(0);
            let c3 = c2.clone();
            let c4 = c2.clone();
            client(port)
                .connect_cb(move |sock| {
                    c3.start();
                    let _ = sock.write(&msg);
                })
                .read_cb(move |sock, data| {
                    let ReadData::Bytes(b) = data else { return };
                    if b.iter().any(|&x| x != 0x42) {
                        c4.fail(corrupt().to_string());
                    }
                    let n = got.fetch_add(b.len() as u64, Relaxed) + b.len() as u64;
                    if n % 64 == 0 {
                        if n / 64 >= rounds || expired() {
                            DONE.fetch_add(n / 64, Relaxed);
                            c4.stop();
                            sock.close();
                        } else {
                            let _ = sock.write(&msg);
                        }
                    }
                })
                .event_cb(events(&c2))
                .spawn()
                .map(drop)
        };
        run_pair(two, server, client)
    }

    /// One echo client's progress: the message it waits for, and the
    /// bytes of it received so far.
    struct Echo {
        msg: usize,
        have: Vec<u8>,
        /// The message in flight, kept to check the echo against (as the
        /// other clients keep theirs): made once per message.
        sent: [u8; 128],
    }

    fn echo_many(two: bool, clock: &Arc<Clock>, n: usize, msgs: usize) -> io::Result<()> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let handle: Arc<OnceLock<TcpServerHandle>> = Arc::default();
        let (acc, h1, c1) = (accepted.clone(), handle.clone(), clock.clone());
        let server = move || {
            let h2 = h1.clone();
            // cl-async's `backlog` keyword: a thousand clients connect at once.
            let server = tcp_server("127.0.0.1", 0)
                .backlog(1024)
                .connect_cb(move |_| {
                    // Stop accepting once every client is in (2t); in 1t the
                    // last client to finish closes the server.
                    if acc.fetch_add(1, Relaxed) + 1 == n && two {
                        if let Some(h) = h2.get() {
                            h.close();
                        }
                    }
                })
                .read_cb(|sock, data| {
                    if let ReadData::Bytes(b) = data {
                        let _ = sock.write(&b);
                    }
                })
                .event_cb(events(&c1))
                .spawn()?;
            let _ = h1.set(server.clone());
            Ok(server)
        };
        let c2 = clock.clone();
        let client = move |port| -> io::Result<()> {
            let sockets: Arc<Mutex<Vec<(usize, TcpSocket)>>> = Arc::default();
            let connected = Arc::new(AtomicUsize::new(0));
            let finished = Arc::new(AtomicUsize::new(0));
            for i in 0..n {
                let mut sent = [0u8; 128];
                fill_msg(&mut sent, i, 0);
                let state = Mutex::new(Echo {
                    msg: 0,
                    have: Vec::with_capacity(128),
                    sent,
                });
                let (sk, cn, fin, c3, h3) = (
                    sockets.clone(),
                    connected.clone(),
                    finished.clone(),
                    c2.clone(),
                    handle.clone(),
                );
                client(port)
                    .connect_cb(move |sock| {
                        sk.lock().unwrap().push((i, sock.clone()));
                        cn.fetch_add(1, Relaxed);
                    })
                    .read_cb(move |sock, data| {
                        let ReadData::Bytes(b) = data else { return };
                        let mut st = state.lock().unwrap();
                        let mut rest = &b[..];
                        while !rest.is_empty() {
                            let k = rest.len().min(128 - st.have.len());
                            st.have.extend_from_slice(&rest[..k]);
                            rest = &rest[k..];
                            if st.have.len() < 128 {
                                break;
                            }
                            if st.have[..] != st.sent[..] {
                                c3.fail(corrupt().to_string());
                            }
                            st.have.clear();
                            st.msg += 1;
                            if st.msg == msgs || expired() {
                                DONE.fetch_add(st.msg as u64, Relaxed);
                                sock.close();
                                if fin.fetch_add(1, Relaxed) + 1 == n {
                                    c3.stop();
                                    if let Some(h) = h3.get() {
                                        h.close();
                                    }
                                }
                                return;
                            }
                            let Echo { msg, sent, .. } = &mut *st;
                            fill_msg(sent, i, *msg);
                            let _ = sock.write(&sent[..]);
                        }
                    })
                    .event_cb(events(&c2))
                    .spawn()?;
            }
            // Start once every client is connected and the server has
            // accepted them all (as the other implementations do).
            let (acc, c4) = (accepted.clone(), c2.clone());
            streamish::spawn(async move {
                while connected.load(Relaxed) < n || acc.load(Relaxed) < n {
                    Timer::after(Duration::from_millis(1)).await;
                }
                c4.start();
                let sockets = std::mem::take(&mut *sockets.lock().unwrap());
                let mut first = [0u8; 128];
                for (i, sock) in sockets {
                    fill_msg(&mut first, i, 0);
                    sock.write(&first)?;
                }
                Ok(())
            })
        };
        run_pair(two, server, client)
    }

    /// `n` accepted callback connections, each waiting to read.
    pub fn idle(n: usize) -> io::Result<f64> {
        with_event_loop(|| -> io::Result<()> {
            let server = tcp_server("127.0.0.1", 0)
                .connect_cb(|_| {
                    ACCEPTED.fetch_add(1, Relaxed);
                })
                .read_cb(|_, _| {})
                .spawn()?;
            let base = heap_live();
            let done = idle_clients(server.local_addr(), n);
            streamish::spawn(async move {
                while ACCEPTED.load(Relaxed) < n {
                    Timer::after(Duration::from_millis(10)).await;
                }
                done.recv().map_err(io::Error::other)??;
                Timer::after(Duration::from_millis(200)).await;
                println!("result value={:.1}", (heap_live() - base) as f64 / n as f64);
                let _ = io::stdout().flush();
                std::process::exit(0)
            })
        })?;
        Err(io::Error::other("the idle server ended early"))
    }
}
