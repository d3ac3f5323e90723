//! `ksync lockdep-demo`: short programs that each trigger one lockdep report.

/// Options of `ksync lockdep-demo`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Run only the demo of this name.
    #[arg(long)]
    pub demo: Option<String>,
}

/// Runs the demos; returns whether every demo produced its report.
pub fn main(args: Args) -> bool {
    let _ = args;
    eprintln!("ksync lockdep-demo: no demos are registered in this build");
    false
}
