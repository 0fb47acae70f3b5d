//! `pail serve`: the HTTP API on a local socket (see `crate::http`).

use clap::Args;
use pail_core::Pail;
use std::net::SocketAddr;

use crate::http::host;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback needs PAIL_TOKEN (a bearer token every
    /// request but /healthz must carry).
    #[arg(long, default_value = host::LISTEN_DEFAULT)]
    pub listen: SocketAddr,
}

pub async fn run(pail: &Pail, args: ServeArgs) -> anyhow::Result<()> {
    host::init_logging();
    host::serve(pail.store(), args.listen, host::token_from_env()).await
}
