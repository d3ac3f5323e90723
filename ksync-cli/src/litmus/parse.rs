//! The parser of the kernel's C litmus format (the subset its tests use).
//!
//! A file reads
//!
//! ```text
//! C MP+pooncerelease+poacquireonce           the header: `C` and the name
//! "a description"                            optional, as herd allows
//! Cycle=Rfe PodRR Fre PodWW                  optional: diy's `Key=value` lines
//! (* Result: Never  … *)                     an optional comment, with the verdict
//! { x=1; y=&z; 0:r1=x; }                     the initial state (all else is 0)
//! P0(int *x, int *y) { … }                   the processes, in C
//! P1(int *x, int *y) { int r0; … }
//! locations [x; 1:r0]                        optional: more locations to show
//! filter (0:r0=1)                            optional: outcomes to keep
//! exists (1:r0=1 /\ 1:r1=0)                  the condition (or ~exists, forall)
//! ```
//!
//! The `Result:` line is `Never`, `Sometimes` or `Always` (with herd's
//! `DATARACE` flag after it, kept in [`Litmus::flag`]), `DEADLOCK` (no
//! execution completes; such a file may have no condition), or `Flag NAME`
//! (herd flags a misuse instead of judging).
//!
//! `(* … *)` is a comment outside the processes (inside them `(*x` is C);
//! `/* … */` and `//` are comments everywhere. Anything outside the subset
//! (loops, unknown functions, arrays, SRCU …) is an error that names the
//! construct and its line: a test is never run half-understood.

use super::ast::*;
use std::collections::HashMap;
use std::fmt;

/// A parse error: the line and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

type Result<T> = std::result::Result<T, Error>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Int(i64),
    /// Punctuation, one to three characters.
    P(&'static str),
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Int(n) => write!(f, "`{n}`"),
            Tok::P(p) => write!(f, "`{p}`"),
            Tok::Eof => f.write_str("the end of the file"),
        }
    }
}

/// Longest first, so that `<<` wins over `<`.
const PUNCT: &[&str] = &[
    "<<", ">>", "==", "!=", "<=", ">=", "&&", "||", "/\\", "\\/", "->", "++", "--", "+=", "-=",
    "{", "}", "(", ")", "[", "]", ";", ",", ":", "=", "*", "&", "|", "^", "!", "~", "+", "-", "/",
    "%", "<", ">", ".", "?",
];

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    /// Whether `(* … *)` is a comment here (outside the process bodies).
    ml_comments: bool,
}

impl Lexer<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(Error {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn skip_space(&mut self) -> Result<()> {
        loop {
            let rest = &self.src[self.pos..];
            match rest {
                [b'\n', ..] => {
                    self.line += 1;
                    self.pos += 1;
                }
                [c, ..] if c.is_ascii_whitespace() => self.pos += 1,
                [b'/', b'/', ..] => {
                    while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                [b'/', b'*', ..] => self.skip_comment(b"/*", b"*/", false)?,
                [b'(', b'*', ..] if self.ml_comments => self.skip_comment(b"(*", b"*)", true)?,
                _ => return Ok(()),
            }
        }
    }

    /// Skips a comment from `open` to `close` (nested if `nests`, as OCaml's).
    fn skip_comment(&mut self, open: &[u8], close: &[u8], nests: bool) -> Result<()> {
        let start = self.line;
        let mut depth = 0;
        while self.pos < self.src.len() {
            let rest = &self.src[self.pos..];
            if rest.starts_with(open) && (nests || depth == 0) {
                depth += 1;
                self.pos += 2;
            } else if rest.starts_with(close) {
                depth -= 1;
                self.pos += 2;
                if depth == 0 {
                    return Ok(());
                }
            } else {
                if rest[0] == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
        }
        Err(Error {
            line: start,
            msg: format!("unterminated comment `{}`", String::from_utf8_lossy(open)),
        })
    }

    fn next(&mut self) -> Result<(Tok, usize)> {
        self.skip_space()?;
        let line = self.line;
        let rest = &self.src[self.pos..];
        let Some(&c) = rest.first() else {
            return Ok((Tok::Eof, line));
        };
        if c.is_ascii_alphabetic() || c == b'_' {
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            self.pos += n;
            let s = String::from_utf8_lossy(&rest[..n]).into_owned();
            return Ok((Tok::Ident(s), line));
        }
        if c.is_ascii_digit() {
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            let text = String::from_utf8_lossy(&rest[..n]).into_owned();
            self.pos += n;
            let v = if let Some(hex) = text.strip_prefix("0x") {
                i64::from_str_radix(hex, 16)
            } else {
                text.trim_end_matches(['U', 'L', 'u', 'l']).parse()
            };
            return match v {
                Ok(v) => Ok((Tok::Int(v), line)),
                Err(_) => self.err(format!("bad number `{text}`")),
            };
        }
        for p in PUNCT {
            if rest.starts_with(p.as_bytes()) {
                self.pos += p.len();
                return Ok((Tok::P(p), line));
            }
        }
        self.err(format!("unexpected character `{}`", c as char))
    }
}

/// Where the `(* … *)` comment `text` begins with ends (the offset of its
/// closing `*)`), nested comments counted as OCaml (and herd) count them.
fn comment_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0);
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'(', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

/// The LKMM's macros and functions the subset knows, for "did you mean a
/// construct outside the subset" messages.
fn unsupported_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "while" | "for" | "do" | "goto" | "switch" | "return" | "break" | "continue" => {
            "loops and jumps are outside the supported subset"
        }
        n if n.starts_with("srcu_")
            && !matches!(
                n,
                "srcu_read_lock" | "srcu_read_unlock" | "srcu_down_read" | "srcu_up_read"
            ) =>
        {
            "of SRCU only srcu_read_lock(), srcu_read_unlock(), srcu_down_read(), srcu_up_read() and synchronize_srcu() are supported"
        }
        "spin_unlock_wait" => {
            "spin_unlock_wait() left the kernel (and its memory model) in 4.13; it has no meaning to check"
        }
        n if n.starts_with("smp_cond_load") => "smp_cond_load_*() is outside the supported subset",
        n if n.starts_with("spin_lock_irq") || n.starts_with("spin_unlock_irq") => {
            "irq-disabling lock variants are outside the supported subset"
        }
        n if n.starts_with("read_lock") || n.starts_with("write_lock") => {
            "reader-writer locks are outside the supported subset"
        }
        _ => return None,
    })
}

/// What a name in a process body means.
#[derive(Clone, Copy)]
enum Name {
    /// A parameter naming a shared cell: its value is the cell's address.
    Cell(usize),
    Lock(usize),
    Srcu(usize),
    Reg(usize),
}

struct Parser<'a> {
    lx: Lexer<'a>,
    /// Shared variables by name.
    vars: Vec<Var>,
    by_name: HashMap<String, usize>,
    /// Register initial values from the init block: (process, name, value).
    reg_inits: Vec<(usize, String, i64, usize)>,
    /// The lines of the `{` of the blocks being parsed, innermost last.
    opens: Vec<usize>,
}

type Init = (usize, String, InitVal);

