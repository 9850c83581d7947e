//! The examples, run as real processes on loopback: `tcp_client`,
//! `echo_server`, `simple_proxy` and `any_stream`.
//!
//! `cargo test` builds the examples before it runs the tests; they are found
//! next to this test binary (`target/<profile>/examples/`), whatever the
//! target directory. Every process runs under a watchdog that kills it after
//! [`LIMIT`], and is killed when its test ends, passed or failed.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::SystemTime;

use common::LIMIT;

/// The path of a built example, built if need be.
///
/// This test binary is `<target>/<profile>/deps/examples-HASH`; the examples
/// are in `<target>/<profile>/examples/`, where `cargo test` builds them
/// before it runs any test. A filtered run (`cargo test --test examples`)
/// does not build them: then an example that is missing, or older than its
/// sources, is built once by `cargo run --example NAME -- --help`, into the
/// same target directory and profile.
fn example(name: &str) -> PathBuf {
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("<target>/<profile>");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    // One build at a time, once per example and test process.
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if !checked.iter().any(|n| n == name) {
        if !is_fresh(&path, name) {
            build(name, profile_dir);
        }
        checked.push(name.to_owned());
    }
    path
}

/// Whether the built example exists and is newer than its sources.
fn is_fresh(path: &Path, name: &str) -> bool {
    fn newest(path: &Path) -> Option<SystemTime> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        std::fs::read_dir(path)
            .ok()?
            .flatten()
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let Some(built) = std::fs::metadata(path).and_then(|m| m.modified()).ok() else {
        return false;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sources = [
        root.join("src"),
        root.join("Cargo.toml"),
        root.join(format!("examples/{name}.rs")),
    ];
    sources.iter().filter_map(|p| newest(p)).all(|t| t <= built)
}

/// Builds the example with `cargo run` (its `--help` exits at once).
fn build(name: &str, profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("<target>");
    let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => "dev",
        Some(p) => p,
    };
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--profile",
            profile,
            "--example",
            name,
            "--target-dir",
        ])
        .arg(target_dir)
        // The features this test binary was built with, as `cargo test`
        // builds the examples with them.
        .args(if cfg!(feature = "tls") {
            &["--features", "tls"][..]
        } else {
            &[]
        })
        .args(["--", "--help"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the example {name}: {e}"));
    assert!(
        out.status.success(),
        "building the example {name} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process with its stdout read line by line, its stderr collected
/// by a thread, and a watchdog that kills it after [`LIMIT`]. Dropping it
/// kills the process, so a failed test leaves nothing running.
struct Proc {
    name: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    watchdog: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

/// How a process ended.
struct Finished {
    status: ExitStatus,
    /// Stdout after the lines already read.
    stdout: String,
    stderr: String,
}

impl Proc {
    fn start(name: &str, cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let pid = child.id() as libc::pid_t;
        let (stop, stopped) = mpsc::channel::<()>();
        let label = name.to_owned();
        let watchdog = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(LIMIT) {
                eprintln!("watchdog: {label} still runs after {LIMIT:?}: killing it");
                // The process is not reaped while the watchdog runs (see
                // `wait_unreaped`), so the pid is still its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr: Some(stderr),
            watchdog: Some((stop, watchdog)),
        }
    }

    /// Starts the example `name` with `args`.
    fn example(name: &str, args: &[&str]) -> Proc {
        Proc::start(name, Command::new(example(name)).args(args))
    }

    /// The next line on stdout, without its line end. Blocks until the
    /// process writes it (or dies: the watchdog bounds the wait).
    fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read the child's stdout");
        assert!(n > 0, "{} closed its stdout (died?) before writing a line", self.name);
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        line
    }

    /// Reads stdout lines until one satisfies `f`, and returns it.
    fn line_where(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read the child's stdout");
            assert!(n > 0, "{} closed its stdout before a line with {what}", self.name);
            if f(line.trim_end()) {
                return line.trim_end().to_owned();
            }
        }
    }

    /// Reads the first line, which must be `listening on IP:PORT`.
    fn listening(&mut self) -> SocketAddr {
        let line = self.line();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{}'s first line is {line:?}, not `listening on IP:PORT`", self.name));
        addr.parse().unwrap_or_else(|e| panic!("{addr:?} is not IP:PORT: {e}"))
    }

    fn signal(&self, sig: libc::c_int) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}): {}", self.name, std::io::Error::last_os_error());
    }

    /// Waits for the process to exit without reaping it, so that the
    /// watchdog can still kill it by pid and no other process can have it.
    fn wait_unreaped(&self) {
        let pid = self.child.id() as libc::id_t;
        loop {
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
            if rc == 0 || std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                return;
            }
        }
    }

    fn stop_watchdog(&mut self) {
        if let Some((stop, watchdog)) = self.watchdog.take() {
            drop(stop);
            let _ = watchdog.join();
        }
    }

    /// Reads the rest of stdout, waits for the exit, collects stderr.
    fn finish(mut self) -> Finished {
        let mut stdout = String::new();
        let _ = self.stdout.read_to_string(&mut stdout);
        self.wait_unreaped();
        self.stop_watchdog();
        let status = self.child.wait().expect("wait for the child");
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        Finished { status, stdout, stderr }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.watchdog.is_some() {
            // Not finished: the test failed (or forgot). Kill it.
            let _ = self.child.kill();
            self.wait_unreaped();
            self.stop_watchdog();
            let _ = self.child.wait();
        }
    }
}

