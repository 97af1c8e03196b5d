//! `keys` and `keygen`.

use super::flags::{Flag, Kind};
use super::output::columnize;
use super::{RPC_HELP, connect, parse_flags};
use crate::rpc::messages::KeyReply;

const fn flag(name: &'static str, kind: Kind) -> Flag {
    Flag { name, kind }
}

fn print_failures(reply: &KeyReply) {
    if reply.messages.is_empty() {
        return;
    }
    let lines: Vec<String> = reply
        .messages
        .iter()
        .map(|(node, msg)| format!("failed: | {node} | {msg}"))
        .collect();
    eprintln!("{}", columnize(&lines));
}

/// `serf keys`
pub async fn keys(args: &[String]) -> i32 {
    let help = format!(
        "Usage: serf keys [options]...

  Manages the encryption keyring of every member of the cluster. Changes are
  sent to all members and applied by each; every operation is idempotent.

  To rotate keys without downtime, several keys can be installed at once: only
  the primary key encrypts, every installed key decrypts. Install the new key,
  make it the primary with -use, then remove the old one.

  Exits 0 if every node answered without error, 1 otherwise.

Options:

  -install=<key>            Install a key (for decryption) on every member.
  -use=<key>                Make an installed key the primary (encrypting) key.
  -remove=<key>             Remove a key; the primary key cannot be removed.
  -list                     List the keys installed in the cluster, with how many
                            members hold each.
{RPC_HELP}"
    );
    let own = [
        flag("install", Kind::Value),
        flag("use", Kind::Value),
        flag("remove", Kind::Value),
        flag("list", Kind::Bool),
    ];
    let p = match parse_flags(args, &own, &help) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let list = p.bool("list", false);
    let ops: Vec<(&str, &str)> = [
        ("install-key", p.value("install").unwrap_or("")),
        ("use-key", p.value("use").unwrap_or("")),
        ("remove-key", p.value("remove").unwrap_or("")),
    ]
    .into_iter()
    .filter(|(_, k)| !k.is_empty())
    .collect();
    if ops.len() + usize::from(list) > 1 {
        eprintln!("Only one of -install, -use, -remove, or -list allowed");
        return 1;
    }
    if ops.is_empty() && !list {
        eprintln!("{help}");
        return 1;
    }
    let mut client = match connect(&p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if list {
        println!("==> Asking all members for installed keys...");
        let (reply, err) = match client.list_keys().await {
            Ok(r) => r,
            Err(e) => {
                eprintln!();
                eprintln!("Failed to gather member keys: {e}");
                return 1;
            }
        };
        if !err.is_empty() {
            print_failures(&reply);
            eprintln!();
            eprintln!("Failed to gather member keys: {err}");
            return 1;
        }
        println!("==> Keys gathered, listing cluster keys...");
        println!();
        let lines: Vec<String> = reply
            .keys
            .unwrap_or_default()
            .iter()
            .map(|(k, n)| format!("{k} | [{n}/{}]", reply.num_nodes))
            .collect();
        println!("{}", columnize(&lines));
        return 0;
    }
    let (cmd, key) = ops[0];
    let (doing, done, failed) = match cmd {
        "install-key" => (
            "Installing key on all members...",
            "Successfully installed key!",
            "Error installing key",
        ),
        "use-key" => (
            "Changing primary key on all members...",
            "Successfully changed primary key!",
            "Error changing primary key",
        ),
        _ => (
            "Removing key on all members...",
            "Successfully removed key!",
            "Error removing key",
        ),
    };
    println!("==> {doing}");
    match client.key_op(cmd, key).await {
        Ok((_, err)) if err.is_empty() => {
            println!("==> {done}");
            0
        }
        Ok((reply, err)) => {
            print_failures(&reply);
            eprintln!();
            eprintln!("{failed}: {err}");
            1
        }
        Err(e) => {
            eprintln!();
            eprintln!("{failed}: {e}");
            1
        }
    }
}

/// `serf keygen`: 32 random bytes, base64 (a key for `-encrypt` or `keys -install`).
pub fn keygen(args: &[String]) -> i32 {
    if args
        .iter()
        .any(|a| a == "-h" || a == "-help" || a == "--help")
    {
        println!(
            "Usage: serf keygen\n\n  Generates a new encryption key for the agent's -encrypt flag or\n  `serf keys -install`, already in the format they expect."
        );
        return 0;
    }
    let mut key = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut key) {
        eprintln!("Error reading random data: {e}");
        return 1;
    }
    use base64::Engine as _;
    println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
    0
}
