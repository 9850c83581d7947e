//! Helpers shared by every test file: one watchdog ([`LIMIT`]), one seeded
//! random generator ([`Rng`], and the byte pattern made from it), loopback
//! pairs and listeners, the event loop on a thread of its own, descriptor
//! counting, event recorders, and temporary directories for socket files.
//! Not every file uses every helper.
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use std::{io, panic, thread};

use async_io::{Async, Timer};
use streamish::{Event, LoopOutput, TcpSocket, TcpStream, with_event_loop};

/// How long any one test (or process, thread or blocking call in it) may
/// take before it is declared hung. Generous: it only turns a hang into a
/// failure.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Races `fut` against the watchdog, so a hang fails the test instead of
/// blocking the suite. The timer is async-io's, so this works under any
/// executor (async-io drives its reactor from its own thread when needed).
pub async fn timeout<T>(fut: impl Future<Output = T>) -> T {
    futures_lite::future::or(fut, async {
        Timer::after(LIMIT).await;
        panic!("timed out: the test did not finish within {LIMIT:?}")
    })
    .await
}

/// Runs an async test body on this thread under `async_io::block_on`,
/// guarded by [`timeout`].
pub fn run<T>(fut: impl Future<Output = T>) -> T {
    async_io::block_on(timeout(fut))
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
    match rx.recv_timeout(LIMIT) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(res) => res,
            Err(p) => panic::resume_unwind(p),
        },
        Err(RecvTimeoutError::Timeout) => panic!("timed out: the event loop did not finish within {LIMIT:?}"),
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
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => panic::resume_unwind(p),
        Err(_) => panic!("timed out: a helper thread did not finish within {LIMIT:?}"),
    }
}

/// A connected pair over loopback: `(client, accepted peer)`.
pub async fn pair() -> (TcpStream, TcpStream) {
    let server = streamish::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let (client, accepted) = futures_lite::future::zip(TcpStream::connect(server.local_addr()), server.accept()).await;
    (client.expect("connect"), accepted.expect("accept").0)
}

/// Waits until input is buffered or EOF is reached, consuming nothing.
/// Returns whether it is EOF.
pub async fn wait_input<S: streamish::AsyncInputStream + Unpin + ?Sized>(s: &mut S) -> io::Result<bool> {
    use futures_lite::AsyncBufReadExt;
    Ok(s.fill_buf().await?.is_empty())
}

/// Asserts that `res` failed because the stream is closed (`NotConnected`,
/// `Event::Closed`).
pub fn assert_closed(res: io::Result<impl std::fmt::Debug>, what: &str) {
    let err = res.expect_err(what);
    assert_eq!(err.kind(), io::ErrorKind::NotConnected, "{what}: {err}");
    assert!(
        matches!(streamish::Event::from(err), streamish::Event::Closed { .. }),
        "{what}: not Event::Closed"
    );
}

/// A small seeded PRNG (xorshift64*), so random tests are reproducible.
/// The only random generator of the tests: [`pattern_at`] is made from it.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// The byte pattern that verifies transfers: [`Rng`]'s bytes, repeating
/// with a prime period so that it never lines up with the power-of-two
/// sizes of buffers and chunks.
pub const PERIOD: usize = 1_048_573;

fn table() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| Rng::new(1).bytes(PERIOD))
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

/// How many descriptors this process has open (see [`fd_table`] for which
/// are counted).
#[cfg(target_os = "linux")]
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
#[cfg(target_os = "linux")]
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

/// Runs `f` holding [`fd_lock`]. Descriptors are counted only where
/// [`fd_table`] can list them (Linux), so here the test runs without the
/// leak check.
#[cfg(not(target_os = "linux"))]
pub fn fd_checked<R>(f: impl FnOnce() -> R) -> R {
    let _guard = fd_lock();
    f()
}

/// The open descriptors and what each refers to.
///
/// Left out: descriptors on `/proc` and `/sys` files, and any that closes
/// while the table is read. The runtime opens such files for a moment on
/// threads of its own (glibc reads `/proc/sys/vm/overcommit_memory` when a
/// thread's heap is trimmed at its exit, std reads cgroup files), which can
/// overlap the next test's count; none of them is a socket this library
/// owns. The directory read itself is on `/proc` too.
#[cfg(target_os = "linux")]
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
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, i64 on the BSDs
pub fn set_nofile(soft: u64) -> (u64, u64) {
    // Apple's setrlimit refuses a soft limit above OPEN_MAX.
    #[cfg(target_vendor = "apple")]
    let soft = soft.min(10240);
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        let (old, max) = (r.rlim_cur as u64, r.rlim_max as u64);
        r.rlim_cur = soft.min(max) as _;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0, "setrlimit");
        (old, max)
    }
}

