//! The `gateway` binary: parse the command line, load the config, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use gateway::cli::{self, Cli, Command, ConfigArg};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::observability::init(cli.log_format);
    match cli.command.unwrap_or(Command::Serve(ConfigArg::default())) {
        Command::Serve(arg) => serve(&arg),
        Command::Check(arg) => block_on(cli::check(&arg)),
        Command::Token(args) => block_on(cli::token(&args)),
        Command::Keygen(args) => cli::keygen(&args),
        Command::User(cli::UserCommand::Add(args)) => block_on(cli::user_add(&args)),
    }
}

fn block_on<F: std::future::Future<Output = ExitCode>>(fut: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(arg: &ConfigArg) -> ExitCode {
    let config = match cli::load_config(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = cli::ensure_dev_material(&config) {
        eprintln!("cannot write development keys: {e}");
        return ExitCode::from(2);
    }
    let workers = match config.runtime.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    // One worker: a current-thread runtime (no work-stealing overhead).
    let rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let gw = match gateway::gateway::Gateway::build(config).await {
            Ok(gw) => gw,
            Err(e) => {
                eprintln!("cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        let bound = match gw.bind().await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        tracing::info!(
            https = %bound.https_addr(),
            http = ?bound.http_addr(),
            admin = ?bound.admin_addr(),
            demo = ?bound.demo_addr(),
            workers,
            pid = std::process::id(),
            "gateway listening"
        );
        let (handed_over, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(signals(bound.live(), bound.listeners(), handed_over));
        gateway::restart::notify_ready();
        bound
            .run(async move {
                tokio::select! {
                    _ = shutdown_signal() => {}
                    _ = stop => {}
                }
            })
            .await;
        ExitCode::SUCCESS
    })
}

/// SIGHUP: reload. SIGUSR2: hand the listening sockets to a new process, then drain (a failed
/// hand-over changes nothing).
async fn signals(
    live: std::sync::Arc<gateway::gateway::Live>,
    listeners: gateway::restart::Listeners,
    handed_over: tokio::sync::oneshot::Sender<()>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut hup, mut usr2) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(h), Ok(u)) => (h, u),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot handle SIGHUP/SIGUSR2: no reload or hand-over");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = gateway::reload::reload(&live, "SIGHUP").await;
            }
            _ = usr2.recv() => {
                match gateway::restart::hand_over(&listeners, gateway::restart::HANDOVER_TIMEOUT).await {
                    Ok(pid) => {
                        tracing::info!(new_pid = pid, "the new gateway is ready; draining this one");
                        let _ = handed_over.send(());
                        return;
                    }
                    Err(e) => tracing::error!(error = %e, "hand-over failed; this gateway keeps serving"),
                }
            }
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
