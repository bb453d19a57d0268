//! [`json_run_codec`]: hosted workflow runs on a cluster whose payload is
//! any JSON value (`taskweave-pg`'s).

use serde_json::{Map, Value, json};
use taskweave::cluster::RunCodec;
use taskweave::workflow::{StepInput, StepTask, WorkflowDef};

/// The codec `taskweave-pg node` hosts runs with: a step's task is the
/// JSON object
///
/// ```json
/// {"workflow_step": {"run": 7, "workflow": "order", "version": 1, "step": "charge",
///                    "attempt": 1, "compensation": false},
///  "input": 10, "inputs": {"reserve": {"ok": true}}}
/// ```
///
/// — the run's input for an entry step (`null` otherwise), each
/// predecessor's output by its step's key, and a loop's previous output as
/// `"previous"` — and the output its agent completes with (the command's
/// stdout, as JSON) is the step's output as it is.
pub fn json_run_codec() -> RunCodec<Value> {
    RunCodec::new(Value::Null, step_payload)
}

fn step_payload(def: &WorkflowDef, step: StepTask, input: StepInput<Value>) -> Value {
    let key = |id| {
        def.step(id)
            .map_or_else(|| id.to_string(), |s| s.id.clone())
    };
    let inputs: Map<String, Value> = input
        .inputs
        .into_iter()
        .map(|(id, output)| (key(id), output))
        .collect();
    let mut payload = json!({
        "workflow_step": {
            "run": step.run.get(),
            "workflow": def.name(),
            "version": def.version(),
            "step": key(step.step),
            "attempt": input.attempt,
            "compensation": step.compensation,
        },
        "input": input.run_input,
        "inputs": inputs,
    });
    if let Some(previous) = input.previous {
        payload["previous"] = previous;
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskweave::workflow::StepDef;
    use taskweave::{AttemptToken, WorkflowId};

    #[test]
    fn a_step_payload_names_its_step_and_its_predecessors_by_key() {
        let def = WorkflowDef::builder("order", 3)
            .step(StepDef::agent("reserve"))
            .step(StepDef::agent("charge"))
            .edge("reserve", "charge")
            .build()
            .unwrap();
        let charge = def.step_id("charge").unwrap();
        let reserve = def.step_id("reserve").unwrap();
        let step = StepTask {
            run: WorkflowId::new(7),
            step: charge,
            token: AttemptToken::new(1),
            compensation: false,
        };
        let input = StepInput {
            step: charge,
            token: AttemptToken::new(1),
            attempt: 2,
            iteration: 1,
            run_input: None,
            inputs: vec![(reserve, json!({"ok": true}))],
            item: None,
            previous: None,
        };
        let payload = step_payload(&def, step, input);
        assert_eq!(
            payload,
            json!({
                "workflow_step": {"run": 7, "workflow": "order", "version": 3, "step": "charge",
                                  "attempt": 2, "compensation": false},
                "input": null,
                "inputs": {"reserve": {"ok": true}},
            })
        );
    }
}
