//! The callback server's accept loop shares its executor fairly, and
//! wakes its task with no lock held.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::thread;

use streamish::{Driver, tcp_server};

use common::LIMIT;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A flood of connections waiting to be accepted does not keep one poll
/// of the accept loop busy until it is over: the poll takes some, wakes
/// its task and returns, so the connections already open get their turn.
#[test]
fn one_poll_of_the_accept_loop_takes_a_bounded_number_of_connections() {
    const WAITING: usize = 200;
    let drivers: Arc<Mutex<Vec<Driver>>> = Arc::default();
    let d = drivers.clone();
    let server = tcp_server("127.0.0.1", 0)
        .backlog(1024)
        .start(move |driver| d.lock().unwrap().push(driver))
        .unwrap();
    let mut accept_loop = drivers.lock().unwrap().pop().expect("the accept loop");
    let clients: Vec<_> = (0..WAITING)
        .map(|_| std::net::TcpStream::connect(server.local_addr()).unwrap())
        .collect();
    let count = Arc::new(Count::default());
    let waker = Waker::from(count.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut accept_loop).poll(&mut cx).is_pending());
    let first = drivers.lock().unwrap().len();
    assert!(first > 0, "the first poll accepted nothing");
    assert!(first < WAITING, "one poll accepted all {first} waiting connections");
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "the loop woke itself to go on");
    for _ in 0..WAITING {
        if drivers.lock().unwrap().len() == WAITING {
            break;
        }
        let _ = Pin::new(&mut accept_loop).poll(&mut cx);
    }
    assert_eq!(drivers.lock().unwrap().len(), WAITING, "every connection accepted");
    server.close();
    assert!(Pin::new(&mut accept_loop).poll(&mut cx).is_ready());
    drop((clients, drivers));
}

/// An executor whose waker polls the task at once, on the waking thread.
struct Inline {
    task: Mutex<Option<Driver>>,
    done: AtomicBool,
}

impl Wake for Inline {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut task = self.task.lock().unwrap();
        if let Some(t) = task.as_mut() {
            if Pin::new(t).poll(&mut Context::from_waker(&waker)).is_ready() {
                *task = None;
                self.done.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// `TcpServerHandle::close` wakes the accept loop after releasing its
/// lock: a waker that polls the loop at once does not deadlock on it.
#[test]
fn closing_a_server_whose_waker_polls_inline_does_not_deadlock() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let drivers: Arc<Mutex<Vec<Driver>>> = Arc::default();
        let d = drivers.clone();
        let server = tcp_server("127.0.0.1", 0)
            .start(move |driver| d.lock().unwrap().push(driver))
            .unwrap();
        let exec = Arc::new(Inline {
            task: Mutex::new(drivers.lock().unwrap().pop()),
            done: AtomicBool::new(false),
        });
        exec.wake_by_ref();
        server.close();
        let _ = tx.send(exec.done.load(Ordering::SeqCst));
    });
    let done = rx.recv_timeout(LIMIT).expect("close deadlocked with an inline waker");
    assert!(done, "the accept loop ended when the server closed");
}
