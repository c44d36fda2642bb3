//! Graceful shutdown: on SIGTERM or SIGINT, requests and attempts in flight
//! get the grace period, then the endpoint threads and the writer end.

use super::Application;
use crate::actors::router::{DrainAll, LeaveLeases, ReleaseThreads, Router};
use crate::store::writer::join_threads;
use actix::Addr;
use std::time::Duration;

/// How long past the grace period shutdown may take: the time to answer
/// the last messages and log, never to wait for work.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

impl Application {
    /// Serves until SIGTERM or SIGINT, then stops accepting, lets in-flight
    /// requests and attempts finish, lets the writer commit what they left
    /// queued, and returns once the threads that use the database have
    /// ended (a thread left running would still be closing its connections
    /// while the process exits). The whole shutdown has one deadline, the grace
    /// period (plus [`SHUTDOWN_MARGIN`]) from the signal, whatever state the
    /// server and the actors are in (an endpoint actor may be restarting, an
    /// attempt hanging): whatever did not finish is still pending in the
    /// database and is sent after the next start.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Released only once everything that uses the database has ended.
        let _sqlite_claim = self.sqlite_claim;
        let handle = self.server.handle();
        let server = actix_web::rt::spawn(self.server);
        let metrics_server = self.metrics_server.map(|(server, _)| {
            let handle = server.handle();
            actix_web::rt::spawn(server);
            handle
        });
        let writer_lanes = self.writer_lanes;
        shutdown_signal().await?;
        log::info!("shutdown requested: no longer accepting requests");
        if let Some(metrics_server) = metrics_server {
            metrics_server.stop(false).await;
        }
        let grace = self.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace + SHUTDOWN_MARGIN;
        let router = self.router;
        let draining = router.clone();
        let stopped = async move {
            // The server stops accepting at once and gives open requests the
            // grace period (its shutdown timeout); the actors stop taking
            // work and give attempts in flight the same period, at the same
            // time, so a slow client cannot eat into an attempt's time.
            let drained = async {
                if draining.send(DrainAll(grace)).await.is_err() {
                    log::warn!("shutdown: the router had already stopped");
                }
            };
            tokio::join!(handle.stop(true), drained);
            server.await.map_err(std::io::Error::other)?
        };
        // Whatever the above waits on (a restarting actor, a router busy
        // elsewhere), it gets no longer than this.
        match tokio::time::timeout_at(deadline, stopped).await {
            Ok(outcome) => outcome?,
            Err(_) => log::warn!(
                "shutdown: not finished after the grace period ({grace:?}); stopping anyway, unfinished deliveries stay pending"
            ),
        }
        // The endpoint actors end before the writer: what they queued as
        // they stopped is written too.
        if tokio::time::timeout_at(deadline, stop_endpoint_threads(&router))
            .await
            .is_err()
        {
            log::warn!(
                "shutdown: the endpoint threads had not ended after the grace period ({grace:?})"
            );
        }
        // What was queued meanwhile (an alert, a status change) is written
        // before the writer's lanes end; work that comes later is refused.
        if tokio::time::timeout_at(deadline, writer_lanes.close())
            .await
            .is_err()
        {
            log::warn!("shutdown: the writer had not written everything queued after the grace period ({grace:?})");
        }
        // Last, once nothing more is sent or written for the endpoints:
        // the other instances take them over at once.
        if tokio::time::timeout_at(deadline + SHUTDOWN_MARGIN, router.send(LeaveLeases))
            .await
            .is_err()
        {
            log::warn!("shutdown: the leases were not given back; they expire instead");
        }
        log::info!("shutdown complete");
        Ok(())
    }
}

/// Stops the endpoint actors' threads and waits for them to end, with the
/// actors, their blocking tasks and the connections they hold.
async fn stop_endpoint_threads(router: &Addr<Router>) {
    let Ok(arbiters) = router.send(ReleaseThreads).await else {
        log::warn!("shutdown: the router had already stopped");
        return;
    };
    for arbiter in &arbiters {
        arbiter.stop();
    }
    join_threads("endpoint threads", arbiters, actix::Arbiter::join).await;
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted,
        _ = terminate.recv() => Ok(()),
    }
}
