//! Goal decomposition: from a goal in words to a phased [`Plan`] of atomic
//! subtasks.

mod builtin;
mod template;

pub use template::{
    GoalTemplate, MAX_TASK_NAME_BYTES, PhaseTemplate, TaskTemplate, TemplateDecomposer,
};

use crate::planning::Plan;

/// Turns a goal into a [`Plan`]: a [`WorkflowDef`](crate::workflow::WorkflowDef)
/// of atomic subtasks — each with its dependencies, required capabilities,
/// priority and estimated duration — grouped into phases.
///
/// [`TemplateDecomposer`] is the rule-based implementation. A host that
/// wants a language model to plan implements the trait for its client, or
/// passes a closure `Fn(&str) -> Result<Plan, E>`. The closure below stands
/// in for the model: it returns the phases as JSON, in the same data form
/// as the templates ([`PhaseTemplate`]), and [`GoalTemplate::plan`] checks
/// and builds them — a model's plan is validated exactly like a
/// template's. Templates are tried first; only a goal that matches none
/// goes to the model, which the explicit
/// [`NoMatchingTemplate`](crate::planning::PlanningError::NoMatchingTemplate)
/// answer makes possible.
///
/// ```
/// use taskweave::planning::{
///     Decomposer, GoalTemplate, PhaseTemplate, Plan, PlanningError, TemplateDecomposer,
/// };
///
/// /// Stands in for a language-model call.
/// fn ask_model(goal: &str) -> String {
///     assert!(goal.contains("onboarding"));
///     r#"[
///       {"name": "discovery", "tasks": [{"id": "interview", "capabilities": ["research"]}]},
///       {"name": "delivery", "tasks": [
///         {"id": "draft", "capabilities": ["writing"], "estimated_duration": {"secs": 3600, "nanos": 0}},
///         {"id": "publish", "capabilities": ["cms"], "depends_on": ["draft"]}]}
///     ]"#
///     .to_string()
/// }
///
/// let templates = TemplateDecomposer::builtin();
/// let planner = |goal: &str| -> Result<Plan, Box<dyn std::error::Error>> {
///     match templates.decompose(goal) {
///         Err(PlanningError::NoMatchingTemplate { .. }) => {
///             let phases: Vec<PhaseTemplate> = serde_json::from_str(&ask_model(goal))?;
///             Ok(GoalTemplate::new("model plan", [goal], phases).plan(goal)?)
///         }
///         answer => Ok(answer?),
///     }
/// };
///
/// let plan = planner.decompose("Improve the onboarding guide")?;
/// assert_eq!(plan.workflow().name(), "model plan");
/// assert_eq!(plan.phases().len(), 2);
/// let from_templates = planner.decompose("Develop an ML model for churn")?;
/// assert_eq!(from_templates.workflow().name(), "ml-model");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Decomposer {
    /// Why a goal could not be decomposed.
    type Error;

    /// The plan for `goal`.
    ///
    /// # Errors
    ///
    /// Whatever the implementation cannot plan: for [`TemplateDecomposer`],
    /// a goal that matches no template.
    fn decompose(&self, goal: &str) -> Result<Plan, Self::Error>;
}

impl<F, E> Decomposer for F
where
    F: Fn(&str) -> Result<Plan, E>,
{
    type Error = E;

    fn decompose(&self, goal: &str) -> Result<Plan, E> {
        self(goal)
    }
}
