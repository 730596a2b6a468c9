//! The `partnerplan-relay` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{Relay, RelayConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "partnerplan-relay",
    version,
    about = "The partnerplan relay: partner schools sync their shared documents through it.",
    long_about = "The partnerplan relay, hosted by a lead school. Each school's client keeps its own copy of every shared document and syncs through this relay whenever it is online. The relay speaks the automerge-repo WebSocket protocol at the root path, so automerge-repo JavaScript clients can use it too, and keeps every document in a SQLite file in its data directory."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the relay until stopped with Ctrl-C or SIGTERM.
    Serve {
        /// The address and port to listen on. Use 0.0.0.0:7171 to accept
        /// schools from other machines.
        #[arg(long, default_value = "127.0.0.1:7171")]
        listen: SocketAddr,
        /// The directory that holds the relay's database (relay.sqlite).
        /// It is created if missing.
        #[arg(long, default_value = "./relay-data")]
        data: PathBuf,
        /// The largest message accepted from a client, in bytes. Larger
        /// ones are refused with an error that says so.
        #[arg(long, default_value_t = partnerplan_shared::message::DEFAULT_MAX_FRAME_BYTES)]
        max_frame_bytes: usize,
        /// Seconds between keepalive pings; a connection silent for three
        /// times this long is dropped.
        #[arg(long, default_value_t = 20)]
        keepalive_secs: u64,
    },
}

/// The whole program; `main.rs` only calls this, so the end-to-end tests
/// can build the same binary.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARTNERPLAN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("partnerplan-relay: could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                listen,
                data,
                max_frame_bytes,
                keepalive_secs,
            } => {
                let mut config = RelayConfig::new(listen, data.clone());
                config.max_frame_bytes = max_frame_bytes;
                config.keepalive = std::time::Duration::from_secs(keepalive_secs.max(1));
                let relay = match Relay::start(config).await {
                    Ok(relay) => relay,
                    Err(error) => {
                        eprintln!("partnerplan-relay: {error}");
                        return ExitCode::FAILURE;
                    }
                };
                println!(
                    "partnerplan relay listening on {} with its data in {}",
                    relay.url(),
                    data.display()
                );
                wait_for_stop_signal().await;
                println!("stopping: closing connections and finishing writes");
                relay.shutdown().await;
                ExitCode::SUCCESS
            }
        }
    })
}

async fn wait_for_stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