/// Runs an example to its end.
fn run(name: &str, args: &[&str]) -> Finished {
    Proc::example(name, args).finish()
}

/// Asserts `stderr` is exactly one line, and returns it.
fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "stderr's line is not ended: {stderr:?}");
    lines[0]
}

/// A std client with bounded blocking.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

/// `len` pseudo-random bytes, different for each `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    common::Rng::new(seed).bytes(len)
}

/// Sends `msg` from a writer thread while reading its echo here (so a big
/// message cannot deadlock on full buffers), and checks the echo.
fn echo_round_trip(stream: &TcpStream, msg: &[u8]) {
    let mut writer = stream.try_clone().unwrap();
    let out = msg.to_vec();
    let w = thread::spawn(move || writer.write_all(&out));
    let mut back = vec![0u8; msg.len()];
    (&*stream)
        .read_exact(&mut back)
        .unwrap_or_else(|e| panic!("reading the echo of {} bytes: {e}", msg.len()));
    w.join().unwrap().expect("write the message");
    assert!(
        back == msg,
        "the echo of {} bytes differs from what was sent",
        msg.len()
    );
}

/// Reads until end of file; `Ok(bytes)` if it was a clean one.
fn read_to_eof(mut stream: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    stream.read_to_end(&mut got)?;
    Ok(got)
}

/// Accepts one connection, bounded by [`LIMIT`].
fn accept(listener: &TcpListener) -> TcpStream {
    let listener = listener.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(listener.accept());
    });
    let (s, _) = rx
        .recv_timeout(LIMIT)
        .expect("no connection came in time")
        .expect("accept");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s
}

// ----- tcp_client -----

