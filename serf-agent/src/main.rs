//! The `serf` command: `serf agent` runs a node; every other subcommand is an RPC client
//! of a running agent. A drop-in for HashiCorp's `serf`: the same commands, flags
//! (`-node=foo` and `--node foo` alike), output and exit codes.

use serf_agent::agent::Agent;
use serf_agent::command::{main_help, run_client};
use serf_agent::config::{ConfigError, agent_help, parse_agent_args, serf_config};
use serf_agent::log::Logger;
use std::process::ExitCode;

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn runtime() -> tokio::runtime::Runtime {
    // One thread: the agent's work is small and bursty, and every resident page counts
    // (the goal is a fifth of Go's memory).
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("serf: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    }
}

fn agent_main(args: Vec<String>) -> i32 {
    let cfg = match parse_agent_args(&args) {
        Ok(c) => c,
        Err(ConfigError::HelpRequested) => {
            println!("{}", agent_help());
            return 0;
        }
        Err(e) => {
            eprintln!("==> {e}");
            return 1;
        }
    };
    let core = match serf_config(&cfg) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("==> {e}");
            return 1;
        }
    };
    for w in &cfg.warnings {
        println!("==> {w}");
    }
    runtime().block_on(async move {
        let logger = Logger::new(cfg.log_level, true);
        #[cfg(unix)]
        if cfg.enable_syslog
            && let Err(e) =
                logger.enable_syslog(std::path::Path::new("/dev/log"), &cfg.syslog_facility)
        {
            eprintln!("==> Syslog setup failed: {e}");
            return 1;
        }
        println!("==> Starting Serf agent...");
        let agent = match Agent::start(cfg, core, logger).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("==> {e}");
                return 1;
            }
        };
        agent.print_banner();
        // SIGHUP re-reads the same flags and files.
        let reload = Box::new(move || parse_agent_args(&args).map_err(|e| e.to_string()));
        agent.run(true, Some(reload)).await
    })
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("{}", main_help());
        return exit(1);
    };
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "-h" | "-help" | "--help" | "help" => {
            println!("{}", main_help());
            exit(0)
        }
        "-v" | "-version" | "--version" => {
            exit(runtime().block_on(run_client("version", &[])).unwrap_or(1))
        }
        "agent" => exit(agent_main(rest)),
        name => match runtime().block_on(run_client(name, &rest)) {
            Some(code) => exit(code),
            None => {
                eprintln!("serf: unknown command {name:?}\n");
                eprintln!("{}", main_help());
                exit(1)
            }
        },
    }
}
