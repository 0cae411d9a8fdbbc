//! Every subcommand of the command line, through the real binary: output, exit codes, and the
//! errors meant for people.

mod common;

use common::{Worker, run, sandbox};

const JOB_ID: &str = "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b";

#[test]
fn assets_lists_the_pipeline_and_draws_its_graph() {
    let dir = sandbox("assets");
    let listed = run(&dir, "assets");
    listed.expect_code(0);
    for asset in [
        "raw_weather",
        "cleaned_weather",
        "monthly_stats",
        "yearly_report",
    ] {
        listed.stdout_has(asset);
    }
    listed.stdout_has("a month like 2024-03");

    run(&dir, "assets --graph text")
        .expect_code(0)
        .stdout_has("cleaned_weather <- raw_weather")
        .stdout_has("monthly_stats <- cleaned_weather");
    run(&dir, "assets --graph mermaid")
        .expect_code(0)
        .stdout_has("flowchart LR")
        .stdout_has("raw_weather --> cleaned_weather");

    let json = run(&dir, "--json assets").expect_code(0).json();
    let assets = json["assets"].as_array().expect("an array of assets");
    assert_eq!(assets.len(), 4);
    let raw = assets.iter().find(|a| a["name"] == "raw_weather").unwrap();
    assert_eq!(raw["max_attempts"], 3);

    run(&dir, "assets --graph dot").expect_code(2);
}

#[test]
fn materialize_runs_upstream_and_shows_the_retry() {
    let dir = sandbox("materialize");
    run(&dir, "materialize monthly_stats --partition 2013-07")
        .expect_code(1)
        .stderr_has("dependencies not materialized")
        .stderr_has("cleaned_weather")
        .stderr_has("--with-upstream");

    let ran = run(
        &dir,
        "materialize monthly_stats --partition 2013-07 --with-upstream",
    );
    ran.expect_code(0)
        .stdout_has("materialized monthly_stats 2013-07-01");
    // raw_weather fails its first attempt on purpose; the record shows attempt 2.
    let cells = ran.row("raw_weather");
    assert_eq!(&cells[1..4], ["2013-07-01", "success", "2"], "{cells:?}");
    assert!(
        dir.join("data/monthly_stats/d%3A2013-07-01.json").exists(),
        "the output is a file under --data-dir"
    );

    // Upstream outputs are on disk now, so another process can build on them.
    let json = run(
        &dir,
        "--json materialize monthly_stats -p 2013-07-01 --executor serial",
    )
    .expect_code(0)
    .json();
    assert_eq!(json["status"], "success");
    assert_eq!(json["materializations"][0]["executor"], "serial");

    run(
        &dir,
        "materialize cleaned_weather --partition 2013-07 --executor sync",
    )
    .expect_code(0);
}

#[test]
fn unknown_assets_exit_2_with_a_suggestion() {
    let dir = sandbox("unknown-asset");
    for line in [
        "materialize monthly_stat --partition 2013-07",
        "backfill monthly_stat --all",
        "materializations monthly_stat",
        "lineage monthly_stat --partition 2013-07",
        "schedule monthly_stat --partition 2013-07",
    ] {
        run(&dir, line)
            .expect_code(2)
            .stderr_has("asset 'monthly_stat' is not registered")
            .stderr_has("did you mean 'monthly_stats'?");
    }
}

#[test]
fn bad_partitions_exit_2_naming_the_input_and_the_expected_form() {
    let dir = sandbox("bad-partition");
    run(&dir, "materialize monthly_stats --partition 2013-13")
        .expect_code(2)
        .stderr_has("invalid partition '2013-13'")
        .stderr_has("a month like 2024-03");
    run(&dir, "materialize monthly_stats --partition 2016-01")
        .expect_code(2)
        .stderr_has("'2016-01'")
        .stderr_has("from 2012-01 to 2015-12");
    run(&dir, "materialize yearly_report --partition 1999")
        .expect_code(2)
        .stderr_has("invalid partition '1999'")
        .stderr_has("a year like 2013")
        .stderr_has("from 2012 to 2015");
    run(&dir, "materialize monthly_stats")
        .expect_code(2)
        .stderr_has("give --partition");
    run(&dir, "backfill raw_weather --partitions 2013-01,2013-x")
        .expect_code(2)
        .stderr_has("'2013-x'");
}

