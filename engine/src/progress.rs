//! Progress on stderr for long steps (synthesis, export, perplexity, model conversion).
//!
//! Bars draw only when stderr is a terminal: indicatif's stderr target hides itself otherwise,
//! so logs, pipes and the test harness see no control characters and no extra lines. Library
//! functions take a `progress: bool` (or a callback) and build their bar here, so every long
//! command looks the same.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A counting bar `what [=====>    ] pos/len unit elapsed eta`, or a hidden one when `show` is
/// false or stderr is not a terminal.
pub fn bar(show: bool, len: u64, what: &str, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let template = format!("{what} [{{bar:40}}] {{pos}}/{{len}} {unit} {{elapsed}} eta {{eta}}");
    b.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// A spinner with a message and the elapsed time, for steps whose length is not known in
/// advance (tokenizing a text, converting a checkpoint in one parallel pass). It ticks on its
/// own until finished; hidden when `show` is false or stderr is not a terminal.
pub fn spinner(show: bool, msg: impl Into<String>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let s = ProgressBar::new_spinner();
    s.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    s.set_message(msg.into());
    if !s.is_hidden() {
        s.enable_steady_tick(Duration::from_millis(120));
    }
    s
}
