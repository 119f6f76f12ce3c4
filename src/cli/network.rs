//! `sit worker` and `sit collect`: the probe network (see [`crate::network`]).

use super::{parse_date, Command, Paths};
use crate::cli::error::{Error, Result};

pub(super) async fn run(cli: &Paths, c: Command) -> Result<()> {
    match c {
        Command::Worker {
            vantage,
            key,
            nats,
            per_hour,
            clock,
            until,
            drain_secs,
            serve,
            limits,
            print_acks,
        } => {
            crate::network::check_vantage(&vantage)?;
            let opts = crate::service::RunOptions {
                key,
                per_hour,
                start: clock.start()?,
                hour_ms: clock.hour_ms,
                until: until.as_deref().map(parse_date).transpose()?,
                progress: false,
                print_acks,
                serve,
                limits: limits.limits()?,
                new_timeline: false,
                contracts: None,
                parties: None,
                demo_key: false,
                network: Some(crate::service::WorkerNet {
                    vantage,
                    nats,
                    drain: std::time::Duration::from_secs(drain_secs),
                }),
            };
            let report = crate::service::run(
                &cli.data,
                crate::service::Endpoints::File(cli.providers.clone()),
                &opts,
            )
            .await?;
            let s = report.shipped.unwrap_or_default();
            println!(
                "sit worker: stopped; {} probes sent, {} recorded as missed; {} acked by JetStream in {} batches ({} publishes sent again), {} left in the spool",
                report.probes, report.missed, s.acked, s.batches, s.retries, s.left
            );
            println!("{} acked", s.acked);
            Ok(())
        }
        Command::Collect {
            nats,
            workers,
            serve,
            limits,
            key,
            clock,
            until,
            print_acks,
            name,
            replicas,
            lease_secs,
        } => {
            if name.is_none() && (replicas != 1 || lease_secs.is_some()) {
                return Err(Error::Usage(
                    "--replicas and --lease-secs are for one of a cluster's collectors: give it a --name".into(),
                ));
            }
            if let Some(n) = &name {
                crate::network::check_vantage(n).map_err(|_| {
                    Error::Usage(format!(
                        "--name `{n}`: use 1-64 letters, digits, `-` or `_` (it names the collector's durable consumers)"
                    ))
                })?;
            }
            if !(1..=5).contains(&replicas) {
                return Err(Error::Usage(format!(
                    "--replicas {replicas}: JetStream keeps 1 to 5 copies of a stream (3 on a three-server cluster)"
                )));
            }
            let lease = std::time::Duration::from_secs_f64(
                lease_secs.unwrap_or(crate::network::cluster::DEFAULT_LEASE.as_secs_f64()),
            );
            if lease < std::time::Duration::from_secs(1)
                || lease > std::time::Duration::from_secs(600)
            {
                return Err(Error::Usage(
                    "--lease-secs: between 1 and 600 seconds (the failover takes about 1.25 leases)".into(),
                ));
            }
            let cluster = name.map(|name| crate::network::cluster::ClusterOptions {
                name,
                replicas,
                lease,
            });
            let opts = crate::network::collect::CollectOptions {
                cluster,
                nats,
                workers,
                serve,
                limits: limits.limits()?,
                print_acks,
                key,
                providers: cli.providers.clone(),
                start: clock.start()?,
                hour_ms: clock.hour_ms,
                until: until.as_deref().map(parse_date).transpose()?,
            };
            let r = crate::network::collect::run(&cli.data, &opts).await?;
            let i = r.ingested;
            for l in &r.published {
                println!("published {l}");
            }
            println!(
                "sit collect: stopped; {} batches: {} observations stored, {} duplicate batches, {} refused; {} records published",
                i.batches, i.stored, i.duplicates, i.refused, r.published.len()
            );
            Ok(())
        }
        _ => Err(Error::Usage("not a network command".into())),
    }
}
