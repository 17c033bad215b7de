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
            "gateway listening"
        );
        bound.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
