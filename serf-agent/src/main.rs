//! The `serf` command: `serf agent` runs a node; every other subcommand is an RPC client.

fn main() {
    eprintln!("serf: the agent is being built (issue 9)");
    std::process::exit(1);
}
