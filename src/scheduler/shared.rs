//! A cloneable, thread-safe handle for hosts with many producer threads.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, MutexGuard};

use super::{
    Action, Applied, ApplyError, Dispatcher, Event, Input, ReportError, SubmitError, Submitted,
    TaskReport, TaskSpec,
};
use crate::routing::RoutingStrategy;
use crate::{Instant, Observer};

/// A [`Dispatcher`] behind a mutex, shareable across threads.
///
/// Every method takes the lock for one call; [`lock`](Self::lock) holds it
/// for a sequence of calls. The dispatcher stays a plain sans-IO state
/// machine: the handle adds no threads, clocks or queues of its own, and the
/// inputs it serialises are the order in which threads took the lock.
///
/// **Observers never run under the lock.** Events are recorded while the
/// lock is held and handed to the observer ([`set_observer`](Self::set_observer))
/// after it is released, in the order they happened, one at a time. So an
/// observer may call back into the handle — even one that produces events
/// of its own, which are delivered after the callback returns — without
/// deadlocking. (An observer set on a dispatcher before it is shared is
/// moved to the handle by [`from_dispatcher`](Self::from_dispatcher) for
/// the same reason.)
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
    inner: Arc<Shared<P, S>>,
}

struct Shared<P, S> {
    dispatcher: Mutex<Dispatcher<P, S>>,
    handoff: Handoff,
    /// Whether some thread is delivering events (only one at a time, so
    /// they arrive in order).
    delivering: AtomicBool,
}

/// A boxed host observer.
type BoxedObserver = Box<dyn Observer<Event> + Send>;

/// What a shared dispatcher keeps of its observer outside the lock: the
/// events recorded under it, and the host's observer. The dispatcher
/// holds a clone, so that an observer set through the lock lands here too.
#[derive(Clone)]
pub(crate) struct Handoff {
    /// Events recorded under the dispatcher's lock, not yet delivered.
    pending: Arc<Mutex<VecDeque<Event>>>,
    /// The host's observer; taken out while it runs.
    observer: Arc<Mutex<Option<BoxedObserver>>>,
}

impl Handoff {
    /// Keeps `observer` to run outside the lock, and returns the one the
    /// dispatcher runs under it instead: it only records.
    pub(crate) fn take_over(&self, observer: BoxedObserver) -> BoxedObserver {
        *self.observer.lock() = Some(observer);
        Box::new(Record(Arc::clone(&self.pending)))
    }

    /// Makes `dispatcher` hand its observer (now and later) to this
    /// handle: what sharing it does, and what unlocking redoes if a
    /// caller swapped the dispatcher under the lock for another.
    fn adopt<P, S>(&self, dispatcher: &mut Dispatcher<P, S>) {
        if dispatcher.handoff.is_some() {
            return;
        }
        dispatcher.handoff = Some(self.clone());
        // An observer it had is swapped for the recorder: the dispatcher
        // still has one, so its choice of cycle (`plain`) stands.
        if let Some(observer) = dispatcher.observer.take() {
            dispatcher.observer = Some(self.take_over(observer));
        }
    }
}

impl fmt::Debug for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("pending", &self.pending.lock().len())
            .finish_non_exhaustive()
    }
}

/// The observer a shared dispatcher runs under its lock: it only records.
struct Record(Arc<Mutex<VecDeque<Event>>>);

impl Observer<Event> for Record {
    fn on_event(&mut self, event: &Event) {
        self.0.lock().push_back(*event);
    }
}

