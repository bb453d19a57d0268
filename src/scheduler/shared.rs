//! A cloneable, thread-safe handle for hosts with many producer threads.

use std::fmt;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::{
    Action, Applied, Dispatcher, Input, ReportError, SubmitError, Submitted, TaskReport, TaskSpec,
};
use crate::Instant;
use crate::routing::RoutingStrategy;

/// A [`Dispatcher`] behind a `parking_lot` mutex, shareable across threads.
///
/// Every method takes the lock for one call; [`lock`](Self::lock) holds it
/// for a sequence of calls. The dispatcher stays a plain sans-IO state
/// machine: the handle adds no threads, clocks or queues of its own, and the
/// inputs it serialises are the order in which threads took the lock.
///
/// ```
/// use std::thread;
/// use taskweave::scheduler::{DispatcherConfig, SharedDispatcher, TaskSpec};
/// use taskweave::Instant;
///
/// let shared: SharedDispatcher<u32> = SharedDispatcher::new(DispatcherConfig::default());
/// let producers: Vec<_> = (0..4)
///     .map(|p| {
///         let handle = shared.clone();
///         thread::spawn(move || {
///             for n in 0..25 {
///                 handle.submit(TaskSpec::new(p * 100 + n), Instant::ZERO).unwrap();
///             }
///         })
///     })
///     .collect();
/// for producer in producers {
///     producer.join().unwrap();
/// }
/// assert_eq!(shared.lock().waiting(), 100);
/// ```
pub struct SharedDispatcher<P, S = Box<dyn RoutingStrategy + Send>> {
    inner: Arc<Mutex<Dispatcher<P, S>>>,
}

impl<P, S> Clone for SharedDispatcher<P, S> {
    fn clone(&self) -> Self {
        SharedDispatcher {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P, S> fmt::Debug for SharedDispatcher<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_lock() {
            Some(dispatcher) => f
                .debug_tuple("SharedDispatcher")
                .field(&*dispatcher)
                .finish(),
            None => f.write_str("SharedDispatcher(<locked>)"),
        }
    }
}

impl<P> SharedDispatcher<P> {
    /// A shared dispatcher routing with the default strategy.
    pub fn new(config: super::DispatcherConfig) -> Self {
        Self::from_dispatcher(Dispatcher::new(config))
    }
}

impl<P, S: RoutingStrategy> SharedDispatcher<P, S> {
    /// Shares an existing dispatcher.
    pub fn from_dispatcher(dispatcher: Dispatcher<P, S>) -> Self {
        SharedDispatcher {
            inner: Arc::new(Mutex::new(dispatcher)),
        }
    }

    /// Locks the dispatcher for a sequence of calls.
    pub fn lock(&self) -> MutexGuard<'_, Dispatcher<P, S>> {
        self.inner.lock()
    }

    /// [`Dispatcher::submit`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::submit`].
    pub fn submit(&self, spec: TaskSpec<P>, now: Instant) -> Result<Submitted, SubmitError<P>> {
        self.inner.lock().submit(spec, now)
    }

    /// [`Dispatcher::report`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::report`].
    pub fn report(&self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        self.inner.lock().report(report, now)
    }

    /// [`Dispatcher::apply`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::apply`].
    pub fn apply(&self, input: Input<P>) -> Result<Applied<P>, crate::Error> {
        self.inner.lock().apply(input)
    }

    /// [`Dispatcher::poll_action`] under the lock.
    pub fn poll_action(&self) -> Option<Action> {
        self.inner.lock().poll_action()
    }

    /// [`Dispatcher::handle_timeout`] under the lock.
    pub fn handle_timeout(&self, now: Instant) {
        self.inner.lock().handle_timeout(now);
    }

    /// [`Dispatcher::poll_timeout`] under the lock.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inner.lock().poll_timeout()
    }
}
