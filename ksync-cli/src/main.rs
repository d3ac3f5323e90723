//! `ksync`: lock and RCU torture, side-by-side benchmarks, litmus tests and
//! lockdep demos for the ksync library.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod litmus;
mod lockdep_demo;
mod torture;

/// The ksync command: torture tests, benchmarks and memory-model litmus tests for
/// the kernel's synchronization primitives in user space.
#[derive(Parser)]
#[command(name = "ksync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Hammer each primitive with writers and readers for a set time and check
    /// mutual exclusion (the kernel's locktorture and rcutorture). The default.
    Torture(torture::Args),
    /// Benchmark each primitive against the user-space peers, side by side.
    Bench(bench::Args),
    /// Run memory-model litmus tests, in the kernel's C litmus format, on this CPU
    /// with ksync's primitives (the built-in tests, or the files and directories given).
    Litmus(litmus::Args),
    /// Show, by running short programs, each report lockdep gives (`--stat`:
    /// lock statistics instead).
    LockdepDemo(lockdep_demo::Args),
    /// Run the torture (same options) with lock statistics on, then print them
    /// as /proc/lock_stat does (needs the `lockdep` feature).
    Lockstat(torture::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ok = match cli
        .command
        .unwrap_or(Command::Torture(torture::Args::default()))
    {
        Command::Torture(a) => torture::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Litmus(a) => litmus::main(a),
        Command::LockdepDemo(a) => lockdep_demo::main(a),
        Command::Lockstat(a) => lockdep_demo::lockstat(a),
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