#[test]
fn bad_database_urls_exit_2_without_the_password() {
    let dir = sandbox("bad-database");
    let ran = run(&dir, "--database mysql://root:hunter2@db.example/x assets");
    ran.expect_code(2)
        .stderr_has("mysql://root:***@db.example/x")
        .stderr_has("sqlite://");
    assert!(!ran.stderr.contains("hunter2") && !ran.stdout.contains("hunter2"));

    let json = run(&dir, "--json --database oracle://u:pw123@h/d assets")
        .expect_code(2)
        .json();
    assert_eq!(json["exit_code"], 2);
    assert!(!json.to_string().contains("pw123"));

    // A database that cannot be reached: named, without its password.
    let ran = run(
        &dir,
        "--database postgres://flow:s3cret@127.0.0.1:1/flowstone assets",
    );
    assert_ne!(ran.code, 0);
    ran.stderr_has("postgres://flow:***@127.0.0.1:1/flowstone");
    assert!(!ran.stderr.contains("s3cret") && !ran.stdout.contains("s3cret"));

    // SQLite files are created where the URL says.
    run(&dir, "--database sqlite://other.db assets").expect_code(0);
    assert!(dir.join("other.db").exists());
}

#[test]
fn bad_options_exit_2() {
    let dir = sandbox("bad-options");
    run(&dir, "materialize raw_weather -p 2013-07 --executor synk")
        .expect_code(2)
        .stderr_has("unknown executor 'synk'; did you mean 'sync'?");
    run(&dir, "--log-level loud=?? assets")
        .expect_code(2)
        .stderr_has("invalid --log-level");
    run(&dir, "frobnicate").expect_code(2);
}

#[test]
fn backfill_reports_progress_a_summary_and_failures() {
    let dir = sandbox("backfill");
    let ran = run(
        &dir,
        "backfill raw_weather --from 2013-01 --to 2013-03 --executor sync",
    );
    ran.expect_code(0)
        // Not a terminal: plain progress lines on stderr.
        .stderr_has("raw_weather [3/3]")
        .stdout_has("SUCCEEDED");
    let cells = ran.row("raw_weather");
    assert_eq!(&cells[1..6], ["3", "3", "0", "0", "0"], "{cells:?}");

    let json = run(&dir, "--json backfill raw_weather --partitions 2013-07,2013-08 --executor async --max-concurrency 2")
    .expect_code(0)
    .json();
    assert_eq!(json["total"], 2);
    assert_eq!(json["succeeded"], 2);

    // A dependency that is missing fails the partition: exit 1, the failure listed.
    run(&dir, "backfill cleaned_weather --partitions 2014-01")
        .expect_code(1)
        .stdout_has("FAILED")
        .stdout_has("2014-01-01")
        .stdout_has("dependencies not materialized");

    run(
        &dir,
        "backfill raw_weather --all --force --max-concurrency 8",
    )
    .expect_code(0)
    .stderr_has("raw_weather [48/48]");
    run(
        &dir,
        "backfill raw_weather --partitions 2013-07 --retry-failed",
    )
    .expect_code(0);

    run(&dir, "backfill raw_weather").expect_code(2);
    run(&dir, "backfill raw_weather --all --max-concurrency 0").expect_code(2);
    run(&dir, "backfill raw_weather --from 2013-01").expect_code(2);
    run(&dir, "backfill raw_weather --from 2013-05 --to 2013-01")
        .expect_code(2)
        .stderr_has("after");
}