#[derive(Clone, Debug)]
enum InitVal {
    Int(i64),
    /// The address of a variable (`&y` or `y`).
    Addr(String),
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Tok> {
        let save = (self.lx.pos, self.lx.line);
        let t = self.lx.next().map(|(t, _)| t);
        (self.lx.pos, self.lx.line) = save;
        t
    }

    fn peek2(&mut self) -> Result<(Tok, Tok)> {
        let save = (self.lx.pos, self.lx.line);
        let a = self.lx.next();
        let b = self.lx.next();
        (self.lx.pos, self.lx.line) = save;
        Ok((a?.0, b?.0))
    }

    fn next(&mut self) -> Result<Tok> {
        self.lx.next().map(|(t, _)| t)
    }

    /// The line of the next token.
    fn line(&mut self) -> usize {
        let save = (self.lx.pos, self.lx.line);
        let line = self.lx.next().map(|(_, l)| l).unwrap_or(save.1);
        (self.lx.pos, self.lx.line) = save;
        line
    }

    fn err<T>(&mut self, msg: impl Into<String>) -> Result<T> {
        Err(Error {
            line: self.line(),
            msg: msg.into(),
        })
    }

    fn eat(&mut self, p: &str) -> Result<bool> {
        if self.peek()? == Tok::P(punct(p)) {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect(&mut self, p: &str, what: &str) -> Result<()> {
        let t = self.peek()?;
        if t == Tok::P(punct(p)) {
            self.next()?;
            Ok(())
        } else {
            self.err(format!("expected `{p}` {what}, found {t}"))
        }
    }

    fn ident(&mut self, what: &str) -> Result<String> {
        match self.peek()? {
            Tok::Ident(s) => {
                self.next()?;
                Ok(s)
            }
            t => self.err(format!("expected {what}, found {t}")),
        }
    }

    fn int(&mut self) -> Result<i64> {
        let neg = self.eat("-")?;
        match self.peek()? {
            Tok::Int(n) => {
                self.next()?;
                Ok(if neg { -n } else { n })
            }
            t => self.err(format!("expected a number, found {t}")),
        }
    }

    // ---- header ----------------------------------------------------------------

    /// Moves the lexer `n` bytes on, counting lines.
    fn advance(&mut self, n: usize) {
        let end = (self.lx.pos + n).min(self.lx.src.len());
        self.lx.line += self.lx.src[self.lx.pos..end]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        self.lx.pos = end;
    }

    /// `C name`, then the optional description, diy's `Key=value` lines and
    /// comments; returns the name, the verdict and herd's flag.
    fn header(&mut self) -> Result<(String, Option<Verdict>, Option<String>)> {
        let text = std::str::from_utf8(self.lx.src).map_err(|_| Error {
            line: 1,
            msg: "the file is not UTF-8".into(),
        })?;
        self.lx.skip_space()?;
        let rest = &text[self.lx.pos..];
        let first = rest.lines().next().unwrap_or("");
        let mut words = first.split_whitespace();
        if words.next() != Some("C") {
            return self.err("expected the header `C name` (only C litmus tests are supported)");
        }
        let Some(name) = words.next() else {
            return self.err("the header `C` has no test name");
        };
        let name = name.to_string();
        self.advance(first.len());
        // Until the initial state: a `"description"`, diy's `Key=value` lines,
        // comments. The verdict is the first `Result:` line of a comment.
        let mut verdict: Option<(Option<Verdict>, Option<String>)> = None;
        loop {
            let rest = &text[self.lx.pos..];
            let trimmed = rest.trim_start();
            self.advance(rest.len() - trimmed.len());
            if trimmed.starts_with("(*") {
                let Some(end) = comment_end(trimmed) else {
                    return self.err("unterminated comment `(*`");
                };
                let comment = &trimmed[..end];
                if verdict.is_none()
                    && let Some(after) = comment.split("Result:").nth(1)
                {
                    let line = self.lx.line
                        + comment
                            .split("Result:")
                            .next()
                            .map_or(0, |b| b.matches('\n').count());
                    verdict = Some(Self::verdict(after).map_err(|msg| Error { line, msg })?);
                }
                self.advance(end + 2);
            } else if let Some(body) = trimmed.strip_prefix('"') {
                let Some(end) = body.find('"') else {
                    return self.err("unterminated description `\"`");
                };
                self.advance(end + 2);
            } else if Self::is_info_line(trimmed) {
                let n = trimmed.find('\n').unwrap_or(trimmed.len());
                self.advance(n);
            } else {
                break;
            }
        }
        let (expected, flag) = verdict.unwrap_or((None, None));
        Ok((name, expected, flag))
    }

    /// The verdict and herd's flag of the text after `Result:`.
    fn verdict(after: &str) -> std::result::Result<(Option<Verdict>, Option<String>), String> {
        let mut words = after.split_whitespace();
        let word = |w: Option<&str>| w.map(|w| w.trim_end_matches(['.', ',', ';']).to_string());
        let first = word(words.next());
        let second = word(words.next());
        let datarace = (second.as_deref() == Some("DATARACE")).then(|| "data-race".to_string());
        Ok(match first.as_deref() {
            Some("Never") => (Some(Verdict::Never), datarace),
            Some("Sometimes") => (Some(Verdict::Sometimes), datarace),
            Some("Always") => (Some(Verdict::Always), datarace),
            Some("DEADLOCK") => (Some(Verdict::Deadlock), None),
            Some("Flag") => match second {
                Some(name) => (Some(Verdict::Flag), Some(name)),
                None => return Err("`Result: Flag` names no flag".into()),
            },
            Some(other) => {
                return Err(format!(
                    "unknown verdict `{other}` on the Result: line (Never, Sometimes, Always, DEADLOCK or Flag NAME)"
                ));
            }
            None => (None, None),
        })
    }

    /// Whether `text` begins with a diy `Key=value` line (`Cycle=Rfe PodRR`,
    /// `Relax=`, `Prefetch=0:x=F,…`), which herd reads as information.
    fn is_info_line(text: &str) -> bool {
        let key = text
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        key > 0 && text.as_bytes()[0].is_ascii_alphabetic() && text[key..].starts_with('=')
    }

    // ---- initial state -----------------------------------------------------------

    /// `{ x=1; int *y=&z; 0:r1=x; spinlock_t l; }`.
    fn init_block(&mut self) -> Result<Vec<Init>> {
        let mut out = Vec::new();
        if !self.eat("{")? {
            let t = self.peek()?;
            return self.err(format!("expected the initial state `{{ … }}`, found {t}"));
        }
        loop {
            if self.eat("}")? {
                return Ok(out);
            }
            if self.eat(";")? {
                continue;
            }
            let line = self.line();
            // Type words and stars, then the location.
            let mut words = Vec::new();
            let loc = loop {
                match self.peek2()? {
                    (Tok::Int(p), Tok::P(":")) => {
                        self.next()?;
                        self.next()?;
                        let r = self.ident("a register name")?;
                        break format!("{p}:{r}");
                    }
                    (Tok::Ident(w), Tok::Ident(_) | Tok::Int(_)) => {
                        self.next()?;
                        words.push(w);
                    }
                    (Tok::Ident(w), Tok::P("*")) => {
                        self.next()?;
                        words.push(w);
                    }
                    (Tok::P("*"), _) => {
                        self.next()?;
                    }
                    (Tok::Ident(w), _) => {
                        self.next()?;
                        break w;
                    }
                    (t, _) => return self.err(format!("unexpected {t} in the initial state")),
                }
            };
            if self.eat("[")? {
                return self.err(format!(
                    "arrays are outside the supported subset (`{loc}[…]`)"
                ));
            }
            let val = if self.eat("=")? {
                match self.peek()? {
                    Tok::P("&") => {
                        self.next()?;
                        InitVal::Addr(self.ident("a variable after `&`")?)
                    }
                    Tok::Ident(w) if w == "ATOMIC_INIT" => {
                        self.next()?;
                        self.expect("(", "after ATOMIC_INIT")?;
                        let n = self.int()?;
                        self.expect(")", "closing ATOMIC_INIT(")?;
                        InitVal::Int(n)
                    }
                    Tok::Ident(w) => {
                        self.next()?;
                        InitVal::Addr(w)
                    }
                    _ => InitVal::Int(self.int()?),
                }
            } else {
                InitVal::Int(0)
            };
            let kind = var_kind(&words);
            if !loc.contains(':') {
                self.declare(&loc, kind, line)?;
            }
            out.push((line, loc, val));
            if !self.eat(";")? && self.peek()? != Tok::P("}") {
                let t = self.peek()?;
                return self.err(format!("expected `;` in the initial state, found {t}"));
            }
        }
    }

    /// Declares shared variable `name` (again: the kinds must agree).
    fn declare(&mut self, name: &str, kind: VarKind, line: usize) -> Result<usize> {
        if let Some(&i) = self.by_name.get(name) {
            if self.vars[i].kind != kind {
                return Err(Error {
                    line,
                    msg: format!(
                        "`{name}` is declared as {} here and as {} before",
                        kind.c_type(),
                        self.vars[i].kind.c_type()
                    ),
                });
            }
            return Ok(i);
        }
        let slot = self.vars.iter().filter(|v| v.kind == kind).count();
        self.vars.push(Var {
            name: name.to_string(),
            kind,
            slot,
            init: 0,
        });
        self.by_name.insert(name.to_string(), self.vars.len() - 1);
        Ok(self.vars.len() - 1)
    }

    // ---- processes -----------------------------------------------------------------

    /// `P0(int *x, spinlock_t *l) { … }`; the name `P<n>` already read.
    fn process(&mut self, n: usize) -> Result<Process> {
        self.expect("(", "after the process name")?;
        let mut names: HashMap<String, Name> = HashMap::new();
        if !self.eat(")")? {
            loop {
                let line = self.line();
                let mut words = Vec::new();
                let mut stars = 0;
                loop {
                    match self.peek()? {
                        Tok::Ident(w) => {
                            self.next()?;
                            words.push(w);
                        }
                        Tok::P("*") => {
                            self.next()?;
                            stars += 1;
                        }
                        _ => break,
                    }
                }
                let Some(name) = words.pop() else {
                    return self.err("expected a parameter such as `int *x`");
                };
                if stars == 0 {
                    return Err(Error {
                        line,
                        msg: format!("parameter `{name}` must be a pointer (`int *{name}`)"),
                    });
                }
                let kind = var_kind(&words);
                let v = self.declare(&name, kind, line)?;
                let slot = self.vars[v].slot;
                names.insert(
                    name,
                    match kind {
                        VarKind::Cell => Name::Cell(slot),
                        VarKind::Lock => Name::Lock(slot),
                        VarKind::Srcu => Name::Srcu(slot),
                    },
                );
                if self.eat(")")? {
                    break;
                }
                self.expect(",", "between parameters")?;
            }
        }
        let mut proc = Process {
            regs: Vec::new(),
            reg_init: Vec::new(),
            body: Vec::new(),
        };
        // Registers the init block gives values to exist from the start.
        for (p, r, v, _) in self.reg_inits.clone() {
            if p == n {
                names.insert(r.clone(), Name::Reg(proc.regs.len()));
                proc.regs.push(r);
                proc.reg_init.push(v);
            }
        }
        let open = self.line();
        if self.peek()? != Tok::P("{") {
            return self.err(format!("expected `{{` to open the body of P{n}"));
        }
        self.lx.ml_comments = false;
        let mut scope = Scope {
            names,
            proc: &mut proc,
        };
        let body = self.block(&mut scope, open);
        self.lx.ml_comments = true;
        proc.body = body?;
        Ok(proc)
    }

    /// `{ stmt* }`.
    fn block(&mut self, sc: &mut Scope<'_>, open: usize) -> Result<Vec<Stmt>> {
        self.expect("{", "to open a block")?;
        self.opens.push(open);
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                Tok::P("}") => {
                    self.next()?;
                    self.opens.pop();
                    return Ok(out);
                }
                Tok::Eof => {
                    return Err(Error {
                        line: open,
                        msg: "unbalanced braces: the `{` opened here is never closed".into(),
                    });
                }
                _ => self.stmt(sc, &mut out)?,
            }
        }
    }

