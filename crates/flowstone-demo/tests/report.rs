//! The demo's yearly report holds the figures one computes straight from the CSV.

mod common;

use std::collections::BTreeMap;

use common::{run, sandbox};

/// The figures of one month, computed here from the CSV without any of the demo's code.
#[derive(Debug)]
struct Expected {
    days: u32,
    precipitation: f64,
    wet_days: u32,
    mean_high: f64,
    mean_low: f64,
    highest: f64,
    lowest: f64,
    max_wind: f64,
    weather: BTreeMap<String, u32>,
}

fn expected(csv: &str, year: i32, month: u32) -> Expected {
    let prefix = format!("{year}/{month:02}/");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.split(',').collect())
        .collect();
    let num = |row: &Vec<&str>, i: usize| row[i].parse::<f64>().unwrap();
    let n = rows.len() as f64;
    let mut weather = BTreeMap::new();
    for row in &rows {
        *weather.entry(row[5].to_owned()).or_insert(0) += 1;
    }
    Expected {
        days: rows.len() as u32,
        precipitation: rows.iter().map(|r| num(r, 1)).sum(),
        wet_days: rows.iter().filter(|r| num(r, 1) > 0.0).count() as u32,
        mean_high: rows.iter().map(|r| num(r, 2)).sum::<f64>() / n,
        mean_low: rows.iter().map(|r| num(r, 3)).sum::<f64>() / n,
        highest: rows.iter().map(|r| num(r, 2)).fold(f64::MIN, f64::max),
        lowest: rows.iter().map(|r| num(r, 3)).fold(f64::MAX, f64::min),
        max_wind: rows.iter().map(|r| num(r, 4)).fold(f64::MIN, f64::max),
        weather,
    }
}

fn close(label: &str, shown: &str, exact: f64, decimals: i32) {
    let shown: f64 = shown
        .parse()
        .unwrap_or_else(|_| panic!("{label}: '{shown}' is not a number"));
    let tolerance = 0.5 * 10f64.powi(-decimals) + 1e-9;
    assert!(
        (shown - exact).abs() <= tolerance,
        "{label}: report shows {shown}, the CSV gives {exact}"
    );
}

#[test]
fn the_report_matches_figures_computed_from_the_csv() {
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/seattle-weather.csv"
    ))
    .unwrap();
    let dir = sandbox("report-figures");
    run(&dir, "--data-dir out demo").expect_code(0);
    let report = std::fs::read_to_string(dir.join("out/reports/seattle-weather-2013.md")).unwrap();

    let header: Vec<String> = report
        .lines()
        .find(|l| l.starts_with("| Month |"))
        .expect("a table header")
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect();
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();

    let mut year_precipitation = 0.0;
    for month in 1..=12 {
        let want = expected(&csv, 2013, month);
        year_precipitation += want.precipitation;
        let key = format!("| 2013-{month:02} |");
        let row: Vec<&str> = report
            .lines()
            .find(|l| l.starts_with(&key))
            .unwrap_or_else(|| panic!("no row {key} in\n{report}"))
            .split('|')
            .map(str::trim)
            .collect();
        let cell = |name: &str| row[column(name)];
        let label = |what: &str| format!("2013-{month:02} {what}");
        assert_eq!(cell("Days"), want.days.to_string(), "{}", label("days"));
        assert_eq!(cell("Wet days"), want.wet_days.to_string());
        close(
            &label("precipitation"),
            cell("Precipitation (mm)"),
            want.precipitation,
            1,
        );
        close(
            &label("mean high"),
            cell("Mean high (°C)"),
            want.mean_high,
            2,
        );
        close(&label("mean low"), cell("Mean low (°C)"), want.mean_low, 2);
        close(&label("highest"), cell("Highest (°C)"), want.highest, 1);
        close(&label("lowest"), cell("Lowest (°C)"), want.lowest, 1);
        close(&label("max wind"), cell("Max wind (m/s)"), want.max_wind, 1);
        for weather in ["sun", "rain", "fog", "drizzle", "snow"] {
            let count = want.weather.get(weather).copied().unwrap_or(0);
            assert_eq!(cell(weather), count.to_string(), "{}", label(weather));
        }
    }

    // July 2013, spelled out: a dry, sunny month.
    let july = expected(&csv, 2013, 7);
    assert_eq!(july.days, 31);
    assert_eq!(july.wet_days, 0);
    assert!(
        report.contains("| 2013-07 | 31 | 0.0 | 0 | 26.09 | 13.93 |"),
        "{report}"
    );

    let total = format!("{year_precipitation:.1} mm of precipitation");
    assert!(report.contains(&total), "expected '{total}' in\n{report}");
}