impl<P, S> Shared<P, S> {
    /// Hands the recorded events to the observer, outside the dispatcher's
    /// lock. A call made while another (or an observer up the stack) is
    /// delivering leaves its events to that one.
    fn deliver(&self) {
        loop {
            let handoff = &self.handoff;
            if handoff.pending.lock().is_empty() || self.delivering.swap(true, Ordering::SeqCst) {
                return;
            }
            loop {
                let next = handoff.pending.lock().pop_front();
                let Some(event) = next else { break };
                let mut observer = handoff.observer.lock().take();
                if let Some(observer) = observer.as_mut() {
                    observer.on_event(&event);
                }
                let mut slot = handoff.observer.lock();
                if slot.is_none() {
                    // Unless the callback set another observer meanwhile.
                    *slot = observer;
                }
            }
            self.delivering.store(false, Ordering::SeqCst);
        }
    }
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
        match self.inner.dispatcher.try_lock() {
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

/// The lock on a [`SharedDispatcher`], from [`SharedDispatcher::lock`]:
/// derefs to the [`Dispatcher`]. Dropping it releases the lock, then hands
/// the events of the calls made through it to the observer.
pub struct SharedGuard<'a, P, S> {
    guard: MutexGuard<'a, Dispatcher<P, S>>,
    shared: &'a Shared<P, S>,
}

impl<P, S> Deref for SharedGuard<'_, P, S> {
    type Target = Dispatcher<P, S>;

    fn deref(&self) -> &Dispatcher<P, S> {
        &self.guard
    }
}

impl<P, S> DerefMut for SharedGuard<'_, P, S> {
    fn deref_mut(&mut self) -> &mut Dispatcher<P, S> {
        &mut self.guard
    }
}

impl<P, S> Drop for SharedGuard<'_, P, S> {
    fn drop(&mut self) {
        let shared = self.shared;
        shared.handoff.adopt(&mut self.guard);
        MutexGuard::unlocked(&mut self.guard, || shared.deliver());
    }
}

impl<P, S> fmt::Debug for SharedGuard<'_, P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedGuard").field(&*self.guard).finish()
    }
}

impl<P, S: RoutingStrategy> SharedDispatcher<P, S> {
    /// Shares an existing dispatcher. An observer it already has moves to
    /// the handle, so that it runs outside the lock.
    pub fn from_dispatcher(mut dispatcher: Dispatcher<P, S>) -> Self {
        let handoff = Handoff {
            pending: Arc::new(Mutex::new(VecDeque::new())),
            observer: Arc::new(Mutex::new(None)),
        };
        handoff.adopt(&mut dispatcher);
        SharedDispatcher {
            inner: Arc::new(Shared {
                dispatcher: Mutex::new(dispatcher),
                handoff,
                delivering: AtomicBool::new(false),
            }),
        }
    }

    /// Sets the observer that receives every lifecycle [`Event`], outside
    /// the lock (see the type's docs). Replaces any previous one.
    pub fn set_observer(&self, observer: impl Observer<Event> + Send + 'static) {
        self.inner.dispatcher.lock().set_observer(observer);
    }