    /// One statement, appended to `out` (a declaration may add none).
    fn stmt(&mut self, sc: &mut Scope<'_>, out: &mut Vec<Stmt>) -> Result<()> {
        let line = self.line();
        let t = self.peek()?;
        match t {
            Tok::P(";") => {
                self.next()?;
            }
            Tok::P("{") => {
                let b = self.block(sc, line)?;
                out.extend(b);
            }
            Tok::P("(") if self.peek2()?.1 == Tok::Ident("void".into()) => {
                // `(void)f(…);`: a call whose value is thrown away.
                self.next()?;
                self.next()?;
                self.expect(")", "after `(void`")?;
                return self.stmt(sc, out);
            }
            Tok::P("*") => {
                // `*x = e;` / `*r1 = e;`: a plain store.
                self.next()?;
                let target = self.unary(sc)?;
                let place = self.place_of_ptr(target, line)?;
                self.expect("=", "in a store through a pointer")?;
                let e = self.expr(sc)?;
                self.expect(";", "after the statement")?;
                out.push(Stmt::Store(Access::Plain, place, e));
            }
            Tok::Ident(w) if w == "if" => {
                self.next()?;
                self.expect("(", "after `if`")?;
                let c = self.expr(sc)?;
                self.expect(")", "closing the `if` condition")?;
                let then = self.branch(sc)?;
                let els = if self.peek()? == Tok::Ident("else".into()) {
                    self.next()?;
                    self.branch(sc)?
                } else {
                    Vec::new()
                };
                out.push(Stmt::If(c, then, els));
            }
            Tok::Ident(w) if is_type_word(&w) => {
                // A local declaration: `int r0;`, `int r0 = e, r1;`, `int *r2;`.
                while let Tok::Ident(w) = self.peek()? {
                    if !is_type_word(&w) {
                        break;
                    }
                    self.next()?;
                }
                loop {
                    while self.eat("*")? {}
                    let name = self.ident("a register name")?;
                    let slot = sc.reg(&name);
                    if self.eat("=")? {
                        let e = self.expr(sc)?;
                        out.push(Stmt::Assign(slot, e));
                    }
                    if self.eat(";")? {
                        break;
                    }
                    self.expect(",", "between declared registers")?;
                }
            }
            Tok::Ident(w) if is_process_name(&w) => {
                let open = self.opens.first().copied().unwrap_or(line);
                return self.err(format!(
                    "unbalanced braces: {w} starts before the `{{` of line {open} is closed"
                ));
            }
            Tok::Ident(w) => {
                if let Some(hint) = unsupported_hint(&w) {
                    return self.err(format!("`{w}`: {hint}"));
                }
                let (_, t2) = self.peek2()?;
                if t2 == Tok::P("=") {
                    // `r0 = e;`
                    self.next()?;
                    self.next()?;
                    let slot = match sc.names.get(&w) {
                        Some(Name::Reg(r)) => *r,
                        Some(_) => {
                            return self.err(format!(
                                "`{w}` is a shared variable's pointer: assign through it with `*{w} = …` or WRITE_ONCE(*{w}, …)"
                            ));
                        }
                        None => sc.reg(&w),
                    };
                    let e = self.expr(sc)?;
                    self.expect(";", "after the assignment")?;
                    out.push(Stmt::Assign(slot, e));
                } else if t2 == Tok::P("(") {
                    self.next()?;
                    let s = self.call_stmt(sc, &w, line)?;
                    self.expect(";", &format!("after {w}(…)"))?;
                    out.push(s);
                } else {
                    return self.err(format!("unsupported statement starting with `{w}` {t2}"));
                }
            }
            t => return self.err(format!("unexpected {t} at the start of a statement")),
        }
        Ok(())
    }

