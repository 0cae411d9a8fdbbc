//! Quickstart: three assets over a week of daily partitions.
//!
//! `raw_orders` makes a day's orders, `order_totals` sums them per customer, and `daily_summary`
//! reports the day. A backfill runs the whole week on local tasks; then we read outputs, records
//! and lineage back.
//!
//! Run: `cargo run --release --example quickstart`

use std::collections::BTreeMap;

use chrono::NaiveDate;
use flowstone::lineage::Direction;
use flowstone::store::MaterializationQuery;
use flowstone::{Asset, Backfill, Daily, FlowStone, Run, Strategy};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    customer: String,
    cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    day: NaiveDate,
    orders: usize,
    revenue_cents: u64,
    top_customer: Option<String>,
}

#[tokio::main]
async fn main() -> flowstone::Result<()> {
    let week = Daily::from("2024-01-01").to("2024-01-07");
    let fs = FlowStone::builder()
        .asset(
            Asset::new("raw_orders")
                .description("the day's orders, as they arrived")
                .partitioned_by(week.clone())
                .execute(|ctx| async move {
                    let day = ctx.partition().date()?;
                    let seed = day.to_string().bytes().map(u64::from).sum::<u64>();
                    let orders = (0..5 + seed % 7)
                        .map(|i| Order {
                            customer: ["ada", "grace", "linus"][((seed + i) % 3) as usize].into(),
                            cents: 500 + (seed * (i + 3)) % 4_000,
                        })
                        .collect::<Vec<_>>();
                    Ok::<_, flowstone::Error>(orders)
                }),
        )
        .asset(
            Asset::new("order_totals")
                .description("revenue per customer")
                .partitioned_by(week.clone())
                .depends_on(["raw_orders"])
                .execute(|ctx| async move {
                    let orders = ctx.dep_arc::<Vec<Order>>("raw_orders")?;
                    let mut totals = BTreeMap::<String, u64>::new();
                    for order in orders.iter() {
                        *totals.entry(order.customer.clone()).or_default() += order.cents;
                    }
                    Ok::<_, flowstone::Error>(totals)
                }),
        )
        .asset(
            Asset::new("daily_summary")
                .description("one line per day")
                .partitioned_by(week)
                .depends_on(["raw_orders", "order_totals"])
                .execute(|ctx| async move {
                    let orders = ctx.dep_arc::<Vec<Order>>("raw_orders")?;
                    let totals = ctx.dep_arc::<BTreeMap<String, u64>>("order_totals")?;
                    Ok::<_, flowstone::Error>(Summary {
                        day: ctx.partition().date()?,
                        orders: orders.len(),
                        revenue_cents: totals.values().sum(),
                        top_customer: totals
                            .iter()
                            .max_by_key(|(_, cents)| **cents)
                            .map(|(name, _)| name.clone()),
                    })
                }),
        )
        .build()?;

    println!("Asset graph:\n{}", fs.registry().to_text());

    let from = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
    let to = NaiveDate::from_ymd_opt(2024, 1, 7).expect("valid date");
    for asset in ["raw_orders", "order_totals"] {
        let report = fs
            .backfill(
                asset,
                Backfill::range(from, to)
                    .executor(Strategy::Async)
                    .max_concurrency(4),
            )
            .await?;
        println!(
            "backfilled {asset}: {} succeeded, {} failed, {} skipped",
            report.succeeded, report.failed, report.skipped
        );
    }

    // One day through the Serial executor, watching each step.
    let summary: Summary = fs
        .materialize(
            "daily_summary",
            Run::partition(from)
                .executor(Strategy::Serial)
                .on_step(|step| println!("  step: {step}")),
        )
        .await?
        .value()?;
    println!("{summary:?}");

    // The rest of the week, upstream already there.
    for day in from.iter_days().skip(1).take(6) {
        let s: Summary = fs
            .materialize("daily_summary", Run::partition(day))
            .await?
            .value()?;
        println!(
            "{}: {:>2} orders, {:>7.2} revenue, top customer {}",
            s.day,
            s.orders,
            s.revenue_cents as f64 / 100.0,
            s.top_customer.as_deref().unwrap_or("-")
        );
    }

    let records = fs
        .materializations(&MaterializationQuery::asset("daily_summary"))
        .await?;
    println!(
        "\n{} materializations of daily_summary recorded; newest:",
        records.len()
    );
    if let Some(m) = records.first() {
        println!(
            "  {} [{}] run {} {} in {:?} via {}",
            m.asset,
            m.partition,
            m.run_id,
            m.status,
            m.duration.unwrap_or_default(),
            m.executor
        );
    }
    let lineage = fs
        .lineage("daily_summary", from, Direction::Upstream, 3)
        .await?;
    println!("lineage of daily_summary [{from}]:");
    for entry in lineage {
        println!(
            "  depth {}: {} [{}] run {}",
            entry.depth, entry.key.asset, entry.key.partition, entry.key.run_id
        );
    }
    Ok(())
}