/// Opens `/dev/null` until the process is out of descriptors (bounded).
#[cfg(unix)]
pub fn fill_fds() -> Vec<std::fs::File> {
    let mut files = Vec::new();
    for _ in 0..100_000 {
        match std::fs::File::open("/dev/null") {
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
/// Through rustix, which sets it on Windows sockets too.
pub fn set_linger_zero(s: &std::net::TcpStream) {
    rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO)).expect("setsockopt(SO_LINGER)");
}

/// Runs this test binary again, running only the ignored helper test
/// `name`, with `env` set so the helper knows it is the child. Waits with
/// the watchdog (killing the child if it hangs) and returns its output.
/// Panics unless the child succeeded and really ran the helper. Unix only:
/// its callers test signals and descriptor limits.
#[cfg(unix)]
pub fn run_child(name: &str, env: &str) -> std::process::Output {
    use std::process::{Command, Stdio};
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
    if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(LIMIT) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = waiter.join();
        panic!("timed out: the child {name} did not finish within {LIMIT:?}");
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

/// A server's handle, for callbacks made before the server exists.
#[derive(Clone, Default)]
pub struct Slot(pub Arc<OnceLock<streamish::TcpServerHandle>>);

impl Slot {
    pub fn fill(&self, server: &streamish::TcpServerHandle) {
        self.0.set(server.clone()).unwrap();
    }

    /// An `event_cb` that closes the server when a connection ends.
    pub fn close_on_eof(&self) -> impl Fn(Event) + Send + Sync + 'static {
        let slot = self.clone();
        move |ev| {
            assert!(matches!(ev, Event::Eof { .. }), "unexpected {ev:?}");
            slot.0.get().unwrap().close();
        }
    }
}

/// A log of what callbacks saw, in order.
pub type Log = Arc<Mutex<Vec<String>>>;

pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn push(log: &Log, s: impl Into<String>) {
    log.lock().unwrap().push(s.into());
}

pub fn events(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
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

/// What [`two_tasks`] returns: polls made, whether `idle` ran, and the
/// output of the future that ended (`Ok` for the first, `Err` for the
/// second).
pub type TwoTasks<A, B> = (usize, bool, Option<Result<A, B>>);

/// Polls two futures by hand, each as a task of its own with its own
/// waker, on this thread, until one of them ends or `max_polls` polls were
/// made. The first time neither has been woken since it was last polled
/// (both wait), `idle` runs, to make what they wait for happen. Returns the
/// polls made, whether `idle` ran, and the output of the one that ended
/// (`Ok` for `a`, `Err` for `b`).
///
/// A task polled only when woken shows whether waiting tasks wake each
/// other: they then keep being polled with nothing new, and run out of
/// polls before `idle` ever runs.
pub fn two_tasks<A: Future, B: Future>(
    a: A,
    b: B,
    max_polls: usize,
    idle: impl FnOnce(),
) -> TwoTasks<A::Output, B::Output> {
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct Task {
        woken: AtomicBool,
        thread: std::thread::Thread,
    }
    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.woken.store(true, Ordering::Release);
            self.thread.unpark();
        }
    }
    let task = || {
        Arc::new(Task {
            woken: AtomicBool::new(true),
            thread: std::thread::current(),
        })
    };
    let (ta, tb) = (task(), task());
    let (wa, wb) = (Waker::from(ta.clone()), Waker::from(tb.clone()));
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut polls, mut idle) = (0, Some(idle));
    while polls < max_polls {
        if ta.woken.swap(false, Ordering::AcqRel) {
            polls += 1;
            if let Poll::Ready(out) = a.as_mut().poll(&mut Context::from_waker(&wa)) {
                return (polls, idle.is_none(), Some(Ok(out)));
            }
        }
        if tb.woken.swap(false, Ordering::AcqRel) {
            polls += 1;
            if let Poll::Ready(out) = b.as_mut().poll(&mut Context::from_waker(&wb)) {
                return (polls, idle.is_none(), Some(Err(out)));
            }
        }
        let waiting = || !ta.woken.load(Ordering::Acquire) && !tb.woken.load(Ordering::Acquire);
        if waiting() {
            if let Some(f) = idle.take() {
                f();
            }
            let deadline = std::time::Instant::now() + LIMIT;
            while waiting() && std::time::Instant::now() < deadline {
                std::thread::park_timeout(LIMIT);
            }
        }
    }
    (polls, idle.is_none(), None)
}

/// A two-thread executor: `(executor, its threads, the sender that stops them)`.
pub fn two_threads() -> (
    Arc<async_executor::Executor<'static>>,
    Vec<thread::JoinHandle<()>>,
    smol::channel::Sender<()>,
) {
    let ex = Arc::new(async_executor::Executor::new());
    let (stop, rx) = smol::channel::bounded::<()>(1);
    let threads = (0..2)
        .map(|_| {
            let (ex, rx) = (ex.clone(), rx.clone());
            thread::spawn(move || {
                let _ = async_io::block_on(ex.run(rx.recv()));
            })
        })
        .collect();
    (ex, threads, stop)
}

/// A directory of its own under the system's temporary directory, for
/// socket files and the like: unique to this process and call, removed
/// with what is in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("streamish-{tag}-{}-{n}", std::process::id()));
        // A directory of that name is left from a process that had this
        // pid and died before cleaning up.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to a file in the directory; its path.
    pub fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server config presenting a self-signed certificate for `names`, and a
/// client config trusting it alone.
#[cfg(feature = "tls")]
pub fn tls_configs(
    names: &[&str],
) -> (
    Arc<streamish::tls::rustls::ServerConfig>,
    Arc<streamish::tls::rustls::ClientConfig>,
) {
    use streamish::tls;
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let cert = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
    let der = cert.cert.der().clone();
    let mut roots = tls::rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("a root");
    let key = tls::rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()).into();
    (
        tls::server_config(vec![der], key).expect("a server config"),
        tls::client_config(roots),
    )
}

/// A connected TLS pair over loopback, handshake done: (client, server).
#[cfg(feature = "tls")]
pub async fn tls_pair() -> (streamish::TlsStream, streamish::TlsStream) {
    let (server_config, client_config) = tls_configs(&["localhost"]);
    let listener = streamish::TlsListener::bind("127.0.0.1:0", server_config).expect("bind");
    let connecting = streamish::TlsStream::connect_to(listener.local_addr(), "localhost", client_config);
    let (client, accepted) = futures_lite::future::zip(connecting, listener.accept()).await;
    (client.expect("connect"), accepted.expect("accept").0)
}