#[test]
fn schedule_runs_in_process_or_enqueues() {
    let dir = sandbox("schedule");
    run(
        &dir,
        "schedule raw_weather --partition 2013-07 --executor sync",
    )
    .expect_code(0)
    .stdout_has("scheduled raw_weather 2013-07-01 as job")
    .stdout_has("status: completed");

    // On the durable queue (the SQLite database is the default): enqueued, pending.
    let json = run(
        &dir,
        "--json schedule raw_weather --partition 2013-08 --at +10m --queue assets --priority 3",
    )
    .expect_code(0)
    .json();
    assert_eq!(json["executor"], "queue");
    assert_eq!(json["status"], "pending");
    assert!(json["queue_job"].as_i64().is_some(), "{json}");
    // An in-process executor cannot wait for a time.
    run(
        &dir,
        "schedule raw_weather -p 2013-07 --executor sync --at +10m",
    )
    .expect_code(2);
    run(&dir, "schedule raw_weather -p 2013-07 --at tomorrow")
        .expect_code(2)
        .stderr_has("invalid --at 'tomorrow'");
    run(&dir, "schedule raw_weather -p 2013-07 --priority 12").expect_code(2);
}

#[test]
fn queued_jobs_can_be_listed_inspected_and_cancelled() {
    let dir = sandbox("jobs");
    run(&dir, "jobs").expect_code(0).stdout_has("no jobs");
    let scheduled = run(
        &dir,
        "--json schedule monthly_stats -p 2014-02 --at +1h --priority 4",
    )
    .expect_code(0)
    .json();
    let number = scheduled["queue_job"].as_i64().expect("a queue job number");
    let uuid = scheduled["job_id"].as_str().unwrap().to_owned();

    run(&dir, "jobs --state scheduled --queue assets")
        .expect_code(0)
        .stdout_has("monthly_stats")
        .stdout_has("2014-02-01");
    run(&dir, "jobs --state completed")
        .expect_code(0)
        .stdout_has("no jobs");
    let listed = run(&dir, "--json jobs").expect_code(0).json();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);

    run(&dir, &format!("job status {number}"))
        .expect_code(0)
        .stdout_has("scheduled")
        .stdout_has("monthly_stats");
    let status = run(&dir, &format!("--json job status {uuid}"))
        .expect_code(0)
        .json();
    assert_eq!(status["id"], number);
    assert_eq!(status["priority"], 4);
    assert_eq!(status["state"], "scheduled");

    run(&dir, &format!("job cancel {uuid}"))
        .expect_code(0)
        .stdout_has("cancelled (it will not run)");
    // Cancelling it again is harmless, and says so.
    run(&dir, &format!("job cancel {number}"))
        .expect_code(0)
        .stdout_has("cancelled (it already was)");
    let status = run(&dir, &format!("--json job status {number}"))
        .expect_code(0)
        .json();
    assert_eq!(status["state"], "cancelled");

    run(&dir, "job status 999")
        .expect_code(2)
        .stderr_has("no job 999");
    run(&dir, &format!("job cancel {JOB_ID}"))
        .expect_code(2)
        .stderr_has("no job");
    run(&dir, "jobs --state sleeping").expect_code(2);
    run(&dir, "job status not-a-job")
        .expect_code(2)
        .stderr_has("invalid job id 'not-a-job'");
    run(&dir, "worker --queue assets")
        .expect_code(2)
        .stderr_has("NAME=CONCURRENCY");
}

#[test]
fn a_worker_process_runs_queued_work_and_stops_on_sigterm() {
    let dir = sandbox("worker");
    let worker = Worker::start(&dir, "--queue assets=4");

    let ran = run(
        &dir,
        "backfill raw_weather --from 2013-01 --to 2013-03 --executor queue",
    );
    ran.expect_code(0).stderr_has("waits for a `worker`");
    let cells = ran.row("raw_weather");
    assert_eq!(&cells[1..4], ["3", "3", "0"], "{cells:?}");

    run(
        &dir,
        "materialize cleaned_weather -p 2013-02 --executor queue",
    )
    .expect_code(0)
    .stdout_has("materialized cleaned_weather 2013-02-01");

    // The worker recorded the runs: raw_weather needed its second attempt there too.
    let records = run(&dir, "--json materializations raw_weather -p 2013-02")
        .expect_code(0)
        .json();
    let record = &records["materializations"][0];
    assert_eq!(record["status"], "success");
    assert_eq!(record["executor"], "queue");
    assert_eq!(record["attempt"], 2);
    let jobs = run(&dir, "--json jobs --state completed")
        .expect_code(0)
        .json();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 4);
    // A completed job cannot be cancelled, and the CLI says why.
    let done = jobs["jobs"][0]["id"].as_i64().expect("a job number");
    run(&dir, &format!("job cancel {done}"))
        .expect_code(2)
        .stderr_has("already completed");

    assert_eq!(worker.terminate(), 0, "the worker stops cleanly on SIGTERM");
}