    /// An `if` branch: a block or one statement.
    fn branch(&mut self, sc: &mut Scope<'_>) -> Result<Vec<Stmt>> {
        let mut out = Vec::new();
        self.stmt(sc, &mut out)?;
        Ok(out)
    }

    /// A call in statement position: barriers, stores, locks, RCU, or an
    /// expression call evaluated for its effect.
    fn call_stmt(&mut self, sc: &mut Scope<'_>, f: &str, line: usize) -> Result<Stmt> {
        let fence = match f {
            "smp_mb" => Some(Fence::Mb),
            "smp_rmb" => Some(Fence::Rmb),
            "smp_wmb" => Some(Fence::Wmb),
            "smp_mb__before_atomic" => Some(Fence::BeforeAtomic),
            "smp_mb__after_atomic" => Some(Fence::AfterAtomic),
            "smp_mb__after_spinlock" => Some(Fence::AfterSpinlock),
            "smp_mb__after_unlock_lock" => Some(Fence::AfterUnlockLock),
            "smp_mb__after_srcu_read_unlock" => Some(Fence::AfterSrcuReadUnlock),
            "barrier" => Some(Fence::Compiler),
            "smp_memb" => Some(Fence::Memb),
            _ => None,
        };
        let noarg = |s: Stmt| -> Option<Stmt> { Some(s) };
        let simple = match f {
            "rcu_read_lock" => noarg(Stmt::RcuReadLock),
            "rcu_read_unlock" => noarg(Stmt::RcuReadUnlock),
            "synchronize_rcu" | "synchronize_rcu_expedited" => noarg(Stmt::SynchronizeRcu),
            _ => fence.map(Stmt::Fence),
        };
        if let Some(s) = simple {
            self.expect("(", "")?;
            self.expect(")", &format!("after `{f}(`: it takes no argument"))?;
            return Ok(s);
        }
        let store = match f {
            "WRITE_ONCE" => Some((Access::Once, true)),
            "rcu_assign_pointer" => Some((Access::AcqRel, true)),
            "smp_store_release" => Some((Access::AcqRel, false)),
            "smp_store_mb" => Some((Access::Mb, true)),
            "atomic_set" => Some((Access::Once, false)),
            "atomic_set_release" => Some((Access::AcqRel, false)),
            _ => None,
        };
        if let Some((access, lvalue)) = store {
            let args = self.args(sc, f)?;
            if args.len() != 2 {
                return Err(Error {
                    line,
                    msg: format!("{f}() takes two arguments, {} given", args.len()),
                });
            }
            let mut args = args.into_iter();
            let (target, val) = (args.next().unwrap(), args.next().unwrap());
            let place = if lvalue {
                self.place_of_lvalue(target, f, line)?
            } else {
                self.place_of_ptr(target, line)?
            };
            return Ok(Stmt::Store(access, place, val));
        }
        match f {
            "synchronize_srcu" | "synchronize_srcu_expedited" => {
                return Ok(Stmt::SynchronizeSrcu(self.srcu_arg(sc, f, line)?.0));
            }
            "srcu_read_unlock" | "srcu_up_read" => {
                let (s, idx) = self.srcu_arg(sc, f, line)?;
                let Some(idx) = idx else {
                    return Err(Error {
                        line,
                        msg: format!("{f}() takes the domain and the index its lock returned"),
                    });
                };
                return Ok(if f == "srcu_up_read" {
                    Stmt::SrcuUp(s, idx)
                } else {
                    Stmt::SrcuUnlock(s, idx)
                });
            }
            "spin_lock" | "spin_unlock" => {
                let l = self.lock_arg(sc, f, line)?;
                return Ok(if f == "spin_lock" {
                    Stmt::Lock(l)
                } else {
                    Stmt::Unlock(l)
                });
            }
            _ => {}
        }
        // Any other call is an expression evaluated for its effect.
        let e = self.call_expr(sc, f, line)?;
        Ok(Stmt::Eval(e))
    }

    /// `(a, b, …)` of a call.
    fn args(&mut self, sc: &mut Scope<'_>, f: &str) -> Result<Vec<Expr>> {
        self.expect("(", &format!("after `{f}`"))?;
        let mut out = Vec::new();
        if self.eat(")")? {
            return Ok(out);
        }
        loop {
            out.push(self.expr(sc)?);
            if self.eat(")")? {
                return Ok(out);
            }
            self.expect(",", &format!("between the arguments of {f}()"))?;
        }
    }

    /// A lock parameter: `spin_lock(l)`.
    fn lock_arg(&mut self, sc: &mut Scope<'_>, f: &str, line: usize) -> Result<usize> {
        self.expect("(", "")?;
        let name = self.ident(&format!("a lock parameter in {f}()"))?;
        self.expect(")", &format!("after the lock of {f}("))?;
        match sc.names.get(&name) {
            Some(Name::Lock(l)) => Ok(*l),
            Some(_) => Err(Error {
                line,
                msg: format!("{f}({name}): `{name}` is not a `spinlock_t *` parameter"),
            }),
            None => Err(Error {
                line,
                msg: format!("{f}({name}): undeclared lock `{name}`"),
            }),
        }
    }

    /// An SRCU domain parameter, and the second argument if there is one:
    /// `synchronize_srcu(s)`, `srcu_read_unlock(s, idx)`.
    fn srcu_arg(
        &mut self,
        sc: &mut Scope<'_>,
        f: &str,
        line: usize,
    ) -> Result<(usize, Option<Expr>)> {
        self.expect("(", "")?;
        let name = self.ident(&format!("an SRCU domain in {f}()"))?;
        let s = match sc.names.get(&name) {
            Some(Name::Srcu(s)) => *s,
            _ => {
                return Err(Error {
                    line,
                    msg: format!("{f}({name}): `{name}` is not a `struct srcu_struct *` parameter"),
                });
            }
        };
        let idx = if self.eat(",")? {
            Some(self.expr(sc)?)
        } else {
            None
        };
        self.expect(")", &format!("closing {f}("))?;
        Ok((s, idx))
    }

