//! Request workers: one single-threaded tokio runtime per core, each accepting from the same
//! listening socket and serving the connections it accepted to the end (nginx's worker model).
//!
//! A work-stealing runtime wakes a parked worker whenever work arrives on another one; on a
//! two-core machine shared with other processes those futex wakeups and context switches were
//! the largest cost of a proxied request (bench/RESULTS.md, runs 8–9). Here a request never
//! leaves the thread that accepted its connection: the listener's readiness wakes whichever
//! worker is idle (so connections go to the less busy core), and each worker keeps its own
//! upstream connections ([`current`] shards the pools) so their I/O completes on the same thread.
//!
//! Control work — manifest reloads, the operator's push stream, the admin listener, signals —
//! runs on the process's main runtime, never on a request worker.

use crate::listener::{self, Handler, WorkerLoad};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How many request workers this process runs (1 until [`init`] is called).
static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's worker index; 0 on every thread that is not a request worker.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the request worker running on this thread (0 elsewhere), below [`count`].
pub fn current() -> usize {
    INDEX.with(|i| i.get())
}

/// How many request workers there are.
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// The default number of request workers: one per available core.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Set the number of request workers, before anything that sizes per-worker state (the
/// upstream pools of a snapshot) is built.
pub fn init(n: usize) {
    COUNT.store(n.max(1), Ordering::Relaxed);
}

/// Start the [`count`] request workers serving `listener` until `shutdown` flips, each then
/// draining its own connections for at most `drain`. The returned threads end when their
/// worker has drained.
pub fn spawn(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
    max_body: usize,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let n = count();
    let shares = WorkerLoad::shares(n);
    listener.set_nonblocking(true)?;
    let mut threads = Vec::with_capacity(n);
    for (index, share) in shares.into_iter().enumerate() {
        // Every worker registers its own descriptor of the one listening socket with its own
        // event loop; a new connection is accepted by whichever worker gets to it first.
        let listener = listener.try_clone()?;
        let (tls, handler, shutdown) = (tls.clone(), handler.clone(), shutdown.clone());

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("gatehouse-worker-{index}"))
            .spawn(move || {
                INDEX.with(|i| i.set(index));
                runtime.block_on(async move {
                    tokio::spawn(timer_anchor());
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            listener::serve(l, tls, handler, shutdown, drain, Some(share), max_body)
                                .await
                        }
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "worker cannot listen")
                        }
                    }
                });
            })?;
        threads.push(thread);
    }
    Ok(threads)
}

/// Keeps a wake-up of this worker's event loop always planned within a second.
///
/// Tokio writes to the loop's eventfd whenever a timer is registered earlier than the loop's
/// next planned wake-up — with no timer pending, that is every request's upstream timeout:
/// half an eventfd write and an extra `epoll_wait` per request in bench/run. With a wake-up
/// always planned within a second, longer timeouts are registered without a syscall.
async fn timer_anchor() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    /// Two request workers serving `listener` with `handler`: the shutdown switch and the
    /// worker threads.
    fn start_two(
        listener: std::net::TcpListener,
        handler: Handler,
    ) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        init(2);
        let threads = spawn(
            listener,
            None,
            handler,
            stop_rx,
            Duration::from_secs(1),
            1 << 20,
        )
        .unwrap();
        (stop_tx, threads)
    }

    fn get() -> http::Request<String> {
        http::Request::get("/")
            .header("host", "x")
            .body(String::new())
            .unwrap()
    }

    async fn open_connection(
        addr: std::net::SocketAddr,
    ) -> hyper::client::conn::http1::SendRequest<String> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake::<_, String>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        send
    }

    /// New connections go to the worker holding the fewest, whichever worker accepted them.
    #[test]
    fn connections_are_spread_evenly_over_the_workers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Handler = Arc::new(|_req| {
            async { http::Response::new(crate::body::full(current().to_string())) }.boxed()
        });
        let (stop_tx, threads) = start_two(listener, handler);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let served_by = rt.block_on(async {
            let mut open = Vec::new();
            let mut served_by = vec![0; 2];
            for _ in 0..8 {
                let mut send = open_connection(addr).await;
                let req = get();
                let resp = send.send_request(req).await.unwrap();
                let body = http_body_util::BodyExt::collect(resp.into_body())
                    .await
                    .unwrap();
                let worker: usize = String::from_utf8_lossy(&body.to_bytes()).parse().unwrap();
                served_by[worker] += 1;
                open.push(send); // keep every connection open
            }
            served_by
        });
        assert_eq!(served_by, vec![4, 4], "connections per worker");
        stop_tx.send(true).unwrap();
        for t in threads {
            t.join().unwrap();
        }
    }

    /// Connections are served on the worker threads; while one worker is busy, the other
    /// accepts and serves the next connection; shutdown ends every worker.
    #[test]
    fn an_idle_worker_takes_the_next_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = {
            let seen = seen.clone();
            Arc::new(move |_req| {
                let seen = seen.clone();
                async move {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    let first = {
                        let mut seen = seen.lock().unwrap();
                        seen.push((name, current()));
                        seen.len() == 1
                    };
                    if first {
                        // Keep this worker's thread busy: it cannot accept meanwhile.
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    http::Response::new(crate::body::full(""))
                }
                .boxed()
            })
        };
        let (stop_tx, threads) = start_two(listener, handler);
        assert_eq!(count(), 2);

        async fn call(addr: std::net::SocketAddr) -> http::StatusCode {
            let req = get();
            let mut send = open_connection(addr).await;
            send.send_request(req).await.unwrap().status()
        }
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let busy = tokio::spawn(call(addr));
            while seen.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(call(addr).await, http::StatusCode::OK);
            assert_eq!(
                seen.lock().unwrap().len(),
                2,
                "served while the other worker was busy"
            );
            assert_eq!(busy.await.unwrap(), http::StatusCode::OK);
        });
        let seen = seen.lock().unwrap().clone();
        let workers: HashSet<_> = seen.iter().cloned().collect();
        for (name, index) in &workers {
            assert_eq!(name, &format!("gatehouse-worker-{index}"));
        }
        assert_eq!(
            workers.len(),
            2,
            "each connection on its own worker: {seen:?}"
        );

        stop_tx.send(true).unwrap();
        for t in threads {
            t.join().unwrap();
        }
    }
}
