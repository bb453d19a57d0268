//! Helpers for the tests of the async hosts.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use serde_json::Value;
use taskweave::TaskId;
use taskweave::cluster::Verdict;
use taskweave::scheduler::TaskSpec;
use taskweave_postgres::AsyncPgClient;

/// How long a test waits for a verdict or an outcome.
pub const WAIT: Duration = Duration::from_secs(30);

/// Submits `payloads` in one message; their task ids, once accepted.
pub async fn submit(client: &mut AsyncPgClient<Value>, payloads: Vec<Value>) -> Vec<TaskId> {
    let message = client
        .submit(payloads.into_iter().map(TaskSpec::new).collect())
        .await
        .unwrap();
    let verdicts = client.wait_verdicts(&[message], WAIT).await.unwrap();
    let [Some(Verdict::Submitted(tasks))] = &verdicts[..] else {
        panic!("{verdicts:?}");
    };
    tasks.iter().map(|t| t.clone().unwrap()).collect()
}

/// Polls `future` on this thread, outside any tokio runtime, as a host
/// on another executor would.
pub fn block_on_outside_tokio<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A runtime as a service would run: two worker threads, timers and I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
