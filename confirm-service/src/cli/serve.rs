//! `confirm-service serve`: the runtime, the listener, the signals, then [`crate::server::run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::init_tracing;
use crate::clock::SystemClock;
use crate::config::Config;

pub fn serve(config_path: PathBuf, listen: Option<SocketAddr>) -> ExitCode {
    init_tracing();
    let config = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confirm-service: {e}");
            return ExitCode::from(2);
        }
    };
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
