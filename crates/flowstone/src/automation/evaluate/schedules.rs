//! Schedules in a round: the due ticks since the cursor, caught up by the schedule's setting.

use chrono::{DateTime, Utc};

use super::{Evaluator, launched_tick};
use crate::automation::launch::LaunchRequest;
use crate::automation::schedule::{CatchUp, Schedule, Tick};
use crate::automation::tick::{Origin, TickRecord, TickStatus};
use crate::error::Result;

/// A schedule with more missed ticks than this skips them all with one record, and starts
/// again from now.
const MAX_MISSED: usize = 100_000;

impl Evaluator {
    /// The due ticks of `schedule` since its cursor: the latest launched (or the latest few,
    /// by its catch-up setting), the others recorded as skipped. Returns the ticks and the
    /// cursor to store once they are recorded (so a leader that dies in between evaluates
    /// the same ticks again, and their launch keys keep that from launching twice).
    pub(super) async fn schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TickRecord>, Option<DateTime<Utc>>)> {
        let name = schedule.name();
        if !self
            .switch(Origin::Schedule, name, schedule.is_default_on())
            .await
        {
            return Ok((Vec::new(), None));
        }
        // First evaluation: nothing before now is launched.
        let Some(cursor) = self.cursor_time(Origin::Schedule, name).await? else {
            return Ok((Vec::new(), Some(now)));
        };
        let (due, missed) = due_ticks(schedule, cursor, now)?;
        let Some(last) = due.last().copied() else {
            if missed == 0 {
                return Ok((Vec::new(), None));
            }
            let skipped =
                TickRecord::new(Origin::Schedule, name, now, TickStatus::Skipped).detail(format!(
                    "more than {missed} ticks missed after {cursor}: all skipped, starting \
                     again from now"
                ));
            return Ok((vec![skipped], Some(now)));
        };
        let keep = match schedule.catch_up_policy() {
            CatchUp::Latest => 1,
            CatchUp::All { max } => max.max(1),
        };
        // The latest `keep` instants, with every tick at them: two ticks in one
        // spring-forward gap fire at the same instant, and both are the latest.
        let mut instants = 0;
        let mut first_kept = due.len();
        while first_kept > 0 {
            let at = due[first_kept - 1].at;
            if first_kept == due.len() || at != due[first_kept].at {
                if instants == keep {
                    break;
                }
                instants += 1;
            }
            first_kept -= 1;
        }
        let skipped = missed + first_kept;
        let mut ticks = Vec::new();
        if skipped > 0 {
            ticks.push(
                TickRecord::new(Origin::Schedule, name, last.at, TickStatus::Skipped).detail(
                    format!(
                        "{skipped} missed tick(s) after {cursor} skipped (catch-up keeps the \
                         latest {keep})"
                    ),
                ),
            );
        }
        let registry = self.fs.registry();
        let anchor = schedule.anchor(registry)?;
        for tick in &due[first_kept..] {
            let record = match schedule.partition_of(registry, &anchor, *tick) {
                Err(err) => TickRecord::new(Origin::Schedule, name, tick.at, TickStatus::Failed)
                    .detail(err.to_string()),
                Ok(partition) => {
                    let launched = self
                        .launcher
                        .launch(LaunchRequest {
                            origin: Origin::Schedule,
                            name,
                            selection: schedule.selection(),
                            anchor: &anchor,
                            items: vec![(tick_key(tick), partition.clone())],
                            executor: schedule.executor_choice(),
                        })
                        .await;
                    launched_tick(
                        Origin::Schedule,
                        name,
                        tick.at,
                        format!("tick {} → {anchor} {}", tick.local, partition.input_text()),
                        launched,
                    )
                }
            };
            ticks.push(record);
        }
        Ok((ticks, Some(last.at)))
    }
}

/// The ticks of `schedule` after `cursor` up to `now` (at most [`MAX_MISSED`]), and how many
/// more there were beyond that.
pub(super) fn due_ticks(
    schedule: &Schedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Vec<Tick>, usize)> {
    let mut due = Vec::new();
    let mut after = cursor;
    loop {
        let batch = schedule.ticks_after(after, 256)?;
        let Some(last) = batch.last() else {
            return Ok((due, 0));
        };
        after = last.at;
        let done = last.at > now;
        due.extend(batch.into_iter().filter(|t| t.at <= now));
        if done {
            return Ok((due, 0));
        }
        if due.len() > MAX_MISSED {
            return Ok((Vec::new(), due.len()));
        }
    }
}

/// A tick's launch key: its local time, which names it (see [`super::schedule`]).
pub(super) fn tick_key(tick: &Tick) -> String {
    tick.local.format("%Y-%m-%dT%H:%M:%S").to_string()
}
