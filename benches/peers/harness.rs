//! One measurement in a child process: its sizes, the watchdog, the
//! repetitions, the time cap, the counting allocator, and reading what a
//! child printed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use crate::impls;
use crate::median;
use crate::workloads::bulk_chunk;

/// The most runs one child makes of a short measurement (see `child`).
const INNER_RUNS: usize = 9;

#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub bulk_bytes: u64,
    pub small_writes: u64,
    pub pingpong_rounds: u64,
    pub echo_conns: usize,
    pub echo_msgs: usize,
    pub idle_conns: usize,
    /// Time caps of pingpong and echo-many (see [`DONE`]).
    pub pingpong_cap: Duration,
    pub echo_cap: Duration,
    /// A child repeats a measurement that took less than this (see `child`).
    pub inner: Duration,
    pub reps: usize,
    pub child_timeout: Duration,
    /// `--cb-upfront` (diagnostics): the callback writers make every write
    /// at once in `connect_cb`, leaving all buffering to streamish, as a
    /// cl-async program may, instead of pacing themselves with `write_cb`.
    pub cb_upfront: bool,
    /// `--cb-batch N` (diagnostics): the callback writers make at most `N`
    /// writes per `write_cb` (and in `connect_cb`) instead of topping the
    /// queue up to the high-water mark; 1 is one write per drain.
    pub cb_batch: u64,
    /// `--once` (diagnostics): a child runs its workload once, never
    /// repeating a short one, so that counts of system calls scale with the
    /// work (see [`crate::syscalls`]).
    pub once: bool,
    /// `--chunk BYTES` (diagnostics): the bulk workloads' write size
    /// instead of their own (see [`bulk_chunk`]).
    pub chunk: Option<usize>,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
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

    /// The sizes, with the diagnostics' overrides from the command line.
    pub fn from_args(quick: bool, args: &[String]) -> Sizes {
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
        sizes
    }
}

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

pub fn heap_live() -> isize {
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

/// What a child measured.
pub struct Sample {
    pub value: f64,
    /// echo-many: peak RSS growth, KiB.
    pub rss: Option<f64>,
    /// The same throughput per CPU-second of the child.
    pub cpu: Option<f64>,
    /// Operations done, and whether the time cap stopped a run early.
    pub ops: Option<f64>,
    pub capped: bool,
}

/// Runs one child (with `extra` arguments, the diagnostics' sizes) and
/// reads its `result` line.
pub fn run_child(w: &str, m: &str, imp: &str, quick: bool, sizes: &Sizes, extra: &[String]) -> io::Result<Sample> {
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
pub fn parse_result(stdout: &[u8]) -> Option<Sample> {
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

/// A child: one measurement, printed as `result value=VALUE
/// [rss=PEAK_RSS_KIB] [cpu=VALUE_PER_CPU_SECOND] ..`.
pub fn child(w: &str, m: &str, imp: &str, sizes: &Sizes) -> i32 {
    let limit = sizes.child_timeout;
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!("peers child: timed out after {limit:?}");
        std::process::exit(3);
    });
    let rss0 = proc_status_kib("VmRSS").unwrap_or(0);
    if w == "idle" {
        COUNTING.store(true, Relaxed);
        return match impls::idle(imp, idle_count(sizes)) {
            Ok(per_conn) => print_idle_result(per_conn),
            Err(e) => {
                eprintln!("peers child {w} {m} {imp}: {e}");
                1
            }
        };
    }
    if w.contains("bulk") && sizes.bulk_bytes % bulk_chunk(w, sizes) as u64 != 0 {
        // The reader waits for every byte: a total the writes cannot reach
        // would hang the child until its watchdog.
        eprintln!(
            "peers child {w}: --bytes {} is not a multiple of the write size {}",
            sizes.bulk_bytes,
            bulk_chunk(w, sizes)
        );
        return 2;
    }
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
        let t = match impls::run(w, m, imp, sizes) {
            Ok(t) => t,
            Err(e) => break Err(e),
        };
        let ops = match w {
            "bulk-64k" | "bulk-1k" | "tls-bulk-64k" => sizes.bulk_bytes as f64 / (1 << 20) as f64,
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

/// Prints an idle child's result and exits, skipping tearing down
/// thousands of connections and threads.
pub fn print_idle_result(per_conn: f64) -> ! {
    println!("result value={per_conn:.1}");
    let _ = io::stdout().flush();
    std::process::exit(0)
}

// Resources.

#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, i64 on the BSDs
pub fn nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid rlimit to write into.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur as u64
}

#[cfg(unix)]
pub fn raise_nofile_limit() {
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

/// Windows has no per-process descriptor limit on sockets.
#[cfg(not(unix))]
pub fn nofile_limit() -> u64 {
    u64::MAX
}

#[cfg(not(unix))]
pub fn raise_nofile_limit() {}

/// Idle connections to open: both ends live in the child, so each costs two
/// descriptors; scaled down when the limit cannot take the full count.
pub fn idle_count(sizes: &Sizes) -> usize {
    let fit = (nofile_limit().saturating_sub(128) / 2) as usize;
    sizes.idle_conns.min(fit)
}

/// Operations (round trips, messages) the current run completed: pingpong
/// and echo-many stop at their count or at their time cap, whichever
/// comes first, and are rated by what they did.
pub static DONE: AtomicU64 = AtomicU64::new(0);
/// The current run's time cap, and when it ends (nanoseconds since
/// [`epoch`]); `u64::MAX` until the timed part starts.
static CAP_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static STOP_AT_NS: AtomicU64 = AtomicU64::new(u64::MAX);

fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Marks the start of the timed part: arms the time cap.
pub fn start_timed() -> Instant {
    let now = Instant::now();
    let at = (now - epoch()).as_nanos() as u64;
    STOP_AT_NS.store(at.saturating_add(CAP_NS.load(Relaxed)), Relaxed);
    now
}

/// Whether the time cap has passed.
pub fn expired() -> bool {
    (epoch().elapsed().as_nanos() as u64) >= STOP_AT_NS.load(Relaxed)
}

/// User and system time of the whole process (every thread) so far.
fn cpu_seconds() -> f64 {
    let (user, sys) = cpu_split();
    user + sys
}

/// User and system time of the whole process so far, apart.
#[cfg(unix)]
fn cpu_split() -> (f64, f64) {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid rusage to write into.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(u.ru_utime), t(u.ru_stime))
}

/// Not measured without `getrusage`: the CPU columns read NaN.
#[cfg(not(unix))]
fn cpu_split() -> (f64, f64) {
    (f64::NAN, f64::NAN)
}

pub fn load_average() -> String {
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