#[test]
fn any_stream_runs_one_exchange_over_every_kind_of_stream() {
    let out = run("any_stream", &[]);
    assert!(out.status.success(), "exit {:?}, stderr {:?}", out.status, out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut want = vec!["tcp", "unix"];
    if cfg!(feature = "tls") {
        want.push("tls");
    }
    want.push("memory");
    assert_eq!(lines.len(), want.len(), "stdout: {:?}", out.stdout);
    for (line, name) in lines.iter().zip(want) {
        assert_eq!(
            line.trim_start(),
            format!("{name}: HTTP/1.0 200 OK  hello from /{name}")
        );
    }
}

#[test]
fn tcp_client_fetches_from_its_embedded_server() {
    let out = run("tcp_client", &[]);
    assert!(out.status.success(), "exit {:?}, stderr {:?}", out.status, out.stderr);
    assert!(
        out.stdout.starts_with("HTTP/1.1 200 OK\r\n"),
        "stdout: {:?}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("\r\n\r\nhello from streamish's embedded server: GET /\n"),
        "stdout: {:?}",
        out.stdout
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn tcp_client_fetches_a_path_from_python_http_server() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3");
        return;
    }
    let dir = std::env::temp_dir().join(format!("streamish-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    struct RemoveDir(PathBuf);
    impl Drop for RemoveDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = RemoveDir(dir.clone());
    let body = "served by python's http.server for streamish's tcp_client\n";
    std::fs::write(dir.join("hello.txt"), body).unwrap();

    let mut python = Proc::start(
        "python3 -m http.server",
        Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(&dir),
    );
    // "Serving HTTP on 127.0.0.1 port 40000 (http://127.0.0.1:40000/) ..."
    let line = python.line();
    let port = line
        .split_once(" port ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("python's first line has no port: {line:?}"));
    let port = port.to_string();

    // By address, and by name ("localhost" may resolve to ::1 first, where
    // nobody listens: the next address is tried).
    for host in ["127.0.0.1", "localhost"] {
        let out = run("tcp_client", &[host, &port, "/hello.txt"]);
        assert!(
            out.status.success(),
            "{host}: exit {:?}, stderr {:?}",
            out.status,
            out.stderr
        );
        assert!(out.stdout.starts_with("HTTP/1."), "{host}: stdout {:?}", out.stdout);
        assert!(out.stdout.contains(" 200 "), "{host}: stdout {:?}", out.stdout);
        assert!(out.stdout.ends_with(body), "{host}: stdout {:?}", out.stdout);
        assert_eq!(out.stderr, "", "{host}");
    }
}

#[test]
fn tcp_client_reports_a_refused_connection_in_one_line() {
    let out = run("tcp_client", &["127.0.0.1", &common::refused_port().to_string()]);
    assert_eq!(out.status.code(), Some(1), "stderr {:?}", out.stderr);
    assert_eq!(out.stdout, "");
    let line = one_line(&out.stderr);
    assert!(line.starts_with("tcp_client: tcp-refused: "), "{line:?}");
}

#[test]
fn tcp_client_rejects_bad_arguments() {
    for args in [&["127.0.0.1", "http"][..], &["a", "80", "/", "extra"], &["--verbose"]] {
        let out = run("tcp_client", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {:?}", out.stderr);
        assert!(one_line(&out.stderr).contains("usage: tcp_client"), "{args:?}");
    }
}

// ----- echo_server -----

#[test]
fn echo_server_echoes_every_byte_and_exits_0_on_sigterm() {
    let mut server = Proc::example("echo_server", &["--port", "0"]);
    let addr = server.listening();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let client = connect(addr);
    let all: Vec<u8> = (0..=255).collect();
    for msg in [
        &b"hai hai"[..],
        b"x",
        &all,
        b"thxlol thxlol\r\n",
        &bytes(1, 1024 * 1024),
    ] {
        echo_round_trip(&client, msg);
    }
    // The client is done: the server closes its side once its echo is out.
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&client).expect("a clean end of file"), b"");

    server.signal(libc::SIGTERM);
    let out = server.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "");
}

#[test]
fn echo_server_serves_50_clients_at_once_and_exits_0_on_sigint() {
    let mut server = Proc::example("echo_server", &["--bind", "127.0.0.1", "--port=0"]);
    let addr = server.listening();
    let clients: Vec<_> = (0..50u64)
        .map(|i| {
            thread::spawn(move || {
                let client = connect(addr);
                for round in 0..4u64 {
                    let len = 1 + (i * 997 + round * 4099) as usize % 20_000;
                    echo_round_trip(&client, &bytes(i * 10 + round, len));
                }
                client.shutdown(Shutdown::Write).unwrap();
                assert_eq!(read_to_eof(&client).expect("a clean end of file"), b"");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }
    server.signal(libc::SIGINT);
    let out = server.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[test]
fn echo_server_reports_an_address_in_use_in_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = run("echo_server", &["--port", &port]);
    assert_eq!(out.status.code(), Some(1), "stderr {:?}", out.stderr);
    assert_eq!(out.stdout, "");
    let line = one_line(&out.stderr);
    assert!(line.starts_with("echo_server: "), "{line:?}");
    assert!(line.to_lowercase().contains("in use"), "{line:?}");
}

#[test]
fn echo_server_rejects_bad_arguments() {
    let cases = [
        (&["--port"][..], 2),
        (&["--port", "99999"], 2),
        (&["--bind"], 2),
        (&["9003"], 2),
        // Parsed, then refused by tcp_server: a failure to start.
        (&["--bind", "not-an-ip", "--port", "0"], 1),
    ];
    for (args, code) in cases {
        let out = run("echo_server", args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: stderr {:?}", out.stderr);
        assert!(one_line(&out.stderr).starts_with("echo_server: "), "{args:?}");
    }
}

// ----- simple_proxy -----

#[test]
fn simple_proxy_relays_to_the_echo_server_and_exits_0_on_sigint() {
    let mut echo = Proc::example("echo_server", &["--port", "0"]);
    let echo_port = echo.listening().port().to_string();
    let mut proxy = Proc::example("simple_proxy", &["0", "127.0.0.1", &echo_port]);
    let addr = proxy.listening();

    for round in 0..3u64 {
        let client = connect(addr);
        for msg in [
            &b"can i have your coat?"[..],
            &bytes(round, 2 * 1024 * 1024),
            b"don't say that",
        ] {
            echo_round_trip(&client, msg);
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_to_eof(&client).expect("a clean end of file"), b"");
    }

    proxy.signal(libc::SIGINT);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    assert_eq!(out.stderr, "");
    echo.signal(libc::SIGTERM);
    let out = echo.finish();
    assert_eq!(out.status.code(), Some(0), "echo_server's stderr {:?}", out.stderr);
}

#[test]
fn simple_proxy_closes_each_side_when_the_other_closes() {
    let remote = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = remote.local_addr().unwrap().port().to_string();
    let mut proxy = Proc::example("simple_proxy", &["0", "127.0.0.1", &remote_port, "--debug"]);
    let addr = proxy.listening();

    // The client closes: the remote side sees what the client sent, then
    // end of file.
    let client = connect(addr);
    let far = accept(&remote);
    (&client).write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    (&far).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    (&far).write_all(b"pong").unwrap();
    (&client).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
    drop(client);
    assert_eq!(read_to_eof(&far).expect("a clean end of file"), b"");
    drop(far);

    // The remote closes: the client gets what it sent before, then end of
    // file.
    let client = connect(addr);
    let far = accept(&remote);
    (&far).write_all(b"last words").unwrap();
    drop(far);
    assert_eq!(read_to_eof(&client).expect("a clean end of file"), b"last words");

    proxy.signal(libc::SIGTERM);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    // --debug logged the connections and the events.
    let log = out.stderr;
    assert!(log.lines().all(|l| l.starts_with("simple_proxy: ")), "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("client") && l.ends_with(" connected"))
            .count()
            == 2,
        "{log}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("remote") && l.ends_with(" connected"))
            .count()
            == 2,
        "{log}"
    );
    assert!(log.contains("tcp-eof"), "{log}");
    assert!(log.contains("sent 4 bytes"), "{log}");
}

#[test]
fn simple_proxy_sends_what_the_client_wrote_before_the_remote_was_up() {
    let remote = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote_port = remote.local_addr().unwrap().port().to_string();
    // By name: the remote connection waits for resolution, so the client's
    // bytes and its end of file reach the proxy before it is up.
    let mut proxy = Proc::example("simple_proxy", &["0", "localhost", &remote_port]);
    let addr = proxy.listening();

    for i in 0..5u64 {
        let msg = bytes(i, 1000 + i as usize);
        let client = connect(addr);
        (&client).write_all(&msg).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let far = accept(&remote);
        assert!(
            read_to_eof(&far).expect("a clean end of file") == msg,
            "round {i}: the bytes differ"
        );
    }

    proxy.signal(libc::SIGTERM);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
}

#[test]
fn simple_proxy_prints_stats_every_2_seconds() {
    let mut echo = Proc::example("echo_server", &["--port", "0"]);
    let echo_port = echo.listening().port().to_string();
    let mut proxy = Proc::example("simple_proxy", &["--stats", "0", "127.0.0.1", &echo_port]);
    let addr = proxy.listening();
    // One line at once, before any connection.
    assert_eq!(proxy.line(), "incoming: 0, outgoing: 0");

    let client = connect(addr);
    echo_round_trip(&client, b"hai");
    // The echo went through the remote side: both are open until the
    // client closes, so a later report counts them.
    proxy.line_where("one connection each way", |l| l == "incoming: 1, outgoing: 1");
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&client).expect("a clean end of file"), b"");
    drop(client);
    proxy.line_where("no connection", |l| l == "incoming: 0, outgoing: 0");

    proxy.signal(libc::SIGINT);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    assert!(
        out.stdout.lines().all(|l| l.starts_with("incoming: ")),
        "{:?}",
        out.stdout
    );
    echo.signal(libc::SIGTERM);
    assert_eq!(echo.finish().status.code(), Some(0));
}

#[test]
fn simple_proxy_resets_the_client_when_the_remote_refuses() {
    let mut proxy = Proc::example("simple_proxy", &["0", "127.0.0.1", &common::refused_port().to_string()]);
    let addr = proxy.listening();
    let client = connect(addr);
    // Reset, or end of file if the reset raced the connection: never data.
    match read_to_eof(&client) {
        Ok(got) => assert_eq!(got, b""),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    proxy.signal(libc::SIGTERM);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    let line = one_line(&out.stderr);
    assert!(line.starts_with("simple_proxy: remote 127.0.0.1:"), "{line:?}");
    assert!(line.contains("tcp-refused"), "{line:?}");
}

#[test]
fn simple_proxy_rejects_bad_arguments() {
    for args in [
        &["0", "127.0.0.1"][..],
        &["0", "127.0.0.1", "0"],
        &["x", "127.0.0.1", "80"],
        &["0", "h", "1", "--verbose"],
    ] {
        let out = run("simple_proxy", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {:?}", out.stderr);
        assert!(one_line(&out.stderr).contains("usage: simple_proxy"), "{args:?}");
    }
}

#[test]
fn simple_proxy_passes_a_half_close_through() {
    // The client sends everything, shuts down its write side, then reads the
    // whole echo: the proxy must pass the half-close on and keep relaying
    // the replies until the echo server ends too.
    let mut echo = Proc::example("echo_server", &["--port", "0"]);
    let echo_port = echo.listening().port().to_string();
    let mut proxy = Proc::example("simple_proxy", &["0", "127.0.0.1", &echo_port]);
    let addr = proxy.listening();

    let payload = bytes(7, 20 * 1024 * 1024);
    let client = connect(addr);
    let reader = {
        let client = client.try_clone().unwrap();
        std::thread::spawn(move || read_to_eof(&client))
    };
    (&client).write_all(&payload).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let got = reader.join().unwrap().expect("a clean end of file");
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "the echo came back changed");

    proxy.signal(libc::SIGINT);
    let out = proxy.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    echo.signal(libc::SIGTERM);
    let out = echo.finish();
    assert_eq!(out.status.code(), Some(0), "echo_server's stderr {:?}", out.stderr);
    assert_eq!(out.stderr, "", "the echo server saw no error");
}

// ----- chat_server -----

/// A chat client: its stream, a line reader over it, and its name as the
/// server sees it.
struct Chatter {
    stream: TcpStream,
    lines: BufReader<TcpStream>,
    name: String,
}

impl Chatter {
    fn join(addr: SocketAddr) -> Chatter {
        let stream = connect(addr);
        let name = stream.local_addr().unwrap().to_string();
        let lines = BufReader::new(stream.try_clone().unwrap());
        Chatter { stream, lines, name }
    }

    fn say(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).unwrap();
    }

    /// The next line that is not a `joined` notice.
    fn hear(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = self.lines.read_line(&mut line).expect("read a chat line");
            assert!(n > 0, "{}: the server closed", self.name);
            if !line.ends_with(" joined\n") {
                return line;
            }
        }
    }

    /// Waits until the server announced `other`.
    fn heard_join(&mut self, other: &Chatter) {
        let want = format!("* {} joined\n", other.name);
        loop {
            let mut line = String::new();
            assert!(self.lines.read_line(&mut line).unwrap() > 0, "the server closed");
            if line == want {
                return;
            }
        }
    }
}

/// Makes closing `stream` send a reset.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

#[test]
fn chat_server_broadcasts_lines_and_cleans_up_after_leavers() {
    let mut server = Proc::example("chat_server", &["--port", "0"]);
    let addr = server.listening();
    let mut a = Chatter::join(addr);
    let mut b = Chatter::join(addr);
    let mut c = Chatter::join(addr);
    a.heard_join(&c); // all three are in the room
    b.heard_join(&c);

    // A line in two pieces goes out whole, to everyone else.
    a.say("hel");
    a.say("lo\nsecond line\n");
    for x in [&mut b, &mut c] {
        assert_eq!(x.hear(), format!("{}: hello\n", a.name));
        assert_eq!(x.hear(), format!("{}: second line\n", a.name));
    }
    // One leaves with a reset, one with end of file: both are announced,
    // and the room goes on.
    reset_on_close(&c.stream);
    let c_name = c.name.clone();
    drop(c);
    for x in [&mut a, &mut b] {
        assert_eq!(x.hear(), format!("* {c_name} left\n"));
    }
    b.say("still here\n");
    assert_eq!(a.hear(), format!("{}: still here\n", b.name));
    b.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(a.hear(), format!("* {} left\n", b.name));

    server.signal(libc::SIGTERM);
    let out = server.finish();
    assert_eq!(out.status.code(), Some(0), "stderr {:?}", out.stderr);
    assert_eq!(out.stderr, "");
}

#[test]
fn chat_server_rejects_bad_arguments() {
    for args in [&["--port"][..], &["--port", "99999"], &["9004"]] {
        let out = run("chat_server", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {:?}", out.stderr);
        assert!(one_line(&out.stderr).contains("usage: chat_server"), "{args:?}");
    }
}

// ----- usage -----

#[test]
fn echo_server_binds_a_host_name() {
    let mut server = Proc::example("echo_server", &["--bind", "localhost", "--port", "0"]);
    let addr = server.listening();
    assert!(addr.ip().is_loopback(), "{addr}");
    echo_round_trip(&connect(addr), b"hai");
    server.signal(libc::SIGTERM);
    assert_eq!(server.finish().status.code(), Some(0));
}

#[test]
fn the_readme_shows_each_examples_usage_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for name in ["tcp_client", "echo_server", "simple_proxy", "chat_server"] {
        let out = run(name, &["--help"]);
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        let usage = out
            .stdout
            .trim()
            .strip_prefix("usage: ")
            .expect("a usage line")
            .to_owned();
        assert!(readme.contains(&format!("`{usage}`")), "README lacks `{usage}`");
        // A usage error prints that line and exits 2.
        let out = run(name, &["--no-such-option"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {:?}", out.stderr);
        assert!(one_line(&out.stderr).contains(&format!("usage: {usage}")), "{name}");
    }
}