#[test]
fn sigterm_lets_the_running_job_finish() {
    let dir = sandbox("worker-sigterm");
    // raw_weather's source takes 2 s in this worker.
    let worker = Worker::start_with_env(&dir, "--grace 30", &[("FLOWSTONE_DEMO_DELAY_MS", "2000")]);
    let scheduled = run(&dir, "--json schedule raw_weather -p 2013-05")
        .expect_code(0)
        .json();
    assert_eq!(scheduled["executor"], "queue", "auto picks the queue");
    let number = scheduled["queue_job"].as_i64().unwrap().to_string();

    // Wait until the second attempt (the first fails on purpose) is running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = run(&dir, &format!("--json job status {number}"))
            .expect_code(0)
            .json();
        if status["state"] == "executing" && status["attempt"] == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job never ran its second attempt: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    assert_eq!(worker.terminate(), 0, "a clean stop: nothing abandoned");
    let status = run(&dir, &format!("--json job status {number}"))
        .expect_code(0)
        .json();
    assert_eq!(status["state"], "completed", "{status}");
    let records = run(&dir, "--json materializations raw_weather -p 2013-05")
        .expect_code(0)
        .json();
    assert_eq!(records["materializations"][0]["status"], "success");
}

#[test]
fn materializations_and_lineage_read_the_database() {
    let dir = sandbox("records");
    run(&dir, "materializations raw_weather")
        .expect_code(0)
        .stdout_has("no materializations of 'raw_weather' recorded");
    run(&dir, "lineage monthly_stats --partition 2013-07")
        .expect_code(0)
        .stdout_has("no upstream lineage recorded for monthly_stats 2013-07-01");

    run(&dir, "materialize monthly_stats -p 2013-07 --with-upstream").expect_code(0);

    // Another process reads the records from the SQLite file: the retry shows as attempt 2.
    let ran = run(&dir, "materializations raw_weather -p 2013-07");
    ran.expect_code(0);
    let row: Vec<&str> = ran
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        ["2013-07-01", "success", "2", "sync"],
        "{}",
        ran.stdout
    );
    let json = run(
        &dir,
        "--json materializations raw_weather --partition 2013-07 --status success",
    )
    .expect_code(0)
    .json();
    assert_eq!(json["materializations"].as_array().unwrap().len(), 1);
    assert_eq!(json["materializations"][0]["attempt"], 2);
    run(&dir, "materializations raw_weather --status great").expect_code(2);
    run(&dir, "materializations raw_weather -p 2020-01")
        .expect_code(2)
        .stderr_has("'2020-01'");

    let up = run(&dir, "lineage monthly_stats --partition 2013-07");
    up.expect_code(0);
    let rows: Vec<Vec<&str>> = up
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{}", up.stdout);
    assert_eq!(&rows[0][..3], ["1", "cleaned_weather", "2013-07-01"]);
    assert_eq!(&rows[1][..3], ["2", "raw_weather", "2013-07-01"]);
    run(&dir, "lineage monthly_stats -p 2013-07 --depth 1")
        .expect_code(0)
        .stdout_has("cleaned_weather");

    let down = run(&dir, "--json lineage raw_weather -p 2013-07 --downstream")
        .expect_code(0)
        .json();
    assert_eq!(down["direction"], "downstream");
    let assets: Vec<&str> = down["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["asset"].as_str().unwrap())
        .collect();
    assert_eq!(assets, ["cleaned_weather", "monthly_stats"]);

    run(
        &dir,
        "lineage raw_weather -p 2013-07 --upstream --downstream",
    )
    .expect_code(2);
    run(&dir, "lineage raw_weather")
        .expect_code(2)
        .stderr_has("give --partition");
}