    /// Locks the dispatcher for a sequence of calls. An observer set on
    /// the locked dispatcher goes to the handle all the same and runs
    /// outside the lock; so does the observer of a dispatcher swapped in
    /// under the lock, once the lock is released.
    pub fn lock(&self) -> SharedGuard<'_, P, S> {
        SharedGuard {
            guard: self.inner.dispatcher.lock(),
            shared: &self.inner,
        }
    }

    /// Runs `call` on the locked dispatcher, then delivers its events.
    fn with<T>(&self, call: impl FnOnce(&mut Dispatcher<P, S>) -> T) -> T {
        let result = call(&mut self.inner.dispatcher.lock());
        self.inner.deliver();
        result
    }

    /// [`Dispatcher::submit`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::submit`].
    pub fn submit(&self, spec: TaskSpec<P>, now: Instant) -> Result<Submitted, SubmitError<P>> {
        self.with(|d| d.submit(spec, now))
    }

    /// [`Dispatcher::report`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::report`].
    pub fn report(&self, report: TaskReport, now: Instant) -> Result<(), ReportError> {
        self.with(|d| d.report(report, now))
    }

    /// [`Dispatcher::apply`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`Dispatcher::apply`].
    pub fn apply(&self, input: Input<P>) -> Result<Applied<P>, ApplyError<P>> {
        self.with(|d| d.apply(input))
    }

    /// [`Dispatcher::poll_action`] under the lock.
    #[must_use = "an action the host does not carry out is lost"]
    pub fn poll_action(&self) -> Option<Action> {
        self.with(Dispatcher::poll_action)
    }

    /// [`Dispatcher::handle_timeout`] under the lock.
    pub fn handle_timeout(&self, now: Instant) {
        self.with(|d| d.handle_timeout(now));
    }

    /// [`Dispatcher::poll_timeout`] under the lock.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.with(|d| d.poll_timeout())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    use super::*;
    use crate::scheduler::DispatcherConfig;

    /// An observer that calls back into the handle — reading, and
    /// submitting work that raises events of its own — neither deadlocks
    /// nor loses or reorders an event.
    #[test]
    fn an_observer_may_call_back_into_the_handle() {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let shared: SharedDispatcher<u32> = SharedDispatcher::new(DispatcherConfig::default());
            let handle = shared.clone();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let log = Arc::clone(&seen);
            let follow_ups = Arc::new(AtomicUsize::new(0));
            let count = Arc::clone(&follow_ups);
            shared.set_observer(move |event: &Event| {
                log.lock().push(*event);
                let _ = handle.poll_timeout();
                let waiting = handle.lock().waiting();
                if let Event::Submitted { .. } = event
                    && count.fetch_add(1, Ordering::SeqCst) == 0
                {
                    let _ = handle.submit(TaskSpec::new(2), Instant::ZERO).unwrap();
                }
                let _ = waiting;
            });
            let _ = shared.submit(TaskSpec::new(1), Instant::ZERO).unwrap();
            let events = seen.lock().clone();
            done.send((events, shared.lock().waiting())).unwrap();
        });
        let (events, waiting) = finished
            .recv_timeout(Duration::from_secs(10))
            .expect("the observer's call back deadlocked");
        assert_eq!(waiting, 2);
        let submitted: Vec<u64> = events
            .iter()
            .filter_map(|e| match e {
                Event::Submitted { task, .. } => Some(task.get()),
                _ => None,
            })
            .collect();
        assert_eq!(submitted.len(), 2, "{events:?}");
        assert!(submitted[0] < submitted[1]);
    }

    /// Runs `scenario` on its own thread and fails, rather than hangs, if
    /// it deadlocks.
    fn within_ten_seconds(scenario: impl FnOnce() -> usize + Send + 'static) -> usize {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || done.send(scenario()).unwrap());
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("an observer ran under the lock and deadlocked")
    }

    /// An observer set through the lock (the trap of an earlier release)
    /// or on a dispatcher swapped in under it goes to the handle: it runs
    /// outside the lock, so calling back into the handle cannot deadlock.
    #[test]
    fn an_observer_set_through_the_lock_runs_outside_it() {
        let observed = within_ten_seconds(|| {
            let shared: SharedDispatcher<u32> = SharedDispatcher::new(DispatcherConfig::default());
            let handle = shared.clone();
            let count = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&count);
            shared.lock().set_observer(move |_: &Event| {
                let _ = handle.lock().waiting();
                seen.fetch_add(1, Ordering::SeqCst);
            });
            let _ = shared.submit(TaskSpec::new(1), Instant::ZERO).unwrap();
            count.load(Ordering::SeqCst)
        });
        assert!(observed >= 1, "the observer saw no event");

        let observed = within_ten_seconds(|| {
            let shared: SharedDispatcher<u32> = SharedDispatcher::new(DispatcherConfig::default());
            let handle = shared.clone();
            let count = Arc::new(AtomicUsize::new(0));
            let seen = Arc::clone(&count);
            let mut other = Dispatcher::new(DispatcherConfig::default());
            other.set_observer(move |_: &Event| {
                let _ = handle.lock().waiting();
                seen.fetch_add(1, Ordering::SeqCst);
            });
            *shared.lock() = other;
            let _ = shared.submit(TaskSpec::new(1), Instant::ZERO).unwrap();
            count.load(Ordering::SeqCst)
        });
        assert!(observed >= 1, "the swapped-in observer saw no event");
    }
}
