//! `gatehouse-demo-server`: a small MCP server on the official Rust SDK (`rmcp`), serving
//! Streamable HTTP. It is the upstream of the quickstart and of the end-to-end tests.
//!
//! Tools: `echo`, `add`, `whoami` (returns the `Authorization` header it received, so tests can
//! prove the gateway injected its credential and stripped the agent's), `admin_reset` (for
//! denials), `slow_count` (progress notifications over SSE, with delays), `ask_user`
//! (server→client elicitation) and `summarize` (server→client sampling). Two resources, a
//! resource template and a prompt.
//!
//! It prints exactly one line on stdout — `listening on http://ADDR/mcp` — once it accepts
//! connections (so `--listen 127.0.0.1:0` works), and logs everything it receives to stderr.

#![allow(deprecated)]
// Sampling is deprecated upstream (SEP-2577) but is part of every 2025 revision the gateway relays.
#![forbid(unsafe_code)]

mod events;
mod server;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use std::io::Write;
use std::sync::Arc;

/// Command line.
#[derive(Parser)]
#[command(name = "gatehouse-demo-server", version, about)]
struct Cli {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: String,
    /// Path of the MCP endpoint.
    #[arg(long, default_value = "/mcp")]
    path: String,
    /// A further `Host` header value to accept (repeatable), e.g. the in-cluster Service name
    /// `demo-mcp.demo.svc:3001` a gateway relays to. Loopback names are always accepted; any
    /// other host is refused (DNS-rebinding protection of the MCP SDK).
    #[arg(long = "allowed-host", value_name = "HOST[:PORT]")]
    allowed_hosts: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rmcp=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
    let addr = listener.local_addr()?;

    let mut config = StreamableHttpServerConfig::default();
    config.sse_keep_alive = None;
    // Sessions on, so GET streams, server→client requests and resumption work on 2025-xx.
    config.legacy_session_mode = true;
    config.allowed_hosts = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        addr.to_string(),
        format!("localhost:{}", addr.port()),
    ];
    config
        .allowed_hosts
        .extend(cli.allowed_hosts.iter().cloned());
    let sessions = LocalSessionManager::default()
        .with_event_store(Arc::new(events::MemoryEventStore::default()));
    let service = StreamableHttpService::new(|| Ok(server::Demo), Arc::new(sessions), config);

    println!("listening on http://{addr}{}", cli.path);
    std::io::stdout().flush()?;
    tracing::info!(%addr, path = %cli.path, "demo MCP server ready");

    let path: Arc<str> = cli.path.into();
    loop {
        let (stream, peer) = listener.accept().await?;
        // Small JSON-RPC answers and SSE events must leave at once, not wait for the peer's
        // delayed ACK (Nagle): without this, every answer under load waited ~40 ms.
        stream.set_nodelay(true)?;
        let service = service.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    let path = path.clone();
                    async move {
                        tracing::info!(
                            method = %req.method(),
                            uri = %req.uri(),
                            headers = ?server::visible_headers(req.headers()),
                            "received"
                        );
                        if req.uri().path() != &*path {
                            let mut not_found = hyper::Response::new(
                                http_body_util::BodyExt::boxed(http_body_util::Full::new(
                                    bytes::Bytes::from_static(b"not found"),
                                )),
                            );
                            *not_found.status_mut() = http::StatusCode::NOT_FOUND;
                            return Ok::<_, std::convert::Infallible>(not_found);
                        }
                        Ok(service.handle(req).await)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
            tracing::debug!(%peer, "connection closed");
        });
    }
}