#[test]
fn the_demo_runs_end_to_end_and_says_where_the_reports_are() {
    let dir = sandbox("demo");
    let ran = run(&dir, "");
    ran.expect_code(0)
        .stdout_has("yearly_report")
        .stdout_has("Reports:")
        .stdout_has("seattle-weather-2013.md")
        .stdout_has("raw_weather needed a retry in 48 partitions")
        .stdout_has("sqlite://flowstone.db");
    assert!(dir.join("flowstone.db").exists());
    for year in 2012..=2015 {
        assert!(
            dir.join(format!("data/reports/seattle-weather-{year}.md"))
                .exists()
        );
    }

    // Again: flowstone.db records every partition as done, so every one is skipped.
    let again = run(&dir, "--json").expect_code(0).json();
    for backfill in again["backfills"].as_array().unwrap() {
        assert_eq!(backfill["skipped"], backfill["total"], "{backfill}");
    }
    assert_eq!(again["reports"].as_array().unwrap().len(), 4);

    let json = run(
        &dir,
        "--json --database sqlite://elsewhere.db --data-dir elsewhere demo --executor sync",
    )
    .expect_code(0)
    .json();
    // One backfill of the whole pipeline: 48 months of three assets and 4 years.
    let backfills = json["backfills"].as_array().unwrap();
    assert_eq!(backfills.len(), 1);
    assert_eq!(backfills[0]["total"], 48 * 3 + 4);
    assert_eq!(backfills[0]["succeeded"], 48 * 3 + 4);
    assert_eq!(
        backfills[0]["assets"],
        serde_json::json!([
            "raw_weather",
            "cleaned_weather",
            "monthly_stats",
            "yearly_report"
        ])
    );
    assert_eq!(json["reports"].as_array().unwrap().len(), 4);
    assert_eq!(json["retried_partitions"]["raw_weather"], 48);
    assert!(
        dir.join("elsewhere/reports/seattle-weather-2015.md")
            .exists()
    );
}

#[test]
fn the_yearly_report_says_what_it_misses() {
    let dir = sandbox("report-missing");
    run(&dir, "materialize yearly_report --partition 2014")
        .expect_code(1)
        .stderr_has("12 dependency partitions are not materialized")
        .stderr_has("monthly_stats d:2014-01-01");
}

