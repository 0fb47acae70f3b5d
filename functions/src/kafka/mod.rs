//! `pail kafka`: Kafka's wire protocol in front of a pail store, with no broker behind it.
//!
//! The listener keeps no state that matters: offsets come from pail's commit, idempotence
//! from the partition manifests, producer ids from create-if-absent blocks in the store, topic
//! settings from the topic descriptors. Any number of listeners can serve one store behind one
//! address, each naming itself as the leader of every partition.
//!
//! Modules: [`server`] (accepting, framing, pipelining, buffer bounds), [`apis`] (the table
//! from API key to handler and version range, which also builds ApiVersions), [`handlers`]
//! (one file per API), [`groups`] (what the group APIs share), [`records`] (Kafka record batches to pail records and back),
//! [`appender`] (per-partition ordered appends), [`producer_ids`], [`codes`] (error codes).
//! Must never: keep data or offsets of its own, or answer a produce before the commit is
//! durable.

pub mod apis;
pub mod appender;
pub mod codes;
pub mod groups;
pub mod handlers;
pub mod producer_ids;
pub mod records;
pub mod server;
pub mod topic_configs;

#[cfg(test)]
mod tests;

use clap::Args;
use pail_core::Pail;
use std::net::SocketAddr;
use std::sync::Arc;

use appender::Appenders;
use producer_ids::ProducerIds;

/// The node id of every listener: each one presents itself as the whole cluster.
pub const NODE_ID: i32 = 0;
/// The cluster id reported in Metadata.
pub const CLUSTER_ID: &str = "pail";

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  pail kafka                                       127.0.0.1:9092, this store
  pail --store s3://bucket/pail kafka --listen 0.0.0.0:9092 --advertise kafka.example.com:9092
  pail kafka --listen 127.0.0.1:0 --auto-create-partitions 3")]
pub struct KafkaArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// HOST:PORT clients are told to connect to (default: the listening address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Create an unknown topic with this many partitions when a client asks for it in a
    /// Metadata request (0: never).
    #[arg(long, default_value_t = 0)]
    pub auto_create_partitions: u32,
}

/// What a listener tells clients about itself, and its settings.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub advertised_host: String,
    pub advertised_port: i32,
    pub auto_create_partitions: u32,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Broker {
    pub pail: Pail,
    pub config: ListenerConfig,
    pub appenders: Arc<Appenders>,
    pub producer_ids: ProducerIds,
    /// JoinGroup and SyncGroup requests waiting on their group's chain now.
    pub group_waits: std::sync::atomic::AtomicUsize,
}

impl Broker {
    pub fn new(pail: Pail, config: ListenerConfig) -> Arc<Self> {
        let producer_ids = ProducerIds::new(pail.store().clone(), pail.writer_id().to_string());
        Arc::new(Broker {
            appenders: Appenders::new(pail.clone()),
            producer_ids,
            pail,
            config,
            group_waits: Default::default(),
        })
    }
}

/// Splits `HOST:PORT` (the host may be a bracketed IPv6 address).
pub fn parse_advertise(s: &str) -> anyhow::Result<(String, i32)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--advertise {s:?} is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| anyhow::anyhow!("--advertise {s:?} has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "--advertise {s:?} has no host");
    Ok((host.to_string(), i32::from(port)))
}

/// Runs the listener until SIGINT or SIGTERM.
pub async fn run(store_url: &str, args: KafkaArgs) -> anyhow::Result<()> {
    init_logging();
    let pail = Pail::open(store_url).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener.local_addr()?;
    let (advertised_host, advertised_port) = match &args.advertise {
        Some(a) => parse_advertise(a)?,
        None => (bound.ip().to_string(), i32::from(bound.port())),
    };
    let broker = Broker::new(
        pail,
        ListenerConfig {
            advertised_host,
            advertised_port,
            auto_create_partitions: args.auto_create_partitions,
        },
    );
    // One line on stdout that scripts and tests wait for.
    println!("pail kafka listening on {bound}");
    tracing::info!(
        "store {store_url}, advertising {}:{}",
        broker.config.advertised_host,
        broker.config.advertised_port
    );
    server::serve(listener, broker, crate::http::host::shutdown_signal()).await;
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
