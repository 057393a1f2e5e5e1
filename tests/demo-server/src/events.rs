//! An in-memory event store, so clients can resume a dropped SSE stream with `Last-Event-ID`.

use rmcp::transport::streamable_http_server::session::{
    EventStore, EventStoreError, EventStream, ServerSseMessage,
};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every event ever sent, with the stream it belongs to. A demo keeps them all; a real server
/// would bound this.
#[derive(Default)]
pub struct MemoryEventStore {
    events: Mutex<Vec<(String, ServerSseMessage)>>,
    next_id: AtomicU64,
}

#[async_trait::async_trait]
impl EventStore for MemoryEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<String, EventStoreError> {
        let id = format!("ev-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut event = event.clone();
        event.event_id = Some(id.clone());
        self.events
            .lock()
            .map_err(|_| std::io::Error::other("event store poisoned"))?
            .push((stream_id.to_string(), event));
        Ok(id)
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let events = self
            .events
            .lock()
            .map_err(|_| std::io::Error::other("event store poisoned"))?;
        let at = events
            .iter()
            .position(|(_, e)| e.event_id.as_deref() == Some(last_event_id))
            .ok_or_else(|| std::io::Error::other("unknown Last-Event-ID"))?;
        let stream = events[at].0.clone();
        let replay: Vec<ServerSseMessage> = events[at + 1..]
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, e)| e.clone())
            .collect();
        tracing::info!(last_event_id, replayed = replay.len(), "resuming stream");
        Ok(Box::pin(futures::stream::iter(replay)))
    }
}
