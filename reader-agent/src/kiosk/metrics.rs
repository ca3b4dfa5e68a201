//! The kiosk's Prometheus metrics (`reader-agent kiosk --metrics-listen`, docs/operations.md):
//! sessions begun and outcomes by method. Labels are fixed words (the method, the outcome's
//! kind, the project's result code), never anything read from a card or typed by a patient.
//! Without `--metrics-listen` no recorder is installed and every call here costs nothing.

use std::net::SocketAddr;

use crate::report::Outcome;

/// Serves `/metrics` on `addr` (plain HTTP; bind it to loopback or a management network) and
/// returns the address bound: with port 0 the system picks a free port and the caller prints
/// which, so nobody has to guess a free port first. Once per process; needs a runtime.
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, String> {
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
                // The exporter's own listener would run the upkeep; here it runs before each
                // scrape.
                handle.run_upkeep();
                handle.render()
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(local)
}

/// A card was placed: a session begins.
pub fn session_started() {
    metrics::counter!("onshi_kiosk_sessions_total").increment(1);
}

/// A session ended with `outcome`, confirmed by `method`.
pub fn outcome(method: &'static str, outcome: &Outcome) {
    let (kind, code) = labels(outcome);
    metrics::counter!(
        "onshi_kiosk_outcomes_total",
        "method" => method,
        "outcome" => kind,
        "result_code" => code
    )
    .increment(1);
}

/// The outcome's kind and the project's result code (empty when there is none). Only these
/// fixed words become labels.
fn labels(outcome: &Outcome) -> (&'static str, String) {
    match outcome {
        Outcome::Confirmed { result_code, .. } => ("confirmed", result_code.clone()),
        Outcome::Registered { result_code, .. } => ("registered", result_code.clone()),
        Outcome::Refused { result_code, .. } => ("refused", result_code.clone()),
        Outcome::WrongPin { .. } => ("wrong-pin", String::new()),
        Outcome::Error { .. } => ("error", String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_kind_and_code_never_the_message() {
        let refused = Outcome::Refused {
            result_code: "RESULT_CODE_CARD_REVOKED".into(),
            message: "山田 太郎 19800229".into(),
            tries_left: None,
        };
        let (kind, code) = labels(&refused);
        assert_eq!(
            (kind, code.as_str()),
            ("refused", "RESULT_CODE_CARD_REVOKED")
        );
        let (kind, code) = labels(&Outcome::Error {
            message: "山田 太郎".into(),
        });
        assert_eq!((kind, code.as_str()), ("error", ""));
    }
}
