//! Helpers shared by the fault, property, load, memory and bad-input suites:
//! a watchdog for every async test, descriptor counting, an event recorder,
//! a byte pattern to verify transfers, and std peers.
//!
//! Not every suite uses every helper.
#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::panic;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::FutureExt;
use streamish::{Event, LoopOutput, TcpSocket, with_event_loop};

/// The overall limit of any one async test. Generous: it only turns a hang
/// into a failure.
pub const WATCHDOG: Duration = Duration::from_secs(60);

async fn watchdog<T>() -> T {
    Timer::after(WATCHDOG).await;
    panic!("timed out: the test did not finish within {WATCHDOG:?}")
}

/// Runs `fut` on this thread with the watchdog.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    async_io::block_on(fut.or(watchdog()))
}

/// Runs `f` inside `with_event_loop` on a thread of its own, with the
/// watchdog, and returns what `with_event_loop` returned. A panic on the
/// loop resumes here.
pub fn run_loop<R: LoopOutput + 'static>(f: impl FnOnce() -> R + Send + 'static) -> io::Result<R::Output>
where
    R::Output: Send,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let res = with_event_loop(f);
        let _ = tx.send(());
        res
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(res) => res,
            Err(p) => panic::resume_unwind(p),
        },
        Err(RecvTimeoutError::Timeout) => panic!("timed out: the event loop did not finish within {WATCHDOG:?}"),
    }
}

/// Joins a helper thread (a std peer, say) with the watchdog: a peer that
/// waits for a connection the library never makes fails the test instead
/// of hanging it. A panic in the thread resumes here.
pub fn join<T: Send + 'static>(handle: thread::JoinHandle<T>) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => panic::resume_unwind(p),
        Err(_) => panic!("timed out: a helper thread did not finish within {WATCHDOG:?}"),
    }
}

// ---------- file descriptors ----------

/// How many descriptors this process has open (see [`fd_table`] for which
/// are counted).
pub fn open_fds() -> usize {
    fd_table().len()
}

/// Tests in one binary run on parallel threads and share the descriptor
/// table, so a test that counts descriptors must not overlap any test that
/// opens some. Every such test takes this lock for its whole run: the
/// descriptor-counting tests of a file run one after the other while the
/// files themselves stay separate processes.
static FD_LOCK: Mutex<()> = Mutex::new(());

pub fn fd_lock() -> MutexGuard<'static, ()> {
    FD_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates what the process keeps for good on first use (the reactor's
/// epoll and notification descriptors), so it is not counted as a leak.
pub fn warm_up() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        async_io::block_on(async {
            let l = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let a = l.get_ref().local_addr().unwrap();
            let c = Async::<std::net::TcpStream>::connect(a).await.unwrap();
            let s = l.accept().await.unwrap();
            drop((c, s, l));
            Timer::after(Duration::from_millis(1)).await;
        });
    });
}

/// Runs `f` holding [`fd_lock`], and checks that it leaves as many
/// descriptors open as it found.
pub fn fd_checked<R>(f: impl FnOnce() -> R) -> R {
    let _guard = fd_lock();
    warm_up();
    let before = fd_table();
    let res = f();
    let after = fd_table();
    assert_eq!(
        before.len(),
        after.len(),
        "file descriptors leaked: new {:?}, gone {:?}",
        after.iter().filter(|e| !before.contains(e)).collect::<Vec<_>>(),
        before.iter().filter(|e| !after.contains(e)).collect::<Vec<_>>(),
    );
    res
}

/// The open descriptors and what each refers to.
///
/// Left out: descriptors on `/proc` and `/sys` files, and any that closes
/// while the table is read. The runtime opens such files for a moment on
/// threads of its own (glibc reads `/proc/sys/vm/overcommit_memory` when a
/// thread's heap is trimmed at its exit, std reads cgroup files), which can
/// overlap the next test's count; none of them is a socket this library
/// owns. The directory read itself is on `/proc` too.
pub fn fd_table() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?.display().to_string();
            if target.starts_with("/proc/") || target.starts_with("/sys/") {
                return None;
            }
            Some((e.file_name().to_string_lossy().into_owned(), target))
        })
        .collect();
    v.sort();
    v
}

/// Sets the soft `RLIMIT_NOFILE` (capped at the hard one); returns the old
/// soft limit and the hard one.
pub fn set_nofile(soft: u64) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let old = r.rlim_cur;
        r.rlim_cur = soft.min(r.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0, "setrlimit");
        (old, r.rlim_max)
    }
}

/// Opens `/dev/null` until the process is out of descriptors (bounded).
pub fn fill_fds() -> Vec<File> {
    let mut files = Vec::new();
    for _ in 0..100_000 {
        match File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(libc::EMFILE),
                    "unexpected error filling descriptors: {e}"
                );
                return files;
            }
        }
    }
    panic!("could not exhaust the descriptors: is RLIMIT_NOFILE lowered?")
}

/// Makes closing `s` send RST (`SO_LINGER` 0), as a peer that resets does.
pub fn set_linger_zero(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a live descriptor with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

// ---------- child processes ----------

/// Runs this test binary again, running only the ignored helper test
/// `name`, with `env` set so the helper knows it is the child. Waits with
/// the watchdog (killing the child if it hangs) and returns its output.
/// Panics unless the child succeeded and really ran the helper.
pub fn run_child(name: &str, env: &str) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--ignored", "--test-threads=1"])
        .env(env, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = waiter.join();
        panic!("timed out: the child {name} did not finish within {WATCHDOG:?}");
    }
    let out = waiter.join().expect("waiter thread").expect("wait for the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child {name} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "child {name} did not run the helper:\n{stdout}\n{stderr}"
    );
    out
}

// ---------- recording callbacks ----------

/// Records every event a callback receives.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    pub fn cb(&self) -> impl Fn(Event) + Send + Sync + 'static {
        let me = self.clone();
        move |ev| me.0.lock().unwrap().push(ev)
    }

    pub fn push(&self, ev: Event) {
        self.0.lock().unwrap().push(ev);
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().iter().map(Event::name).collect()
    }
}

/// Counts calls.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn socket_cb(&self) -> impl Fn(&TcpSocket) + Send + Sync + 'static {
        let me = self.clone();
        move |_| {
            me.bump();
        }
    }
}

// ---------- the byte pattern ----------

/// The pattern repeats with a prime period, so it never lines up with the
/// power-of-two sizes of buffers and chunks.
pub const PERIOD: usize = 1_048_573;

fn table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..PERIOD)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// The `len` pattern bytes at stream offset `off`.
pub fn pattern_at(off: u64, len: usize) -> Vec<u8> {
    let t = table();
    let mut v = Vec::with_capacity(len);
    let mut pos = (off % PERIOD as u64) as usize;
    while v.len() < len {
        let take = (len - v.len()).min(PERIOD - pos);
        v.extend_from_slice(&t[pos..pos + take]);
        pos = 0;
    }
    v
}

/// Whether `data` is the pattern at stream offset `off`.
pub fn is_pattern_at(off: u64, data: &[u8]) -> bool {
    let t = table();
    let mut pos = (off % PERIOD as u64) as usize;
    let mut rest = data;
    while !rest.is_empty() {
        let take = rest.len().min(PERIOD - pos);
        if rest[..take] != t[pos..pos + take] {
            return false;
        }
        rest = &rest[take..];
        pos = 0;
    }
    true
}

/// A std listener on an ephemeral loopback port.
pub fn std_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A loopback port nobody listens on (bound, then closed).
pub fn refused_port() -> u16 {
    std_listener().1.port()
}