    /// The place `*p` names (the argument of READ_ONCE and friends).
    fn place_of_lvalue(&mut self, e: Expr, f: &str, line: usize) -> Result<Place> {
        match e {
            Expr::Load(Access::Plain, place) => Ok(place),
            _ => Err(Error {
                line,
                msg: format!("{f}() wants a location such as `*x` as its first argument"),
            }),
        }
    }

    /// The place a pointer value designates (`x` for a parameter, or a
    /// register holding a pointer).
    fn place_of_ptr(&mut self, e: Expr, line: usize) -> Result<Place> {
        match e {
            Expr::Int(v) if (ADDR_BASE..ADDR_BASE + self.cells() as i64).contains(&v) => {
                Ok(Place::Static((v - ADDR_BASE) as usize))
            }
            Expr::Int(_) => Err(Error {
                line,
                msg: "dereference of a number: not a pointer".into(),
            }),
            e => Ok(Place::Dynamic(Box::new(e))),
        }
    }

    fn cells(&self) -> usize {
        self.vars.iter().filter(|v| v.kind == VarKind::Cell).count()
    }

    // ---- expressions ---------------------------------------------------------------

    fn expr(&mut self, sc: &mut Scope<'_>) -> Result<Expr> {
        self.binary(sc, 0)
    }

