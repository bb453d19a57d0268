//! The registered definitions as hosted runs use them: found by name and
//! version, and refused when a step would need host code.

use std::sync::Arc;

use crate::workflow::{StepKind, WorkflowDef, WorkflowEngine};

/// The registered definition of `workflow` at `version`, or its
/// highest version.
pub(super) fn definition_in<P: Clone>(
    engine: &WorkflowEngine<P>,
    workflow: &str,
    version: Option<u32>,
) -> Result<Arc<WorkflowDef>, String> {
    let mut versions = engine.versions(workflow);
    let def = match version {
        Some(v) => versions.find(|d| d.version() == v),
        None => versions.last(),
    };
    def.cloned().ok_or_else(|| match version {
        Some(v) => format!("version {v} of workflow {workflow:?} is not registered"),
        None => format!("no workflow {workflow:?} is registered"),
    })
}

pub(super) const NO_HOST_CODE: &str = "a hosted run executes no host code: this step needs some";

/// Refuses a definition with a step that needs host code, nested
/// definitions included.
pub(super) fn needs_no_host(def: &WorkflowDef) -> Result<(), String> {
    for (_, step) in def.steps() {
        let refuse = |what: &str| {
            Err(format!(
                "step {:?} of workflow {:?} version {} is {what}, which needs host code: \
                 a run the cluster hosts executes none (run the workflow with a \
                 WorkflowClient instead)",
                step.id,
                def.name(),
                def.version()
            ))
        };
        if step.multi_instance.is_some() {
            return refuse("multi-instance");
        }
        match &step.kind {
            StepKind::Local => return refuse("a local step"),
            StepKind::SubWorkflow(_) if step.compensable => {
                return refuse("a compensable sub-workflow");
            }
            StepKind::SubWorkflow(child) => needs_no_host(child)?,
            StepKind::Agent | StepKind::Wait { .. } => {}
        }
    }
    Ok(())
}
