//! What an operator watches (docs/operations.md): one log line and one count per RPC, the
//! latency histogram per RPC, refusals by reason, and the Prometheus endpoint that serves them.
//!
//! Labels and log fields are fixed words only: the RPC's name (from the routes, or `unknown`),
//! the gRPC status code, a refusal's reason. Never a name, an insurance number, a birth date
//! or anything else a request carries.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Serves `/metrics` in the Prometheus text format on `addr` (plain HTTP: bind it to loopback
/// or a management network); returns the address bound (port 0: the system's choice, which
/// the caller prints) and the serving task. Once per process.
pub async fn serve_metrics(
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot record metrics: {e}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                // Histograms are folded into their summaries by the upkeep, which the
                // exporter's own listener would run; here it runs before each scrape.
                handle.run_upkeep();
                handle.render()
            }
        }),
    );
    Ok((
        local,
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the metrics endpoint stopped");
            }
        }),
    ))
}

/// What a handler learns about its RPC for the RPC's log line: the calling terminal and the
/// confirmation id it answered (or refused) under. Neither is person data.
#[derive(Debug, Default)]
struct Note {
    terminal: Option<String>,
    confirmation_id: Option<String>,
    /// The project's result code of an audited call, and a refusal's reason.
    result: Option<&'static str>,
    reason: Option<&'static str>,
}

tokio::task_local! {
    static NOTE: std::sync::Arc<std::sync::Mutex<Note>>;
}

fn with_note(f: impl FnOnce(&mut Note)) {
    let _ = NOTE.try_with(|n| f(&mut n.lock().unwrap_or_else(|p| p.into_inner())));
}

/// The calling terminal (`<医療機関コード>-<terminal id>`), for the RPC's log line.
pub fn note_terminal(name: &str) {
    with_note(|n| n.terminal = Some(name.to_owned()));
}

/// The confirmation id of the RPC's audit record, for the RPC's log line.
pub fn note_confirmation(id: &str) {
    with_note(|n| n.confirmation_id = Some(id.to_owned()));
}

/// The outcome of an audited call, for the RPC's log line: the project's result code (its
/// proto name) and, for a refusal, its reason (`bad-request`, `signature-invalid`, ...).
pub fn note_outcome(result: &'static str, reason: Option<&'static str>) {
    with_note(|n| {
        n.result = Some(result);
        n.reason = reason;
    });
}

/// The batch queue: jobs waiting for a worker, and jobs queued or being answered here.
pub fn batch_queue(waiting: usize, pending: usize) {
    metrics::gauge!("onshi_batch_queue_jobs", "state" => "waiting").set(waiting as f64);
    metrics::gauge!("onshi_batch_queue_jobs", "state" => "pending").set(pending as f64);
}

/// One group commit of the audit writer: how many writes, how long it took.
pub fn group_commit(writes: usize, seconds: f64) {
    metrics::histogram!("onshi_group_commit_writes").record(writes as f64);
    metrics::histogram!("onshi_group_commit_seconds").record(seconds);
}

/// An authenticated connection opened (`1`) or closed (`-1`).
pub fn connection(delta: f64) {
    metrics::gauge!("onshi_open_connections").increment(delta);
}

/// A TLS handshake that did not finish: refused (`refused`) or too slow (`timeout`).
pub fn handshake_failed(reason: &'static str) {
    metrics::counter!("onshi_tls_handshake_failures_total", "reason" => reason).increment(1);
}

/// A look-up in one of the service's caches (`terminal`, `certificate`): a hit or a miss.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!("onshi_cache_lookups_total", "cache" => cache, "result" => result)
        .increment(1);
}

/// A refusal decided before any work (rate limit, quota, a terminal not in operation).
pub fn refused(reason: &'static str) {
    metrics::counter!("onshi_refusals_total", "reason" => reason).increment(1);
}

/// The tower layer that observes every RPC of the gRPC server.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcLayer;

