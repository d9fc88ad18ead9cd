//! threadline's load generator: the same scenarios against threadline and against the Node
//! baseline (the seed stub on Express + socket.io 4, `bench/node-stub`), side by side.
//!
//!   cargo build --release --workspace && (cd bench/node-stub && npm ci)
//!   target/release/threadline-bench                 # every scenario, both servers
//!   target/release/threadline-bench --help          # sizes, rates, one server only
//!
//! Loopback only; every loop is bounded in count and time.

mod durable;
mod rest;
mod scenarios;
mod search;

use std::fmt::Write as _;

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use threadline_bench::{
    Error, Result,
    db::{bulk_load, fresh_database},
    eio,
    target::{self, Target},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Held,
    Fanout,
    History,
    /// threadline only (the Node stub has no `since`): a rejoin's replay of 500 messages.
    Replay,
    /// threadline only: inserts/s and page latency on memory, SQLite and PostgreSQL, and
    /// cross-node delivery latency through Redis (needs --postgres-url and --redis-url).
    Backends,
    /// threadline on SQLite and PostgreSQL: a history page and a conversation list with 10 rows
    /// in the database, then with 1,000,000 (bulk-loaded with SQL).
    Scale,
    /// threadline on each database: REST posts/s and latency (--posters-durable over
    /// --durable-threads threads of --members members), posts into one thread of 2 and of
    /// --big-members members, and the database's own ceiling measured in the same run
    /// (pgbench; a single-writer SQLite loop), with the ratio.
    Durable,
    /// threadline on each backend: the conversation list of a member of 10 and of 1,000
    /// conversations.
    Conversations,
    /// threadline on SQLite and PostgreSQL (--postgres-url): message search over
    /// --search-messages stored messages, as users type queries.
    Search,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Server {
    Threadline,
    Node,
}

#[derive(Parser)]
#[command(about = "Benchmarks threadline against the Node stub, side by side")]
struct Args {
    /// Scenarios to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::Held, Scenario::Fanout, Scenario::History])]
    scenarios: Vec<Scenario>,
    /// Servers to measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Server::Threadline, Server::Node])]
    servers: Vec<Server>,
    /// Runs of the side-by-side scenarios; the table shows medians and the per-run ratio range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Held connections (the machine allows 20,000 open files per process).
    #[arg(long, default_value_t = 19_000)]
    connections: usize,
    /// Headers of the held connections' upgrade requests: a bare websocket library's, or a
    /// browser's (engineioxide and Node both keep each session's request).
    #[arg(long, value_enum, default_value_t = eio::Handshake::Minimal)]
    held_handshake: eio::Handshake,
    /// Threads in the held and fan-out scenarios.
    #[arg(long, default_value_t = 50)]
    threads: usize,
    /// Clients joined to each fan-out thread.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// REST connections posting in the fan-out scenario.
    #[arg(long, default_value_t = 4)]
    posters: usize,
    /// Offered rate of the fixed-rate fan-out run, posts per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of each fan-out run, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Messages in the history thread.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// Messages per backend in the backends scenario.
    #[arg(long, default_value_t = 20_000)]
    backend_history: usize,
    /// A PostgreSQL server for the backends scenario (a fresh database is created per run).
    #[arg(long, env = "THREADLINE_BENCH_POSTGRES")]
    postgres_url: Option<String>,
    /// Databases for the durable and conversations scenarios (`sqlite://…`, `postgres://…`;
    /// a PostgreSQL URL names a server: a fresh database is created on it). Default: SQLite in
    /// the temporary directory, and --postgres-url when given.
    #[arg(long)]
    database_url: Vec<String>,
    /// Concurrent REST posters in the durable scenario.
    #[arg(long, default_value_t = 16)]
    durable_posters: usize,
    /// Threads the durable scenario's posters spread over.
    #[arg(long, default_value_t = 50)]
    durable_threads: usize,
    /// Members of each of those threads.
    #[arg(long, default_value_t = 2)]
    members: usize,
    /// Members of the large thread of the thread-size comparison.
    #[arg(long, default_value_t = 1_000)]
    big_members: usize,
    /// Length of each durable-posting run, seconds.
    #[arg(long, default_value_t = 10.0)]
    durable_seconds: f64,
    /// Messages stored for the search scenario.
    #[arg(long, default_value_t = 1_000_000)]
    search_messages: u64,
    /// Searches timed per query kind in the search scenario.
    #[arg(long, default_value_t = 300)]
    search_samples: u64,
    /// A Redis server for the cross-node run of the backends scenario.
    #[arg(long, env = "THREADLINE_BENCH_REDIS")]
    redis_url: Option<String>,
    /// Path of the threadline binary.
    #[arg(long, default_value = "target/release/threadline")]
    threadline_bin: String,
    /// Extra arguments for threadline (e.g. `--workers=1`).
    #[arg(long, allow_hyphen_values = true)]
    threadline_arg: Vec<String>,
    /// Worker threads of the generator's own runtime.
    #[arg(long, default_value_t = 2)]
    generator_threads: usize,
    /// The Node baseline's entry point.
    #[arg(long, default_value = "bench/node-stub/server.js")]
    node_stub: String,
}

/// The fan-out load the arguments describe.
fn load(args: &Args, rate: Option<f64>, send: scenarios::Send) -> scenarios::Load {
    scenarios::Load {
        threads: args.threads,
        clients: args.clients,
        posters: args.posters,
        rate,
        seconds: args.seconds,
        send,
    }
}

struct Results {
    name: &'static str,
    held: Option<scenarios::Held>,
    max_rate: Option<scenarios::FanOut>,
    fixed_rate: Option<scenarios::FanOut>,
    socket_send: Option<scenarios::FanOut>,
    history: Option<scenarios::History>,
    replay: Option<scenarios::Replay>,
}

fn start(server: Server, args: &Args) -> Result<Target> {
    match server {
        Server::Threadline => Target::threadline(&args.threadline_bin, &args.threadline_arg),
        Server::Node => Target::node(&args.node_stub),
    }
}

async fn measure(server: Server, args: &Args) -> Result<Results> {
    let mut results = Results {
        name: match server {
            Server::Threadline => "threadline",
            Server::Node => "node stub",
        },
        held: None,
        max_rate: None,
        fixed_rate: None,
        socket_send: None,
        history: None,
        replay: None,
    };
    // A fresh server per scenario, so one scenario's garbage does not weigh on the next.
    if args.scenarios.contains(&Scenario::Held) {
        let target = start(server, args)?;
        eprintln!("[{}] held connections: {}", target.name, args.connections);
        results.held = Some(
            scenarios::held(&target, args.connections, args.threads, args.held_handshake).await?,
        );
    }
    if args.scenarios.contains(&Scenario::Fanout) {
        let target = start(server, args)?;
        eprintln!("[{}] fan-out at max rate", target.name);
        results.max_rate = Some(
            scenarios::fan_out(&target, &target, load(args, None, scenarios::Send::Rest)).await?,
        );
        let target = start(server, args)?;
        eprintln!("[{}] fan-out at {} posts/s", target.name, args.rate);
        results.fixed_rate = Some(
            scenarios::fan_out(
                &target,
                &target,
                load(args, Some(args.rate), scenarios::Send::Rest),
            )
            .await?,
        );
        // The Node stub has no message:send; only threadline runs the socket-send scenario.
        if server == Server::Threadline {
            let target = start(server, args)?;
            eprintln!("[{}] fan-out, sent as message:send with ack", target.name);
            results.socket_send = Some(
                scenarios::fan_out(&target, &target, load(args, None, scenarios::Send::Socket))
                    .await?,
            );
        }
    }
    if args.scenarios.contains(&Scenario::History) {
        let target = start(server, args)?;
        eprintln!("[{}] history of {} messages", target.name, args.history);
        results.history = Some(scenarios::history(&target, args.history, 200).await?);
    }
    if args.scenarios.contains(&Scenario::Replay) && server == Server::Threadline {
        let target = start(server, args)?;
        eprintln!("[{}] replay of 500 messages", target.name);
        results.replay = Some(scenarios::replay(&target, 500, 200).await?);
    }
    Ok(results)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// One table row: a metric for each server (the median over its runs), threadline ÷ node when
/// both ran, and with several runs the range of the per-run ratios (run k of threadline ÷ run
/// k of node, the two measured back to back).
fn row(out: &mut String, metric: &str, values: &[Vec<f64>], unit: &str, target: &str) {
    let medians: Vec<Option<f64>> = values.iter().map(|runs| median(runs)).collect();
    let cells: Vec<String> = medians
        .iter()
        .map(|v| {
            v.map(|v| format!("{} {unit}", fmt(v)))
                .unwrap_or_else(|| "–".into())
        })
        .collect();
    let ratio = match medians[..] {
        [Some(a), Some(b)] if b != 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    };
    let range = match values {
        [a, b] if a.len() > 1 && a.len() == b.len() => {
            let ratios: Vec<f64> = a
                .iter()
                .zip(b)
                .filter(|(_, b)| **b != 0.0)
                .map(|(a, b)| a / b)
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if ratios.is_empty() {
                " – |".to_owned()
            } else {
                format!(" {low:.2}–{high:.2}× |")
            }
        }
        _ if values.first().is_some_and(|runs| runs.len() > 1) => " – |".to_owned(),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "| {metric} | {} | {ratio} |{range} {target} |",
        cells.join(" | ")
    );
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The side-by-side table. `all` holds, per server, the results of each of its runs; each cell
/// is the median over the runs.
fn report(args: &Args, all: &[Vec<Results>]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = all
        .iter()
        .filter_map(|runs| Some(runs.first()?.name))
        .collect();
    let several = all.iter().any(|runs| runs.len() > 1);
    let (range_head, range_rule) = match several {
        true => (" ratio range (per run) |", "---|"),
        false => ("", ""),
    };
    let _ = writeln!(
        out,
        "| metric | {} | ratio |{range_head} target |",
        names.join(" | ")
    );
    let _ = writeln!(
        out,
        "|---|{}---|{range_rule}---|",
        "---|".repeat(names.len())
    );
    let range_rule_blank = if several { " |" } else { "" };
    let pick = |f: &dyn Fn(&Results) -> Option<f64>| {
        all.iter()
            .map(|runs| runs.iter().filter_map(f).collect::<Vec<f64>>())
            .collect::<Vec<_>>()
    };
    let any = |f: &dyn Fn(&Results) -> bool| all.iter().flatten().any(f);

    if any(&|r| r.held.is_some()) {
        let held = |f: fn(&scenarios::Held) -> f64| pick(&|r| r.held.as_ref().map(f));
        row(
            &mut out,
            "held: clients",
            &held(|h| h.clients as f64),
            "",
            "",
        );
        row(
            &mut out,
            "held: clients joined and acked",
            &held(|h| h.joined as f64),
            "",
            "all",
        );
        row(
            &mut out,
            "held: failed connects/joins",
            &held(|h| h.failed as f64),
            "",
            "0",
        );
        row(
            &mut out,
            "held: connect + join rate",
            &held(|h| h.connect_per_sec),
            "/s",
            "",
        );
        row(
            &mut out,
            "held: server RSS per connection",
            &held(|h| h.bytes_per_conn / 1024.0),
            "KB",
            "≤ 1.2×",
        );
        row(
            &mut out,
            "held: server RSS before connecting",
            &held(|h| h.rss_before as f64 / 1048576.0),
            "MB",
            "",
        );
        row(
            &mut out,
            "held: server RSS with all connected",
            &held(|h| h.rss_after as f64 / 1048576.0),
            "MB",
            "",
        );
    }
    for (label, get) in [
        (
            "fan-out max",
            (|r: &Results| r.max_rate.as_ref()) as fn(&Results) -> Option<&scenarios::FanOut>,
        ),
        ("fan-out fixed", |r: &Results| r.fixed_rate.as_ref()),
        ("socket send max", |r: &Results| r.socket_send.as_ref()),
    ] {
        if !any(&|r| get(r).is_some()) {
            continue;
        }
        let f = |m: fn(&scenarios::FanOut) -> f64| pick(&|r| get(r).map(m));
        let is_max = label == "fan-out max";
        let is_fixed = label == "fan-out fixed";
        if label == "socket send max" {
            let _ = writeln!(
                out,
                "| *socket send: the fan-out at max rate, each message sent as `message:send` with an ack over a websocket (the Node stub has no such event)* | | | |{range_rule_blank}"
            );
        }
        row(
            &mut out,
            &format!("{label}: posts/s"),
            &f(|x| x.posts_per_sec()),
            "",
            "",
        );
        row(
            &mut out,
            &format!("{label}: deliveries expected"),
            &f(|x| x.expected as f64),
            "",
            "",
        );
        row(
            &mut out,
            &format!("{label}: deliveries/s"),
            &f(|x| x.deliveries_per_sec()),
            "",
            if is_max { "≥ 2.2×" } else { "" },
        );
        row(
            &mut out,
            &format!("{label}: lost / duplicated"),
            &f(|x| (x.lost + x.duplicated) as f64),
            "",
            "0",
        );
        row(
            &mut out,
            &format!("{label}: server CPU per delivery"),
            &f(|x| x.cpu_us_per_delivery()),
            "µs",
            if is_fixed { "≤ 0.35×" } else { "" },
        );
        row(
            &mut out,
            &format!("{label}: post→delivery p50"),
            &f(|x| ms(&x.latency, 0.5)),
            "ms",
            "",
        );
        row(
            &mut out,
            &format!("{label}: post→delivery p90"),
            &f(|x| ms(&x.latency, 0.9)),
            "ms",
            "",
        );
        row(
            &mut out,
            &format!("{label}: post→delivery p99"),
            &f(|x| ms(&x.latency, 0.99)),
            "ms",
            if is_fixed { "≤ 0.15×" } else { "" },
        );
        row(
            &mut out,
            &format!("{label}: post→delivery max"),
            &f(|x| ms(&x.latency, 1.0)),
            "ms",
            "",
        );
        row(
            &mut out,
            &format!("{label}: send→answer (201 or ack) p50"),
            &f(|x| ms(&x.answer, 0.5)),
            "ms",
            "",
        );
        row(
            &mut out,
            &format!("{label}: send→answer (201 or ack) p99"),
            &f(|x| ms(&x.answer, 0.99)),
            "ms",
            "",
        );
        row(
            &mut out,
            &format!("{label}: failed posts"),
            &f(|x| x.post_errors as f64),
            "",
            "0",
        );
    }
    if any(&|r| r.replay.is_some()) {
        let f = |m: fn(&scenarios::Replay) -> f64| pick(&|r| r.replay.as_ref().map(m));
        let _ = writeln!(
            out,
            "| *replay: a fresh session joins with `since` 500 messages back, 200 times (the Node stub has no replay)* | | | |{range_rule_blank}"
        );
        row(
            &mut out,
            "replay 500: join→last event and ack p50",
            &f(|x| ms(&x.latency, 0.5)),
            "ms",
            "",
        );
        row(
            &mut out,
            "replay 500: join→last event and ack p99",
            &f(|x| ms(&x.latency, 0.99)),
            "ms",
            "",
        );
        row(
            &mut out,
            "replay 500: server CPU per replay",
            &f(|x| x.cpu_ms_per_replay()),
            "ms",
            "",
        );
    }
    if any(&|r| r.history.is_some()) {
        let h = |m: fn(&scenarios::History) -> f64| pick(&|r| r.history.as_ref().map(m));
        row(
            &mut out,
            "history: messages acknowledged",
            &h(|x| x.messages as f64),
            "",
            "",
        );
        row(
            &mut out,
            "history: messages walked",
            &h(|x| x.walked as f64),
            "",
            &args.history.to_string(),
        );
        row(
            &mut out,
            "history: gaps or duplicates",
            &h(|x| x.gaps_or_duplicates as f64),
            "",
            "0",
        );
        row(
            &mut out,
            "history: first page p50",
            &h(|x| ms(&x.first_page, 0.5)),
            "ms",
            "",
        );
        row(
            &mut out,
            "history: first page p99",
            &h(|x| ms(&x.first_page, 0.99)),
            "ms",
            "",
        );
        row(
            &mut out,
            "history: last page p50",
            &h(|x| ms(&x.last_page, 0.5)),
            "ms",
            "",
        );
        row(
            &mut out,
            "history: last page p99",
            &h(|x| ms(&x.last_page, 0.99)),
            "ms",
            "",
        );
        row(
            &mut out,
            "history: last ÷ first page p50",
            &h(|x| ms(&x.last_page, 0.5) / ms(&x.first_page, 0.5)),
            "×",
            "≤ 1.5",
        );
    }
    out
}

/// The backends table: one column per storage backend, plus cross-node delivery.
async fn backends(args: &Args) -> Result<String> {
    let scratch = std::env::temp_dir().join(format!("threadline-bench-db-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut columns: Vec<(String, Vec<String>)> = vec![
        ("memory".into(), vec![]),
        (
            "SQLite".into(),
            vec![format!(
                "--database-url=sqlite://{}/bench.db",
                scratch.display()
            )],
        ),
    ];
    if let Some(pg) = &args.postgres_url {
        columns.push((
            "PostgreSQL".into(),
            vec![format!("--database-url={}", fresh_database(pg).await?)],
        ));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| metric | {} |",
        columns
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(columns.len()));
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("sustained inserts/s (REST, 8 posters)", vec![]),
        ("history first page p50 / p99", vec![]),
        ("history last page p50 / p99", vec![]),
        ("messages walked without gap or duplicate", vec![]),
    ];
    for (name, extra) in &columns {
        let mut extra = extra.clone();
        extra.extend(args.threadline_arg.iter().cloned());
        let target = Target::threadline(&args.threadline_bin, &extra)?;
        eprintln!(
            "[threadline on {name}] history of {} messages",
            args.backend_history
        );
        let h = scenarios::history(&target, args.backend_history, 200).await?;
        rows[0].1.push(format!("{:.0}", h.inserts_per_sec));
        rows[1].1.push(format!(
            "{:.2} / {:.2} ms",
            ms(&h.first_page, 0.5),
            ms(&h.first_page, 0.99)
        ));
        rows[2].1.push(format!(
            "{:.2} / {:.2} ms",
            ms(&h.last_page, 0.5),
            ms(&h.last_page, 0.99)
        ));
        rows[3].1.push(format!(
            "{} of {}",
            h.walked - h.gaps_or_duplicates.min(h.walked),
            h.messages
        ));
    }
    for (metric, cells) in rows {
        let _ = writeln!(out, "| {metric} | {} |", cells.join(" | "));
    }
    let _ = std::fs::remove_dir_all(&scratch);

    if let (Some(pg), Some(redis)) = (&args.postgres_url, &args.redis_url) {
        let database = fresh_database(pg).await?;
        let node = |_: ()| {
            let mut extra = vec![
                format!("--database-url={database}"),
                format!("--redis-url={redis}"),
            ];
            extra.extend(args.threadline_arg.iter().cloned());
            Target::threadline(&args.threadline_bin, &extra)
        };
        let (a, b) = (node(())?, node(())?);
        eprintln!(
            "[threadline, 2 nodes] clients on A, posts through B at {} posts/s",
            args.rate
        );
        let cross =
            scenarios::fan_out(&a, &b, load(args, Some(args.rate), scenarios::Send::Rest)).await?;
        drop((a, b));
        let single = Target::threadline(
            &args.threadline_bin,
            &[format!("--database-url={}", fresh_database(pg).await?)],
        )?;
        eprintln!("[threadline, 1 node on PostgreSQL] same load");
        let one = scenarios::fan_out(
            &single,
            &single,
            load(args, Some(args.rate), scenarios::Send::Rest),
        )
        .await?;
        let _ = writeln!(
            out,
            "\n| {} posts/s into {} rooms of {} (PostgreSQL) | one node | two nodes (Redis adapter), posted on B, received on A |",
            args.rate, args.threads, args.clients
        );
        let _ = writeln!(out, "|---|---|---|");
        for (metric, q) in [
            ("post→delivery p50", 0.5),
            ("post→delivery p90", 0.9),
            ("post→delivery p99", 0.99),
        ] {
            let _ = writeln!(
                out,
                "| {metric} | {:.2} ms | {:.2} ms |",
                ms(&one.latency, q),
                ms(&cross.latency, q)
            );
        }
        let _ = writeln!(
            out,
            "| lost / duplicated | {} / {} | {} / {} |",
            one.lost, one.duplicated, cross.lost, cross.duplicated
        );
        let _ = writeln!(
            out,
            "| deliveries | {} of {} | {} of {} |",
            one.delivered, one.expected, cross.delivered, cross.expected
        );
    }
    Ok(out)
}

/// p50 / p99 of `samples` GETs of `path`.
async fn time_get(target: &Target, path: &str, samples: usize) -> Result<(f64, f64)> {
    let mut rest = rest::Rest::connect(target.addr).await?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for _ in 0..samples {
        let t = std::time::Instant::now();
        let (status, _) = rest.get(path).await?;
        if status != 200 {
            return Err(format!("GET {path}: {status}").into());
        }
        h.record(t.elapsed().as_micros() as u64)?;
    }
    Ok((ms(&h, 0.5), ms(&h, 0.99)))
}

async fn scale(args: &Args) -> Result<String> {
    let scratch =
        std::env::temp_dir().join(format!("threadline-bench-scale-{}", std::process::id()));
    let mut backends = vec![("SQLite", None::<String>)];
    if let Some(pg) = &args.postgres_url {
        backends.push(("PostgreSQL", Some(pg.clone())));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| p50 / p99 | rows | history page (50) from the start | history page (50) at the end | conversation list (10) | conversation list, older page |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (name, pg) in backends {
        for n in [10i64, 1_000_000] {
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch)?;
            let url = match &pg {
                Some(pg) => fresh_database(pg).await?,
                None => format!("sqlite://{}/scale.db?mode=rwc", scratch.display()),
            };
            // Start once so the migrations create the schema, load, then measure.
            drop(Target::threadline(
                &args.threadline_bin,
                &[format!("--database-url={url}")],
            )?);
            eprintln!("[threadline on {name}] loading {n} messages and {n} conversations");
            bulk_load(&url, n).await?;
            let target =
                Target::threadline(&args.threadline_bin, &[format!("--database-url={url}")])?;
            let first = time_get(&target, "/api/threads/big/messages?limit=50", 200).await?;
            let last_cursor = format!("m{}", (n - 50).max(1));
            let last = time_get(
                &target,
                &format!("/api/threads/big/messages?limit=50&cursor={last_cursor}"),
                200,
            )
            .await?;
            let list = time_get(&target, "/api/alice/conversation?pageSize=10", 200).await?;
            let cursor = pagination_cursor("OLDEST_FIRST", &format!("t{}", n / 2));
            let older = time_get(
                &target,
                &format!("/api/alice/conversation?pageSize=10&cursor={cursor}"),
                200,
            )
            .await?;
            let cell = |(p50, p99): (f64, f64)| format!("{p50:.2} / {p99:.2} ms");
            let _ = writeln!(
                out,
                "| {name} | {n} | {} | {} | {} | {} |",
                cell(first),
                cell(last),
                cell(list),
                cell(older)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

/// threadline on `database` (in memory without one), with the extra arguments.
fn start_on(args: &Args, database: Option<&str>) -> Result<Target> {
    let mut extra: Vec<String> = database
        .iter()
        .map(|u| format!("--database-url={u}"))
        .collect();
    extra.extend(args.threadline_arg.iter().cloned());
    Target::threadline(&args.threadline_bin, &extra)
}

/// The backends of the durable and conversations scenarios: (name, URL to start threadline
/// with, none for memory), a fresh database for each PostgreSQL server.
async fn databases(
    args: &Args,
    scratch: &std::path::Path,
    tag: &str,
) -> Result<Vec<(String, Option<String>)>> {
    let mut urls = args.database_url.clone();
    if urls.is_empty() {
        urls.push(format!("sqlite://{}/{tag}.db", scratch.display()));
        urls.extend(args.postgres_url.clone());
    }
    let mut out = vec![("memory".to_owned(), None)];
    for url in urls {
        if url.starts_with("postgres") {
            out.push(("PostgreSQL".into(), Some(fresh_database(&url).await?)));
        } else {
            out.push(("SQLite".into(), Some(url)));
        }
    }
    Ok(out)
}

async fn durable_posting(args: &Args) -> Result<String> {
    let scratch =
        std::env::temp_dir().join(format!("threadline-bench-durable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let seconds = args.durable_seconds;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| backend | posts/s, {} posters over {} threads of {} | p50 / p99 | the database's own ceiling, same run | ratio | posts/s into 1 thread of 2, 8 posters | into 1 thread of {} | ratio |",
        args.durable_posters, args.durable_threads, args.members, args.big_members
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for (name, url) in databases(args, &scratch, "durable").await? {
        let target = start_on(args, url.as_deref())?;
        eprintln!(
            "[threadline on {name}] {} posters, {seconds} s",
            args.durable_posters
        );
        let threads =
            durable::create_threads(&target, args.durable_threads, args.members, "spread").await?;
        let spread = durable::post(&target, &threads, args.durable_posters, seconds).await?;
        eprintln!(
            "[threadline on {name}] one thread of 2, then of {}",
            args.big_members
        );
        let small = durable::create_threads(&target, 1, 2, "small").await?;
        let small = durable::post(&target, &small, 8, seconds).await?;
        let big = durable::create_threads(&target, 1, args.big_members, "big").await?;
        let big = durable::post(&target, &big, 8, seconds).await?;
        drop(target);
        let (ceiling, ratio) = match &url {
            None => ("—".to_owned(), "—".to_owned()),
            Some(url) if url.starts_with("postgres") => {
                eprintln!(
                    "[pgbench on the same database] {} clients",
                    args.durable_posters
                );
                let secs = seconds.ceil() as u64;
                let simple =
                    durable::pgbench(url, &threads, args.durable_posters, secs, false, &scratch)
                        .await?;
                let prepared =
                    durable::pgbench(url, &threads, args.durable_posters, secs, true, &scratch)
                        .await?;
                (
                    format!("pgbench {simple:.0} tps ({prepared:.0} with -M prepared)"),
                    format!(
                        "{:.2}× ({:.2}×)",
                        spread.per_sec() / simple,
                        spread.per_sec() / prepared
                    ),
                )
            }
            Some(url) => {
                eprintln!("[one SQLite writer on the same file]");
                let one = durable::sqlite_single_writer(url, &threads, 1, seconds).await?;
                let batched = durable::sqlite_single_writer(url, &threads, 32, seconds).await?;
                (
                    format!("one writer {one:.0} msg/s ({batched:.0} at 32 per transaction)"),
                    format!(
                        "{:.2}× ({:.2}×)",
                        spread.per_sec() / one,
                        spread.per_sec() / batched
                    ),
                )
            }
        };
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.1} / {:.1} ms | {ceiling} | {ratio} | {:.0} | {:.0} | {:.2} |",
            spread.per_sec(),
            ms(&spread.latency, 0.5),
            ms(&spread.latency, 0.99),
            small.per_sec(),
            big.per_sec(),
            small.per_sec() / big.per_sec(),
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

async fn conversations(args: &Args) -> Result<String> {
    let scratch =
        std::env::temp_dir().join(format!("threadline-bench-lists-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| p50 / p99 | member of 10: first page (20) | older page | member of 1,000: first page (20) | older page |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (name, url) in databases(args, &scratch, "lists").await? {
        let target = start_on(args, url.as_deref())?;
        eprintln!("[threadline on {name}] conversation lists of 10 and 1,000");
        let (few, many) = (
            durable::conversations(&target, 10).await?,
            durable::conversations(&target, 1_000).await?,
        );
        if let Some(url) = url.as_ref().filter(|u| u.starts_with("postgres")) {
            // What autovacuum does within a minute on a running database: without statistics
            // a fresh database's planner guesses a member has 15 rows.
            analyze(url).await?;
        }
        // The 1,000 posts' activity reaches every member within a second (the background
        // copy): measure the steady state, not that copy.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let few = durable::conversation_list(&target, &few, 200).await?;
        let many = durable::conversation_list(&target, &many, 200).await?;
        let _ = writeln!(
            out,
            "| {name} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            few[0], few[1], few[2], few[3], many[0], many[1], many[2], many[3]
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}

async fn analyze(url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut db = sqlx::AnyConnection::connect(url).await?;
    sqlx::query("ANALYZE").execute(&mut db).await?;
    db.close().await?;
    Ok(())
}

/// A cursor as a client of the accounts API writes it (base64 of `{"sort", "lastSeen"}`, as
/// the README documents), URL-escaped.
fn pagination_cursor(sort: &str, last_seen: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"sort":"{sort}","lastSeen":"{last_seen}"}}"#))
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let side_by_side = args.scenarios.iter().any(|s| {
        !matches!(
            s,
            Scenario::Backends
                | Scenario::Scale
                | Scenario::Durable
                | Scenario::Conversations
                | Scenario::Search
        )
    });
    if side_by_side {
        // Runs alternate between the servers, so a slow spell of the machine weighs on both.
        let mut all: Vec<Vec<Results>> = args.servers.iter().map(|_| Vec::new()).collect();
        for run in 1..=args.runs {
            if args.runs > 1 {
                eprintln!("run {run} of {}", args.runs);
            }
            for (server, results) in args.servers.iter().zip(&mut all) {
                results.push(runtime.block_on(measure(*server, &args))?);
            }
        }
        println!("{}", report(&args, &all));
    }
    if args.scenarios.contains(&Scenario::Backends) {
        println!("{}", runtime.block_on(backends(&args))?);
    }
    if args.scenarios.contains(&Scenario::Scale) {
        println!("{}", runtime.block_on(scale(&args))?);
    }
    if args.scenarios.contains(&Scenario::Durable) {
        println!("{}", runtime.block_on(durable_posting(&args))?);
    }
    if args.scenarios.contains(&Scenario::Conversations) {
        println!("{}", runtime.block_on(conversations(&args))?);
    }
    if args.scenarios.contains(&Scenario::Search) {
        let run = search::run(
            &args.threadline_bin,
            args.postgres_url.as_deref(),
            args.search_messages,
            args.search_samples,
        );
        println!("{}", runtime.block_on(run)?);
    }
    Ok(())
}