    fn binary(&mut self, sc: &mut Scope<'_>, min: u8) -> Result<Expr> {
        let mut lhs = self.unary(sc)?;
        loop {
            let Tok::P(p) = self.peek()? else {
                return Ok(lhs);
            };
            let (prec, op) = match p {
                "||" => (1, BinOp::LOr),
                "&&" => (2, BinOp::LAnd),
                "|" => (3, BinOp::Or),
                "^" => (4, BinOp::Xor),
                "&" => (5, BinOp::And),
                "==" => (6, BinOp::Eq),
                "!=" => (6, BinOp::Ne),
                "<" => (7, BinOp::Lt),
                "<=" => (7, BinOp::Le),
                ">" => (7, BinOp::Gt),
                ">=" => (7, BinOp::Ge),
                "<<" => (8, BinOp::Shl),
                ">>" => (8, BinOp::Shr),
                "+" => (9, BinOp::Add),
                "-" => (9, BinOp::Sub),
                "*" => (10, BinOp::Mul),
                "/" => (10, BinOp::Div),
                "%" => (10, BinOp::Rem),
                "?" => return self.err("the `?:` operator is outside the supported subset"),
                _ => return Ok(lhs),
            };
            if prec < min {
                return Ok(lhs);
            }
            self.next()?;
            let rhs = self.binary(sc, prec + 1)?;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn unary(&mut self, sc: &mut Scope<'_>) -> Result<Expr> {
        let line = self.line();
        match self.peek()? {
            Tok::P("!") => {
                self.next()?;
                Ok(Expr::Not(Box::new(self.unary(sc)?)))
            }
            Tok::P("-") => {
                self.next()?;
                Ok(Expr::Neg(Box::new(self.unary(sc)?)))
            }
            Tok::P("~") => {
                self.next()?;
                Ok(Expr::BitNot(Box::new(self.unary(sc)?)))
            }
            Tok::P("*") => {
                self.next()?;
                let p = self.unary(sc)?;
                let place = self.place_of_ptr(p, line)?;
                Ok(Expr::Load(Access::Plain, place))
            }
            Tok::P("&") => {
                self.next()?;
                // `&x` where `x` names a cell (the init block's spelling).
                let name = self.ident("a variable after `&`")?;
                match self.by_name.get(&name).map(|&i| self.vars[i].clone()) {
                    Some(Var {
                        kind: VarKind::Cell,
                        slot,
                        ..
                    }) => Ok(Expr::Int(ADDR_BASE + slot as i64)),
                    _ => self.err(format!("`&{name}`: undeclared variable `{name}`")),
                }
            }
            Tok::P("(") => {
                self.next()?;
                // A cast such as `(int *)r1` or `(uintptr_t)r1` is dropped.
                if let Tok::Ident(w) = self.peek()?
                    && is_type_word(&w)
                {
                    while !self.eat(")")? {
                        if self.peek()? == Tok::Eof {
                            return self.err("unterminated cast");
                        }
                        self.next()?;
                    }
                    return self.unary(sc);
                }
                let e = self.expr(sc)?;
                self.expect(")", "closing `(`")?;
                Ok(e)
            }
            Tok::Int(n) => {
                self.next()?;
                Ok(Expr::Int(n))
            }
            Tok::Ident(w) => {
                self.next()?;
                if self.peek()? == Tok::P("(") {
                    return self.call_expr(sc, &w, line);
                }
                match sc.names.get(&w) {
                    Some(Name::Reg(r)) => Ok(Expr::Reg(*r)),
                    Some(Name::Cell(c)) => Ok(Expr::Int(ADDR_BASE + *c as i64)),
                    Some(Name::Srcu(_)) => Err(Error {
                        line,
                        msg: format!("the SRCU domain `{w}` used as a value"),
                    }),
                    Some(Name::Lock(_)) => Err(Error {
                        line,
                        msg: format!("the lock `{w}` used as a value"),
                    }),
                    None if w == "NULL" || w == "false" => Ok(Expr::Int(0)),
                    None if w == "true" => Ok(Expr::Int(1)),
                    None => Err(Error {
                        line,
                        msg: format!(
                            "undeclared register `{w}` (declare it with `int {w};` or assign it first)"
                        ),
                    }),
                }
            }
            t => self.err(format!("unexpected {t} in an expression")),
        }
    }

    /// A call in an expression: loads, RMWs, lock queries.
    fn call_expr(&mut self, sc: &mut Scope<'_>, f: &str, line: usize) -> Result<Expr> {
        let load = match f {
            "READ_ONCE" | "rcu_dereference" | "rcu_dereference_raw" | "lockless_dereference" => {
                Some((Access::Once, true))
            }
            "smp_load_acquire" | "atomic_read_acquire" => Some((Access::AcqRel, false)),
            "atomic_read" => Some((Access::Once, false)),
            _ => None,
        };
        if let Some((access, lvalue)) = load {
            let args = self.args(sc, f)?;
            if args.len() != 1 {
                return Err(Error {
                    line,
                    msg: format!("{f}() takes one argument, {} given", args.len()),
                });
            }
            let a = args.into_iter().next().unwrap();
            let place = if lvalue {
                self.place_of_lvalue(a, f, line)?
            } else {
                self.place_of_ptr(a, line)?
            };
            return Ok(Expr::Load(access, place));
        }
        match f {
            "spin_trylock" => return Ok(Expr::Trylock(self.lock_arg(sc, f, line)?)),
            "spin_is_locked" => return Ok(Expr::IsLocked(self.lock_arg(sc, f, line)?)),
            "srcu_read_lock" | "srcu_down_read" => {
                let (s, extra) = self.srcu_arg(sc, f, line)?;
                if extra.is_some() {
                    return self.err(format!("{f}() takes only the domain"));
                }
                return Ok(if f == "srcu_down_read" {
                    Expr::SrcuDown(s)
                } else {
                    Expr::SrcuLock(s)
                });
            }
            _ => {}
        }
        if let Some((op, order, shape)) = rmw(f) {
            let args = self.args(sc, f)?;
            if args.len() != shape.arity() {
                return Err(Error {
                    line,
                    msg: format!(
                        "{f}() takes {} argument(s), {} given",
                        shape.arity(),
                        args.len()
                    ),
                });
            }
            return self.build_rmw(op, order, shape, args, line);
        }
        if let Some(hint) = unsupported_hint(f) {
            return self.err(format!("`{f}`: {hint}"));
        }
        Err(Error {
            line,
            msg: format!("unknown macro or function `{f}` (outside the supported subset)"),
        })
    }

    fn build_rmw(
        &mut self,
        op: RmwOp,
        order: RmwOrder,
        shape: Shape,
        args: Vec<Expr>,
        line: usize,
    ) -> Result<Expr> {
        let mut args = args.into_iter();
        let mut next = || args.next().unwrap();
        let (ptr, operands) = match shape {
            // xchg(p, v), cmpxchg(p, o, n), atomic_xchg(v, i), atomic_cmpxchg(v, o, n),
            // atomic_add_unless(v, a, u).
            Shape::PtrFirst(n) => {
                let p = next();
                (p, (1..n).map(|_| next()).collect())
            }
            // atomic_add(i, v), atomic_add_return(i, v), atomic_sub_and_test(i, v).
            Shape::ValPtr { negate } => {
                let i = next();
                let p = next();
                let i = if negate { Expr::Neg(Box::new(i)) } else { i };
                (p, vec![i])
            }
            // atomic_inc(v) = add 1; atomic_dec(v) = add -1.
            Shape::Unit(k) => (next(), vec![Expr::Int(k)]),
        };
        let place = self.place_of_ptr(ptr, line)?;
        Ok(Expr::Rmw(op, order, place, operands))
    }
}

/// How an RMW's arguments are laid out.
#[derive(Clone, Copy)]
enum Shape {
    /// The pointer first, then `n - 1` operands.
    PtrFirst(usize),
    /// `(i, v)`, the operand negated for the `sub` forms.
    ValPtr { negate: bool },
    /// `(v)` with an implied operand (`inc`: 1, `dec`: -1).
    Unit(i64),
}

impl Shape {
    fn arity(self) -> usize {
        match self {
            Shape::PtrFirst(n) => n,
            Shape::ValPtr { .. } => 2,
            Shape::Unit(_) => 1,
        }
    }
}

/// The RMW `f` names: its operation, ordering and argument shape.
fn rmw(f: &str) -> Option<(RmwOp, RmwOrder, Shape)> {
    let (base, order) = if let Some(b) = f.strip_suffix("_relaxed") {
        (b, RmwOrder::Relaxed)
    } else if let Some(b) = f.strip_suffix("_acquire") {
        (b, RmwOrder::Acquire)
    } else if let Some(b) = f.strip_suffix("_release") {
        (b, RmwOrder::Release)
    } else {
        (f, RmwOrder::Full)
    };
    use RmwOp::*;
    let sub = Shape::ValPtr { negate: true };
    let add = Shape::ValPtr { negate: false };
    let (op, shape) = match base {
        "xchg" | "atomic_xchg" => (Xchg, Shape::PtrFirst(2)),
        "cmpxchg" | "atomic_cmpxchg" => (Cmpxchg, Shape::PtrFirst(3)),
        // The conditional and testing forms are fully ordered only.
        "atomic_add_unless"
        | "atomic_inc_not_zero"
        | "atomic_sub_and_test"
        | "atomic_dec_and_test"
        | "atomic_inc_and_test"
            if order != RmwOrder::Full =>
        {
            return None;
        }
        "atomic_add_unless" => (AddUnless, Shape::PtrFirst(3)),
        "atomic_inc_not_zero" => (IncNotZero, Shape::PtrFirst(1)),
        "atomic_fetch_add" => (FetchAdd, add),
        "atomic_fetch_sub" => (FetchAdd, sub),
        "atomic_fetch_inc" => (FetchAdd, Shape::Unit(1)),
        "atomic_fetch_dec" => (FetchAdd, Shape::Unit(-1)),
        "atomic_add_return" => (AddReturn, add),
        "atomic_sub_return" => (AddReturn, sub),
        "atomic_inc_return" => (AddReturn, Shape::Unit(1)),
        "atomic_dec_return" => (AddReturn, Shape::Unit(-1)),
        "atomic_fetch_and" => (FetchAnd, add),
        "atomic_fetch_or" => (FetchOr, add),
        "atomic_fetch_xor" => (FetchXor, add),
        "atomic_sub_and_test" => (SubAndTest, add),
        "atomic_dec_and_test" => (SubAndTest, Shape::Unit(1)),
        "atomic_inc_and_test" => (AddAndTest, Shape::Unit(1)),
        // The void forms have no ordered variants: they are unordered, as in
        // the kernel (smp_mb__{before,after}_atomic() order them).
        _ if order != RmwOrder::Full => return None,
        "atomic_add" => (Add, add),
        "atomic_sub" => (Add, sub),
        "atomic_inc" => (Add, Shape::Unit(1)),
        "atomic_dec" => (Add, Shape::Unit(-1)),
        "atomic_and" => (And, add),
        "atomic_or" => (Or, add),
        "atomic_xor" => (Xor, add),
        _ => return None,
    };
    let order = match op {
        Add | And | Or | Xor => RmwOrder::Relaxed,
        _ => order,
    };
    Some((op, order, shape))
}

/// The kind of a variable declared with type words `words`.
fn var_kind(words: &[String]) -> VarKind {
    if words.iter().any(|w| w == "spinlock_t") {
        VarKind::Lock
    } else if words.iter().any(|w| w == "srcu_struct") {
        VarKind::Srcu
    } else {
        VarKind::Cell
    }
}

/// `P0`, `P1`, …
fn is_process_name(w: &str) -> bool {
    w.len() > 1 && w.starts_with('P') && w[1..].chars().all(|c| c.is_ascii_digit())
}

/// Words that start a local declaration or a cast.
fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "int"
            | "long"
            | "unsigned"
            | "signed"
            | "short"
            | "char"
            | "bool"
            | "intptr_t"
            | "uintptr_t"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "s32"
            | "s64"
            | "const"
            | "volatile"
            | "void"
    )
}

/// The interned `&'static str` of punctuation `p`.
fn punct(p: &str) -> &'static str {
    PUNCT.iter().find(|q| **q == p).copied().unwrap_or("?")
}

/// A process's names while its body is parsed.
struct Scope<'p> {
    names: HashMap<String, Name>,
    proc: &'p mut Process,
}

impl Scope<'_> {
    /// The slot of register `name`, created on first mention.
    fn reg(&mut self, name: &str) -> usize {
        if let Some(Name::Reg(r)) = self.names.get(name) {
            return *r;
        }
        let slot = self.proc.regs.len();
        self.proc.regs.push(name.to_string());
        self.proc.reg_init.push(0);
        self.names.insert(name.to_string(), Name::Reg(slot));
        slot
    }
}

