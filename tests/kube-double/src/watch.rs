//! Watch streams: chunked newline-delimited JSON watch events with ADDED, MODIFIED, DELETED,
//! BOOKMARK and ERROR (410) events, selector transitions, `timeoutSeconds`, and an on-demand
//! "cut" that drops every open watch connection mid-stream.

use crate::api::{WatchSpec, as_version};
use crate::store::{Event, EventType};
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// The response body of a watch: frames produced by a background task.
#[derive(Debug)]
pub struct WatchBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl Body for WatchBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Counts open watches while alive.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut s = json!({"type": event_type, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// Translates a store event into what this watcher sees (or nothing).
fn translate(spec: &WatchSpec, ev: &Event) -> Option<Bytes> {
    let k = &ev.key;
    if k.group != spec.t.group || k.plural != spec.t.plural {
        return None;
    }
    if spec
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != k.namespace)
    {
        return None;
    }
    let matches = |o: &Value| spec.labels.matches(o) && spec.fields.matches(o);
    let now = matches(&ev.object);
    let kind = match ev.kind {
        EventType::Added if now => "ADDED",
        EventType::Deleted if now => "DELETED",
        EventType::Modified => match (ev.old.as_ref().is_some_and(matches), now) {
            (true, true) => "MODIFIED",
            (false, true) => "ADDED",
            (true, false) => "DELETED",
            (false, false) => return None,
        },
        _ => return None,
    };
    Some(line(kind, as_version(&spec.t, &spec.version, &ev.object)))
}

fn bookmark(spec: &WatchSpec, rv: u64) -> Bytes {
    line(
        "BOOKMARK",
        json!({"kind": spec.t.kind, "apiVersion": spec.t.api_version(&spec.version),
            "metadata": {"resourceVersion": rv.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}}}),
    )
}

/// Starts the task feeding a watch body.
pub fn start(
    spec: WatchSpec,
    mut cut: watch::Receiver<u64>,
    open: Arc<AtomicUsize>,
    bookmark_interval: Duration,
) -> WatchBody {
    let (tx, rx) = mpsc::channel(256);
    open.fetch_add(1, Ordering::SeqCst);
    let guard = OpenGuard(open);
    cut.borrow_and_update();
    tokio::spawn(async move {
        let _guard = guard;
        let mut spec = spec;
        if let Some(status) = spec.expired.take() {
            let _ = tx.send(Ok(line("ERROR", status))).await;
            return;
        }
        let mut last_rv = spec.start_rv;
        for ev in std::mem::take(&mut spec.initial) {
            last_rv = last_rv.max(ev.rv);
            if let Some(b) = translate(&spec, &ev)
                && tx.send(Ok(b)).await.is_err()
            {
                return;
            }
        }
        let Some(mut rx) = spec.rx.take() else { return };
        let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv && ev.rv != 0 {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(b) = translate(&spec, &ev)
                            && tx.send(Ok(b)).await.is_err()
                        {
                            return;
                        }
                    }
                    // A watcher that fell behind is closed; clients re-watch from their last rv.
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if spec.bookmarks => {
                    if tx.send(Ok(bookmark(&spec, last_rv))).await.is_err() {
                        return;
                    }
                }
                _ = sleep => return,
                _ = cut.changed() => {
                    let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted,
                        "kube-double: watch cut by the test"))).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    WatchBody { rx }
}
