//! Sensors in a round: the user's function called with its cursor, its requests launched.

use chrono::{DateTime, Utc};

use super::Evaluator;
use crate::automation::launch::LaunchRequest;
use crate::automation::sensor::{Sensor, SensorContext, SensorResult};
use crate::automation::tick::{Origin, TickRecord, TickStatus};
use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::selection::AssetSelection;

impl Evaluator {
    pub(super) async fn sensor(
        &self,
        sensor: &Sensor,
        now: DateTime<Utc>,
    ) -> Result<Vec<TickRecord>> {
        let name = sensor.name();
        let store = self.fs.automation_store();
        let cursor = store.cursor(Origin::Sensor.as_str(), name).await?;
        let result = sensor
            .call(SensorContext {
                name: name.to_owned(),
                cursor,
                now,
            })
            .await;
        let SensorResult {
            run_requests,
            cursor,
            skip_reason,
        } = match result {
            Ok(result) => result,
            Err(err) => {
                return Ok(vec![
                    TickRecord::new(Origin::Sensor, name, now, TickStatus::Failed)
                        .detail(err.to_string()),
                ]);
            }
        };
        let mut tick = if run_requests.is_empty() {
            TickRecord::new(Origin::Sensor, name, now, TickStatus::Skipped)
                .detail(skip_reason.unwrap_or_else(|| String::from("it returned no run requests")))
        } else {
            TickRecord::new(Origin::Sensor, name, now, TickStatus::Launched)
        };
        let mut errors = Vec::new();
        let mut launch_failed = false;
        let mut already = 0;
        for request in run_requests {
            let anchor = match self.request_anchor(&request.selection, &request.partition) {
                Ok(anchor) => anchor,
                Err(err) => {
                    errors.push(err.to_string());
                    continue;
                }
            };
            let key = request
                .run_key
                .clone()
                .unwrap_or_else(|| format!("run:{}", uuid::Uuid::now_v7()));
            match self
                .launcher
                .launch(LaunchRequest {
                    origin: Origin::Sensor,
                    name,
                    selection: &request.selection,
                    anchor: &anchor,
                    items: vec![(key, request.partition.clone())],
                    executor: None,
                })
                .await
            {
                Ok(launched) => {
                    if launched.new == 0 {
                        already += 1;
                    }
                    tick.launched += launched.new;
                    tick.backfills.extend(launched.backfills);
                }
                Err(err) => {
                    launch_failed = true;
                    errors.push(err.to_string());
                }
            }
        }
        if !errors.is_empty() {
            tick.status = TickStatus::Failed;
            tick.detail = Some(errors.join("; "));
        } else if tick.status == TickStatus::Launched && tick.launched == 0 {
            tick.status = TickStatus::Skipped;
            tick.detail = Some(format!(
                "every run key was launched before ({already} request(s))"
            ));
        }
        // The cursor moves only once its requests are launched: a leader that dies before
        // calls again from the old cursor, and the run keys keep that from launching twice.
        // A request the sensor got wrong (an unknown asset) would be wrong again; one the
        // store failed to launch is asked for again with the same cursor.
        if let Some(cursor) = cursor.filter(|_| !launch_failed) {
            store
                .set_cursor(Origin::Sensor.as_str(), name, &cursor)
                .await?;
        }
        Ok(vec![tick])
    }

    /// The anchor of a sensor's request, checking its selection and partition.
    fn request_anchor(&self, selection: &str, partition: &Partition) -> Result<String> {
        let registry = self.fs.registry();
        let parsed = AssetSelection::parse(selection)?;
        let selected = parsed.resolve(registry)?;
        let anchor = parsed.anchor(&selected).ok_or_else(|| {
            Error::invalid_options(format!("selection '{selection}' selects no asset"))
        })?;
        let asset = registry.get(&anchor)?;
        self.fs.runtime().check_partition_member(asset, partition)?;
        Ok(anchor)
    }
}
