//! Mints many distinct access tokens for one session, one per line, so a load run can send
//! each token once and measure the gateway with its verified-token cache missing every time
//! (`bench/run.sh`, the token-cache rows). The session itself is created by `gateway token`.
//!
//!   cargo run --release --example mint_tokens -- --config gw.toml --count 100000 \
//!       --sub bench --sid bench-1 --out tokens.txt

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use gateway::auth::mint::{MintClaims, Signer};

#[path = "common.rs"]
mod common;

#[derive(Debug, Parser)]
#[command(about = "Mint N distinct tokens for one session, one per line")]
struct Args {
    /// Gateway config whose [auth] signing key and [jwt] claims are used.
    #[arg(long)]
    config: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    #[arg(long, default_value = "bench")]
    sub: String,
    #[arg(long, default_value = "bench-1")]
    sid: String,
    #[arg(long = "role")]
    roles: Vec<String>,
    #[arg(long, default_value = "1h", value_parser = common::parse_duration)]
    ttl: std::time::Duration,
    /// Threads signing in parallel.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long)]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mint_tokens: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let config = gateway::config::load(&args.config).map_err(|e| e.to_string())?;
    let auth = config
        .auth
        .as_ref()
        .ok_or("the config has no [auth] table (auth.signing_key)")?;
    let signer = Signer::from_config(auth).map_err(|e| e.to_string())?;
    let claims = MintClaims {
        issuer: &config.jwt.issuer,
        audience: &config.jwt.audience,
        user_id_claim: &config.jwt.user_id_claim,
        user_id: &args.sub,
        session_claim: &config.jwt.session_claim,
        session_id: &args.sid,
        roles_claim: &config.jwt.roles_claim,
        roles: &args.roles,
        ttl: args.ttl,
    };
    let started = Instant::now();
    let threads = args.threads.clamp(1, 16);
    let chunks = split(args.count, threads);
    let results: Vec<Result<Vec<String>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|&n| {
                let (signer, claims) = (&signer, &claims);
                scope.spawn(move || {
                    (0..n)
                        .map(|_| signer.mint(claims).map_err(|e| e.to_string()))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a signing thread panicked".into()))
            })
            .collect()
    });
    let file =
        std::fs::File::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0usize;
    for tokens in results {
        for t in tokens? {
            writeln!(out, "{t}").map_err(|e| format!("{}: {e}", args.out.display()))?;
            written += 1;
        }
    }
    out.flush()
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "minted {written} {:?} tokens in {:.1}s",
        signer.algorithm(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `count` split into `parts` nearly equal shares.
fn split(count: usize, parts: usize) -> Vec<usize> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| count / parts + usize::from(i < count % parts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_count() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(1, 2), vec![1, 0]);
        assert_eq!(split(0, 0), vec![0]);
        assert_eq!(split(100_000, 2).iter().sum::<usize>(), 100_000);
    }
}