impl<S> tower::Layer<S> for RpcLayer {
    type Service = Rpc<S>;
    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Rpc<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<http::Request<B>> for Rpc<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let start = Instant::now();
        let note = std::sync::Arc::new(std::sync::Mutex::new(Note::default()));
        let answer = NOTE.scope(note.clone(), self.inner.call(request));
        Box::pin(async move {
            let answer = answer.await;
            let (terminal, confirmation_id, result, reason) = {
                let mut n = note.lock().unwrap_or_else(|p| p.into_inner());
                (
                    n.terminal.take().unwrap_or_else(|| "-".into()),
                    n.confirmation_id.take().unwrap_or_else(|| "-".into()),
                    n.result.unwrap_or("-"),
                    n.reason.unwrap_or("-"),
                )
            };
            // A refusal is a trailers-only answer: its status is in the headers. A success's
            // status comes in the trailers, after the body; here it is OK.
            let code = match &answer {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or("OK", code_name),
                Err(_) => "TRANSPORT_ERROR",
            };
            let rpc = rpc_name(&path, code);
            let elapsed = start.elapsed();
            metrics::counter!("onshi_rpc_requests_total", "rpc" => rpc, "code" => code)
                .increment(1);
            metrics::histogram!("onshi_rpc_duration_seconds", "rpc" => rpc)
                .record(elapsed.as_secs_f64());
            // One line per RPC, the audited outcome included (no second line per call).
            tracing::info!(
                rpc,
                terminal,
                code,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                confirmation_id,
                result,
                reason,
                "rpc"
            );
            answer
        })
    }
}

/// The routes the server has, from the compiled descriptors of the services it serves (so a
/// new RPC gets its own label without a list to keep in step), plus server reflection.
fn known_routes() -> &'static [String] {
    static ROUTES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| {
        use prost::Message;
        let mut routes = vec![
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo".to_owned(),
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo".to_owned(),
        ];
        for encoded in [
            onshi_proto::v1::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        routes.push(format!(
                            "{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        routes
    })
}

/// The RPC's label: `Service/Method` for a route the server has, `unknown` for any other
/// path (so that a client cannot make up labels).
fn rpc_name(path: &str, code: &str) -> &'static str {
    let name = path.strip_prefix('/').unwrap_or(path);
    match known_routes().iter().find(|k| k.as_str() == name) {
        Some(k) if code != "UNIMPLEMENTED" => k.as_str(),
        Some(_) | None if name.starts_with("onshi.v1.Confirmation/") => {
            "onshi.v1.Confirmation/other"
        }
        _ => "unknown",
    }
}

fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC of the Confirmation service has a label of its own (the registration by the
    /// reader and the institutions list were once counted as `other`).
    #[test]
    fn every_confirmation_rpc_has_its_own_label() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(onshi_proto::v1::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == "Confirmation")
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect();
        assert!(methods.iter().any(|m| m == "RegisterByReader"));
        assert!(methods.iter().any(|m| m == "ListInstitutions"));
        for method in methods {
            let route = format!("onshi.v1.Confirmation/{method}");
            assert_eq!(rpc_name(&format!("/{route}"), "OK"), route);
        }
    }

    #[test]
    fn only_known_routes_become_labels() {
        assert_eq!(
            rpc_name("/onshi.v1.Confirmation/ConfirmByNumbers", "OK"),
            "onshi.v1.Confirmation/ConfirmByNumbers"
        );
        assert_eq!(
            rpc_name("/onshi.v1.Confirmation/山田太郎19800229", "UNIMPLEMENTED"),
            "onshi.v1.Confirmation/other"
        );
        assert_eq!(rpc_name("/x/01130012", "UNIMPLEMENTED"), "unknown");
        assert_eq!(
            rpc_name("/grpc.health.v1.Health/Check", "OK"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(99), "OTHER");
    }
}
