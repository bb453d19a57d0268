//! [`Observer`]: one trait for the events of every state machine.
//!
//! The dispatcher reports [`scheduler::Event`](crate::scheduler::Event)s;
//! a workflow run and the workflow engine (feature `workflow`) report
//! `workflow::WorkflowEvent`s. Both go to an `Observer<E>` for their event
//! type, synchronously, in the order things happen. Every method has a
//! default that does nothing, and a closure `FnMut(&E)` is an observer.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use taskweave::Observer;
//! use taskweave::scheduler::{Dispatcher, DispatcherConfig, Event, TaskSpec};
//! use taskweave::Instant;
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = Arc::clone(&seen);
//! let mut dispatcher: Dispatcher<&str> = Dispatcher::new(DispatcherConfig::default());
//! dispatcher.set_observer(move |event: &Event| log.lock().unwrap().push(*event));
//! dispatcher.submit(TaskSpec::new("x"), Instant::ZERO)?;
//! assert!(matches!(seen.lock().unwrap()[0], Event::Submitted { .. }));
//!
//! // A type of the host's own works as well.
//! #[derive(Default)]
//! struct Count(usize);
//! impl Observer<Event> for Count {
//!     fn on_event(&mut self, _: &Event) {
//!         self.0 += 1;
//!     }
//! }
//! let mut count = Count::default();
//! count.on_event(&Event::Cancelled { task: taskweave::TaskId::new(1) });
//! assert_eq!(count.0, 1);
//! # Ok::<(), taskweave::Error>(())
//! ```

/// Receives events of type `E` as they happen. See the [module docs](self).
pub trait Observer<E> {
    /// Called once per event, in order.
    fn on_event(&mut self, event: &E) {
        let _ = event;
    }
}

impl<E, F: FnMut(&E)> Observer<E> for F {
    fn on_event(&mut self, event: &E) {
        self(event);
    }
}
