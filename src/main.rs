//! The `gateway` binary: parse the command line, load the config, run.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use gateway::cli::{self, Cli, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};

fn main() -> ExitCode {
    // Before any other thread exists: it takes LISTEN_FDS and friends out of the environment.
    let inherited = gateway::app::restart::Inherited::from_env();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on a usage error; ours is 1 (2 means a runtime failure). Help and
            // --version are not errors.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    // Held to the end of main: dropping it writes the log lines still queued.
    let _logs = gateway::observe::logs::init(cli.log_format);
    match cli
        .command
        .unwrap_or(Command::Serve(cli::ServeArgs::default()))
    {
        Command::Serve(arg) => serve(&arg, inherited),
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

fn serve(arg: &cli::ServeArgs, inherited: gateway::app::restart::Inherited) -> ExitCode {
    let mut config = match cli::load_config(&arg.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if arg.no_demo {
        config.demo = None;
    }
    if let Err(e) = cli::ensure_dev_material(&mut config) {
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
        // Handlers first: SIGHUP and SIGUSR2 would otherwise end the process by default, and
        // a supervisor may send them as soon as READY=1 is out.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot handle signals: {e}");
                return ExitCode::from(2);
            }
        };
        let places = config.places.clone();
        let gw = match gateway::app::App::build(config).await {
            Ok(gw) => gw,
            Err(e) => {
                eprintln!("cannot start: {}", e.in_config(&places));
                return ExitCode::from(2);
            }
        };
        let bound = match gw.bind_inherited(inherited).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        // An address, or "-" for a listener that is not configured.
        let shown =
            |a: Option<std::net::SocketAddr>| a.map_or_else(|| "-".to_owned(), |a| a.to_string());
        tracing::info!(
            https = %bound.https_addr(),
            http = %shown(bound.http_addr()),
            admin = %shown(bound.admin_addr()),
            demo = %shown(bound.demo_addr()),
            workers,
            pid = std::process::id(),
            "gateway listening"
        );
        let (stop_tx, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(signals.run(bound.live(), bound.listeners(), stop_tx));
        gateway::app::restart::notify_ready();
        bound
            .run(async move {
                let _ = stop.await;
            })
            .await;
        ExitCode::SUCCESS
    })
}

struct Signals {
    term: Signal,
    hup: Signal,
    usr2: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    /// SIGTERM or Ctrl-C: stop. SIGHUP: reload. SIGUSR2: hand the listening sockets to a new
    /// process, then stop (a failed hand-over changes nothing; SIGTERM meanwhile cancels it
    /// and kills the new process). Nothing is handled once stopping has begun.
    async fn run(
        mut self,
        live: std::sync::Arc<gateway::app::Live>,
        listeners: gateway::app::restart::Listeners,
        stop: tokio::sync::oneshot::Sender<()>,
    ) {
        use gateway::app::restart::{hand_over, HANDOVER_TIMEOUT};
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = self.hup.recv() => {
                    let _ = gateway::app::reload::reload(&live, "SIGHUP").await;
                }
                _ = self.usr2.recv() => {
                    tokio::select! {
                        r = hand_over(&listeners, HANDOVER_TIMEOUT) => match r {
                            Ok(pid) => {
                                tracing::info!(new_pid = pid, "the new gateway is ready; draining this one");
                                break;
                            }
                            Err(e) => tracing::error!(error = %e, "hand-over failed; this gateway keeps serving"),
                        },
                        _ = self.term.recv() => {
                            tracing::warn!("SIGTERM during a hand-over: the new process is stopped");
                            break;
                        }
                    }
                }
            }
        }
        let _ = stop.send(());
    }
}
