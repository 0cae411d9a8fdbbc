//! Progress of long work on stderr: an indicatif bar when stderr is a terminal, plain lines
//! otherwise (CI logs, pipes), so stdout stays clean for results and `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flowstone::{PartitionOutcome, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{duration_text, one_line, partition_text};

/// Plain mode prints a line about every tenth of the work, every failure, the last partition,
/// and at least one line every this often.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Shows the progress of one backfill.
pub struct BackfillProgress {
    label: String,
    started: Instant,
    mode: Mode,
}

enum Mode {
    Bar(ProgressBar),
    Lines { last: Mutex<(Instant, usize)> },
}

impl BackfillProgress {
    /// Progress for `label` (usually the asset's name) over `total` partitions when known: a
    /// bar on a terminal, lines otherwise.
    pub fn new(label: impl Into<String>, total: Option<usize>) -> Self {
        let label = label.into();
        let mode = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                total.map(|t| t as u64),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{prefix:>16.bold} [{bar:30.cyan/blue}] {pos}/{len} {msg}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_message("0 failed");
            bar.set_style(style);
            bar.set_prefix(label.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            Mode::Bar(bar)
        } else {
            Mode::Lines {
                last: Mutex::new((Instant::now(), 0)),
            }
        };
        BackfillProgress {
            label,
            started: Instant::now(),
            mode,
        }
    }

    /// Records one finished partition.
    pub fn update(&self, progress: &Progress<'_>) {
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_length(progress.total as u64);
                bar.set_position(progress.done as u64);
                let rate = progress.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{} failed, {rate:.1}/s", progress.failed));
                if let PartitionOutcome::Failed(err) = progress.outcome {
                    bar.println(format!(
                        "{}: {} failed: {}",
                        self.label,
                        self.what(progress),
                        one_line(&err.to_string())
                    ));
                }
            }
            Mode::Lines { last } => {
                let now = Instant::now();
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let failed_now = matches!(progress.outcome, PartitionOutcome::Failed(_));
                let (last_at, last_done) = *last;
                let step = progress.total.div_ceil(10).max(1);
                let due = progress.done == progress.total
                    || failed_now
                    || progress.done / step > last_done / step
                    || now - last_at >= LINE_EVERY;
                if !due {
                    return;
                }
                *last = (now, progress.done);
                let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
                let rate = progress.done as f64 / elapsed;
                let left = progress.total - progress.done;
                let eta = Duration::from_secs_f64(left as f64 / rate.max(1e-3));
                let outcome = match progress.outcome.error() {
                    Some(err) => format!("failed: {}", one_line(&err.to_string())),
                    None => progress.outcome.name().to_owned(),
                };
                eprintln!(
                    "{} [{}/{}] {} {} ({} failed, {:.1}/s, ETA {})",
                    self.label,
                    progress.done,
                    progress.total,
                    self.what(progress),
                    outcome,
                    progress.failed,
                    rate,
                    duration_text(eta)
                );
            }
        }
    }

    /// The partition just finished, with its asset when the label is not that asset (a
    /// backfill of several assets).
    fn what(&self, progress: &Progress<'_>) -> String {
        if progress.asset == self.label {
            partition_text(progress.partition)
        } else {
            format!("{} {}", progress.asset, partition_text(progress.partition))
        }
    }

    /// Shows counts read from elsewhere (a backfill another process runs): `done` of `total`,
    /// `failed` of them failed. Plain mode prints a line when they changed.
    pub fn set_counts(&self, done: usize, total: usize, failed: usize) {
        match &self.mode {
            Mode::Bar(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(format!("{failed} failed"));
            }
            Mode::Lines { last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.1 != done || done == 0 {
                    *last = (Instant::now(), done);
                    eprintln!("{} [{done}/{total}] ({failed} failed)", self.label);
                }
            }
        }
    }

    /// Ends the display.
    pub fn finish(&self) {
        if let Mode::Bar(bar) = &self.mode {
            bar.finish();
            // indicatif leaves the cursor at the end of the finished bar.
            eprintln!();
        }
    }
}