#[test]
fn a_selection_backfills_a_year_and_what_it_reads() {
    let dir = sandbox("select");
    let json = run(
        &dir,
        "--json backfill --select +yearly_report --from 2013 --to 2013 --executor sync",
    )
    .expect_code(0)
    .json();
    // 2013's twelve months of the three monthly assets, then its report.
    assert_eq!(json["total"], 12 * 3 + 1, "{json}");
    assert_eq!(json["succeeded"], 12 * 3 + 1, "{json}");
    let outcomes = json["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.last().unwrap()["asset"], "yearly_report");
    assert!(dir.join("data/reports/seattle-weather-2013.md").exists());
    assert!(!dir.join("data/reports/seattle-weather-2014.md").exists());

    // The report's lineage lists its twelve months, and below them what they read.
    let lineage = run(
        &dir,
        "--json lineage yearly_report --partition 2013 --upstream",
    )
    .expect_code(0)
    .json();
    let entries = lineage["lineage"].as_array().unwrap();
    let at_depth = |depth: u64, asset: &str| {
        entries
            .iter()
            .filter(|e| e["depth"] == depth && e["asset"] == asset)
            .count()
    };
    assert_eq!(at_depth(1, "monthly_stats"), 12, "{lineage}");
    assert_eq!(at_depth(2, "cleaned_weather"), 12, "{lineage}");
    assert_eq!(at_depth(3, "raw_weather"), 12, "{lineage}");
}

#[test]
fn a_selection_naming_an_unknown_asset_says_which_it_meant() {
    let dir = sandbox("select-unknown");
    run(&dir, "backfill --select raw_wether+ --all")
        .expect_code(2)
        .stderr_has("'raw_wether'")
        .stderr_has("did you mean 'raw_weather'");
    run(&dir, "backfill --select raw_weather,,monthly_stats --all")
        .expect_code(2)
        .stderr_has("empty term");
    run(&dir, "backfill --all").expect_code(2);
}

#[test]
fn stored_backfills_can_be_listed_inspected_and_refused_when_finished() {
    let dir = sandbox("backfills");
    let ran = run(
        &dir,
        "--json backfill monthly_stats --from 2013-01 --to 2013-02 --executor sync",
    )
    .expect_code(1)
    .json();
    // monthly_stats needs cleaned_weather, which is not there: both partitions fail.
    let id = ran["backfill_id"].as_str().unwrap().to_owned();
    let listed = run(&dir, "--json backfills list").expect_code(0).json();
    let first = &listed["backfills"][0];
    assert_eq!(first["backfill_id"], id.as_str(), "{listed}");
    assert_eq!(first["status"], "completed_with_failures");
    assert_eq!(first["request"]["selection"], "monthly_stats");
    assert_eq!(first["counts"]["failed"], 2);

    let status = run(&dir, &format!("--json backfills status {id}"))
        .expect_code(0)
        .json();
    let outcomes = status["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2, "{status}");
    assert!(
        outcomes.iter().all(|o| o["outcome"] == "failed"),
        "{status}"
    );
    run(&dir, &format!("backfills status {id}"))
        .expect_code(0)
        .stdout_has("completed_with_failures")
        .stdout_has("monthly_stats");

    run(&dir, &format!("backfills resume {id}"))
        .expect_code(2)
        .stderr_has("already");
    run(&dir, &format!("backfills cancel {id}"))
        .expect_code(2)
        .stderr_has("already");
    run(
        &dir,
        "backfills status 0191d3c8-0000-7000-8000-000000000000",
    )
    .expect_code(2)
    .stderr_has("does not exist");
    run(&dir, "backfills status nope")
        .expect_code(2)
        .stderr_has("'nope' is not a backfill id");
}

#[test]
fn a_backfill_running_in_one_process_is_followed_and_cancelled_from_another() {
    let dir = sandbox("backfills-cancel");
    // A slow source (each partition waits 300 ms) and one partition at a time: 48 months
    // take long enough to be cancelled midway.
    let mut backfilling = common::spawn(
        &dir,
        "backfill raw_weather --all --executor async --max-concurrency 1",
        &[("FLOWSTONE_DEMO_DELAY_MS", "300")],
    );
    let started = std::time::Instant::now();
    let id = loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the backfill never showed up in `backfills list`"
        );
        let listed = run(&dir, "--json backfills list");
        if listed.code == 0
            && let Some(first) = listed.json()["backfills"]
                .as_array()
                .and_then(|b| b.first().cloned())
            && first["status"] == "running"
        {
            break first["backfill_id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    run(&dir, &format!("backfills cancel {id}"))
        .expect_code(0)
        .stdout_has("cancelling");
    // Following ends when the backfill does, wherever it runs.
    run(&dir, &format!("backfills status {id} --follow"))
        .expect_code(0)
        .stdout_has("status     cancelled");
    let code = backfilling.wait().expect("the backfill exits").code();
    assert_eq!(code, Some(1), "a cancelled backfill exits 1");
    let status = run(&dir, &format!("--json backfills status {id}"))
        .expect_code(0)
        .json();
    assert_eq!(status["status"], "cancelled", "{status}");
    let counts = &status["counts"];
    assert!(counts["cancelled"].as_u64().unwrap() > 0, "{status}");
    assert!(
        counts["succeeded"].as_u64().unwrap() < 48,
        "it stopped before the end: {status}"
    );
}

#[test]
fn schedules_are_listed_and_an_unknown_one_is_named() {
    let dir = sandbox("schedules");
    run(&dir, "schedules")
        .expect_code(0)
        .stdout_has("refresh_latest_month")
        .stdout_has("5 0 * * *");
    let json = run(&dir, "--json schedules list").expect_code(0).json();
    assert_eq!(json["schedules"][0]["name"], "refresh_latest_month");
    assert_eq!(json["schedules"][0]["on"], true);
    run(&dir, "schedules preview refresh_latest_month --next 2")
        .expect_code(0)
        .stdout_has("2015-12-01");
    run(&dir, "schedules preview nightly --next 3")
        .expect_code(2)
        .stderr_has("schedule 'nightly' is not declared");
    run(&dir, "schedules ticks refresh_latest_month")
        .expect_code(0)
        .stdout_has("no tick recorded");
    run(&dir, "schedules off refresh_latest_month")
        .expect_code(0)
        .stdout_has("schedule refresh_latest_month is off");
    run(&dir, "schedules")
        .expect_code(0)
        .stdout_has("refresh_latest_month  off");
}

#[test]
fn automation_status_shows_the_definitions_and_no_leader_without_a_worker() {
    let dir = sandbox("automation");
    run(&dir, "automation")
        .expect_code(0)
        .stdout_has("leader: none")
        .stdout_has("refresh_latest_month")
        .stdout_has("eager (all windows)");
    let json = run(&dir, "--json automation status").expect_code(0).json();
    assert_eq!(json["leader"], serde_json::Value::Null);
    assert_eq!(
        json["definitions"].as_array().map(Vec::len),
        Some(4),
        "{json}"
    );
    run(&dir, "automation ticks")
        .expect_code(0)
        .stdout_has("no tick recorded");
    run(&dir, "sensors")
        .expect_code(0)
        .stdout_has("no sensor is declared");
    run(&dir, "sensors ticks new_files")
        .expect_code(2)
        .stderr_has("sensor 'new_files' is not declared");
}

/// The README's automation tour: a worker started with `--automation` leads, and a new month
/// of `raw_weather` (materialized by another process) flows on by itself, through the eager
/// conditions, to that month's statistics and its year's report.
#[test]
fn a_worker_with_automation_carries_new_raw_data_to_the_report() {
    use std::time::{Duration, Instant};
    let dir = sandbox("automation-worker");
    run(
        &dir,
        "backfill --select raw_weather+ --from 2013-01 --to 2013-12",
    )
    .expect_code(0);
    let records_of = |asset: &str, partition: &str| {
        run(
            &dir,
            &format!("--json materializations {asset} -p {partition}"),
        )
        .expect_code(0)
        .json()["materializations"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(records_of("yearly_report", "2013"), 1);
    let worker = Worker::start(&dir, "--automation");
    let deadline = Instant::now() + Duration::from_secs(60);
    while run(&dir, "--json automation status").json()["leader"].is_null() {
        assert!(
            Instant::now() < deadline,
            "no worker took the automation lease"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The leader's first round starts watching; a materialization before it is history and
    // is not reacted to, so materialize again until the first reaction.
    let mut last_materialized: Option<Instant> = None;
    while records_of("yearly_report", "2013") < 2 {
        assert!(
            Instant::now() < deadline,
            "the report was not materialized again; ticks:\n{}",
            run(&dir, "automation ticks").stdout
        );
        if last_materialized.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
            run(&dir, "materialize raw_weather -p 2013-07").expect_code(0);
            last_materialized = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(records_of("cleaned_weather", "2013-07"), 2);
    assert_eq!(records_of("monthly_stats", "2013-07"), 2);
    assert_eq!(
        records_of("cleaned_weather", "2013-06"),
        1,
        "only the new month ran"
    );
    let ticks = run(&dir, "--json automation ticks").expect_code(0).json();
    let launched: Vec<&str> = ticks["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .filter(|t| t["status"] == "launched")
        .filter_map(|t| t["name"].as_str())
        .collect();
    for asset in ["cleaned_weather", "monthly_stats", "yearly_report"] {
        assert!(launched.contains(&asset), "{asset} not launched: {ticks}");
    }
    assert_eq!(worker.terminate(), 0, "the worker stops cleanly on SIGTERM");
}
