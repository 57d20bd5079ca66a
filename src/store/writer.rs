//! The single writer thread: jobs that arrive together are committed in one
//! transaction (group commit), each inside its own savepoint so one bad job fails alone.

use super::StoreError;
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

type Work = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

/// Runs on the writer thread right after a job's commit, in commit order.
pub(super) type AfterCommit = Box<dyn FnOnce() + Send>;

struct Job {
    work: Work,
    after: Option<AfterCommit>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

enum Msg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// A handle to the writer thread.
pub(super) struct Writer {
    tx: std::sync::Mutex<Option<mpsc::Sender<Msg>>>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("bootd-store".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Invalid(format!("cannot start the store writer: {e}")))?;
        Ok(Writer {
            tx: std::sync::Mutex::new(Some(tx)),
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<Msg>> {
        self.tx.lock().ok().and_then(|g| g.clone())
    }

    /// Queues `work`; resolves once it is committed (durable) or failed.
    pub(super) async fn submit(
        &self,
        work: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<(), StoreError> {
        let rx = self.enqueue(Box::new(work), None)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues `work` and returns the receiver of its outcome; the queue order is the
    /// commit order, which callers use to keep per-node events in order.
    pub(super) fn enqueue(
        &self,
        work: Work,
        after: Option<AfterCommit>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        let sender = self.sender().ok_or(StoreError::Closed)?;
        sender
            .send(Msg::Job(Job { work, after, done }))
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Lets queued jobs finish, then stops the thread.
    pub(super) async fn close(&self) {
        let sender = self.tx.lock().ok().and_then(|mut g| g.take());
        if let Some(sender) = sender {
            let (tx, rx) = oneshot::channel();
            if sender.send(Msg::Close(tx)).is_ok() {
                let _ = rx.await;
            }
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut closing: Option<oneshot::Sender<()>> = None;
    while closing.is_none() {
        let first = match rx.recv() {
            Ok(m) => m,
            Err(_) => break,
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Job(job) => batch.push(job),
                Msg::Close(ack) => {
                    closing = Some(ack);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit(&mut conn, &mut batch);
        }
    }
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
    drop(conn);
    if let Some(ack) = closing {
        let _ = ack.send(());
    }
}

/// Runs every job of the batch in one transaction and reports each outcome after commit.
fn commit(conn: &mut Connection, batch: &mut Vec<Job>) {
    let mut outcomes: Vec<Result<(), StoreError>> = Vec::with_capacity(batch.len());
    let jobs: Vec<Job> = std::mem::take(batch);
    let mut dones = Vec::with_capacity(jobs.len());
    let result = (|| -> Result<(), rusqlite::Error> {
        let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for job in jobs {
            dones.push((job.done, job.after));
            let sp = tx.savepoint()?;
            let outcome = run_job(&sp, job.work);
            if outcome.is_ok() {
                sp.commit()?;
            } else {
                drop(sp); // rolls back this job only
            }
            outcomes.push(outcome);
        }
        tx.commit()
    })();
    match result {
        Ok(()) => {
            for ((done, after), outcome) in dones.into_iter().zip(outcomes) {
                if let (Ok(()), Some(after)) = (&outcome, after) {
                    after();
                }
                let _ = done.send(outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store commit failed; the batch was not written");
            let text = e.to_string();
            for (done, _) in dones {
                let _ = done.send(Err(StoreError::Invalid(format!("commit failed: {text}"))));
            }
        }
    }
}

fn run_job(sp: &rusqlite::Savepoint, work: Work) -> Result<(), StoreError> {
    // A savepoint derefs to the connection, so a job sees the open transaction.
    work(sp)
}
