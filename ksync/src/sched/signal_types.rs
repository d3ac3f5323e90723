//! The UNIX signals and sets of them, with Linux's numbers: the vocabulary
//! that the task (its pending set) and the signal machinery share
//! (`include/linux/signal_types.h`).

use core::fmt;

macro_rules! signals {
    ($($name:ident = $num:literal, $desc:literal;)*) => {
        /// The UNIX signals, SIGHUP (1) to SIGSYS (31), with Linux's numbers.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Signal {
            $(#[doc = $desc] $name = $num,)*
        }

        impl Signal {
            /// Every signal, in numeric order.
            pub const ALL: &'static [Signal] = &[$(Signal::$name),*];

            /// The signal with this number, if there is one.
            pub const fn from_number(n: u32) -> Option<Signal> {
                match n {
                    $($num => Some(Signal::$name),)*
                    _ => None,
                }
            }

            /// The signal's name, e.g. `"SIGINT"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Signal::$name => stringify!($name),)*
                }
            }

            /// What the signal means, as `signal(7)` describes it.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Signal::$name => $desc,)*
                }
            }
        }
    };
}

signals! {
    SIGHUP = 1, "Hangup detected on controlling terminal or death of controlling process.";
    SIGINT = 2, "Interrupt from keyboard.";
    SIGQUIT = 3, "Quit from keyboard.";
    SIGILL = 4, "Illegal instruction.";
    SIGTRAP = 5, "Trace/breakpoint trap.";
    SIGABRT = 6, "Abort signal from abort(3).";
    SIGBUS = 7, "Bus error (bad memory access).";
    SIGFPE = 8, "Floating-point exception.";
    SIGKILL = 9, "Kill signal (fatal; cannot be caught or ignored).";
    SIGUSR1 = 10, "User-defined signal 1.";
    SIGSEGV = 11, "Invalid memory reference.";
    SIGUSR2 = 12, "User-defined signal 2.";
    SIGPIPE = 13, "Broken pipe: write to pipe with no readers.";
    SIGALRM = 14, "Timer signal from alarm(2).";
    SIGTERM = 15, "Termination signal.";
    SIGSTKFLT = 16, "Stack fault on coprocessor (unused).";
    SIGCHLD = 17, "Child stopped or terminated.";
    SIGCONT = 18, "Continue if stopped.";
    SIGSTOP = 19, "Stop process.";
    SIGTSTP = 20, "Stop typed at terminal.";
    SIGTTIN = 21, "Terminal input for background process.";
    SIGTTOU = 22, "Terminal output for background process.";
    SIGURG = 23, "Urgent condition on socket.";
    SIGXCPU = 24, "CPU time limit exceeded.";
    SIGXFSZ = 25, "File size limit exceeded.";
    SIGVTALRM = 26, "Virtual alarm clock.";
    SIGPROF = 27, "Profiling timer expired.";
    SIGWINCH = 28, "Window resize signal.";
    SIGIO = 29, "I/O now possible.";
    SIGPWR = 30, "Power failure.";
    SIGSYS = 31, "Bad system call.";
}

impl Signal {
    /// The signal's number.
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// Whether the signal is fatal to a killable sleep (SIGKILL).
    pub const fn is_fatal(self) -> bool {
        matches!(self, Signal::SIGKILL)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of signals (`sigset_t`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SignalSet(u64);

impl SignalSet {
    /// The empty set.
    pub const EMPTY: SignalSet = SignalSet(0);

    /// The set whose bit `n` stands for signal number `n`.
    pub const fn from_bits(bits: u64) -> SignalSet {
        SignalSet(bits & !1)
    }
    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether `sig` is in the set.
    pub const fn contains(self, sig: Signal) -> bool {
        self.0 & (1 << sig.number()) != 0
    }
    /// The set with `sig` added.
    pub const fn with(self, sig: Signal) -> SignalSet {
        SignalSet(self.0 | (1 << sig.number()))
    }
    /// The signals in the set, in numeric order.
    pub fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        assert_eq!(Signal::SIGHUP.number(), 1);
        assert_eq!(Signal::SIGKILL.number(), 9);
        assert_eq!(Signal::SIGPWR.number(), 30);
        assert_eq!(Signal::from_number(15), Some(Signal::SIGTERM));
        assert_eq!(Signal::from_number(0), None);
        assert_eq!(Signal::from_number(32), None);
        assert_eq!(Signal::SIGINT.name(), "SIGINT");
        assert_eq!(Signal::ALL.len(), 31);
        assert!(
            Signal::ALL
                .windows(2)
                .all(|w| w[0].number() + 1 == w[1].number())
        );
        assert_eq!(Signal::SIGKILL.number(), 9);
        assert_eq!(Signal::SIGPWR.number(), 30);
    }
}
