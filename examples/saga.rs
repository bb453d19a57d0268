//! A trip booking as a saga, with no workflow and no dispatcher: the host
//! makes its own sequence of (simulated) service calls — reserve a hotel,
//! rent a car, book a flight, charge the card — and records each one that
//! succeeded in a `Saga` with what undoing it needs. When a call fails,
//! the saga hands the compensations out, latest first.
//!
//! Two trips are booked. In the first the card is declined, and every
//! booking is undone. In the second the airline also refuses to cancel the
//! flight: the saga blocks the hotel (the flight was booked for that
//! hotel's dates) and leaves both for manual handling, while the car, which
//! depends on nothing, is still returned. The example prints what happened
//! and exits non-zero if an outcome is not the expected one.
//!
//! `cargo run --release --example saga` (no feature needed: `cargo run
//! --release --no-default-features --example saga` builds it without
//! petgraph)

use std::process::ExitCode;

use taskweave::saga::{Saga, SagaError};

/// The services: each call returns a confirmation, or why it failed.
struct Services {
    next_ref: u32,
    /// Whether the card is declined.
    card_declined: bool,
    /// Whether the airline refuses cancellations.
    flight_cancel_refused: bool,
    log: Vec<String>,
}

impl Services {
    fn call(&mut self, service: &str) -> Result<u32, String> {
        if service == "card" && self.card_declined {
            self.log.push("charge card: declined".to_string());
            return Err("card declined".to_string());
        }
        self.next_ref += 1;
        self.log
            .push(format!("{service}: confirmed #{}", self.next_ref));
        Ok(self.next_ref)
    }

    fn undo(&mut self, service: &str, reference: u32) -> Result<(), String> {
        if service == "flight" && self.flight_cancel_refused {
            self.log
                .push(format!("cancel {service} #{reference}: refused"));
            return Err("the fare is not refundable".to_string());
        }
        self.log
            .push(format!("cancel {service} #{reference}: done"));
        Ok(())
    }
}

/// What a trip's booking ended as.
#[derive(Debug, PartialEq)]
struct Trip {
    booked: bool,
    /// Compensations performed, in order.
    undone_in_order: Vec<&'static str>,
    /// What is left for a human: (service, why; `None` if blocked).
    left: Vec<(&'static str, Option<String>)>,
}

fn book(services: &mut Services) -> Result<Trip, SagaError> {
    // Each call with the earlier calls it depends on.
    let plan: [(&'static str, &[&'static str]); 4] = [
        ("hotel", &[]),
        ("car", &[]),
        ("flight", &["hotel"]),
        ("card", &["hotel", "car", "flight"]),
    ];
    let mut saga: Saga<&'static str, u32> = Saga::new();
    for (service, depends_on) in plan {
        match services.call(service) {
            Ok(reference) => {
                saga.record(service, reference, depends_on.iter().copied())?;
            }
            Err(_) => {
                saga.compensate();
                break;
            }
        }
    }
    if !saga.is_compensating() {
        return Ok(Trip {
            booked: true,
            undone_in_order: Vec::new(),
            left: Vec::new(),
        });
    }
    let mut undone_in_order = Vec::new();
    while let Some(c) = saga.poll_compensation() {
        let (id, service, reference) = (c.id, *c.key, *c.value);
        // A host would retry here before giving up; the simulated
        // services answer the same every time.
        match services.undo(service, reference) {
            Ok(()) => {
                undone_in_order.push(service);
                saga.compensated(id)?;
            }
            Err(reason) => saga.failed(id, reason)?,
        }
    }
    let left = saga
        .undone()
        .map(|u| (*u.key, u.failure.map(str::to_string)))
        .collect();
    Ok(Trip {
        booked: false,
        undone_in_order,
        left,
    })
}

fn main() -> ExitCode {
    let mut failures = 0;
    let mut check = |ok: bool, what: &str| {
        if !ok {
            eprintln!("check failed: {what}");
            failures += 1;
        }
    };

    for (name, flight_cancel_refused) in [("trip 1", false), ("trip 2", true)] {
        let mut services = Services {
            next_ref: 0,
            card_declined: true,
            flight_cancel_refused,
            log: Vec::new(),
        };
        let trip = match book(&mut services) {
            Ok(trip) => trip,
            Err(error) => {
                eprintln!("{name}: the saga refused an input: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!("{name}:");
        for line in &services.log {
            println!("  {line}");
        }
        for (service, why) in &trip.left {
            match why {
                Some(why) => println!("  left for manual handling: {service} ({why})"),
                None => println!("  left for manual handling: {service} (blocked)"),
            }
        }
        check(!trip.booked, "the card was declined: nothing is booked");
        if flight_cancel_refused {
            check(
                trip.undone_in_order == ["car"],
                "only the car is returned when the flight cannot be cancelled",
            );
            check(
                trip.left
                    == [
                        ("flight", Some("the fare is not refundable".to_string())),
                        ("hotel", None),
                    ],
                "the flight failed and the hotel it depends on is blocked",
            );
        } else {
            check(
                trip.undone_in_order == ["flight", "car", "hotel"],
                "every booking is undone, latest first",
            );
            check(trip.left.is_empty(), "nothing is left for a human");
        }
    }
    if failures == 0 {
        println!("all checks passed");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
