//! The local stack's one output stream: every function's log lines with a function-name prefix,
//! REPORT lines, and the stack's own messages. `--quiet` hides function logs (REPORT lines and
//! errors stay); `--function` keeps one function's lines only.

use std::io::Write;

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub quiet: bool,
    pub only: Option<String>,
}

impl Output {
    fn shown(&self, function: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == function)
    }

    fn write(&self, function: &str, text: &str) {
        let mut out = std::io::stdout().lock();
        for line in text.lines() {
            let _ = writeln!(out, "[{function}] {line}");
        }
        let _ = out.flush();
    }

    pub fn function_log(&self, function: &str, line: &str) {
        if !self.quiet && self.shown(function) {
            self.write(function, line);
        }
    }

    pub fn report(&self, function: &str, line: &str) {
        if self.shown(function) {
            self.write(function, line);
        }
    }

    /// The stack's own messages.
    pub fn say(&self, text: &str) {
        self.write("inlet", text);
    }
}
