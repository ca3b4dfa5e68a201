//! `confirm-service serve`: the runtime, the listener, the signals, then [`crate::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::init_tracing;
use crate::clock::SystemClock;
use crate::config::Config;

/// `serve`'s options beyond the configuration file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The service configuration (a world's service.toml; see docs/world.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override the configured listen address (HOST:PORT, e.g. localhost:0 or
    /// 127.0.0.1:50443); port 0 picks a free port, and the address bound is printed.
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default; docs/operations.md).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC health checking in plaintext on this loopback address, for orchestrators
    /// that cannot present a client certificate (off by default).
    #[arg(long, value_name = "ADDR", value_parser = socket_addr)]
    pub health_listen: Option<SocketAddr>,
    /// The log lines' format on stderr: text, or json (one object per line).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: super::LogFormat,
}

/// An address to listen on: an IP address and port, or a host name (`localhost`) and port,
/// taken as the first address the name resolves to.
fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs as _;
    let mut all = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not HOST:PORT: {e}"))?;
    all.next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

pub fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs {
        config: config_path,
        listen,
        metrics_listen,
        health_listen,
        log_format,
    } = args;
    init_tracing(log_format);
    let mut config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confirm-service: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = store_exists(&config.store) {
        eprintln!("confirm-service: {e}");
        return ExitCode::from(2);
    }
    config.metrics_listen = metrics_listen.or(config.metrics_listen);
    config.health_listen = health_listen.or(config.health_listen);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(usize::from(config.store_threads))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confirm-service: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let addr = listen.unwrap_or(config.listen);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("confirm-service: cannot listen on {addr}: {e}");
                return ExitCode::from(2);
            }
        };
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(t) => t,
                        Err(_) => {
                            let _ = ctrl_c.await;
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            tracing::info!("shutting down");
        };
        match crate::server::run(
            &config,
            listener,
            Arc::new(SystemClock),
            shutdown,
            move || {
                println!("confirm-service: listening on {local}");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            },
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("confirm-service: {e}");
                ExitCode::from(if e.is_configuration() { 2 } else { 1 })
            }
        }
    })
}

/// A SQLite store must already exist: an empty one made here would answer
/// `TERMINAL_UNKNOWN` to every terminal. (A PostgreSQL URL is checked when connecting.)
fn store_exists(store: &str) -> Result<(), String> {
    if crate::store::is_postgres_url(store) || std::path::Path::new(store).is_file() {
        Ok(())
    } else {
        Err(format!(
            "no store at {store}; build one with `testbed build` or copy one with \
             `confirm-service store copy`"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_path_that_does_not_exist_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("store.sqlite");
        let err = super::store_exists(missing.to_str().unwrap()).unwrap_err();
        assert!(err.starts_with("no store at "), "{err}");
        assert!(err.contains("testbed build") && err.contains("confirm-service store copy"));
        std::fs::write(&missing, b"").unwrap();
        assert!(super::store_exists(missing.to_str().unwrap()).is_ok());
        assert!(super::store_exists("postgres://localhost/onshi").is_ok());
    }
}