/// Parses a whole file. `source` names it in messages and results.
pub fn parse(text: &str, source: &str) -> Result<Litmus> {
    let mut p = Parser {
        lx: Lexer {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
            ml_comments: true,
        },
        vars: Vec::new(),
        by_name: HashMap::new(),
        reg_inits: Vec::new(),
        opens: Vec::new(),
    };
    let (name, expected, flag) = p.header()?;
    let inits = p.init_block()?;
    // Register inits need their values resolved now; variable ones after the
    // processes have declared every variable.
    let mut pending_reg_inits = Vec::new();
    for (line, loc, val) in &inits {
        if let Some((proc, reg)) = loc.split_once(':') {
            let proc: usize = proc.parse().map_err(|_| Error {
                line: *line,
                msg: format!("bad process number in `{loc}`"),
            })?;
            pending_reg_inits.push((proc, reg.to_string(), val.clone(), *line));
        }
    }
    // Variables named only as init values (`x=y`, `y=&z`) are variables too.
    for (line, _, val) in &inits {
        if let InitVal::Addr(v) = val {
            p.declare(v, VarKind::Cell, *line)?;
        }
    }
    for (proc, reg, val, line) in &pending_reg_inits {
        let v = resolve_init(&p, val, *line)?;
        p.reg_inits.push((*proc, reg.clone(), v, *line));
    }
    let mut procs = Vec::new();
    loop {
        let line = p.line();
        match p.peek()? {
            Tok::Ident(w) if is_process_name(&w) => {
                let n: usize = w[1..].parse().unwrap_or(usize::MAX);
                if n != procs.len() {
                    return Err(Error {
                        line,
                        msg: format!("expected process P{}, found {w}", procs.len()),
                    });
                }
                p.next()?;
                procs.push(p.process(n)?);
            }
            Tok::P("}") => {
                return p.err("unbalanced braces: a `}` closes nothing");
            }
            _ => break,
        }
    }
    if procs.is_empty() {
        return p.err("no process: expected `P0(…) { … }`");
    }
    for (proc, reg, _, line) in &p.reg_inits {
        if *proc >= procs.len() {
            return Err(Error {
                line: *line,
                msg: format!("`{proc}:{reg}` names a process the test does not have"),
            });
        }
    }
    // The cells' initial values.
    for (line, loc, val) in &inits {
        if loc.contains(':') {
            continue;
        }
        let v = resolve_init(&p, val, *line)?;
        let i = p.by_name[loc.as_str()];
        p.vars[i].init = v;
    }
    // The final part: locations, filter, the condition.
    let mut observed: Vec<Loc> = Vec::new();
    // Registers that `locations` shows but the process never names: they keep
    // their initial 0, as herd shows them; added to the processes at the end.
    let mut phantoms: Vec<(usize, String)> = Vec::new();
    let mut filter_prop = None;
    let vars = p.vars.clone();
    let ctx = CondCtx {
        vars: &vars,
        procs: &procs,
    };
    loop {
        match p.peek()? {
            Tok::Ident(w) if w == "locations" => {
                p.next()?;
                p.expect("[", "after `locations`")?;
                loop {
                    if p.eat("]")? {
                        break;
                    }
                    if p.eat(";")? {
                        continue;
                    }
                    let loc = match p.phantom_reg(&ctx, &mut phantoms)? {
                        Some(loc) => loc,
                        None => p.cond_loc(&ctx)?,
                    };
                    if !observed.contains(&loc) {
                        observed.push(loc);
                    }
                }
            }
            Tok::Ident(w) if w == "filter" => {
                p.next()?;
                let mut filter_locs = Vec::new();
                filter_prop = Some((p.prop(&ctx, &mut filter_locs)?, filter_locs));
            }
            _ => break,
        }
    }
    let line = p.line();
    let quantifier = match p.next()? {
        Tok::Ident(w) if w == "exists" => Quantifier::Exists,
        Tok::Ident(w) if w == "forall" => Quantifier::Forall,
        Tok::P("~") if p.peek()? == Tok::Ident("exists".into()) => {
            p.next()?;
            Quantifier::NotExists
        }
        // A DEADLOCK file needs no condition: its verdict is about the
        // executions, none of which completes.
        Tok::Eof if expected == Some(Verdict::Deadlock) => {
            for (n, r) in phantoms.drain(..) {
                procs[n].regs.push(r);
                procs[n].reg_init.push(0);
            }
            let shown = observed.len();
            let filter = filter_prop.map(|(f, locs)| {
                let map = remap(&mut observed, &locs);
                reindex(f, &map)
            });
            return Ok(finish(
                p,
                name,
                source,
                (expected, flag),
                procs,
                (observed, shown, filter),
                (Quantifier::Exists, Prop::True, "(none)".into()),
            ));
        }
        Tok::Eof => {
            return Err(Error {
                line,
                msg: "missing condition: expected `exists (…)`, `~exists (…)` or `forall (…)`"
                    .into(),
            });
        }
        t => {
            return Err(Error {
                line,
                msg: format!("expected the condition (`exists`, `~exists` or `forall`), found {t}"),
            });
        }
    };
    let cond_start = p.lx.pos;
    let mut cond_locs = Vec::new();
    let prop = p.prop(&ctx, &mut cond_locs)?;
    for (n, r) in phantoms.drain(..) {
        procs[n].regs.push(r);
        procs[n].reg_init.push(0);
    }
    let condition = format!(
        "{quantifier} {}",
        text[cond_start..p.lx.pos]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Anything after the condition other than comments (and a `;`, which
    // herd accepts) is an error.
    p.eat(";")?;
    match p.peek()? {
        Tok::Eof => {}
        t => return p.err(format!("unexpected {t} after the condition")),
    }
    // Indices: the prop refers to positions in cond_locs; remap onto observed.
    let map = remap(&mut observed, &cond_locs);
    let prop = reindex(prop, &map);
    let shown = observed.len();
    let filter = filter_prop.map(|(f, locs)| {
        let map = remap(&mut observed, &locs);
        reindex(f, &map)
    });
    Ok(finish(
        p,
        name,
        source,
        (expected, flag),
        procs,
        (observed, shown, filter),
        (quantifier, prop, condition),
    ))
}

/// The test, once every part is read.
fn finish(
    p: Parser<'_>,
    name: String,
    source: &str,
    (expected, flag): (Option<Verdict>, Option<String>),
    procs: Vec<Process>,
    (observed, shown, filter): (Vec<Loc>, usize, Option<Prop>),
    (quantifier, prop, condition): (Quantifier, Prop, String),
) -> Litmus {
    let cells = p.cells();
    let count = |k| p.vars.iter().filter(|v| v.kind == k).count();
    let (locks, srcus) = (count(VarKind::Lock), count(VarKind::Srcu));
    Litmus {
        name,
        source: source.to_string(),
        expected,
        flag,
        vars: p.vars,
        cells,
        locks,
        srcus,
        procs,
        observed,
        shown,
        filter,
        quantifier,
        prop,
        condition,
    }
}

fn resolve_init(p: &Parser<'_>, val: &InitVal, line: usize) -> Result<i64> {
    match val {
        InitVal::Int(n) => Ok(*n),
        InitVal::Addr(name) => match p.by_name.get(name).map(|&i| &p.vars[i]) {
            Some(v) if v.kind == VarKind::Cell => Ok(ADDR_BASE + v.slot as i64),
            Some(_) => Err(Error {
                line,
                msg: format!("`{name}` is a lock, not a value"),
            }),
            None => Err(Error {
                line,
                msg: format!("undeclared variable `{name}`"),
            }),
        },
    }
}

/// The index in `observed` of each of `locs`, added where missing.
fn remap(observed: &mut Vec<Loc>, locs: &[Loc]) -> Vec<usize> {
    locs.iter()
        .map(|l| {
            if let Some(i) = observed.iter().position(|o| o == l) {
                i
            } else {
                observed.push(l.clone());
                observed.len() - 1
            }
        })
        .collect()
}

fn reindex(p: Prop, map: &[usize]) -> Prop {
    match p {
        Prop::Eq(i, v) => Prop::Eq(map[i], v),
        Prop::EqLoc(a, b) => Prop::EqLoc(map[a], map[b]),
        Prop::Not(a) => Prop::Not(Box::new(reindex(*a, map))),
        Prop::And(a, b) => Prop::And(Box::new(reindex(*a, map)), Box::new(reindex(*b, map))),
        Prop::Or(a, b) => Prop::Or(Box::new(reindex(*a, map)), Box::new(reindex(*b, map))),
        p => p,
    }
}

/// What the condition's names resolve against.
struct CondCtx<'a> {
    vars: &'a [Var],
    procs: &'a [Process],
}

impl Parser<'_> {
    /// In `locations`, `P:r` for a register process `P` never names: a
    /// register of its own (slot after the process's), recorded in `phantoms`.
    /// Anything else is left unread (`None`).
    fn phantom_reg(
        &mut self,
        ctx: &CondCtx<'_>,
        phantoms: &mut Vec<(usize, String)>,
    ) -> Result<Option<Loc>> {
        let save = (self.lx.pos, self.lx.line);
        if let (Tok::Int(n), Tok::P(":")) = self.peek2()?
            && let Some(proc) = ctx.procs.get(n as usize)
        {
            let n = n as usize;
            self.next()?;
            self.next()?;
            if let Tok::Ident(r) = self.next()?
                && !proc.regs.contains(&r)
            {
                let mine = phantoms.iter().filter(|(p, _)| *p == n);
                let slot = match mine.clone().position(|(_, x)| *x == r) {
                    Some(i) => proc.regs.len() + i,
                    None => {
                        let slot = proc.regs.len() + mine.count();
                        phantoms.push((n, r));
                        slot
                    }
                };
                return Ok(Some(Loc::Reg(n, slot)));
            }
        }
        (self.lx.pos, self.lx.line) = save;
        Ok(None)
    }

    /// A location of the final state: `1:r0`, `x`.
    fn cond_loc(&mut self, ctx: &CondCtx<'_>) -> Result<Loc> {
        let line = self.line();
        match self.peek2()? {
            (Tok::Int(n), Tok::P(":")) => {
                self.next()?;
                self.next()?;
                let r = self.ident("a register name")?;
                let n = n as usize;
                let Some(proc) = ctx.procs.get(n) else {
                    return Err(Error {
                        line,
                        msg: format!("undeclared register `{n}:{r}`: there is no process P{n}"),
                    });
                };
                match proc.regs.iter().position(|x| *x == r) {
                    Some(slot) => Ok(Loc::Reg(n, slot)),
                    None => Err(Error {
                        line,
                        msg: format!("undeclared register `{n}:{r}`: P{n} has no register `{r}`"),
                    }),
                }
            }
            (Tok::Ident(v), _) => {
                self.next()?;
                match ctx.vars.iter().find(|x| x.name == v) {
                    Some(var) if var.kind == VarKind::Cell => Ok(Loc::Var(var.slot)),
                    Some(_) => Err(Error {
                        line,
                        msg: format!("the lock `{v}` cannot be observed"),
                    }),
                    None => Err(Error {
                        line,
                        msg: format!("undeclared variable `{v}` in the condition"),
                    }),
                }
            }
            (t, _) => Err(Error {
                line,
                msg: format!("expected a location such as `0:r1` or `x`, found {t}"),
            }),
        }
    }

    /// A proposition: `\/` of `/\` of atoms; `locs` collects the locations,
    /// which `Prop::Eq` indexes.
    fn prop(&mut self, ctx: &CondCtx<'_>, locs: &mut Vec<Loc>) -> Result<Prop> {
        let mut lhs = self.conj(ctx, locs)?;
        while self.eat("\\/")? {
            let rhs = self.conj(ctx, locs)?;
            lhs = Prop::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn conj(&mut self, ctx: &CondCtx<'_>, locs: &mut Vec<Loc>) -> Result<Prop> {
        let mut lhs = self.atom(ctx, locs)?;
        while self.eat("/\\")? {
            let rhs = self.atom(ctx, locs)?;
            lhs = Prop::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn atom(&mut self, ctx: &CondCtx<'_>, locs: &mut Vec<Loc>) -> Result<Prop> {
        let line = self.line();
        if self.eat("~")? {
            return Ok(Prop::Not(Box::new(self.atom(ctx, locs)?)));
        }
        // herd's `not`, as `~`.
        if self.peek()? == Tok::Ident("not".into()) {
            self.next()?;
            return Ok(Prop::Not(Box::new(self.atom(ctx, locs)?)));
        }
        if self.eat("(")? {
            // `(* … *)` was taken as a comment already; this is grouping.
            let p = self.prop(ctx, locs)?;
            self.expect(")", "closing `(` in the condition")?;
            return Ok(p);
        }
        match self.peek()? {
            Tok::Ident(w) if w == "true" => {
                self.next()?;
                return Ok(Prop::True);
            }
            Tok::Ident(w) if w == "false" => {
                self.next()?;
                return Ok(Prop::False);
            }
            _ => {}
        }
        let loc = self.cond_loc(ctx)?;
        let negate = if self.eat("=")? || self.eat("==")? {
            false
        } else if self.eat("!=")? {
            true
        } else {
            let t = self.peek()?;
            return Err(Error {
                line,
                msg: format!("expected `=` after a location in the condition, found {t}"),
            });
        };
        // The value: a number, a variable's address, or another location.
        let i = locs.len();
        locs.push(loc);
        let eq = match self.peek2()? {
            (Tok::Int(_), Tok::P(":")) => {
                let other = self.cond_loc(ctx)?;
                locs.push(other);
                Prop::EqLoc(i, i + 1)
            }
            (Tok::Ident(name), _) => {
                self.next()?;
                match ctx.vars.iter().find(|x| x.name == name) {
                    Some(var) if var.kind == VarKind::Cell => {
                        Prop::Eq(i, ADDR_BASE + var.slot as i64)
                    }
                    _ => {
                        return Err(Error {
                            line,
                            msg: format!("undeclared variable `{name}` in the condition"),
                        });
                    }
                }
            }
            _ => Prop::Eq(i, self.int()?),
        };
        Ok(if negate { Prop::Not(Box::new(eq)) } else { eq })
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
