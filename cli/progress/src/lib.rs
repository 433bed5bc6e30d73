//! Progress of long steps on stderr, for the lab (root file system build,
//! boot) and for apply (one line per host). stdout belongs to the command's
//! result (`inv=$(hadeploy lab up)` must capture the inventory path and
//! nothing else). On a terminal each step is a spinner with its elapsed time;
//! elsewhere (CI logs, pipes) each step prints one line when it ends, without spinner
//! frames. Raw output of the commands behind a step goes to a log file, never here.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

mod hosts;
pub use hosts::{HostProgress, StepName};

/// How often a spinner turns.
const TICK: Duration = Duration::from_millis(120);

/// A turning spinner drawn with `template` (indicatif's syntax; the
/// default spinner if it does not parse), not yet drawn anywhere: show it
/// with [`ProgressBar::set_draw_target`] or `MultiProgress::add`.
pub fn spinner(template: &str, prefix: impl Into<String>) -> ProgressBar {
    let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    b.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.set_prefix(prefix.into());
    b.enable_steady_tick(TICK);
    b
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing (library callers, tests, `-q`).
    Hidden,
    /// One line per finished step on stderr.
    Lines,
    /// An animated spinner per running step, then its line.
    Spinner,
}

/// Where an operation reports its steps.
#[derive(Debug, Clone)]
pub struct Progress {
    mode: ProgressMode,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        Progress { mode }
    }

    pub fn hidden() -> Self {
        Progress::new(ProgressMode::Hidden)
    }

    /// Spinners when stderr is a terminal, one line per step otherwise.
    pub fn stderr() -> Self {
        Progress::new(if std::io::stderr().is_terminal() {
            ProgressMode::Spinner
        } else {
            ProgressMode::Lines
        })
    }

    pub fn mode(&self) -> ProgressMode {
        self.mode
    }

    /// Start a step; it reports when [`Step::done`] is called, or as failed when it
    /// is dropped unfinished (an error returned through `?`).
    pub fn step(&self, what: impl Into<String>) -> Step {
        let what = what.into();
        tracing::info!(step = %what, "start");
        if self.mode == ProgressMode::Lines {
            // Without a spinner a long step (debootstrap: minutes) would
            // show nothing until it ends.
            eprintln!("{what} ...");
        }
        let bar = (self.mode == ProgressMode::Spinner).then(|| {
            let b = spinner("{spinner} {prefix}{msg} [{elapsed}]", what.clone());
            b.set_draw_target(ProgressDrawTarget::stderr());
            b
        });
        Step {
            what,
            started: Instant::now(),
            bar,
            mode: self.mode,
            finished: false,
        }
    }
}

/// A running step (see [`Progress::step`]).
pub struct Step {
    what: String,
    started: Instant,
    bar: Option<ProgressBar>,
    mode: ProgressMode,
    finished: bool,
}

impl Step {
    /// Detail shown after the step's name while it runs (e.g. `2/4 ready`).
    pub fn detail(&self, detail: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!(": {detail}"));
        }
    }

    /// The step succeeded.
    pub fn done(mut self) {
        self.finish(true);
    }

    fn finish(&mut self, ok: bool) {
        if self.finished {
            return;
        }
        self.finished = true;
        let secs = self.started.elapsed().as_secs_f64();
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        tracing::info!(step = %self.what, ok, secs, "end");
        if self.mode != ProgressMode::Hidden {
            eprintln!("{}", step_line(&self.what, ok, secs));
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// The line a finished step leaves on stderr.
pub fn step_line(what: &str, ok: bool, secs: f64) -> String {
    if ok {
        format!("{what}: done in {secs:.1} s")
    } else {
        format!("{what}: failed after {secs:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines() {
        assert_eq!(
            step_line("booting 4 nodes", true, 3.04),
            "booting 4 nodes: done in 3.0 s"
        );
        assert_eq!(
            step_line("debootstrap", false, 12.0),
            "debootstrap: failed after 12.0 s"
        );
    }

    #[test]
    fn hidden_steps_print_nothing_and_finish_once() {
        let p = Progress::hidden();
        let s = p.step("x");
        s.detail("1/2");
        s.done();
        // Dropped unfinished: reported as failed, without panicking.
        drop(p.step("y"));
    }
}
