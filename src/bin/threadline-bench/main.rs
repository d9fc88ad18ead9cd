//! threadline's load generator: the same scenarios against threadline and against the Node
//! baseline (the seed stub on Express + socket.io 4, `bench/node-stub`), side by side.
//!
//!   cargo build --release && (cd bench/node-stub && npm ci)
//!   target/release/threadline-bench                 # every scenario, both servers
//!   target/release/threadline-bench --help          # sizes, rates, one server only
//!
//! Loopback only; every loop is bounded in count and time.

mod eio;
mod rest;
mod scenarios;
mod target;

use std::fmt::Write as _;

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

use target::Target;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Held,
    Fanout,
    History,
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
    /// Held connections (the machine allows 20,000 open files per process).
    #[arg(long, default_value_t = 19_000)]
    connections: usize,
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

struct Results {
    name: &'static str,
    held: Option<scenarios::Held>,
    max_rate: Option<scenarios::FanOut>,
    fixed_rate: Option<scenarios::FanOut>,
    history: Option<scenarios::History>,
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
        history: None,
    };
    // A fresh server per scenario, so one scenario's garbage does not weigh on the next.
    if args.scenarios.contains(&Scenario::Held) {
        let target = start(server, args)?;
        eprintln!("[{}] held connections: {}", target.name, args.connections);
        results.held = Some(scenarios::held(&target, args.connections, args.threads).await?);
    }
    if args.scenarios.contains(&Scenario::Fanout) {
        let target = start(server, args)?;
        eprintln!("[{}] fan-out at max rate", target.name);
        results.max_rate = Some(
            scenarios::fan_out(
                &target,
                args.threads,
                args.clients,
                args.posters,
                None,
                args.seconds,
            )
            .await?,
        );
        let target = start(server, args)?;
        eprintln!("[{}] fan-out at {} posts/s", target.name, args.rate);
        results.fixed_rate = Some(
            scenarios::fan_out(
                &target,
                args.threads,
                args.clients,
                args.posters,
                Some(args.rate),
                args.seconds,
            )
            .await?,
        );
    }
    if args.scenarios.contains(&Scenario::History) {
        let target = start(server, args)?;
        eprintln!("[{}] history of {} messages", target.name, args.history);
        results.history = Some(scenarios::history(&target, args.history, 200).await?);
    }
    Ok(results)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One table row: a metric for each server, and threadline ÷ node when both ran.
fn row(out: &mut String, metric: &str, values: &[Option<f64>], unit: &str, target: &str) {
    let cells: Vec<String> = values
        .iter()
        .map(|v| {
            v.map(|v| format!("{} {unit}", fmt(v)))
                .unwrap_or_else(|| "–".into())
        })
        .collect();
    let ratio = match values {
        [Some(a), Some(b)] if *b != 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    };
    let _ = writeln!(
        out,
        "| {metric} | {} | {ratio} | {target} |",
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

fn report(args: &Args, all: &[Results]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = all.iter().map(|r| r.name).collect();
    let _ = writeln!(out, "| metric | {} | ratio | target |", names.join(" | "));
    let _ = writeln!(out, "|---|{}---|---|", "---|".repeat(names.len()));
    let pick = |f: &dyn Fn(&Results) -> Option<f64>| all.iter().map(f).collect::<Vec<_>>();

    if all.iter().any(|r| r.held.is_some()) {
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
    ] {
        if !all.iter().any(|r| get(r).is_some()) {
            continue;
        }
        let f = |m: fn(&scenarios::FanOut) -> f64| pick(&|r| get(r).map(m));
        let is_max = label == "fan-out max";
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
            if is_max { "" } else { "≤ 0.35×" },
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
            if is_max { "" } else { "≤ 0.15×" },
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
            &format!("{label}: failed posts"),
            &f(|x| x.post_errors as f64),
            "",
            "0",
        );
    }
    if all.iter().any(|r| r.history.is_some()) {
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

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut all = Vec::new();
    for server in &args.servers {
        all.push(runtime.block_on(measure(*server, &args))?);
    }
    println!("{}", report(&args, &all));
    Ok(())
}
